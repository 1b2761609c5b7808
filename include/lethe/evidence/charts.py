"""Inline SVG charts of a rule's trend, for the consolidated report.

Each chart is a plain string of SVG markup, built by hand: no script, no font, no link and no
namespace URL (the HTML parser puts an inline ``<svg>`` in the SVG namespace by itself), so the
page stays self-contained and readable offline. The same trend always gives the same bytes.

What the charts accept: ``trend``, the rule's days oldest first, 1 to 90 of them (a longer trend
is drawn too, with thinner bars), each ``{"date": "YYYY-MM-DD", "ran": bool, "removed": int,
"overdue_before": int, "overdue_after": int | None}`` as in :mod:`lethe.evidence`; counts may be
zero everywhere. ``unit`` is what the counts count (``records``, ``databases``, ``files``) and
``title`` names the chart. Every text is escaped.

- :func:`removals_chart` - a bar per day of what was removed; a night the rule did not run is a
  grey hatched band, so a missed night shows even where nothing was due (days before the rule's
  first run, ``"status": "not_started"``, are left empty).
- :func:`backlog_chart` - what was already past its deadline when each run began (amber area) and
  what remained after it (a marker per run: green at 0, red above).

Both have an axis with ``0`` and the maximum, the first and last dates, ``role="img"``, a
``<title>`` and an ``aria-label`` summing the chart up in words.
"""

from __future__ import annotations

from html import escape
from typing import Any

from lethe.report import SINGULAR

WIDTH, HEIGHT = 720, 210
# The plot area inside the chart: room on the left for the axis labels, on top for the title
# and the legend (a row each), below for the dates.
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 48, 26
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
BASELINE = TOP + PLOT_HEIGHT
# A single day would otherwise be one bar as wide as the chart.
MAX_BAR_WIDTH = 40
HATCH_STEP = 6

BAR = "#2f6db5"
MISSED_FILL, MISSED_LINE = "#e4e6eb", "#8a909c"
BACKLOG_FILL, BACKLOG_LINE = "#fbe3a6", "#b07d00"
AFTER_OK, AFTER_BAD = "#2e7d32", "#c62828"
AXIS, TEXT, MUTED = "#9aa1ad", "#1d2330", "#5a6272"


def _num(value: float) -> str:
    """Coordinates with at most two decimals and no trailing zeros: stable text."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _amount(n: int, unit: str) -> str:
    """``1 record``, ``1,234 records``."""
    return f"{n:,} {SINGULAR.get(unit, unit) if n == 1 else unit}"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


class _Frame:
    """Where each day sits on the x axis and each count on the y axis."""

    def __init__(self, days: int, peak: int):
        self.days, self.peak = days, peak
        self.slot = PLOT_WIDTH / days
        self.bar = min(self.slot * 0.8, MAX_BAR_WIDTH)

    def centre(self, i: int) -> float:
        return LEFT + self.slot * (i + 0.5)

    def y(self, value: int) -> float:
        # Nothing to scale when every count is zero: everything sits on the baseline.
        return BASELINE - (PLOT_HEIGHT * value / self.peak if self.peak else 0)


def _checked(trend: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not trend:
        raise ValueError("a chart needs at least one day of trend")
    return list(trend)


def _svg(parts: list[str], title: str, summary: str, kind: str) -> str:
    # The class names the chart's kind; none matches a class of the page's own style sheet.
    head = (
        f'<svg class="chart {kind}" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(summary)}" font-family="system-ui, sans-serif" font-size="11">'
    )
    return "\n".join([head, f"<title>{escape(title)}</title>", *parts, "</svg>"])


def _date_label(x: float, anchor: str, date: str) -> str:
    return (
        f'<text class="date" x="{_num(x)}" y="{HEIGHT - 8}" text-anchor="{anchor}" fill="{MUTED}">{escape(date)}</text>'
    )


def _axes(trend: list[dict[str, Any]], frame: _Frame, title: str, legend: list[tuple[str, str]]) -> list[str]:
    """Title, legend, the axes with ``0`` and the maximum, and the first and last dates."""
    parts = [
        f'<text x="{LEFT}" y="15" font-size="13" font-weight="600" fill="{TEXT}">{escape(title)}</text>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BASELINE}" stroke="{AXIS}"/>',
        f'<line x1="{LEFT}" y1="{BASELINE}" x2="{WIDTH - RIGHT}" y2="{BASELINE}" stroke="{AXIS}"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{WIDTH - RIGHT}" y2="{TOP}" stroke="{AXIS}" stroke-dasharray="2 3"/>',
        f'<text class="max-label" x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end" fill="{MUTED}">'
        f"max {frame.peak:,}</text>",
        f'<text x="{LEFT - 6}" y="{BASELINE + 4}" text-anchor="end" fill="{MUTED}">0</text>',
    ]
    first, last = str(trend[0].get("date", "")), str(trend[-1].get("date", ""))
    if len(trend) == 1:
        parts.append(_date_label(frame.centre(0), "middle", first))
    else:
        parts += [_date_label(LEFT, "start", first), _date_label(WIDTH - RIGHT, "end", last)]
    # The legend has its own row under the title, so a long title never runs into it.
    x = float(LEFT)
    for colour, label in legend:
        parts.append(f'<rect x="{_num(x)}" y="23" width="10" height="10" fill="{colour}" stroke="{MISSED_LINE}"/>')
        parts.append(f'<text x="{_num(x + 14)}" y="32" fill="{TEXT}">{escape(label)}</text>')
        # About the width of the label at this font size, and a gap.
        x += 14 + 6.2 * len(label) + 14
    return parts


def _missed_night(day: dict[str, Any]) -> bool:
    """A night the rule should have run and did not (days before its first run ever are not)."""
    return not day.get("ran") and day.get("status") != "not_started"


def _missed(i: int, day: dict[str, Any], frame: _Frame) -> str:
    """A night the rule did not run: a grey band the plot's full height, hatched at 45 degrees."""
    width, height = frame.slot * 0.8, PLOT_HEIGHT
    x0 = frame.centre(i) - width / 2
    lines = []
    # Lines u + v = d in the band's own coordinates (origin bottom left), cut to the band.
    d = HATCH_STEP
    while d < width + height:
        u0, u1 = max(0.0, d - height), min(float(d), width)
        lines.append(f"M{_num(x0 + u0)} {_num(BASELINE - (d - u0))}L{_num(x0 + u1)} {_num(BASELINE - (d - u1))}")
        d += HATCH_STEP
    date = escape(str(day.get("date", "")))
    return (
        f'<g class="missed"><title>{date}: did not run</title>'
        f'<rect x="{_num(x0)}" y="{TOP}" width="{_num(width)}" height="{height}" fill="{MISSED_FILL}"/>'
        f'<path d="{"".join(lines)}" stroke="{MISSED_LINE}" stroke-width="1" fill="none"/></g>'
    )


