"""Delete and anonymise rules on SQL sources, as batched set-based statements.

Every name comes from the inventory; the query is built from its parts:

* the **trigger** (the latest of the listed dates, else the fallback column),
* the **scope** (prospects, former customers or every row, through the customer link),
* **due**: trigger + period <= as-of, computed in the database with calendar periods,
* **exempt**: the subject's e-mail is under a legal hold or restriction in force,
* for anonymisation, **pending**: some personal-data column still differs from its anonymised value.

Each decision is written in two forms of the same predicate. Over the whole table (the scan's
counts, the decision, the after-count) the related rows are joined once: the newest related row
per key as one grouped subquery, the company as an outer join. For a batch's few keys they are
correlated subqueries, which the database answers from the foreign-key index.

The scan counts everything in one pass. Enforcement decides the eligible set once, into a
temporary table of keys in the session (ordered by subject, so one subject's rows go together),
then walks it in batches: each batch, in one transaction, decides its keys again from the live
rows and the holds as they are then (a record that stopped being eligible, say a hold placed
mid-run, is not touched), deletes or updates them and their dependents by key, and stages one
audit entry per subject in the outbox; the entries are chained right after the commit.
"""

from __future__ import annotations

import json
import logging
from abc import abstractmethod
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    Table,
    and_,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from lethe.audit import AuditBatch, AuditTrail
from lethe.db import (
    bulk_insert,
    connection_url,
    drop_temporary,
    due_by,
    future_limit,
    greatest_sql,
    keys_in,
    later_than,
    make_engine,
    normalised_email,
    not_a_timestamp,
    timestamp_sql,
)
from lethe.exemptions import Exemptions, check_exemptions, load_exemptions, record_kept
from lethe.periods import Period
from lethe.schema import Needs, key_is_primary, need, reflect_tables, source_engine
from lethe.sources.base import RuleAction, RuleResult, action_for, register
from lethe.sources.sql import validation
from lethe.subjects import email_key, subject_key

log = logging.getLogger("lethe")

TEMPORARY_SCHEMA = {"postgresql": "pg_temp", "sqlite": "temp"}
# Committed batches wait in the outbox (safe: it is in the source, written with the change) and
# are chained a few at a time, in one transaction of the audit store for each few.
DRAIN_EVERY = 10
# The decision's kinds of due keys.
ELIGIBLE, KEPT_BY_HOLD, KEPT_BY_RESTRICTION = 0, 1, 2
# What an action writes: privilege (DELETE, INSERT, UPDATE) -> table -> columns (empty: whole rows).
Writes = dict[str, dict[str, tuple[str, ...]]]
# An address Lethe can match holds against, once normalised (lower case, no spaces).
EMAIL_SHAPE = r"^[^@ ]+@[^@ ]+[.][^@ ]+$"


@dataclass(frozen=True)
class Reason:
    """One check before a rule: rows meeting ``condition`` are quarantined (kept, reported).

    ``expectation``: the Great Expectations class that checks it on the table (None: a query of
    the rows, ``ExpectNoRowsOfQuery``); ``column`` what it looks at; ``fix`` what to correct.
    """

    name: str
    expectation: str | None
    column: str
    condition: ColumnElement
    fix: str
    # The database's own constraint already rules such rows out (a primary key): the check runs,
    # as evidence, but the condition is left out of every query that decides.
    guaranteed: bool = False


