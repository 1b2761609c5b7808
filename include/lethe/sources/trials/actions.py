"""Rule T1: drop each unconverted free-trial database 90 days after its trial ends (policy §6.2).

The server of connection ``trials`` holds one database per trial (on SQLite: one ``<name>.sqlite``
file per trial in the folder the connection names). The catalog, a table in another SQL source
(``crm.trial_signups``), names each trial's database. A database is dropped only when **all** of
these hold:

* its name fully matches the inventory's anchored ``name_pattern`` and is a plain identifier
  (letters, digits, underscore): a name with any other character is refused and reported, never
  quoted into a statement; system databases and Lethe's own databases are never candidates;
* a sign-up row names it, and every live row naming it (one whose database Lethe has not
  recorded dropping) is eligible:
  not converted (``subscribed_at`` is null), ``trial_ends_at`` + period <= the run's as-of
  (calendar arithmetic in the database, as every rule), and the sign-up contact's e-mail is under
  no legal hold or restriction in force at the as-of. One converted row keeps the database: a
  customer who subscribed uses it, and a dropped database cannot be brought back;
* the database exists on the server now (checked again just before the drop);
* no catalog row naming it is quarantined by the checks before the rule
  (:mod:`lethe.sources.trials.validation`: a name off the pattern, trial dates missing, not a
  date, in the future or inverted, two unconverted rows naming the same database, a contact row
  missing or an address that cannot be normalised). Such a database is kept and reported
  (``kept_quarantined``) until its rows are corrected.

A subscription is honoured whatever its date, even one recorded after the as-of of a re-run:
the decision errs on keeping a customer's data. Trial-like names on the server without a live
sign-up row ("orphans") are reported for a person to look at and never dropped.

**Intent and done.** A drop cannot share a transaction with the audit trail, so it is bracketed:

1. a ``drop_intent`` entry (database name, per-table row counts, the sign-up keys, subject key
   of the sign-up contact) is chained *before* the drop;
2. ``DROP DATABASE`` (PostgreSQL ``WITH (FORCE)``; MariaDB after ending other sessions on it;
   SQLite: the file and its journal files, after our engine on it is disposed);
3. the ``database_dropped`` entry is chained: the database, the sign-up keys and
   ``dropped_as_of`` (the as-of of the run that dropped it).

**Lethe's own record.** The ``database_dropped`` entries in the audit store are the record of
what T1 dropped; nothing is written to the catalog (the company's CRM keeps its columns as they
are). A sign-up row named in such an entry is settled: T1 never tries its database again, and a
database of that name found on the server later is an orphan for a person to look at. Rule C1
waits for a contact while one of its sign-up rows is *open* (:meth:`TrialDrop.open_rows`): its
database is on the server and not recorded as dropped.

An intent without a later ``database_dropped`` entry for the same database is *open*. The next
run (or an Airflow retry) finds it: if the database is gone, step 3 is done for it (details say
``recovered``; ``dropped_as_of`` is the as-of of the run that wrote the intent, the run that
dropped it); if it still exists and is still eligible, it is dropped again with a fresh intent.
Either way exactly one ``database_dropped`` entry is written and the drop is counted once.

The report (``RuleResult``): ``deleted`` counts dropped databases and ``related`` their rows per
table; ``exempt_hold``/``exempt_restriction`` the due databases kept for the sign-up contact;
``overdue_before`` the droppable ones already past the overdue period when the run started;
``quarantined`` the catalog rows the checks keep out of the run (distinct rows; the per-reason
counts of ``quarantine`` add up to more when a row fails two checks).
``extra``: ``kept_converted``, ``kept_held``, ``not_yet_due`` with ``next_due`` (the earliest
date one becomes due; the task log gives each database's), ``orphans``, ``refused`` (due by the
catalog but a name T1 will not use), ``missing`` (due, not on the server, and no record of
Lethe dropping it: for a person to look at), ``kept_quarantined`` (databases on the server kept
because a quarantined row names them), ``to_recover``/``recovered`` (unfinished drops).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, false, select
from sqlalchemy.engine import Engine

from lethe.audit import audit_table
from lethe.db import add_period_sql, due_by, normalised_email, timestamp_sql
from lethe.exemptions import check_exemptions, record_kept
from lethe.intent import TwoStep
from lethe.periods import to_utc_naive
from lethe.schema import need, reflect_tables, source_engine
from lethe.sources.base import MappedAction, RuleResult, register
from lethe.sources.sql.models import SqlSource
from lethe.sources.trials import validation
from lethe.sources.trials.models import TrialDatabasesSource
from lethe.sources.trials.servers import TrialServer
from lethe.strict import IDENTIFIER
from lethe.subjects import subject_key

log = logging.getLogger("lethe")

# Never candidates, whatever the configured pattern says.
SYSTEM_DATABASES = frozenset(
    {"postgres", "template0", "template1", "mysql", "information_schema", "performance_schema", "sys"}
)
DROP = TwoStep(intent="drop_intent", done="database_dropped")
INTENT, DONE = DROP.actions
WOULD_DROP = "would_drop_database"
WOULD_RECORD = "would_record_dropped"

# How a database's sign-up rows decide, most protective first.
CONVERTED, NOT_YET_DUE, HELD, RESTRICTED, ELIGIBLE = "converted", "not_yet_due", "held", "restricted", "eligible"
_PRECEDENCE = (CONVERTED, NOT_YET_DUE, HELD, RESTRICTED, ELIGIBLE)
NO_SIGNUP = "no sign-up row"
QUARANTINED = "quarantined"  # kept: a sign-up row naming it fails a check before the rule
LIST_LIMIT = 50  # names listed in a report's extra counts; the task log lists them all


@dataclass
class SignupRow:
    """One live catalog row as the database decided it (no personal data)."""

    key: Any
    name: str
    converted: bool
    due: bool
    overdue: bool
    deadline: datetime | None
    held: bool
    restricted: bool
    subject: str  # the audit subject key of the sign-up contact (a keyed hash)
    quarantined: bool = False  # a check before the rule fails for this row

    @property
    def status(self) -> str:
        if self.converted:
            return CONVERTED
        if not self.due:
            return NOT_YET_DUE
        if self.held:
            return HELD
        if self.restricted:
            return RESTRICTED
        return ELIGIBLE


@dataclass
class Trial:
    """One database name: what its sign-up rows say and whether the server has it."""

    name: str
    rows: list[SignupRow]
    present: bool
    refused: str = ""  # why the name may never be put in a statement ("" when it may)
    intent: dict[str, Any] | None = None  # the newest open intent for this name

    @property
    def keys(self) -> list:
        return [row.key for row in self.rows]

    @property
    def subject(self) -> str:
        """The subject of the drop's entries: the contact of the first sign-up row naming it."""
        return self.rows[0].subject

    @property
    def status(self) -> str:
        found = {row.status for row in self.rows}
        return next((s for s in _PRECEDENCE if s in found), NO_SIGNUP)

    @property
    def deadline(self) -> datetime | None:
        """When every row is due (the database can go only then)."""
        dates = [row.deadline for row in self.rows]
        return None if any(d is None for d in dates) else max(dates)

    @property
    def overdue(self) -> bool:
        return all(row.overdue for row in self.rows)

    @property
    def quarantined(self) -> bool:
        """A sign-up row naming it fails a check before the rule: kept this run."""
        return any(row.quarantined for row in self.rows)

    @property
    def droppable(self) -> bool:
        return not self.refused and not self.quarantined and self.present and self.status == ELIGIBLE

    @property
    def why_kept(self) -> str:
        """Why it is not dropped now: the first of refused, not on the server, quarantined, status."""
        if self.refused:
            return self.refused
        if not self.present:
            return "not on the server"
        return QUARANTINED if self.quarantined else self.status

    @property
    def recoverable(self) -> bool:
        """Dropped by an earlier attempt that did not get to record it."""
        return self.intent is not None and not self.present


