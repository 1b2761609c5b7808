"""The consolidated report's files and charts, from a hand-built report dict (the schema in
:mod:`lethe.evidence`): the CSV's rows and numbers, the JSON, the chain head line, an HTML page
with nothing outside itself, and charts that are well-formed SVG whatever the data.
"""

from __future__ import annotations

import copy
import csv
import json
import re
import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from lethe.evidence.charts import BAR, backlog_chart, removals_chart
from lethe.evidence.render import CSV_COLUMNS, NO_BREACH, render_consolidated_html, write_consolidated

DAY = date(2026, 11, 26)
HEAD_HASH = "9f2c" + "0123456789abcdef" * 3 + "a1b2c3d4e5f6"
BREACH_TEXT = "Rule T1 broke the policy: 1 database past its deadline remains after the run."
DECISION_TEXT = "K1 keeps contacts 3 years: confirm this period or state one in the policy."
ESCAPED_DESCRIPTION = "Anonymise <b>& contacts of closed accounts"
FORBIDDEN = ("http://", "https://", "<script", 'src="http', "@import", "url(")


def trend(days: int = 90, missed: tuple[int, ...] = (), removed=None, before=None, after=None) -> list[dict]:
    """``days`` days ending on DAY; ``missed``: indexes of nights the rule did not run; the counts
    per day from functions of the index (zero by default)."""
    found = []
    for i in range(days):
        ran = i not in missed
        found.append(
            {
                "date": (DAY - timedelta(days=days - 1 - i)).isoformat(),
                "ran": ran,
                "status": "kept" if ran else "did_not_run",
                "removed": removed(i) if removed and ran else 0,
                "overdue_before": before(i) if before else 0,
                "overdue_after": (after(i) if after else 0) if ran else None,
            }
        )
    return found


def counts(**given) -> dict:
    base = dict.fromkeys(
        ("eligible", "deleted", "anonymised", "dropped", "exempt_hold", "exempt_restriction", "quarantined"), 0
    )
    return {**base, "overdue_before": 0, "overdue_after": 0, **given}


def rule(rule_id: str, **fields) -> dict:
    entry = {
        "rule": rule_id,
        "description": f"Delete what rule {rule_id} covers",
        "policy_section": "4.2",
        "legal_basis": "Art. 6(1)(b) contract",
        "data_category": "customer contact data",
        "source": "crm",
        "action": "delete",
        "unit": "records",
        "period": "2 years",
        "period_source": "policy",
        "trigger": "account closed",
        "status": "kept",
        "status_text": "kept: nothing past its deadline remains",
        "kept_since": "2026-10-29",
        "kept_since_text": "every night since 2026-10-29 (29 nights)",
        "counts": counts(),
        "checks": {"before": "passed", "after": "passed"},
        "runs": 1,
        "run": {
            "dag_id": "lethe_crm_retention",
            "run_id": "scheduled__2026-11-26T02:00:00+00:00",
            "as_of": "2026-11-26T00:00:00",
            "first_seq": 4700,
            "last_seq": 4711,
        },
        "forecast": {"7": 0, "30": 0},
        "trend": trend(),
    }
    return {**entry, **fields}