def removals_chart(trend: list[dict[str, Any]], unit: str, title: str) -> str:
    """Bars of what was removed each day; a grey hatched band for each night the rule did not run."""
    trend = _checked(trend)
    ran = [day for day in trend if day.get("ran")]
    total = sum(_count(day.get("removed")) for day in ran)
    missed = sum(map(_missed_night, trend))
    frame = _Frame(len(trend), max((_count(day.get("removed")) for day in ran), default=0))
    legend = [(BAR, f"{unit} removed")] + ([(MISSED_FILL, "did not run")] if missed else [])
    parts = _axes(trend, frame, title, legend)
    for i, day in enumerate(trend):
        if not day.get("ran"):
            if _missed_night(day):
                parts.append(_missed(i, day, frame))
            continue
        removed = _count(day.get("removed"))
        top = frame.y(removed)
        parts.append(
            f'<rect class="bar" x="{_num(frame.centre(i) - frame.bar / 2)}" y="{_num(top)}" '
            f'width="{_num(frame.bar)}" height="{_num(BASELINE - top)}" fill="{BAR}">'
            f"<title>{escape(str(day.get('date', '')))}: {escape(_amount(removed, unit))} removed</title></rect>"
        )
    nights = f"{_plural(missed, 'night')} did not run" if missed else "it ran every night"
    summary = f"{title}: {_amount(total, unit)} removed over {_plural(len(trend), 'day')}, {nights}"
    return _svg(parts, title, summary, "removals-chart")


def _backlog_area(trend: list[dict[str, Any]], frame: _Frame) -> str:
    """The backlog at each run's start as steps, one per day: a single day still shows as a ledge."""
    points = [(LEFT, BASELINE)]
    for i, day in enumerate(trend):
        y = frame.y(_count(day.get("overdue_before")))
        points += [(LEFT + frame.slot * i, y), (LEFT + frame.slot * (i + 1), y)]
    points.append((LEFT + frame.slot * len(trend), BASELINE))
    coordinates = " ".join(f"{_num(x)},{_num(y)}" for x, y in points)
    return (
        f'<polygon class="backlog-area" points="{coordinates}" fill="{BACKLOG_FILL}" stroke="{BACKLOG_LINE}" '
        f'stroke-width="1.2" stroke-linejoin="round"/>'
    )


def backlog_chart(trend: list[dict[str, Any]], unit: str, title: str) -> str:
    """The overdue backlog per day: at each run's start (area) and after it (markers, red above 0)."""
    trend = _checked(trend)
    befores = [_count(day.get("overdue_before")) for day in trend]
    afters = [day.get("overdue_after") for day in trend if day.get("ran") and day.get("overdue_after") is not None]
    frame = _Frame(len(trend), max(befores + [_count(a) for a in afters]))
    missed = sum(map(_missed_night, trend))
    legend = [
        (BACKLOG_FILL, "past deadline at the run's start"),
        (AFTER_OK, "none left after the run"),
        (AFTER_BAD, "left after the run"),
    ]
    legend += [(MISSED_FILL, "did not run")] if missed else []
    parts = _axes(trend, frame, title, legend)
    parts += [_missed(i, day, frame) for i, day in enumerate(trend) if _missed_night(day)]
    parts.append(_backlog_area(trend, frame))
    radius = _num(max(1.5, min(4.0, frame.slot * 0.35)))
    for i, day in enumerate(trend):
        after = day.get("overdue_after")
        if not day.get("ran") or after is None:
            continue
        after = _count(after)
        kind, colour = ("after-bad", AFTER_BAD) if after > 0 else ("after-ok", AFTER_OK)
        parts.append(
            f'<circle class="{kind}" cx="{_num(frame.centre(i))}" cy="{_num(frame.y(after))}" r="{radius}" '
            f'fill="{colour}"><title>{escape(str(day.get("date", "")))}: {escape(_amount(after, unit))} '
            f"past the deadline after the run</title></circle>"
        )
    bad_days = sum(1 for a in afters if _count(a) > 0)
    remained = (
        f"{_plural(bad_days, 'run')} left {unit} past their deadline"
        if bad_days
        else "nothing past its deadline remained after any run"
    )
    summary = (
        f"{title}: the backlog at a run's start peaked at {_amount(max(befores), unit)} "
        f"over {_plural(len(trend), 'day')}; {remained}"
    )
    if missed:
        summary += f"; {_plural(missed, 'night')} did not run"
    return _svg(parts, title, summary, "backlog-chart")