@dataclass
class Survey:
    """The catalog and the server side by side, at the run's as-of."""

    trials: dict[str, Trial] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)

    @property
    def items(self) -> list[Trial]:
        return [t for t in self.trials.values() if t.droppable or t.recoverable]


@register
class TrialDrop(MappedAction):
    """``drop_database`` on a ``trial_databases`` source, one mapped task per database."""

    name = "drop_database"
    source_kind = "trial_databases"
    done_actions = (DONE,)
    source: TrialDatabasesSource

    def __init__(self, ctx, policy_rule):
        super().__init__(ctx, policy_rule)
        self.catalog = self.source.catalog
        self.pattern = re.compile(self.source.name_pattern)
        self._tables: dict[str, Table] | None = None
        self._server: TrialServer | None = None

    # ------------------------------------------------------------------ connections

    @property
    def catalog_source(self) -> SqlSource:
        return self.ctx.inventory.sources[self.catalog.source]

    @property
    def catalog_engine(self) -> Engine:
        return source_engine(self.ctx.engine_for(self.catalog_source.connection_id), self.catalog_source)

    @property
    def server(self) -> TrialServer:
        """The trial server (or SQLite folder) of the source's connection."""
        if self._server is None:
            self._server = TrialServer.for_url(
                self.connection, self.source.connection_id, lambda: self.ctx.engine_for(self.source.connection_id)
            )
        return self._server

    # ------------------------------------------------------------------ checks

    def check(self) -> None:
        """The catalog's and the holds' tables and columns exist and the server (or folder) answers."""
        self._tables = self._reflect_catalog()
        check_exemptions(self.ctx.inventory, self.ctx.engine_for, user=self.user)
        self.server.check()

    def check_summary(self) -> str:
        names = self.list_databases()
        matching = sum(1 for n in names if self.pattern.fullmatch(n) and n.lower() not in SYSTEM_DATABASES)
        return (
            f"catalog {self.catalog.source}.{self.catalog.table} and the hold tables match the live "
            f"schema; {matching} of {len(names)} databases on connection {self.source.connection_id!r} "
            "match the name pattern"
        )

    def _reflect_catalog(self) -> dict[str, Table]:
        cat, contact = self.catalog, self.catalog.contact
        needs = need({}, cat.table, *validation.catalog_columns(self))
        need(needs, contact.table, contact.primary_key, contact.email)
        return reflect_tables(self.catalog_engine, self.catalog_source, needs, user=self.user)

    @property
    def tables(self) -> dict[str, Table]:
        if self._tables is None:
            self._tables = self._reflect_catalog()
        return self._tables

    def protected(self) -> set[str]:
        """Names of the databases Lethe itself uses on the same server (or in the same folder)."""
        return self.server.own_names([self.catalog_engine.url, self.ctx.audit.engine.url])

    def refusal(self, name: Any, protected: set[str]) -> str:
        """Why ``name`` may never reach a statement; "" when it may."""
        if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
            return "not a plain name (letters, digits, underscore only)"
        if not self.pattern.fullmatch(name):
            return "does not match the name pattern"
        if name.lower() in SYSTEM_DATABASES:
            return "a system database"
        if name in protected:
            return "one of Lethe's own databases"
        return ""

    # ------------------------------------------------------------------ the checks (validation.py)

    def quarantine_reasons(self, name: str | None = None):
        """Why a catalog row cannot be judged (:func:`validation.quarantine_reasons`)."""
        return validation.quarantine_reasons(self, name)

    def before_suite(self):
        return validation.before_suite(self)

    def after_suite(self):
        return validation.after_suite(self)

    def quarantine_samples(self, reasons: dict[str, int]) -> dict[str, list[str]]:
        return validation.quarantine_samples(self, reasons)

    # ------------------------------------------------------------------ the server

    def list_databases(self) -> set[str]:
        """Every database on the server (SQLite: every regular ``*.sqlite`` file), as named there."""
        return self.server.list_databases()

    def count_rows(self, name: str) -> dict[str, int | None]:
        """Rows per table of one trial database (its default schema), for the intent entry (read only)."""
        return self.server.count_rows(name)

    def drop_database(self, name: str) -> None:
        """Drop one validated trial database; callers checked it is eligible and chained the intent."""
        refused = self.refusal(name, self.protected())
        if refused:  # the last gate before a statement
            raise ValueError(f"refusing to drop {name!r}: {refused}")
        self.server.drop(name)

    # ------------------------------------------------------------------ the catalog

    def _among(self, column, addresses: frozenset[str]):
        if not addresses:
            return false()
        return normalised_email(column).in_(bindparam(None, sorted(addresses), expanding=True))

    def catalog_rows(self, name: str | None = None, record: "DropRecord | None" = None) -> list[SignupRow]:
        """Live sign-up rows (none Lethe recorded dropping), each decided in one set-based query."""
        record = record or self.drop_record(name)
        cat, contact = self.catalog, self.catalog.contact
        t, c = self.tables[cat.table], self.tables[contact.table]
        trigger = timestamp_sql(t.c[cat.trial_ends_at])
        email = c.c[contact.email]
        held = self.exemptions.held
        restricted = self.exemptions.restricted - held
        period, as_of = self.policy_rule.period, self.ctx.as_of
        query = (
            select(
                t.c[cat.primary_key],
                t.c[cat.database_name],
                t.c[cat.subscribed_at].is_not(None),
                due_by(trigger, period, as_of),
                due_by(trigger, self.policy_rule.overdue_period, as_of),
                add_period_sql(trigger, period),
                self._among(email, held),
                self._among(email, restricted),
                email,
                validation.quarantined(self, name),
            )
            .select_from(t.outerjoin(c, c.c[contact.primary_key] == t.c[contact.foreign_key]))
            .order_by(t.c[cat.primary_key])
        )
        if name is not None:
            query = query.where(t.c[cat.database_name] == name)
        with self.catalog_engine.connect() as conn:
            return [
                SignupRow(
                    key=r[0],
                    name=r[1],
                    converted=bool(r[2]),
                    due=bool(r[3]),
                    overdue=bool(r[4]),
                    deadline=r[5],
                    held=bool(r[6]),
                    restricted=bool(r[7]),
                    subject=self._subject(r[0], r[8]),
                    quarantined=bool(r[9]),
                )
                for r in conn.execute(query)
                if not record.settled(r[1], r[0])
            ]

    def open_rows(self) -> tuple[str, str, str, list]:
        """Catalog rows whose database is on the server and not recorded as dropped.

        A rule that deletes what these rows point at (C1, the sign-up contact) waits for them:
        deleting a row first would leave its database named by nobody, never dropped. Returns
        the catalog table, its key and contact columns, and the open rows' keys.
        """
        cat = self.catalog
        t = self.tables[cat.table]
        present = sorted(self.list_databases())
        record = self.drop_record()
        keys = []
        with self.catalog_engine.connect() as conn:
            for start in range(0, len(present), 1000):
                chunk = present[start : start + 1000]
                query = select(t.c[cat.primary_key], t.c[cat.database_name]).where(
                    t.c[cat.database_name].in_(bindparam(None, chunk, expanding=True))
                )
                # Names compare exactly (MariaDB compares them without case): only a row naming
                # a database that is on the server, as it is named there, keeps its contact.
                keys += [key for key, name in conn.execute(query) if name in chunk and not record.settled(name, key)]
        return cat.table, cat.primary_key, cat.contact.foreign_key, keys

    def _subject(self, key: Any, address: str | None) -> str:
        """The audit subject key of a sign-up row's contact (keyed hash; the address stays here)."""
        if address:
            return subject_key(self.ctx.key, "email", address)
        return subject_key(self.ctx.key, "record", key, source=self.catalog.source, table=self.catalog.table)

    # ------------------------------------------------------------------ Lethe's record

    def drop_record(self, name: str | None = None) -> "DropRecord":
        """Open intents and settled sign-up rows, from this rule's chained intent and done entries."""
        conditions = [
            audit_table.c.rule_id == self.policy_rule.id,
            audit_table.c.source == self.source.source,
            audit_table.c.action.in_([INTENT, DONE]),
            audit_table.c.dry_run.is_(False),
        ]
        if name is not None:
            # Narrow in SQL by the name's JSON text, then compare exactly below.
            conditions.append(audit_table.c.details.contains(f'"database": {json.dumps(name)}', autoescape=True))
        entries = []
        for row in self.ctx.audit.entries(*conditions):
            details = json.loads(row["details"])
            if name is not None and details.get("database") != name:
                continue
            entries.append(
                (
                    row["action"],
                    {
                        "entry_id": row["entry_id"],
                        "as_of": row["as_of"],
                        "run_id": row["run_id"],
                        "subject_key": row["subject_key"],
                        **details,
                    },
                )
            )
        record = DropRecord(intents=DROP.open_intents(entries, key=lambda d: d.get("database")))
        for action, details in entries:
            if action == DONE:
                record.dropped.update((details.get("database"), _key(key)) for key in details.get("signups", []))
        return record

    def open_intents(self, name: str | None = None) -> dict[str, dict[str, Any]]:
        """Intent entries not followed by a done entry, by database name (the newest intent wins)."""
        return self.drop_record(name).intents

    # ------------------------------------------------------------------ the survey

    def survey(self, name: str | None = None) -> Survey:
        """The catalog, the server and the open intents side by side (changes nothing)."""
        record = self.drop_record(name)
        rows = self.catalog_rows(name, record)
        # One database: ask for it alone (its rows and intents name no other), not list the server.
        present = self.list_databases() if name is None else ({name} if self.server.has(name) else set())
        intents = record.intents
        protected = self.protected()
        survey = Survey()
        for row in rows:
            trial = survey.trials.get(row.name)
            if trial is None:
                trial = survey.trials[row.name] = Trial(
                    row.name, [], present=row.name in present, refused=self.refusal(row.name, protected)
                )
            trial.rows.append(row)
        for database, intent in intents.items():
            trial = survey.trials.get(database)
            if trial is None:
                # Its sign-up rows went away after the intent; the database may still need recording.
                trial = survey.trials[database] = Trial(
                    database, [], present=database in present, refused=self.refusal(database, protected)
                )
            trial.intent = intent
        if name is None:
            survey.orphans = sorted(n for n in present if n not in survey.trials and not self.refusal(n, protected))
        return survey

    # ------------------------------------------------------------------ the interface

    @staticmethod
    def _sort(survey: Survey) -> tuple[Counter, list[Trial], list[Trial], list[str], int]:
        """The surveyed names by what happens to them: kept (by status, or quarantined), not yet
        due, refused, missing, and how many droppable ones are overdue."""
        kept: Counter = Counter()
        not_yet_due: list[Trial] = []
        refused, missing = [], []
        overdue = 0
        for trial in survey.trials.values():
            if not trial.rows:
                continue  # only an open intent: counted with the items
            status = trial.status
            if trial.refused:
                if status == ELIGIBLE:
                    refused.append(trial)
                continue
            if trial.quarantined:
                kept[QUARANTINED] += int(trial.present)
                continue
            if status == ELIGIBLE and not trial.present and trial.intent is None:
                missing.append(trial.name)
            if not trial.present:
                continue
            if status == NOT_YET_DUE:
                not_yet_due.append(trial)
            elif status != ELIGIBLE:
                kept[status] += 1
            elif trial.overdue:
                overdue += 1
        return kept, not_yet_due, refused, missing, overdue

    def scan(self) -> RuleResult:
        survey = self.survey()
        result = self.new_result()
        kept, not_yet_due, refused, missing, result.overdue_before = self._sort(survey)
        items = survey.items
        result.eligible = len(items)
        result.exempt_hold = kept[HELD]
        result.exempt_restriction = kept[RESTRICTED]
        result.quarantined = validation.count_quarantined(self)
        dates = sorted(t.deadline for t in not_yet_due if t.deadline is not None)
        result.extra = {
            "kept_converted": kept[CONVERTED],
            "kept_held": kept[HELD] + kept[RESTRICTED],
            "not_yet_due": len(not_yet_due),
            "next_due": dates[0].date().isoformat() if dates else None,
            "orphans": len(survey.orphans),
            "refused": len(refused),
            "missing": len(missing),
            "kept_quarantined": kept[QUARANTINED],
            "to_recover": sum(1 for t in items if t.recoverable),
        }
        if survey.orphans:
            result.extra["orphan_names"] = _listed(survey.orphans)
        if refused:
            result.extra["refused_names"] = _listed([repr(t.name) for t in refused])
        if missing:
            result.extra["missing_names"] = _listed(sorted(missing))
        self._log_scan(survey, items, not_yet_due, refused, missing)
        return result

    def _log_scan(self, survey: Survey, items, not_yet_due, refused, missing) -> None:
        rid = self.policy_rule.id
        for trial in sorted(items, key=lambda t: t.name):
            log.info(
                "%s: %s %s%s",
                rid,
                "would drop" if self.ctx.dry_run else "to drop",
                trial.name,
                " (dropped by an earlier attempt: to be recorded)"
                if trial.recoverable
                else " (overdue)"
                if trial.overdue
                else "",
            )
        for trial in sorted(not_yet_due, key=lambda t: (t.deadline or datetime.max, t.name)):
            log.info(
                "%s: %s not yet due: due %s",
                rid,
                trial.name,
                trial.deadline.isoformat(sep=" ") if trial.deadline else "(no trial end date)",
            )
        for name in survey.orphans:
            log.warning(
                "%s: orphan database %s: named like a trial but no sign-up row names it; kept for a person to look at",
                rid,
                name,
            )
        for trial in refused:
            # repr: the name is data from the catalog and may hold control characters.
            log.warning(
                "%s: refused %r (sign-up keys %s): %s; never dropped, fix the catalog row",
                rid,
                trial.name,
                trial.keys,
                trial.refused,
            )
        for name in missing:
            log.warning("%s: %s is due but not on the server, and Lethe has no record of dropping it", rid, name)
        for trial in sorted(survey.trials.values(), key=lambda t: t.name or ""):
            if trial.quarantined and trial.present and not trial.refused:
                log.warning(
                    "%s: %s kept: a sign-up row naming it (keys %s) fails the checks before the rule",
                    rid,
                    trial.name,
                    [row.key for row in trial.rows if row.quarantined],
                )
        for trial in survey.trials.values():
            if trial.intent is not None and trial.present and not trial.droppable:
                log.warning(
                    "%s: an earlier run meant to drop %s but it is now kept (%s)",
                    rid,
                    trial.name,
                    trial.why_kept,
                )

    def work_items(self) -> list[dict[str, Any]]:
        return [
            {"name": t.name, "key": t.keys[0] if t.keys else None, "keys": t.keys, "recover": t.recoverable}
            for t in sorted(self.survey().items, key=lambda t: t.name)
        ]

    def enforce_item(self, item: dict[str, Any]) -> dict[str, Any]:
        """Drop one database, deciding again from the catalog and the server (not from the item)."""
        name = item["name"]
        with self.server.session():
            trial = self.survey(name).trials.get(name)
            outcome = {"name": name, "status": "kept", "tables": {}, "rows": 0}
            if trial is None or not (trial.droppable or trial.recoverable):
                reason = "no sign-up row names it" if trial is None else trial.why_kept
                log.info("%s: %s kept: %s", self.policy_rule.id, name, reason)
                return {**outcome, "reason": reason}
            if trial.recoverable:
                return self._recover(trial, outcome)
            return self._drop(trial, outcome)

    def _drop(self, trial: Trial, outcome: dict[str, Any]) -> dict[str, Any]:
        counts = self.count_rows(trial.name)
        rows = sum(n or 0 for n in counts.values())
        outcome.update(tables=counts, rows=rows)
        details = {"database": trial.name, "tables": counts, "signups": trial.keys}
        subject = trial.subject
        if self.ctx.dry_run:
            self.ctx.audit.append([self.audit_entry(WOULD_DROP, subject, rows, details)])
            log.info(
                "%s: would drop %s (%d row(s) in %d table(s)) - dry run, nothing changed",
                self.policy_rule.id,
                trial.name,
                rows,
                len(counts),
            )
            return {**outcome, "status": "would_drop"}
        intent = DROP.begin(self.ctx.audit, lambda action, d: self.audit_entry(action, subject, rows, d), details)
        self.drop_database(trial.name)
        self.record_dropped(
            trial.name, trial.keys, self.ctx.as_of, intent.entry_id, subject, rows, details, recovered=False
        )
        log.info(
            "%s: dropped %s (%d row(s) in %d table(s): %s)",
            self.policy_rule.id,
            trial.name,
            rows,
            len(counts),
            ", ".join(f"{t} {n}" for t, n in counts.items()),
        )
        return {**outcome, "status": "dropped"}

    def _recover(self, trial: Trial, outcome: dict[str, Any]) -> dict[str, Any]:
        intent = trial.intent
        counts = intent.get("tables", {})
        rows = sum(n or 0 for n in counts.values())
        outcome.update(tables=counts, rows=rows)
        details = {"database": trial.name, "tables": counts, "signups": intent.get("signups", [])}
        if self.ctx.dry_run:
            self.ctx.audit.append([self.audit_entry(WOULD_RECORD, intent["subject_key"], rows, details)])
            log.info(
                "%s: %s is gone after an earlier intent; would record the drop - dry run",
                self.policy_rule.id,
                trial.name,
            )
            return {**outcome, "status": "would_recover"}
        # The run that wrote the intent dropped it: its as-of goes on the catalog rows.
        self.record_dropped(
            trial.name,
            details["signups"],
            intent["as_of"],
            intent["entry_id"],
            intent["subject_key"],
            rows,
            details,
            recovered=True,
        )
        log.warning(
            "%s: %s was dropped by run %s, which stopped before recording it: recorded now",
            self.policy_rule.id,
            trial.name,
            intent["run_id"],
        )
        return {**outcome, "status": "recovered"}

    def record_dropped(
        self,
        name: str,
        keys: list,
        dropped_as_of: datetime,
        intent_id: str,
        subject: str,
        rows: int,
        details: dict[str, Any],
        *,
        recovered: bool,
    ) -> None:
        """Chain the done entry: Lethe's record that the database is gone, and for which sign-ups."""
        DROP.finish(
            self.ctx.audit,
            lambda action, d: self.audit_entry(action, subject, rows, d),
            {
                **details,
                "signups": list(keys),
                "intent": intent_id,
                "recovered": recovered,
                "dropped_as_of": to_utc_naive(dropped_as_of).isoformat(),
            },
        )

    def combine(self, scanned: RuleResult, item_results: list[dict[str, Any]]) -> RuleResult:
        result = scanned
        statuses = Counter(r["status"] for r in item_results)
        related: Counter = Counter()
        for r in item_results:
            if r["status"] in ("dropped", "recovered"):
                related.update({t: n for t, n in r["tables"].items() if n})
        result.deleted = statuses["dropped"] + statuses["recovered"]
        result.related = dict(sorted(related.items()))
        result.batches = len(item_results)
        result.extra = {
            **scanned.extra,
            "recovered": statuses["recovered"],
            # An item the scan listed but a later check kept (a hold placed meanwhile).
            "kept_at_drop": statuses["kept"],
            "not_finished": max(scanned.eligible - len(item_results), 0),
        }
        if not self.ctx.dry_run:
            result.extra["kept_recorded"] = self.record_exemptions()
        if self.ctx.dry_run:
            result.extra["would_drop"] = statuses["would_drop"] + statuses["would_recover"]
            result.extra["would_drop_names"] = _listed(
                sorted(r["name"] for r in item_results if r["status"] in ("would_drop", "would_recover"))
            )
        self.ctx.audit.append([self.summary_entry(result)])
        log.info(
            "%s %s: %d database(s) dropped (%d recorded after an earlier crash), %d kept at the last "
            "check, %d not finished%s",
            self.policy_rule.id,
            "dry run" if self.ctx.dry_run else "enforced",
            result.deleted,
            statuses["recovered"],
            statuses["kept"],
            result.extra["not_finished"],
            " - nothing was changed" if self.ctx.dry_run else "",
        )
        return result

    def record_exemptions(self) -> int:
        """One audit entry per sign-up contact, hold and rule for databases a hold keeps past due."""
        kept_rows = [
            (row.key, "legal_hold" if row.held else "restriction")
            for trial in self.survey().trials.values()
            if trial.present and not trial.quarantined and trial.status in (HELD, RESTRICTED)
            for row in trial.rows
            if row.due and (row.held or row.restricted)
        ]
        if not kept_rows:
            return 0
        cat, contact = self.catalog, self.catalog.contact
        t, c = self.tables[cat.table], self.tables[contact.table]
        kinds = dict(kept_rows)
        with self.catalog_engine.connect() as conn:
            found = conn.execute(
                select(t.c[cat.primary_key], t.c[cat.database_name], c.c[contact.email])
                .select_from(t.join(c, c.c[contact.primary_key] == t.c[contact.foreign_key]))
                .where(t.c[cat.primary_key].in_(bindparam(None, sorted(kinds), expanding=True)))
            ).all()
        kept = [(kinds[key], address, {"database": name}) for key, name, address in found if address]
        return record_kept(self.ctx.audit, self.policy_rule.id, self.ctx.key, self.exemptions, self.audit_entry, kept)

    def verify(self) -> int:
        """Eligible trial databases still on the server (quarantined ones apart), plus drops not
        yet recorded."""
        return len(self.survey().items)


@dataclass
class DropRecord:
    """What the audit store says of a trial rule's drops."""

    intents: dict[str, dict[str, Any]] = field(default_factory=dict)  # database -> newest open intent
    dropped: set[tuple[str, str]] = field(default_factory=set)  # (database, sign-up key) recorded gone

    def settled(self, name: str, key: Any) -> bool:
        """The sign-up row ``key`` naming ``name`` had its database dropped by Lethe."""
        return (name, _key(key)) in self.dropped


def _key(key: Any) -> str:
    """A sign-up key as the audit entry's JSON holds it, for comparison with the catalog's."""
    return json.dumps(key)


def _listed(names: list[str]) -> list[str]:
    if len(names) <= LIST_LIMIT:
        return list(names)
    return list(names[:LIST_LIMIT]) + [f"... and {len(names) - LIST_LIMIT} more (see the task log)"]