def consolidated_report(days: int = 90) -> dict:
    """Three rules: C1 kept with a backlog and a missed night in its trend, K1 on a default period
    (with markup in its description), T1 a breach; the chain verified."""
    window_from = (DAY - timedelta(days=days - 1)).isoformat()
    return {
        "kind": "lethe_consolidated_report",
        "version": 1,
        "date": DAY.isoformat(),
        "generated_at": "2026-11-26T07:00:03Z",
        "built_from": "audit trail and sources",
        "policy": {"name": "Acme privacy policy", "document": "policy/privacy-policy.md"},
        "verdict": {"ok": False, "headline": "Rule T1 broke the policy; the other rules were kept."},
        "breaches": [{"rule": "T1", "kind": "overdue_after", "text": BREACH_TEXT}],
        "decisions": [{"rule": "K1", "period": "3 years", "text": DECISION_TEXT}],
        "chain": {
            "ok": True,
            "entries": 4711,
            "head_seq": 4711,
            "head_hash": HEAD_HASH,
            "first_bad_seq": None,
            "problem": "",
        },
        "trend_window": {"from": window_from, "to": DAY.isoformat(), "days": days},
        "forecast": {"computed": True, "as_of": "2026-12-26T00:00:00", "note": "From the sources' own scans."},
        "rules": [
            rule(
                "C1",
                counts=counts(eligible=12, deleted=12, overdue_before=2, exempt_hold=3, quarantined=1),
                forecast={"7": 5, "30": 1234},
                trend=trend(days, missed=(days // 2,), removed=lambda i: 3 + i % 7, before=lambda i: i % 5),
            ),
            rule(
                "K1",
                description=ESCAPED_DESCRIPTION,
                action="anonymise",
                period="3 years",
                period_source="default",
                counts=counts(eligible=4, anonymised=4),
                forecast={"7": 1, "30": 9},
                trend=trend(days, removed=lambda i: i % 3),
            ),
            rule(
                "T1",
                description="Drop trial databases 30 days after the trial ends",
                source="trials",
                action="drop_database",
                unit="databases",
                period="30 days",
                status="breach",
                status_text="breach: 1 database past its deadline remains",
                kept_since=None,
                kept_since_text="not kept on 2026-11-26",
                counts=counts(eligible=3, dropped=2, overdue_before=1, overdue_after=1),
                checks={"before": "passed", "after": "failed"},
                forecast=None,
                trend=trend(days, removed=lambda i: i % 2, before=lambda i: i % 2, after=lambda i: int(i == days - 1)),
            ),
        ],
    }


def broken_chain(report: dict) -> dict:
    broken = copy.deepcopy(report)
    broken["chain"].update(ok=False, first_bad_seq=4702, problem="Entry 4702's hash does not match its content.")
    return broken


def svgs(html: str) -> list[ET.Element]:
    """Every inline SVG of the page, parsed as XML: it fails on one that is not well-formed."""
    return [ET.fromstring(found) for found in re.findall(r"<svg\b.*?</svg>", html, flags=re.S)]


# --------------------------------------------------------------------------- the files


@pytest.fixture
def written(tmp_path):
    report = consolidated_report()
    return report, write_consolidated(report, tmp_path / "evidence" / "2026-11-26")


def test_writes_the_four_files(written, tmp_path):
    _, files = written
    folder = tmp_path / "evidence" / "2026-11-26"
    assert files == {
        "html": folder / "consolidated.html",
        "json": folder / "consolidated.json",
        "csv": folder / "consolidated.csv",
        "chain_head": folder / "chain-head.txt",
    }
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in files.values()), "a temporary file left"


def test_csv_has_one_row_per_rule_with_its_numbers(written):
    _, files = written
    with files["csv"].open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        rows = list(reader)
    assert [row["rule"] for row in rows] == ["C1", "K1", "T1"]
    c1, k1, t1 = rows
    assert c1 == {
        "date": "2026-11-26",
        "rule": "C1",
        "source": "crm",
        "policy_section": "4.2",
        "legal_basis": "Art. 6(1)(b) contract",
        "period": "2 years",
        "period_source": "policy",
        "status": "kept",
        "kept_since": "2026-10-29",
        "eligible": "12",
        "deleted": "12",
        "anonymised": "0",
        "dropped": "0",
        "exempt_hold": "3",
        "exempt_restriction": "0",
        "quarantined": "1",
        "overdue_before": "2",
        "overdue_after": "0",
        "checks_before": "passed",
        "checks_after": "passed",
        "run_id": "scheduled__2026-11-26T02:00:00+00:00",
        "as_of": "2026-11-26T00:00:00",
        "forecast_7": "5",
        "forecast_30": "1234",
    }
    assert (k1["period"], k1["period_source"], k1["anonymised"], k1["forecast_30"]) == ("3 years", "default", "4", "9")
    assert (t1["status"], t1["kept_since"], t1["dropped"], t1["overdue_after"], t1["checks_after"]) == (
        "breach",
        "",
        "2",
        "1",
        "failed",
    )
    assert (t1["forecast_7"], t1["forecast_30"], t1["source"]) == ("", "", "trials")


def test_csv_quotes_text_a_spreadsheet_would_run(tmp_path):
    report = consolidated_report(days=3)
    report["rules"][0]["policy_section"] = "=HYPERLINK(1)"
    files = write_consolidated(report, tmp_path)
    with files["csv"].open(newline="", encoding="utf-8") as handle:
        assert next(csv.DictReader(handle))["policy_section"] == "'=HYPERLINK(1)"


def test_json_round_trips(written):
    report, files = written
    text = files["json"].read_text(encoding="utf-8")
    assert json.loads(text) == report
    assert text == json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_chain_head_line(written, tmp_path):
    _, files = written
    assert files["chain_head"].read_text(encoding="utf-8") == (
        f"2026-11-26 audit chain head: entry 4711, hash {HEAD_HASH} (verified: yes)\n"
    )
    broken = write_consolidated(broken_chain(consolidated_report(days=3)), tmp_path / "broken")
    assert broken["chain_head"].read_text(encoding="utf-8") == (
        f"2026-11-26 audit chain head: entry 4711, hash {HEAD_HASH} (verified: no)\n"
    )


# --------------------------------------------------------------------------- the page


def test_html_is_self_contained(written):
    _, files = written
    html = files["html"].read_text(encoding="utf-8")
    assert html == render_consolidated_html(written[0])
    for forbidden in FORBIDDEN:
        assert forbidden not in html.lower(), forbidden
    assert "<link" not in html and "@font-face" not in html and "href=" not in html


def test_html_has_two_well_formed_charts_per_rule(written):
    report, files = written
    html = files["html"].read_text(encoding="utf-8")
    assert html.count("<svg") == 2 * len(report["rules"])
    charts = svgs(html)
    assert len(charts) == 6
    assert [chart.get("class") for chart in charts] == ["chart removals-chart", "chart backlog-chart"] * 3
    for chart in charts:
        assert chart.get("role") == "img" and chart.find("title") is not None and chart.get("aria-label")
    assert charts[0].get("aria-label") == "C1 removals: 531 records removed over 90 days, 1 night did not run"


def test_html_escapes_policy_text(written):
    _, files = written
    html = files["html"].read_text(encoding="utf-8")
    assert "<b>&" not in html
    assert "Anonymise &lt;b&gt;&amp; contacts of closed accounts" in html


def test_html_shows_breaches_decisions_and_the_chain(written):
    report, files = written
    html = files["html"].read_text(encoding="utf-8")
    body = html[html.index("<body>") :]
    order = [
        body.index("Lethe consolidated retention report: 2026-11-26"),
        body.index("Acme privacy policy"),
        body.index(report["verdict"]["headline"]),
        body.index(BREACH_TEXT),
        body.index(DECISION_TEXT),
        body.index(HEAD_HASH),
        body.index('id="rules"'),
        body.index('id="forecast"'),
        body.index("<svg"),
    ]
    assert order == sorted(order), "the page's parts are out of order"
    assert NO_BREACH not in html
    assert '<li><span class="badge">default</span> ' + DECISION_TEXT in html
    assert "Verified: yes." in html
    # K1's row carries the default badge; the others come from the policy.
    k1_row = re.search(r'<tr class="[^"]*">\s*<td class="l"><strong>K1</strong>.*?</tr>', html, flags=re.S).group(0)
    assert '<span class="badge"' in k1_row and ">default</span>" in k1_row
    c1_row = re.search(r'<tr class="[^"]*">\s*<td class="l"><strong>C1</strong>.*?</tr>', html, flags=re.S).group(0)
    assert "badge" not in c1_row and "1,234 records" not in c1_row
    assert "1,234 records" in html  # C1's 30-day forecast
    assert "not computed" in html  # T1 has no forecast


def test_html_without_breach_and_with_a_broken_chain():
    report = broken_chain(consolidated_report(days=1))
    report["breaches"], report["verdict"] = [], {"ok": True, "headline": "Every rule was kept."}
    report["forecast"] = {"computed": False, "as_of": None, "note": "No forecast: the sources were not read."}
    html = render_consolidated_html(report)
    assert NO_BREACH in html
    assert "Verified: NO." in html and "Entry 4702&#39;s hash does not match its content." in html
    assert "First bad entry: <strong>4702</strong>" in html
    assert "No forecast: the sources were not read." in html and "due in the next 7 days" not in html
    assert len(svgs(html)) == 6


# --------------------------------------------------------------------------- the charts


def bars(chart: ET.Element) -> list[ET.Element]:
    return [e for e in chart.iter("rect") if e.get("class") == "bar"]


def missed(chart: ET.Element) -> list[ET.Element]:
    return [e for e in chart.iter("g") if e.get("class") == "missed"]


def test_ninety_days_give_ninety_bars():
    chart = ET.fromstring(removals_chart(trend(removed=lambda i: i + 1), "records", "C1"))
    found = bars(chart)
    assert len(found) == 90 and not missed(chart)
    assert all(b.get("fill") == BAR and float(b.get("height")) > 0 for b in found)
    heights = [float(b.get("height")) for b in found]
    assert heights == sorted(heights) and heights[-1] == max(heights)
    texts = [t.text for t in chart.iter("text")]
    assert "max 90" in texts and "2026-08-29" in texts and "2026-11-26" in texts


def test_a_night_that_did_not_run_is_drawn_as_missed():
    days = trend(missed=(10, 80), removed=lambda i: 14 if i < 88 else 0)
    svg = removals_chart(days, "records", "C1")
    chart = ET.fromstring(svg)
    assert chart.get("aria-label") == "C1: 1,204 records removed over 90 days, 2 nights did not run"
    assert len(bars(chart)) == 88
    marks = missed(chart)
    assert [m.find("title").text for m in marks] == ["2026-09-08: did not run", "2026-11-17: did not run"]
    for mark in marks:
        assert mark.find("rect") is not None and mark.find("path").get("d").startswith("M")
    assert "did not run" in [t.text for t in chart.iter("text")]  # the legend
    assert removals_chart(days, "records", "C1") == svg, "not deterministic"
    backlog = ET.fromstring(backlog_chart(days, "records", "C1"))
    assert len(missed(backlog)) == 2 and len(list(backlog.iter("circle"))) == 88


def test_exact_summary_in_words():
    days = trend(missed=(3, 4), removed=lambda i: 1234 if i == 0 else 0)
    chart = ET.fromstring(removals_chart(days, "records", "C1"))
    assert chart.get("aria-label") == "C1: 1,234 records removed over 90 days, 2 nights did not run"
    one = ET.fromstring(removals_chart(trend(days=1, removed=lambda i: 1), "databases", "T1"))
    assert one.get("aria-label") == "T1: 1 database removed over 1 day, it ran every night"


@pytest.mark.parametrize("days", [1, 2, 90])
def test_all_zero_data_gives_valid_charts(days):
    zero = trend(days=days)
    for draw in (removals_chart, backlog_chart):
        svg = draw(zero, "files", "W1")
        chart = ET.fromstring(svg)
        assert chart.tag == "svg" and chart.get("role") == "img"
        assert chart.find("title").text == "W1"
        assert float(chart.get("width")) > 0 and float(chart.get("height")) > 0
        assert "nan" not in svg.lower() and "inf" not in svg.lower()
        assert "max 0" in [t.text for t in chart.iter("text")]
        for forbidden in FORBIDDEN:
            assert forbidden not in svg
    assert len(bars(ET.fromstring(removals_chart(zero, "files", "W1")))) == days


def test_a_single_day():
    chart = ET.fromstring(removals_chart(trend(days=1, removed=lambda i: 5), "records", "C1"))
    assert len(bars(chart)) == 1
    assert [t.text for t in chart.iter("text") if t.get("class") == "date"] == ["2026-11-26"]
    width = float(bars(chart)[0].get("width"))
    assert 0 < width <= 40
    backlog = ET.fromstring(backlog_chart(trend(days=1, before=lambda i: 3, after=lambda i: 3), "records", "C1"))
    assert [c.get("class") for c in backlog.iter("circle")] == ["after-bad"]
    assert backlog.find("polygon") is not None


def test_backlog_markers_are_red_above_zero():
    days = trend(days=5, missed=(1,), before=lambda i: 10 - i, after=lambda i: 2 if i == 4 else 0)
    svg = backlog_chart(days, "records", "C1")
    chart = ET.fromstring(svg)
    markers = [(c.get("class"), c.get("fill")) for c in chart.iter("circle")]
    assert markers == [("after-ok", "#2e7d32")] * 3 + [("after-bad", "#c62828")]
    assert chart.get("aria-label") == (
        "C1: the backlog at a run's start peaked at 10 records over 5 days; "
        "1 run left records past their deadline; 1 night did not run"
    )
    assert "max 10" in [t.text for t in chart.iter("text")]


def test_chart_text_is_escaped():
    title = 'R<1> & "x"'
    days = trend(days=3)
    days[0]["date"] = "<2026>"
    for draw in (removals_chart, backlog_chart):
        chart = ET.fromstring(draw(days, "records", title))
        assert chart.find("title").text == title
        assert chart.get("aria-label").startswith(title + ":")


def test_an_empty_trend_is_refused():
    with pytest.raises(ValueError):
        removals_chart([], "records", "C1")
    with pytest.raises(ValueError):
        backlog_chart([], "records", "C1")
