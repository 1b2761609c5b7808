"""Delete and anonymise rules on SQL sources, as batched set-based statements.

Every name comes from the inventory; the query is built from its parts:

* the **trigger** (the latest of the listed dates, else the fallback column),
* the **scope** (prospects, former customers or every row, through the customer link),
* **due**: trigger + period <= as-of, computed in the database with calendar periods,
* **exempt**: the subject's e-mail is under a legal hold or restriction in force,
* for anonymisation, **pending**: some personal-data column still differs from its anonymised value.

A batch selects up to ``batch_size`` eligible rows by primary key (keyset pagination), then in
one transaction deletes or updates them and their dependents by key and stages one audit entry
per subject; the entries are chained right after the commit.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections import Counter
from typing import Any

from sqlalchemy import (
    DateTime,
    String,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from lethe.audit import AuditEntry, AuditTrail
from lethe.db import TEXT_TIMESTAMP, due_by, greatest_sql, normalised_email, timestamp_sql
from lethe.errors import BadData
from lethe.exemptions import check_exemptions, record_kept
from lethe.periods import Period
from lethe.schema import Needs, need, reflect_tables, source_engine
from lethe.sources.base import RuleAction, RuleResult, action_for, register
from lethe.subjects import email_key, subject_key

log = logging.getLogger("lethe")


class SqlRule(RuleAction):
    """Shared query building for the SQL actions."""

    source_kind = "sql"

    def __init__(self, ctx, policy_rule):
        super().__init__(ctx, policy_rule)
        self.spec = self.source.tables[self.rule.table]
        self.batch_size = self.rule.batch_size or ctx.batch_size
        self._tables: dict[str, Table] | None = None
        self._open_rows: list[tuple[str, str, str, list]] | None = None

    # ------------------------------------------------------------------ plumbing

    @property
    def engine(self):
        return source_engine(self.connection, self.source)

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
        self._check_dates()

    def _check_dates(self) -> None:
        """Refuse to run on a trigger date that is not a date.

        SQLite stores any text in any column; on PostgreSQL and MariaDB a text column may hold
        anything too. Such a row could never be judged (or, on MariaDB, would be read wrongly):
        the error names the table, column and rows, and nothing is changed. Typed date and
        timestamp columns on PostgreSQL and MariaDB are checked by the database itself.
        """
        columns = [(self.rule.table, part.column) for part in self.rule.trigger.latest_of if part.column]
        columns += [
            (p.newest_related.table, p.newest_related.column) for p in self.rule.trigger.latest_of if p.newest_related
        ]
        if self.rule.trigger.fallback:
            columns.append((self.rule.table, self.rule.trigger.fallback))
        sqlite = self.engine.dialect.name == "sqlite"
        for table_name, column_name in columns:
            t = self.t(table_name)
            key = t.c[self.source.tables[table_name].primary_key]
            column = t.c[column_name]
            if sqlite:
                not_a_date = timestamp_sql(column).is_(None)
            elif isinstance(column.type, String):
                not_a_date = ~column.regexp_match(TEXT_TIMESTAMP)
            else:
                continue
            with self.engine.connect() as conn:
                bad = (
                    conn.execute(select(key).where(column.is_not(None), not_a_date).order_by(key).limit(5))
                    .scalars()
                    .all()
                )
            if bad:
                raise BadData(
                    f"{self.policy_rule.id}: {table_name}.{column_name} holds values that are not "
                    f"dates in rows with {key.name} {', '.join(map(str, bad))}"
                    f"{' and more' if len(bad) == 5 else ''}. Nothing was changed."
                )

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

    def trigger(self) -> ColumnElement:
        parts = []
        for part in self.rule.trigger.latest_of:
            if part.column:
                parts.append(timestamp_sql(self.table.c[part.column]))
            elif part.newest_related:
                rel = part.newest_related
                child = self.t(rel.table)
                parts.append(
                    timestamp_sql(
                        select(func.max(child.c[rel.column]))
                        .where(child.c[rel.foreign_key] == self.pk)
                        .scalar_subquery()
                    )
                )
            elif part.customer_until:
                link = self.spec.customer
                company = self.t(link.table)
                parts.append(
                    timestamp_sql(
                        select(company.c[link.customer_until])
                        .where(company.c[link.primary_key] == self.table.c[link.foreign_key])
                        .scalar_subquery()
                    )
                )
        latest = greatest_sql(*parts)
        if self.rule.trigger.fallback:
            return func.coalesce(latest, timestamp_sql(self.table.c[self.rule.trigger.fallback]), type_=DateTime)
        return latest

    def scope(self) -> ColumnElement:
        status = self.rule.customer_status
        if status == "any":
            return true()
        link = self.spec.customer
        company = self.t(link.table)
        own_company = company.c[link.primary_key] == self.table.c[link.foreign_key]
        since, until = company.c[link.customer_since], company.c[link.customer_until]
        as_of = bindparam(None, self.ctx.as_of, type_=DateTime)
        if status == "prospect":
            # Never a customer: no company, or a company that never had a contract.
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
        return or_(*conditions) if conditions else false()

    def due(self, period: Period) -> ColumnElement:
        return and_(self.scope(), self.pending(), due_by(self.trigger(), period, self.ctx.as_of))

    def eligible(self) -> ColumnElement:
        return and_(self.due(self.policy_rule.period), ~self.exempt(self.exemptions.any), ~self.waiting())

    def count(self, condition: ColumnElement) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self.table).where(condition)).scalar_one())

    # ------------------------------------------------------------------ the interface

    def scan(self) -> RuleResult:
        result = self.new_result()
        due = self.due(self.policy_rule.period)
        held, restricted = self.exemptions.held, self.exemptions.restricted - self.exemptions.held
        # Every due record is one of: eligible, exempt (hold, restriction) or waiting.
        result.due = self.count(due)
        result.eligible = self.count(self.eligible())
        result.exempt_hold = self.count(and_(due, self.exempt(held)))
        result.exempt_restriction = self.count(and_(due, self.exempt(restricted)))
        if self.rule.wait_for:
            result.extra["waiting"] = self.count(and_(due, ~self.exempt(self.exemptions.any), self.waiting()))
            if result.extra["waiting"]:
                log.warning(
                    "%s: %d due record(s) wait: %s",
                    self.policy_rule.id,
                    result.extra["waiting"],
                    "; ".join(w.reason for w in self.rule.wait_for),
                )
        result.overdue_before = self.count(
            and_(self.due(self.policy_rule.overdue_period), ~self.exempt(self.exemptions.any))
        )
        return result

    def verify(self) -> int:
        return self.count(self.eligible())

    def record_exemptions(self) -> int:
        """Who a hold or restriction keeps past the deadline: one entry per person, rule and hold."""
        if not self.uses_holds or not self.exemptions.any:
            return 0
        due = self.due(self.policy_rule.period)
        held = self.exemptions.held
        kept = []
        with self.engine.connect() as conn:
            for kind, addresses in (("legal_hold", held), ("restriction", self.exemptions.restricted - held)):
                if addresses:
                    query = select(self.subject_column()).where(due, self.exempt(addresses))
                    kept += [(kind, address, {"table": self.rule.table}) for address in conn.execute(query).scalars()]
        new = record_kept(self.ctx.audit, self.policy_rule.id, self.ctx.key, self.exemptions, self.audit_entry, kept)
        if new:
            log.info(
                "%s: %d person(s) newly kept past the deadline by a hold or restriction: recorded in the audit trail",
                self.policy_rule.id,
                new,
            )
        return new

    def enforce(self) -> RuleResult:
        result = self.scan()
        if not self.ctx.dry_run:
            result.extra["kept_recorded"] = self.record_exemptions()
            AuditTrail.create_outbox(self.engine)
            self.ctx.audit.drain(self.engine)  # entries a crashed run left behind
        condition = self.eligible()
        columns = [self.pk] + ([self.subject_column()] if self.spec.subject else [])
        last_key = None
        related: Counter = Counter()
        while True:
            query = select(*columns).where(condition).order_by(self.pk).limit(self.batch_size)
            if last_key is not None:
                query = query.where(self.pk > last_key)
            with self.engine.begin() as conn:
                rows = conn.execute(query).all()
                if not rows:
                    break
                last_key = rows[-1][0]
                keys = [row[0] for row in rows]
                batch_related = self.related_counts(conn, keys)
                entries = self.audit_entries(rows, batch_related)
                if not self.ctx.dry_run:
                    self.change(conn, rows)
                    AuditTrail.stage(conn, entries)
            if self.ctx.dry_run:
                self.ctx.audit.append(entries)
            else:
                self.ctx.audit.drain(self.engine)
            result.batches += 1
            changed = len(rows)
            totals = Counter()
            for per_subject in batch_related.values():
                totals.update(per_subject)
            related.update(totals)
            self.count_changed(result, changed)
            log.info(
                "%s batch %d: %s %d %s row(s)%s%s",
                self.policy_rule.id,
                result.batches,
                self.verb,
                changed,
                self.rule.table,
                "".join(f", {n} {t} row(s)" for t, n in sorted(totals.items())),
                " (dry run: nothing changed)" if self.ctx.dry_run else "",
            )
        result.related = dict(related)
        self.ctx.audit.append([self.summary_entry(result)])
        return result

    # ------------------------------------------------------------------ subclass hooks

    verb = "changed"
    audit_action = "changed"

    def related_tables(self) -> list:
        """The dependents this action touches along with each row."""
        return list(self.spec.dependents)

    def related_counts(self, conn, keys: list) -> dict[Any, Counter]:
        """Per primary key, how many rows of each dependent table go with it (for the audit)."""
        related: dict[Any, Counter] = {key: Counter() for key in keys}
        for dep in self.related_tables():
            fk = self.t(dep.table).c[dep.foreign_key]
            for parent, n in conn.execute(select(fk, func.count()).where(fk.in_(keys)).group_by(fk)):
                related[parent][dep.table] += n
        return related

    @abstractmethod
    def change(self, conn, rows) -> None:
        """Delete or update the batch (and its dependents) in the caller's transaction."""

    @abstractmethod
    def count_changed(self, result: RuleResult, n: int) -> None:
        """Add ``n`` changed rows to the result's count of this action."""

    def audit_entries(self, rows, related: dict[Any, Counter]) -> list[AuditEntry]:
        kind = self.spec.subject.kind if self.spec.subject else "record"
        action = ("would_" if self.ctx.dry_run else "") + self.audit_action
        entries = []
        for row in rows:
            key_value = row[1] if self.spec.subject else row[0]
            if self.spec.subject and not key_value:
                kind_used, key_value = "record", row[0]
            else:
                kind_used = kind
            extra = related.get(row[0], Counter())
            entries.append(
                self.audit_entry(
                    action,
                    subject_key(self.ctx.key, kind_used, key_value, source=self.source.source, table=self.rule.table),
                    1 + sum(extra.values()),
                    {"table": self.rule.table, "related": dict(sorted(extra.items()))},
                )
            )
        return entries


