"""The audit trail read back as rule runs and days: what the consolidated report is built from.

Accepts an :class:`~lethe.audit.AuditTrail` and a window of UTC days. :func:`rule_runs` streams
the trail's closing entries of each rule in each run (``rule_summary``, ``rule_outcome``,
``validation_stopped``: a few per rule and run, whatever the number of records) in sequence
order and folds them into :class:`RuleRun` objects; a run belongs to the UTC day of its as-of.
:func:`days` lists the days of a window. Report files are never read: they can be lost; the trail
is the evidence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Iterator

from lethe.audit import AuditTrail, audit_table
from lethe.evidence.outcomes import OUTCOME, STOPPED, SUMMARY

CLOSING_ACTIONS = (SUMMARY, OUTCOME, STOPPED)


@dataclass
class RuleRun:
    """One rule in one run, as the trail has it."""

    rule_id: str
    run_id: str
    dag_id: str
    source: str
    as_of: datetime
    dry_run: bool
    first_seq: int
    last_seq: int
    summary: dict[str, Any] | None = None
    outcome: dict[str, Any] | None = None
    stopped: dict[str, Any] | None = None
    summary_count: int = 0

    @property
    def day(self) -> date:
        return self.as_of.date()

    @property
    def status(self) -> str:
        """``ok``, ``incomplete``, ``failed``; ``stopped`` (the checks before stopped it) and
        ``no_outcome`` (it acted but the run never recorded how it ended) when the trail says so."""
        if self.outcome is not None:
            status = self.outcome.get("status") or "failed"
            return "stopped" if status == "failed" and self.stopped is not None else status
        if self.stopped is not None:
            return "stopped"
        return "no_outcome"

    @property
    def remaining_after(self) -> int | None:
        return None if self.outcome is None else self.outcome.get("remaining_after")

    def count(self, name: str) -> int:
        return int((self.summary or {}).get(name) or 0)

    @property
    def removed(self) -> int:
        return self.count("deleted") + self.count("anonymised")

    @property
    def kept(self) -> bool:
        """A real run that ended ok with nothing past its deadline left."""
        return not self.dry_run and self.status == "ok" and not (self.remaining_after or 0)


@dataclass
class Window:
    first: date
    last: date

    @classmethod
    def ending(cls, last: date, days: int) -> "Window":
        return cls(last - timedelta(days=days - 1), last)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time())

    @property
    def end(self) -> datetime:
        """The instant after the window (exclusive)."""
        return datetime.combine(self.last + timedelta(days=1), time())

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def rule_runs(trail: AuditTrail, window: Window) -> Iterator[RuleRun]:
    """Every rule run whose as-of falls in the window, in order of its first closing entry."""
    runs: dict[tuple[str, str], RuleRun] = {}
    for row in trail.entries(
        audit_table.c.action.in_(CLOSING_ACTIONS),
        audit_table.c.as_of >= window.start,
        audit_table.c.as_of < window.end,
    ):
        key = (row["run_id"], row["rule_id"])
        found = runs.get(key)
        if found is None:
            found = runs[key] = RuleRun(
                rule_id=row["rule_id"],
                run_id=row["run_id"],
                dag_id=row["dag_id"],
                source=row["source"],
                as_of=row["as_of"],
                dry_run=bool(row["dry_run"]),
                first_seq=row["seq"],
                last_seq=row["seq"],
            )
        found.last_seq = row["seq"]
        details = json.loads(row["details"])
        if row["action"] == SUMMARY:
            # A rule whose mapped items were retried may summarise twice: the last one stands.
            found.summary = details
            found.summary_count += 1
        elif row["action"] == OUTCOME:
            found.outcome = details
        else:
            found.stopped = details
    yield from runs.values()


def first_runs(trail: AuditTrail) -> dict[str, date]:
    """The UTC day of each rule's first run ever (real or dry), from the trail: one grouped query."""
    from sqlalchemy import func, select

    query = (
        select(audit_table.c.rule_id, func.min(audit_table.c.as_of))
        .where(audit_table.c.action.in_(CLOSING_ACTIONS))
        .group_by(audit_table.c.rule_id)
    )
    with trail.engine.connect() as conn:
        return {rule_id: first.date() for rule_id, first in conn.execute(query) if first is not None}


@dataclass
class Day:
    """One rule's runs on one day."""

    rule_id: str
    day: date
    runs: list[RuleRun] = field(default_factory=list)

    @property
    def real(self) -> list[RuleRun]:
        return [run for run in self.runs if not run.dry_run]

    @property
    def last(self) -> RuleRun | None:
        """The run the day's report shows: the last real run, else the last dry run."""
        real = self.real
        return (real or self.runs or [None])[-1]

    @property
    def status(self) -> str:
        """``kept``, ``breach`` (overdue after), ``failed``, ``did_not_run``, ``dry_run_only``."""
        last = self.last
        if last is None:
            return "did_not_run"
        if last.dry_run:
            return "dry_run_only"
        if last.status in ("failed", "stopped", "no_outcome"):
            return "failed"
        if last.remaining_after or last.status != "ok":
            return "breach"
        return "kept"

    @property
    def removed(self) -> int:
        return sum(run.removed for run in self.real)


def by_rule_and_day(runs: list[RuleRun]) -> dict[tuple[str, date], Day]:
    found: dict[tuple[str, date], Day] = {}
    for run in runs:
        found.setdefault((run.rule_id, run.day), Day(run.rule_id, run.day)).runs.append(run)
    return found