class SqlRule(RuleAction):
    """Shared query building for the SQL actions."""

    source_kind = "sql"

    def __init__(self, ctx, policy_rule):
        super().__init__(ctx, policy_rule)
        self.spec = self.source.tables[self.rule.table]
        self.batch_size = self.rule.batch_size or ctx.batch_size
        self._tables: dict[str, Table] | None = None
        self._open_rows: list[tuple[str, str, str, list]] | None = None
        self._waited: list = []  # keys the enforcement decided were waiting (keep_waiting)

    # ------------------------------------------------------------------ plumbing

    @property
    def engine(self):
        return source_engine(self.connection, self.source)

    @property
    def reading_engine(self):
        """A fresh engine on the source that only reads (the checks'; the caller disposes of it)."""
        url = (self.ctx.url_for or connection_url)(self.source.connection_id)
        return source_engine(make_engine(url, writes=False), self.source)

    def before_suite(self):
        return validation.before_suite(self)

    def after_suite(self):
        return validation.after_suite(self)

    def quarantine_samples(self, reasons: dict[str, int]) -> dict[str, list[str]]:
        return validation.quarantine_samples(self, reasons)

    def needs(self) -> Needs:
        """Exactly the tables and columns this rule reads or writes in its source."""
        spec, rule = self.spec, self.rule
        needs = need({}, rule.table, spec.primary_key, spec.subject.column if spec.subject else None)
        for part in rule.trigger.latest_of:
            need(needs, rule.table, part.column)
            if part.newest_related:
                rel = part.newest_related
                need(needs, rel.table, self.source.tables[rel.table].primary_key, rel.foreign_key, rel.column)
        need(needs, rule.table, rule.trigger.fallback)
        if rule.customer_status != "any" or any(p.customer_until for p in rule.trigger.latest_of):
            link = spec.customer
            need(needs, rule.table, link.foreign_key)
            need(needs, link.table, link.primary_key, link.customer_since, link.customer_until)
        for wait in rule.wait_for:
            catalog = self.ctx.inventory.rule(wait.rule)[0].catalog
            need(needs, catalog.table, catalog.primary_key, catalog.contact.foreign_key)
        self.action_needs(needs)
        return needs

    def action_needs(self, needs: Needs) -> None:
        """What the action itself touches besides the rule's table (dependents, suppression)."""

    def writes(self) -> Writes:
        """What :meth:`change` writes in the source: privilege -> table -> columns (empty: whole
        rows). The least-privilege role of the source is generated from it (:mod:`lethe.privileges`)."""
        return {}

    def check_summary(self) -> str:
        needs = self.needs()
        holds = " (and the hold and restriction tables)" if self.uses_holds else ""
        return (
            f"the {len(needs)} table(s) and {sum(map(len, needs.values()))} column(s) it uses in "
            f"connection {self.source.connection_id!r}{holds} match the live schema"
        )

    @property
    def uses_holds(self) -> bool:
        """Holds and restrictions name an e-mail address: only rules keyed on one consult them."""
        return bool(self.spec.subject and self.spec.subject.kind == "email")

    def check(self) -> None:
        self._tables = reflect_tables(self.engine, self.source, self.needs(), user=self.user)
        if self.uses_holds:
            check_exemptions(self.ctx.inventory, self.ctx.engine_for, user=self.user)
        for wait in self.rule.wait_for:
            action_for(self.ctx, wait.rule).check()

    def t(self, name: str) -> Table:
        if self._tables is None:
            self._tables = reflect_tables(self.engine, self.source, self.needs(), user=self.user)
        return self._tables[name]

    @property
    def table(self) -> Table:
        return self.t(self.rule.table)

    @property
    def pk(self):
        return self.table.c[self.spec.primary_key]

    # ------------------------------------------------------------------ query parts

    def joined(self) -> tuple[Any, dict, Table | None]:
        """The rule's table with what its trigger and scope read, joined once (whole-table form).

        Returns the FROM clause, the newest related timestamp per ``latest_of`` part (one grouped
        subquery each; under ``(index, "bad")`` whether any of those rows holds a value that is
        not a date) and the company table when the customer link is joined (else None).
        """
        source = self.table
        newest: dict[int, ColumnElement] = {}
        for index, part in enumerate(self.rule.trigger.latest_of):
            if part.newest_related:
                rel = part.newest_related
                child = self.t(rel.table)
                columns = [
                    child.c[rel.foreign_key].label("key"),
                    func.max(timestamp_sql(child.c[rel.column])).label("newest"),
                ]
                bad = self.unparseable(child.c[rel.column])
                if bad is not None:
                    columns.append(func.max(case((bad, 1), else_=0)).label("bad"))
                per_key = select(*columns).group_by(child.c[rel.foreign_key]).subquery(f"newest_{index}")
                source = source.outerjoin(per_key, per_key.c.key == self.pk)
                newest[index] = per_key.c.newest
                if bad is not None:
                    newest[(index, "bad")] = per_key.c.bad
        company = None
        if self.uses_customer_link:
            link = self.spec.customer
            company = self.t(link.table)
            # One company per contact at most: the link is the company's primary key.
            source = source.outerjoin(company, company.c[link.primary_key] == self.table.c[link.foreign_key])
        return source, newest, company

    @property
    def uses_customer_link(self) -> bool:
        return self.rule.customer_status != "any" or any(p.customer_until for p in self.rule.trigger.latest_of)

    def trigger(self, newest: dict[int, ColumnElement] | None = None, company: Table | None = None) -> ColumnElement:
        """The trigger instant; from the joined columns when given, else by correlated subqueries."""
        parts = []
        for index, part in enumerate(self.rule.trigger.latest_of):
            if part.column:
                parts.append(timestamp_sql(self.table.c[part.column]))
            elif part.newest_related:
                if newest is not None:
                    parts.append(newest[index])
                    continue
                rel = part.newest_related
                child = self.t(rel.table)
                parts.append(
                    select(func.max(timestamp_sql(child.c[rel.column])))
                    .where(child.c[rel.foreign_key] == self.pk)
                    .scalar_subquery()
                )
            elif part.customer_until:
                link = self.spec.customer
                if company is not None:
                    parts.append(timestamp_sql(company.c[link.customer_until]))
                    continue
                related = self.t(link.table)
                parts.append(
                    timestamp_sql(
                        select(related.c[link.customer_until])
                        .where(related.c[link.primary_key] == self.table.c[link.foreign_key])
                        .scalar_subquery()
                    )
                )
        latest = greatest_sql(*parts)
        if self.rule.trigger.fallback:
            return func.coalesce(latest, timestamp_sql(self.table.c[self.rule.trigger.fallback]), type_=DateTime)
        return latest

    def scope(self, company: Table | None = None) -> ColumnElement:
        """Which rows the rule covers at all; from the joined company when given."""
        status = self.rule.customer_status
        if status == "any":
            return true()
        link = self.spec.customer
        as_of = bindparam(None, self.ctx.as_of, type_=DateTime)
        if company is not None:
            since, until = company.c[link.customer_since], company.c[link.customer_until]
            if status == "prospect":
                # Never a customer: no company (or a dangling link), or one that never had a contract.
                return since.is_(None)
            return and_(since.is_not(None), until.is_not(None), timestamp_sql(until) <= as_of)
        related = self.t(link.table)
        own_company = related.c[link.primary_key] == self.table.c[link.foreign_key]
        since, until = related.c[link.customer_since], related.c[link.customer_until]
        if status == "prospect":
            return ~exists().where(own_company, since.is_not(None))
        # A former customer: a contract that started and has ended by the as-of.
        return exists().where(own_company, since.is_not(None), until.is_not(None), timestamp_sql(until) <= as_of)

    def pending(self) -> ColumnElement:
        """Rows this rule still has to act on (anonymisation: not yet anonymised)."""
        return true()

    def subject_column(self):
        return self.table.c[self.spec.subject.column] if self.spec.subject else None

    def exempt(self, addresses: frozenset[str]) -> ColumnElement:
        """The subject's address is among ``addresses``: true or false, never unknown.

        A row without an address (NULL) cannot be held: ``IS NOT NULL AND ...`` is false for it,
        so ``NOT exempt`` is true and the row is judged by its dates like any other (a bare
        ``IN`` would be unknown for NULL, and the row silently kept).
        """
        column = self.subject_column()
        if column is None or not self.uses_holds or not addresses:
            return false()
        return and_(
            column.is_not(None), normalised_email(column).in_(bindparam(None, sorted(addresses), expanding=True))
        )

    def waiting(self) -> ColumnElement:
        """Due rows that must wait for another rule first (it still needs rows pointing at them).

        The other rule's open rows are read once per action (a task): a row that closes while
        the task runs only makes its record wait for the next run, never go early.
        """
        if self._open_rows is None:
            self._open_rows = [action_for(self.ctx, wait.rule).open_rows() for wait in self.rule.wait_for]
        conditions = []
        for table_name, primary_key, foreign_key, keys in self._open_rows:
            if not keys:
                continue
            related = self.t(table_name)
            conditions.append(
                exists().where(
                    related.c[foreign_key] == self.pk,
                    related.c[primary_key].in_(bindparam(None, sorted(keys), expanding=True)),
                )
            )
        if self._waited:
            conditions.append(self.pk.in_(bindparam(None, sorted(self._waited), expanding=True)))
        return or_(*conditions) if conditions else false()

    def keep_waiting(self, keys: list) -> None:
        self._waited = list(keys)

    def waiting_keys(self) -> list:
        """The due, judged, not exempt records that wait (read with the open rows the decision uses)."""
        source, trigger, covered, quarantined = self.whole_table()
        query = (
            select(self.pk)
            .select_from(source)
            .where(
                covered,
                self.judged(quarantined),
                due_by(trigger, self.policy_rule.period, self.ctx.as_of),
                ~self.exempt(self.exemptions.any),
                self.waiting(),
            )
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def due(self, period: Period, trigger: ColumnElement | None = None, company: Table | None = None) -> ColumnElement:
        trigger = self.trigger() if trigger is None else trigger
        return and_(self.scope(company), self.pending(), due_by(trigger, period, self.ctx.as_of))

    def eligible(self, exemptions: Exemptions | None = None) -> ColumnElement:
        """Correlated form (a batch's keys): due, not quarantined, not exempt, not waiting."""
        exemptions = exemptions or self.exemptions
        return and_(
            self.due(self.policy_rule.period), ~self.quarantined(), ~self.exempt(exemptions.any), ~self.waiting()
        )

    def whole_table(self) -> tuple[Any, ColumnElement, ColumnElement, ColumnElement]:
        """Whole-table form: (FROM clause, trigger, rows in scope and pending, rows quarantined)."""
        source, newest, company = self.joined()
        trigger = self.trigger(newest, company)
        return source, trigger, and_(self.scope(company), self.pending()), self.quarantined(newest, company)

    def eligible_rows(self, *columns, exempt: ColumnElement | None = None) -> Any:
        """``SELECT columns`` of every eligible row, deciding over the whole table at once.

        ``exempt``: which rows the holds keep (default: the subject's address is held now).
        """
        source, trigger, covered, quarantined = self.whole_table()
        return (
            select(*columns)
            .select_from(source)
            .where(
                covered,
                due_by(trigger, self.policy_rule.period, self.ctx.as_of),
                self.judged(quarantined),
                ~(self.exempt(self.exemptions.any) if exempt is None else exempt),
                ~self.waiting(),
            )
        )

    def count(self, condition: ColumnElement) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self.table).where(condition)).scalar_one())

    # ------------------------------------------------------------------ data that cannot be judged

    def unparseable(self, column) -> ColumnElement | None:
        """Rows whose ``column`` holds something that is not a date (:func:`lethe.db.not_a_timestamp`)."""
        return not_a_timestamp(column, self.engine.dialect.name)

    @property
    def future_limit(self):
        """Trigger dates after this are bad data (``validation.future_tolerance`` past the as-of)."""
        return future_limit(self.ctx.as_of, self.ctx.policy.validation.future_tolerance)

    def quarantine_reasons(self, newest: dict | None = None, company: Table | None = None) -> list[Reason]:
        """Why a row of the rule's table cannot be judged: one :class:`Reason` per check.

        Built from the inventory: the key, the trigger's dates, the subject's address and the
        customer link. With ``newest`` and ``company`` (:meth:`joined`) the conditions read the
        joined columns (whole-table form); without, correlated subqueries (a batch's keys, and
        the checks' own queries, which the database answers as semi-joins).
        """
        table, pk, name = self.table, self.pk, self.rule.table
        constrained = key_is_primary(table, pk.name)
        reasons = [
            Reason(
                "key_missing",
                "ExpectColumnValuesToNotBeNull",
                pk.name,
                pk.is_(None),
                f"give every {name} row a {pk.name}",
                guaranteed=constrained,
            ),
        ]
        twin = table.alias("twin")  # its own FROM: never correlated with the outer row
        twins = select(twin.c[pk.name]).group_by(twin.c[pk.name]).having(func.count() > 1)
        reasons.append(
            Reason(
                "key_duplicate",
                "ExpectColumnValuesToBeUnique",
                pk.name,
                and_(pk.is_not(None), pk.in_(twins)),
                f"make {name}.{pk.name} unique",
                guaranteed=constrained,
            )
        )
        own = [part.column for part in self.rule.trigger.latest_of if part.column]
        own += [self.rule.trigger.fallback] if self.rule.trigger.fallback else []
        for column_name in own:
            column = table.c[column_name]
            bad = self.unparseable(column)
            if bad is not None:
                reasons.append(
                    Reason("trigger_unparseable", None, column_name, bad, f"store dates in {name}.{column_name}")
                )
            reasons.append(
                Reason(
                    "trigger_in_future",
                    None,
                    column_name,
                    later_than(timestamp_sql(column), self.future_limit),
                    f"correct the future dates in {name}.{column_name}",
                )
            )
        for index, part in enumerate(self.rule.trigger.latest_of):
            if not part.newest_related:
                continue
            rel = part.newest_related
            child = self.t(rel.table)
            where = f"{rel.table}.{rel.column}"
            bad = self.unparseable(child.c[rel.column])
            if bad is not None:
                condition = (
                    later_than(newest[(index, "bad")], 0)
                    if newest is not None
                    else exists().where(child.c[rel.foreign_key] == pk, bad)
                )
                reasons.append(Reason("trigger_unparseable", None, where, condition, f"store dates in {where}"))
            condition = (
                later_than(newest[index], self.future_limit)
                if newest is not None
                else exists().where(
                    child.c[rel.foreign_key] == pk, later_than(timestamp_sql(child.c[rel.column]), self.future_limit)
                )
            )
            reasons.append(Reason("trigger_in_future", None, where, condition, f"correct the future dates in {where}"))
        if self.rule.trigger.if_missing == "quarantine":
            # No date at all; a date that is there but not a date is counted above, not here.
            not_dates = [~r.condition for r in reasons if r.name == "trigger_unparseable"]
            reasons.append(
                Reason(
                    "trigger_missing",
                    None,
                    "trigger",
                    and_(self.trigger(newest, company).is_(None), *not_dates),
                    f"give every {name} row a date to count from ({', '.join(own) or 'its trigger'})",
                )
            )
        subject = self.subject_column()
        if subject is not None and self.spec.subject.kind == "email":
            reasons.append(
                Reason(
                    "address_unnormalisable",
                    None,
                    subject.name,
                    # Blank is no address (nothing to match a hold against), not a wrong one.
                    and_(
                        subject.is_not(None),
                        normalised_email(subject) != "",
                        ~normalised_email(subject).regexp_match(EMAIL_SHAPE),
                    ),
                    f"correct or empty the addresses in {name}.{subject.name} that are not e-mail addresses",
                )
            )
        if self.uses_customer_link:
            link = self.spec.customer
            foreign = table.c[link.foreign_key]
            if company is not None:
                gone = and_(foreign.is_not(None), company.c[link.primary_key].is_(None))
            else:
                related = self.t(link.table)
                gone = and_(foreign.is_not(None), ~exists().where(related.c[link.primary_key] == foreign))
            reasons.append(
                Reason(
                    "company_missing",
                    None,
                    link.foreign_key,
                    gone,
                    f"{name}.{link.foreign_key} names {link.table} rows that do not exist: restore them or relink",
                )
            )
        return reasons

    def quarantined(self, newest: dict | None = None, company: Table | None = None) -> ColumnElement:
        """Rows kept out of this run: any check fails (see :meth:`quarantine_reasons`).

        Every condition is true or false, never unknown: ``NOT quarantined`` must keep a row
        whose dates are simply absent (no interactions) in the run.
        """
        return or_(*(r.condition for r in self.quarantine_reasons(newest, company) if not r.guaranteed))

    @staticmethod
    def judged(quarantined: ColumnElement) -> ColumnElement:
        """Not quarantined, in the form a whole-table query filters on.

        ``CASE WHEN quarantined THEN 1 ELSE 0 END <> 1``: PostgreSQL estimates a negated OR of
        the checks as matching few rows and then plans a nested loop over the newest-related
        subquery for every row; ``<>`` on an expression it cannot estimate reads as "almost all".
        """
        return case((quarantined, 1), else_=0) != 1

    # ------------------------------------------------------------------ the interface

    def scan(self) -> RuleResult:
        """Every count in one pass over the table (each row's trigger computed once)."""
        result = self.new_result()
        source, trigger, covered, quarantined = self.whole_table()
        as_of = self.ctx.as_of
        judged = ~quarantined
        due = and_(judged, due_by(trigger, self.policy_rule.period, as_of))
        held, restricted = self.exemptions.held, self.exemptions.restricted - self.exemptions.held
        exempt = self.exempt(self.exemptions.any)
        waiting = self.waiting() if self.rule.wait_for else false()

        def number(condition: ColumnElement):
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        counts = (
            select(
                number(due).label("due"),
                number(and_(due, ~exempt, ~waiting)).label("eligible"),
                number(and_(due, self.exempt(held))).label("exempt_hold"),
                number(and_(due, self.exempt(restricted))).label("exempt_restriction"),
                number(and_(due, ~exempt, waiting)).label("waiting"),
                number(and_(judged, due_by(trigger, self.policy_rule.overdue_period, as_of), ~exempt)).label("overdue"),
                number(quarantined).label("quarantined"),
            )
            .select_from(source)
            .where(covered)
        )
        with self.engine.connect() as conn:
            row = conn.execute(counts).one()
        # Every due record is one of: eligible, exempt (hold, restriction) or waiting.
        result.due, result.eligible = int(row.due), int(row.eligible)
        result.exempt_hold, result.exempt_restriction = int(row.exempt_hold), int(row.exempt_restriction)
        result.overdue_before = int(row.overdue)
        result.quarantined = int(row.quarantined)
        if self.rule.wait_for:
            result.extra["waiting"] = int(row.waiting)
            if result.extra["waiting"]:
                log.warning(
                    "%s: %d due record(s) wait: %s",
                    self.policy_rule.id,
                    result.extra["waiting"],
                    "; ".join(w.reason for w in self.rule.wait_for),
                )
        return result

    def verify(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self.eligible_rows(self.pk).subquery())).scalar())

    def keys_table(self) -> Table:
        """The session's temporary table of this run's decision: each due key that is eligible
        (kind 0) or kept by a legal hold (1) or a restriction (2), numbered in subject order."""
        return Table(
            "lethe_decided_keys",
            MetaData(),
            Column("kind", Integer, primary_key=True, autoincrement=False),
            Column("position", Integer, primary_key=True, autoincrement=False),
            Column("key", self.pk.type),
            prefixes=["TEMPORARY"],
            # Named in the session's own schema, so a source's `schema:` is never applied to it.
            schema=TEMPORARY_SCHEMA.get(self.engine.dialect.name),
        )

    def decision(self, keys: Table):
        """The run's one decision, over the whole table at once, into ``keys``."""
        source, trigger, covered, quarantined = self.whole_table()
        held, restricted = self.exemptions.held, self.exemptions.restricted - self.exemptions.held
        kind = case((self.exempt(held), KEPT_BY_HOLD), (self.exempt(restricted), KEPT_BY_RESTRICTION), else_=ELIGIBLE)
        subject = self.subject_column()
        order = [subject, self.pk] if subject is not None else [self.pk]
        position = func.row_number().over(partition_by=kind, order_by=order)
        decided = (
            select(kind, position, self.pk)
            .select_from(source)
            .where(
                covered,
                self.judged(quarantined),
                due_by(trigger, self.policy_rule.period, self.ctx.as_of),
                or_(self.exempt(self.exemptions.any), ~self.waiting()),
            )
        )
        return insert(keys).from_select(["kind", "position", "key"], decided)

    def record_exemptions(self, conn, keys: Table) -> int:
        """Who a hold or restriction keeps past the deadline (from the decision): one entry per
        person, rule and hold, the first time they are kept."""
        kept = []
        with conn.begin():  # read, and closed, before the audit store is written
            for kind, code in (("legal_hold", KEPT_BY_HOLD), ("restriction", KEPT_BY_RESTRICTION)):
                query = select(self.subject_column()).join_from(self.table, keys, keys.c.key == self.pk)
                for address in conn.execute(query.where(keys.c.kind == code)).scalars():
                    kept.append((kind, address, {"table": self.rule.table}))
        new = record_kept(self.ctx.audit, self.policy_rule.id, self.ctx.key, self.exemptions, self.audit_entry, kept)
        if new:
            log.info(
                "%s: %d person(s) newly kept past the deadline by a hold or restriction: recorded in the audit trail",
                self.policy_rule.id,
                new,
            )
        return new

    def current_exemptions(self) -> Exemptions:
        """The holds and restrictions as they are now (read again for each batch)."""
        if not self.uses_holds:
            return self.exemptions
        if not hasattr(self, "_hold_tables"):
            self._hold_tables: dict = {}
        return load_exemptions(
            self.ctx.inventory, self.ctx.engine_for, self.ctx.as_of, user=self.user, reflected=self._hold_tables
        )

    def enforce(self, scanned: RuleResult | None = None) -> RuleResult:
        result = scanned or self.scan()
        if not self.ctx.dry_run:
            AuditTrail.create_outbox(self.engine)
            self.ctx.audit.drain(self.engine)  # entries a crashed run left behind
        columns = [self.pk] + ([self.subject_column()] if self.spec.subject else [])
        related: Counter = Counter()
        keys = self.keys_table()
        # Built before any transaction opens: building reflects the tables and reads the holds
        # and what the rule waits for, through connections of their own (on SQLite a second
        # connection inside a transaction would wait for its lock).
        decide, self_check = self.decision(keys), self.eligible()
        # What this decision leaves waiting, for the check after (a later task): read now, with
        # the same open rows, so a row the other rule closes meanwhile does not count as left.
        result.waited = self.waiting_keys() if self.rule.wait_for else []
        with self.engine.connect() as conn:
            with conn.begin():
                keys.create(conn)
            try:
                with conn.begin():
                    conn.execute(decide)
                    eligible = select(func.count()).select_from(keys).where(keys.c.kind == ELIGIBLE)
                    decided = int(conn.execute(eligible).scalar_one())
                if not self.ctx.dry_run:
                    result.extra["kept_recorded"] = self.record_exemptions(conn, keys) if self.uses_holds else 0
                last = 0
                while last < decided:
                    exemptions = self.current_exemptions()
                    recheck = self_check if exemptions == self.exemptions else self.eligible(exemptions)
                    with conn.begin():
                        in_batch = and_(
                            keys.c.kind == ELIGIBLE, keys.c.position > last, keys.c.position <= last + self.batch_size
                        )
                        last += self.batch_size
                        batch = conn.execute(select(keys.c.key).where(in_batch)).scalars().all()
                        # Decided again, in this transaction, from the rows and holds as they are now.
                        rows = conn.execute(
                            select(*columns).where(keys_in(self.pk, batch), recheck).order_by(self.pk)
                        ).all()
                        if not rows:
                            continue
                        batch_related = self.related_counts(conn, [row[0] for row in rows])
                        entries = self.audit_entries(rows, batch_related)
                        if not self.ctx.dry_run:
                            self.change(conn, rows)
                            AuditTrail.stage(conn, entries)
                    if self.ctx.dry_run:
                        self.ctx.audit.append_batch(entries)
                    totals = self.log_batch(result, rows, batch_related)
                    related.update(totals)
                    if not self.ctx.dry_run and result.batches % DRAIN_EVERY == 0:
                        self.ctx.audit.drain(self.engine)
            finally:
                with conn.begin():
                    drop_temporary(conn, keys)
        if not self.ctx.dry_run:
            self.ctx.audit.drain(self.engine)
        result.related = dict(related)
        self.ctx.audit.append([self.summary_entry(result)])
        return result

    def log_batch(self, result: RuleResult, rows, batch_related: dict[Any, dict[str, int]]) -> Counter:
        result.batches += 1
        totals: Counter = Counter()
        for per_key in batch_related.values():
            totals.update(per_key)
        self.count_changed(result, len(rows))
        log.info(
            "%s batch %d: %s %d %s row(s)%s%s",
            self.policy_rule.id,
            result.batches,
            self.verb,
            len(rows),
            self.rule.table,
            "".join(f", {n} {t} row(s)" for t, n in sorted(totals.items())),
            " (dry run: nothing changed)" if self.ctx.dry_run else "",
        )
        return totals

    # ------------------------------------------------------------------ subclass hooks

    verb = "changed"
    audit_action = "changed"

    def related_tables(self) -> list:
        """The dependents this action touches along with each row."""
        return list(self.spec.dependents)

    def related_counts(self, conn, keys: list) -> dict[Any, dict[str, int]]:
        """Per primary key that has any, how many rows of each dependent table go with it."""
        related: dict[Any, dict[str, int]] = {}
        for dep in self.related_tables():
            fk = self.t(dep.table).c[dep.foreign_key]
            for parent, n in conn.execute(select(fk, func.count()).where(keys_in(fk, keys)).group_by(fk)):
                per_key = related.setdefault(parent, {})
                per_key[dep.table] = per_key.get(dep.table, 0) + n
        return related

    @abstractmethod
    def change(self, conn, rows) -> dict[Any, dict[str, int]]:
        """Delete or update the batch (and its dependents) in the caller's transaction; per key,
        the dependent rows that went with it (:meth:`related_counts`)."""

    @abstractmethod
    def count_changed(self, result: RuleResult, n: int) -> None:
        """Add ``n`` changed rows to the result's count of this action."""

    def audit_entries(self, rows, related: dict[Any, dict[str, int]]) -> AuditBatch:
        """One entry per subject of the batch: its rows and their dependents, counted."""
        kind = self.spec.subject.kind if self.spec.subject else "record"
        action = ("would_" if self.ctx.dry_run else "") + self.audit_action
        source, table, key = self.source.source, self.rule.table, self.ctx.key
        per_subject: dict[str, list] = {}
        for row in rows:
            key_value = row[1] if self.spec.subject else row[0]
            if self.spec.subject and not key_value:
                subject = subject_key(key, "record", row[0], source=source, table=table)
            else:
                subject = subject_key(key, kind, key_value, source=source, table=table)
            found = per_subject.get(subject)
            if found is None:
                found = per_subject[subject] = [0, {}]
            found[0] += 1
            for dependent, n in related.get(row[0], {}).items():
                found[1][dependent] = found[1].get(dependent, 0) + n
        # Details repeat (the same table and a few counts): each distinct one is written once.
        written: dict[tuple, str] = {}
        items = []
        for subject, (records, extra) in per_subject.items():
            shape = (records, *sorted(extra.items()))
            details = written.get(shape)
            if details is None:
                found = {"table": table, "related": dict(sorted(extra.items()))}
                if records > 1:
                    found["rows"] = records
                details = written[shape] = json.dumps(found, sort_keys=True)
            items.append((subject, records + sum(extra.values()), details))
        return AuditBatch.of(self.audit_entry(action, "-", 0, {}), items)


