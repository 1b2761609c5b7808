"""The consolidated report's files: ``consolidated.html`` (self-contained, printable),
``consolidated.json``, ``consolidated.csv`` (one row per rule) and ``chain-head.txt``.

The report is the dict described in :mod:`lethe.evidence`. The HTML has no script and no
reference outside itself (no link, font or image to fetch): the charts are inline SVG from
:mod:`lethe.evidence.charts`, so the page reads the same offline and on paper.
"""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from lethe.evidence.charts import backlog_chart, removals_chart
from lethe.report import SINGULAR

COUNT_FIELDS = (
    "eligible",
    "deleted",
    "anonymised",
    "dropped",
    "exempt_hold",
    "exempt_restriction",
    "quarantined",
    "overdue_before",
    "overdue_after",
)
COUNT_HEADERS = {
    "eligible": ("eligible", "past the deadline and not exempt: what the run acts on"),
    "deleted": ("deleted", "records or files deleted"),
    "anonymised": ("anonymised", "records anonymised, or log files whose addresses were truncated"),
    "dropped": ("dropped", "databases dropped"),
    "exempt_hold": ("kept: legal hold", "past the deadline but kept: a legal hold is in force"),
    "exempt_restriction": ("kept: restriction", "past the deadline but kept: the person asked for restriction"),
    "quarantined": ("quarantined", "kept out of the run by the checks before it: they cannot be judged"),
    "overdue_before": ("past deadline at the start", "already past the deadline when the run began (backlog)"),
    "overdue_after": ("past deadline after", "still past the deadline after the run: must be 0"),
}
CSV_COLUMNS = (
    "date",
    "rule",
    "source",
    "policy_section",
    "legal_basis",
    "period",
    "period_source",
    "status",
    "kept_since",
    *COUNT_FIELDS,
    "checks_before",
    "checks_after",
    "run_id",
    "as_of",
    "forecast_7",
    "forecast_30",
)
BAD_STATUSES = {"breach", "failed", "did_not_run", "dry_run_only"}
NO_BREACH = "No breach: every rule ran and nothing past its deadline remains."
# A spreadsheet runs a cell starting with one of these as a formula: such text is quoted.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def chain_head_line(report: dict[str, Any]) -> str:
    """``<date> audit chain head: entry <seq>, hash <hash> (verified: yes|no)``."""
    chain = report.get("chain") or {}
    verified = "yes" if chain.get("ok") else "no"
    return (
        f"{report.get('date', '')} audit chain head: entry {chain.get('head_seq', '')}, "
        f"hash {chain.get('head_hash', '')} (verified: {verified})"
    )


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per rule, keyed by :data:`CSV_COLUMNS`; ``None`` stays ``None`` here."""
    rows = []
    for rule in report.get("rules") or []:
        counts, checks = rule.get("counts") or {}, rule.get("checks") or {}
        run, forecast = rule.get("run") or {}, rule.get("forecast") or {}
        row = {
            "date": report.get("date"),
            **{key: rule.get(key) for key in CSV_COLUMNS[1:9]},
            **{field: counts.get(field) for field in COUNT_FIELDS},
            "checks_before": checks.get("before"),
            "checks_after": checks.get("after"),
            "run_id": run.get("run_id"),
            "as_of": run.get("as_of"),
            "forecast_7": forecast.get("7"),
            "forecast_30": forecast.get("30"),
        }
        rows.append(row)
    return rows


def consolidated_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in csv_rows(report):
        writer.writerow([_csv_cell(row[column]) for column in CSV_COLUMNS])
    return out.getvalue()


def write_consolidated(report: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Write the report's four files into ``folder``; returns them by kind
    (``html``, ``json``, ``csv``, ``chain_head``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "html": ("consolidated.html", render_consolidated_html(report)),
        "json": ("consolidated.json", json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n"),
        "csv": ("consolidated.csv", consolidated_csv(report)),
        "chain_head": ("chain-head.txt", chain_head_line(report) + "\n"),
    }
    # Written aside and renamed: a reader never sees half a file, two writers never mix.
    stamp = f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
    written = {}
    for kind, (name, text) in files.items():
        tmp = folder / f".{name}.{stamp}.tmp"
        tmp.write_text(text, encoding="utf-8", newline="")
        tmp.replace(folder / name)
        written[kind] = folder / name
    return written


# --------------------------------------------------------------------------- the page


def _count_text(value: Any) -> str:
    if value is None:
        return "not measured"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _amount(n: int | None, unit: str) -> str:
    if n is None:
        return "not computed"
    return f"{n:,} {SINGULAR.get(unit, unit) if n == 1 else unit}"


def _row_level(rule: dict[str, Any]) -> str:
    if rule.get("status") in BAD_STATUSES:
        return "bad"
    return "backlog" if (rule.get("counts") or {}).get("overdue_before") else ""


def _rule_row(rule: dict[str, Any]) -> dict[str, Any]:
    counts, checks, run = rule.get("counts") or {}, rule.get("checks") or {}, rule.get("run")
    status = rule.get("status") or ""
    return {
        "rule": rule.get("rule", ""),
        "description": rule.get("description", ""),
        "policy_section": rule.get("policy_section", ""),
        "legal_basis": rule.get("legal_basis", ""),
        "period": rule.get("period", ""),
        "period_is_default": rule.get("period_source") == "default",
        "unit": rule.get("unit") or "records",
        "status": status,
        "status_text": rule.get("status_text") or status.replace("_", " "),
        "kept_since": rule.get("kept_since_text") or rule.get("kept_since") or "not kept on the day reported",
        # What remains past its deadline after the run is the breach itself: it stands out on paper too.
        "counts": [
            {"text": _count_text(counts.get(field)), "bad": field == "overdue_after" and bool(counts.get(field))}
            for field in COUNT_FIELDS
        ],
        "checks_before": checks.get("before") or "not run",
        "checks_after": checks.get("after") or "not run",
        "run": run,
        "level": _row_level(rule),
    }


def _charts(rule: dict[str, Any]) -> list[Markup]:
    trend, unit, rule_id = rule.get("trend") or [], rule.get("unit") or "records", rule.get("rule", "")
    if not trend:
        return []
    # The chart module escapes every text it draws: its markup goes in as it is.
    return [
        Markup(removals_chart(trend, unit, f"{rule_id} removals")),
        Markup(backlog_chart(trend, unit, f"{rule_id} backlog past deadline")),
    ]


def page(report: dict[str, Any]) -> dict[str, Any]:
    """What the template shows, in words."""
    rules = report.get("rules") or []
    forecast = report.get("forecast") or {}
    return {
        "rows": [_rule_row(rule) for rule in rules],
        "headers": [COUNT_HEADERS[field] for field in COUNT_FIELDS],
        "forecast_rows": [
            {
                "rule": rule.get("rule", ""),
                "description": rule.get("description", ""),
                "next_7": _amount((rule.get("forecast") or {}).get("7"), rule.get("unit") or "records"),
                "next_30": _amount((rule.get("forecast") or {}).get("30"), rule.get("unit") or "records"),
            }
            for rule in rules
        ]
        if forecast.get("computed")
        else [],
        "sections": [
            {"rule": rule.get("rule", ""), "description": rule.get("description", ""), "charts": _charts(rule)}
            for rule in rules
        ],
        "no_breach": NO_BREACH,
    }


def render_consolidated_html(report: dict[str, Any]) -> str:
    # Escape everything: rule texts come from the policy, names from the systems Lethe reads.
    env = Environment(loader=PackageLoader("lethe", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("consolidated.html.j2").render(page=page(report), report=report)
