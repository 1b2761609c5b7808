"""The consolidated report in a real browser: headless Chromium from Debian renders the page from
a file (no network), and what it renders has every chart, sized, and is not blank.

Chromium comes from the system packages (``make browser``), as for ``test_report_browser.py``,
whose helpers this test uses. Without it this test fails, it does not skip.
"""

from __future__ import annotations

from html.parser import HTMLParser

from test_evidence_render import consolidated_report
from test_report_browser import colours, run_chromium

from lethe.evidence.charts import BAR, MISSED_FILL
from lethe.evidence.render import write_consolidated

WIDTH, HEIGHT = 1280, 3200


class Charts(HTMLParser):
    """The rendered DOM's charts: each <svg>'s attributes and the classes of what it draws."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.charts: list[dict[str, str]] = []
        self.drawn: list[list[str]] = []
        self.verdict: list[str] = []
        self.in_verdict = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "svg":
            self.charts.append(attrs)
            self.drawn.append([])
        elif self.drawn and tag in ("rect", "g", "circle", "polygon") and attrs.get("class"):
            self.drawn[-1].append(attrs["class"])
        self.in_verdict = self.in_verdict or "verdict-text" in (attrs.get("class") or "")

    def handle_endtag(self, tag):
        if tag == "span":
            self.in_verdict = False

    def handle_data(self, data):
        if self.in_verdict:
            self.verdict.append(data)


def has_colour(found: set[tuple[int, ...]], hex_colour: str) -> bool:
    wanted = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return any(all(abs(a - b) <= 4 for a, b in zip(pixel, wanted, strict=True)) for pixel in found)


def test_consolidated_report_in_headless_chromium(tmp_path):
    report = consolidated_report()
    page = write_consolidated(report, tmp_path / "evidence")["html"]

    proc = run_chromium(tmp_path, "--dump-dom", page.as_uri())
    dom = Charts()
    dom.feed(proc.stdout)
    dom.close()
    assert " ".join("".join(dom.verdict).split()) == report["verdict"]["headline"]
    assert len(dom.charts) == 2 * len(report["rules"])
    for chart in dom.charts:
        assert chart.get("role") == "img" and chart.get("aria-label")
        assert float(chart["width"]) > 0 and float(chart["height"]) > 0
    removals = [drawn for chart, drawn in zip(dom.charts, dom.drawn, strict=True) if "removals-chart" in chart["class"]]
    # C1 missed one night of its 90; K1 and T1 ran every night.
    assert [(d.count("bar"), d.count("missed")) for d in removals] == [(89, 1), (90, 0), (90, 0)]

    png = tmp_path / "consolidated.png"
    run_chromium(tmp_path, f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}", page.as_uri())
    assert png.exists() and png.stat().st_size > 0, "no screenshot"
    size, found = colours(png)
    assert size == (WIDTH, HEIGHT)
    assert len(found) >= 8, f"the screenshot is (nearly) blank: {len(found)} colour(s)"
    assert found != {(255, 255, 255)}
    # Colours drawn only by the charts: the bars, and the band of C1's missed night.
    assert has_colour(found, BAR), "no bar of the removals charts in the screenshot"
    assert has_colour(found, MISSED_FILL), "no night that did not run in the screenshot"