@register
class SqlDelete(SqlRule):
    """Delete eligible rows and, first, their dependents (no dangling references)."""

    name = "delete"
    verb = "deleted"
    audit_action = "deleted"

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

    def change(self, conn, rows) -> None:
        keys = [row[0] for row in rows]
        self._delete_dependents(conn, self.rule.table, keys)
        if self.rule.suppress:
            self._suppress(conn, [row[1] for row in rows if row[1]])
        conn.execute(delete(self.table).where(self.pk.in_(keys)))

    def _delete_dependents(self, conn, table_name: str, keys: list) -> None:
        """Children before parents, depth first, so no foreign key is left dangling."""
        for dep in self.source.tables[table_name].dependents:
            child = self.t(dep.table)
            child_spec = self.source.tables[dep.table]
            if child_spec.dependents:
                child_pk = child.c[child_spec.primary_key]
                child_keys = list(conn.execute(select(child_pk).where(child.c[dep.foreign_key].in_(keys))).scalars())
                if child_keys:
                    self._delete_dependents(conn, dep.table, child_keys)
            conn.execute(delete(child).where(child.c[dep.foreign_key].in_(keys)))

    def _suppress(self, conn, addresses: list[str]) -> None:
        spec = self.rule.suppress
        target = self.t(spec.table)
        hashes = sorted({email_key(self.ctx.key, a) for a in addresses})
        if not hashes:
            return
        present = set(
            conn.execute(select(target.c[spec.hash_column]).where(target.c[spec.hash_column].in_(hashes))).scalars()
        )
        new = [h for h in hashes if h not in present]
        if new:
            conn.execute(
                insert(target),
                [
                    {spec.hash_column: h, spec.added_at_column: self.ctx.as_of, spec.reason_column: spec.reason}
                    for h in new
                ],
            )

    def count_changed(self, result: RuleResult, n: int) -> None:
        result.deleted += n


@register
class SqlAnonymise(SqlRule):
    """Overwrite personal data irreversibly (constants or NULL: never a hash of the value)."""

    name = "anonymise"
    verb = "anonymised"
    audit_action = "anonymised"

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
        return or_(
            *[
                self.table.c[column].is_distinct_from(literal(value) if value is not None else null())
                for column, value in self._targets(self.rule.table).items()
            ]
        )

    def related_tables(self) -> list:
        # Only dependents that hold personal data are rewritten along with the row.
        return [dep for dep in self.spec.dependents if self._targets(dep.table)]

    def change(self, conn, rows) -> None:
        keys = [row[0] for row in rows]
        for dep in self.related_tables():
            child = self.t(dep.table)
            conn.execute(update(child).where(child.c[dep.foreign_key].in_(keys)).values(**self._targets(dep.table)))
        conn.execute(update(self.table).where(self.pk.in_(keys)).values(**self._targets(self.rule.table)))

    def count_changed(self, result: RuleResult, n: int) -> None:
        result.anonymised += n