@register
class SqlDelete(SqlRule):
    """Delete eligible rows and, first, their dependents (no dangling references)."""

    name = "delete"
    verb = "deleted"
    audit_action = "deleted"
    done_actions = ("deleted",)

    def action_needs(self, needs: Needs) -> None:
        def dependents_of(table_name: str) -> None:
            for dep in self.source.tables[table_name].dependents:
                child = self.source.tables[dep.table]
                need(needs, dep.table, dep.foreign_key, child.primary_key if child.dependents else None)
                dependents_of(dep.table)

        dependents_of(self.rule.table)
        if self.rule.suppress:
            s = self.rule.suppress
            need(needs, s.table, s.hash_column, s.added_at_column, s.reason_column)

    def writes(self) -> Writes:
        deleted: list[str] = []

        def with_dependents(table_name: str) -> None:
            deleted.append(table_name)
            for dep in self.source.tables[table_name].dependents:
                with_dependents(dep.table)

        with_dependents(self.rule.table)
        found: Writes = {"DELETE": {table: () for table in deleted}}
        if self.rule.suppress:
            found["INSERT"] = {self.rule.suppress.table: ()}
        return found

    def change(self, conn, rows) -> dict[Any, dict[str, int]]:
        keys = [row[0] for row in rows]
        # Where the database returns what a DELETE removed, the dependents are counted from it;
        # elsewhere (MariaDB through SQLAlchemy) they are counted first.
        returning = conn.dialect.delete_returning
        related = {} if returning else self.related_counts(conn, keys)
        self._delete_dependents(conn, self.rule.table, keys, related if returning else None)
        if self.rule.suppress:
            self._suppress(conn, [row[1] for row in rows if row[1]])
        conn.execute(delete(self.table).where(keys_in(self.pk, keys)))
        return related

    def _delete_dependents(self, conn, table_name: str, keys: list, counts: dict | None = None) -> None:
        """Children before parents, depth first, so no foreign key is left dangling; ``counts``:
        add the direct dependents deleted, per parent key."""
        for dep in self.source.tables[table_name].dependents:
            child = self.t(dep.table)
            child_spec = self.source.tables[dep.table]
            fk = child.c[dep.foreign_key]
            if child_spec.dependents:
                child_pk = child.c[child_spec.primary_key]
                child_keys = list(conn.execute(select(child_pk).where(keys_in(fk, keys))).scalars())
                if child_keys:
                    self._delete_dependents(conn, dep.table, child_keys)
            if counts is None:
                conn.execute(delete(child).where(keys_in(fk, keys)))
                continue
            for parent in conn.execute(delete(child).where(keys_in(fk, keys)).returning(fk)).scalars():
                per_key = counts.setdefault(parent, {})
                per_key[dep.table] = per_key.get(dep.table, 0) + 1

    def _suppress(self, conn, addresses: list[str]) -> None:
        spec = self.rule.suppress
        target = self.t(spec.table)
        hashes = sorted({email_key(self.ctx.key, a) for a in addresses})
        if not hashes:
            return
        present = set(
            conn.execute(
                select(target.c[spec.hash_column]).where(keys_in(target.c[spec.hash_column], hashes))
            ).scalars()
        )
        new = [h for h in hashes if h not in present]
        bulk_insert(
            conn,
            target,
            [{spec.hash_column: h, spec.added_at_column: self.ctx.as_of, spec.reason_column: spec.reason} for h in new],
        )

    def count_changed(self, result: RuleResult, n: int) -> None:
        result.deleted += n


