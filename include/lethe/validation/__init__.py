"""The checks around every rule: what they say, and how their results are judged.

Plain Python, no Great Expectations here (``lethe.validation.gx`` runs the suites). A rule's
action describes its suites from the inventory (:meth:`RuleAction.before_suite`,
:meth:`RuleAction.after_suite`), never a suite written by hand per table:

* :class:`Expect` is one expectation: a Great Expectations class name and its arguments, and,
  when its failing rows are kept out of the run, the quarantine ``reason`` and the ``table``
  they belong to, with ``fix``: what to correct;
* :class:`SqlData` validates a table in the source's own database (aggregate queries there);
  :class:`FrameData` a small listing built by the action (file names, counts: never contents);
* :class:`Suite` is the expectations on one piece of data, named ``<rule>.before``/``.after``.

:func:`judge` turns a suite's outcome (:class:`SuiteOutcome`) into the quarantine counts and
stops the rule when more than ``validation.max_quarantine_share`` of a table fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lethe.errors import QuarantineTooLarge

BEFORE, AFTER = "before", "after"
# A quarantine sample: at most this many subject keys per reason go into the report.
SAMPLE = 10


@dataclass(frozen=True)
class Expect:
    """One expectation. ``reason``: its failing rows are quarantined, rows of ``table``."""

    type: str
    kwargs: dict[str, Any]
    reason: str | None = None
    table: str | None = None
    fix: str = ""


@dataclass(frozen=True)
class SqlData:
    """A table of a SQL source, validated in its database through the source's own engine."""

    engine: Any
    table: str
    schema: str | None = None
    connection_id: str = ""


@dataclass(frozen=True)
class FrameData:
    """Rows the action lists itself (names, dates, flags and counts only)."""

    name: str
    rows: list[dict[str, Any]]
    columns: tuple[str, ...] = ()


@dataclass
class Suite:
    """Expectations on one piece of data; ``tables``: each quarantining table's row count
    (filled by the action, or from the suite's row-count expectation)."""

    name: str
    data: SqlData | FrameData
    expectations: list[Expect]
    tables: dict[str, int] = field(default_factory=dict)


@dataclass
class CheckOutcome:
    """One expectation's result, in counts (what the task log, report and audit carry)."""

    expectation: str
    column: str | None
    success: bool
    unexpected: int | None
    reason: str | None = None
    table: str | None = None
    fix: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v != ""}


@dataclass
class SuiteOutcome:
    """A suite's outcome: per expectation, and the full Great Expectations result (JSON)."""

    suite: str
    success: bool
    checks: list[CheckOutcome]
    result: dict[str, Any] = field(default_factory=dict)
    row_count: int | None = None

    @property
    def failed(self) -> list[CheckOutcome]:
        return [c for c in self.checks if not c.success]


def judge(outcome: SuiteOutcome, tables: dict[str, int], max_share: float, *, rule_id: str) -> dict[str, int]:
    """The quarantine counts per reason; raises :class:`QuarantineTooLarge` when the checks could
    not run, or a table's failing rows exceed ``max_share`` of its rows (nothing has changed yet).

    A failing expectation without a reason (a missing column) stops the rule whatever its share.
    """
    broken = [c for c in outcome.checks if c.error or (not c.success and not c.reason)]
    if broken:
        first = broken[0]
        raise QuarantineTooLarge(
            f"{rule_id}: the check {first.expectation}{_on(first)} "
            f"{'could not run: ' + first.error if first.error else 'failed'}"
            f"{'. ' + first.fix if first.fix else ''}. Nothing was changed."
        )
    reasons: dict[str, int] = {}
    per_table: dict[str, int] = {}
    for check in outcome.checks:
        if check.reason and check.unexpected:
            reasons[check.reason] = reasons.get(check.reason, 0) + check.unexpected
            per_table[check.table or ""] = per_table.get(check.table or "", 0) + check.unexpected
    for table, failing in per_table.items():
        total = tables.get(table) or 0
        if total and failing / total > max_share:
            worst = max(
                (c for c in outcome.checks if c.table == table and c.unexpected),
                key=lambda c: c.unexpected or 0,
            )
            raise QuarantineTooLarge(
                f"{rule_id}: {failing} of {total} rows of {table} ({failing / total:.1%}) fail the checks "
                f"before enforcement, more than the {max_share:.0%} allowed (validation.max_quarantine_share). "
                f"Most fail {worst.expectation}{_on(worst)}: {worst.unexpected} row(s), {worst.reason}. "
                f"{worst.fix + '. ' if worst.fix else ''}Nothing was changed."
            )
    return reasons


def _on(check: CheckOutcome) -> str:
    return f" on {check.table + '.' if check.table else ''}{check.column}" if check.column else ""