@register
class SqlAnonymise(SqlRule):
    """Overwrite personal data irreversibly (constants or NULL: never a hash of the value)."""

    name = "anonymise"
    verb = "anonymised"
    audit_action = "anonymised"
    done_actions = ("anonymised",)

    def action_needs(self, needs: Needs) -> None:
        need(needs, self.rule.table, *self._targets(self.rule.table))
        for dep in self.related_tables():
            need(needs, dep.table, dep.foreign_key, *self._targets(dep.table))

    def _targets(self, table_name: str) -> dict[str, Any]:
        return {
            column: (None if a.anonymise == "null" else a.value)
            for column, a in self.source.tables[table_name].personal_data.items()
        }

    def pending(self) -> ColumnElement:
        # "IS DISTINCT FROM the anonymised value", spelt out (SQLite's IS NOT would not render
        # its value inline, as the checks' queries need).
        return or_(
            *[
                self.table.c[column].is_not(None)
                if value is None
                else or_(self.table.c[column].is_(None), self.table.c[column] != literal(value))
                for column, value in self._targets(self.rule.table).items()
            ]
        )

    def writes(self) -> Writes:
        tables = [self.rule.table] + [dep.table for dep in self.related_tables()]
        return {"UPDATE": {table: tuple(self._targets(table)) for table in tables}}

    def related_tables(self) -> list:
        # Only dependents that hold personal data are rewritten along with the row.
        return [dep for dep in self.spec.dependents if self._targets(dep.table)]

    def change(self, conn, rows) -> dict[Any, dict[str, int]]:
        keys = [row[0] for row in rows]
        related = self.related_counts(conn, keys)
        for dep in self.related_tables():
            child = self.t(dep.table)
            conn.execute(
                update(child).where(keys_in(child.c[dep.foreign_key], keys)).values(**self._targets(dep.table))
            )
        conn.execute(update(self.table).where(keys_in(self.pk, keys)).values(**self._targets(self.rule.table)))
        return related

    def count_changed(self, result: RuleResult, n: int) -> None:
        result.anonymised += n
