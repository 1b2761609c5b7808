"""The inventory models of a SQL source: tables, subjects, customer links, rules."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from lethe.strict import SourceModel, Strict, coverage_item, identifier


class Anonymisation(Strict):
    anonymise: Literal["null", "constant"]
    value: str | None = None

    @model_validator(mode="after")
    def _value(self) -> "Anonymisation":
        if self.anonymise == "constant" and self.value is None:
            raise ValueError("anonymise: constant needs a value")
        if self.anonymise == "null" and self.value is not None:
            raise ValueError("anonymise: null takes no value")
        return self


# What a subject column holds, in words (the register of retention).
SUBJECT_KINDS = {"email": "an e-mail address", "cookie": "a cookie identifier", "record": "a record key"}


class Subject(Strict):
    column: str
    kind: Literal["email", "cookie", "record"]
    _c = field_validator("column")(lambda cls, v: identifier(v))


class CustomerLink(Strict):
    """How a table reaches the customer relationship (a company with contract dates)."""

    table: str
    foreign_key: str
    primary_key: str = "id"
    customer_since: str
    customer_until: str
    _c = field_validator("table", "foreign_key", "primary_key", "customer_since", "customer_until")(
        lambda cls, v: identifier(v)
    )


class Dependent(Strict):
    table: str
    foreign_key: str
    _c = field_validator("table", "foreign_key")(lambda cls, v: identifier(v))


class Table(Strict):
    primary_key: str
    subject: Subject | None = None
    customer: CustomerLink | None = None
    personal_data: dict[str, Anonymisation] = {}
    dependents: list[Dependent] = []
    _pk = field_validator("primary_key")(lambda cls, v: identifier(v))

    @field_validator("personal_data")
    @classmethod
    def _columns(cls, value: dict[str, Anonymisation]) -> dict[str, Anonymisation]:
        for name in value:
            identifier(name)
        return value


class NewestRelated(Strict):
    table: str
    foreign_key: str
    column: str
    _c = field_validator("table", "foreign_key", "column")(lambda cls, v: identifier(v))


class TriggerPart(Strict):
    """One date the period may count from; exactly one of the fields is set."""

    column: str | None = None
    newest_related: NewestRelated | None = None
    customer_until: bool | None = None

    @model_validator(mode="after")
    def _one(self) -> "TriggerPart":
        given = [n for n in ("column", "newest_related", "customer_until") if getattr(self, n)]
        if len(given) != 1:
            raise ValueError("a trigger part names exactly one of: column, newest_related, customer_until")
        if self.column is not None:
            identifier(self.column)
        return self


class Trigger(Strict):
    """The trigger is the latest of its parts; when all are empty, ``fallback`` (a column).

    ``if_missing``: what a row in the rule's scope without any trigger date means. ``quarantine``
    (the default): bad data, kept out of enforcement and reported, never silently skipped.
    ``not_due``: the event has not happened yet (a subscriber who has not unsubscribed).
    """

    latest_of: list[TriggerPart] = Field(min_length=1)
    fallback: str | None = None
    if_missing: Literal["quarantine", "not_due"] = "quarantine"
    _f = field_validator("fallback")(lambda cls, v: v if v is None else identifier(v))


class Suppression(Strict):
    table: str
    hash_column: str
    added_at_column: str
    reason_column: str
    reason: str
    _c = field_validator("table", "hash_column", "added_at_column", "reason_column")(lambda cls, v: identifier(v))


class WaitFor(Strict):
    """A due row waits while another rule still needs rows that point at it.

    ``rule`` names that rule; today a ``drop_database`` rule, whose catalog rows name the trial
    databases it has still to drop: deleting such a row first would leave a database no rule
    knows of. The other rule says which of its rows are still open (from the server and Lethe's
    own record of what it dropped), never a column Lethe expects the company to add.
    """

    rule: str
    reason: str


class InventoryRule(Strict):
    rule: str
    table: str
    action: Literal["delete", "anonymise"]
    trigger: Trigger
    customer_status: Literal["any", "prospect", "former_customer"] = "any"
    suppress: Suppression | None = None
    wait_for: list[WaitFor] = []
    batch_size: int | None = Field(default=None, gt=0, le=100_000)


class ExemptionTable(Strict):
    table: str
    email: str
    in_force_from: str
    in_force_until: str
    _c = field_validator("table", "email", "in_force_from", "in_force_until")(lambda cls, v: identifier(v))


class SqlSource(SourceModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: Literal["sql"]
    # ``schema:`` in the file: the PostgreSQL schema holding the tables (default: the search path).
    schema_name: str | None = Field(default=None, alias="schema")
    exemptions: dict[Literal["legal_hold", "restriction"], ExemptionTable] = {}
    tables: dict[str, Table]
    rules: list[InventoryRule] = []

    @model_validator(mode="after")
    def _references(self) -> "SqlSource":
        if self.schema_name is not None:
            identifier(self.schema_name)
        for name in self.tables:
            identifier(name)
        for name, table in self.tables.items():
            for dep in table.dependents:
                self._need(dep.table, f"tables.{name}.dependents")
            if table.customer:
                self._need(table.customer.table, f"tables.{name}.customer")
        for rule in self.rules:
            self._check_rule(rule)
        return self

    def _need(self, table: str, where: str) -> None:
        if table not in self.tables:
            raise ValueError(f"{where} names table {table!r}, which is not under tables:")

    def _check_rule(self, rule: InventoryRule) -> None:
        self._need(rule.table, f"rule {rule.rule}")
        table = self.tables[rule.table]
        for part in rule.trigger.latest_of:
            if part.newest_related:
                self._need(part.newest_related.table, f"rule {rule.rule} trigger")
            if part.customer_until and not table.customer:
                raise ValueError(f"rule {rule.rule}: customer_until needs tables.{rule.table}.customer")
        if rule.customer_status != "any" and not table.customer:
            raise ValueError(f"rule {rule.rule}: customer_status needs tables.{rule.table}.customer")
        if rule.suppress:
            self._need(rule.suppress.table, f"rule {rule.rule} suppress")
            if not table.subject or table.subject.kind != "email":
                raise ValueError(f"rule {rule.rule}: suppress needs an e-mail subject on {rule.table}")
        if rule.action == "anonymise" and not table.personal_data:
            raise ValueError(f"rule {rule.rule}: anonymise needs personal_data on {rule.table}")

    # ------------------------------------------------------------------ the register of retention

    def personal_tables(self) -> dict[str, list[str]]:
        """Tables holding personal data: personal_data columns, the subject column, and the
        e-mail column of the hold and restriction tables."""
        found: dict[str, list[str]] = {}
        for name, table in self.tables.items():
            columns = list(table.personal_data)
            if table.subject and table.subject.column not in columns:
                columns.append(table.subject.column)
            if columns:
                found[name] = columns
        for exemption in self.exemptions.values():
            columns = found.setdefault(exemption.table, [])
            if exemption.email not in columns:
                columns.append(exemption.email)
        return found

    def register_coverage(self, rule_id: str) -> list[dict[str, Any]]:
        """The rule's table with its personal data and subject, then the dependents it changes
        with each row: a delete removes every dependent (depth first, as the action does), an
        anonymise rewrites the direct dependents that hold personal data."""
        rule = next(r for r in self.rules if r.rule == rule_id)
        table = self.tables[rule.table]
        verb = "deleted" if rule.action == "delete" else "anonymised"
        subject = table.subject.column if table.subject else None
        items = [
            coverage_item(
                "acts_on",
                self.source,
                f"table {rule.table}: rows {verb}"
                + (f" (personal data: {', '.join(table.personal_data)})" if table.personal_data else "")
                + (f"; subject column {subject} ({SUBJECT_KINDS[table.subject.kind]})" if table.subject else ""),
                table=rule.table,
                columns=table.personal_data,
                subject=subject,
            )
        ]
        for name in self._changed_with(rule):
            columns = list(self.tables[name].personal_data)
            items.append(
                coverage_item(
                    f"{verb}_with",
                    self.source,
                    f"table {name}: {verb} with it"
                    + (f" (personal data: {', '.join(columns)})" if columns else " (no personal data listed)"),
                    table=name,
                    columns=columns,
                )
            )
        if rule.suppress:
            items.append(
                coverage_item(
                    "suppression",
                    self.source,
                    f"table {rule.suppress.table}: a keyed hash of the e-mail address is kept "
                    f"(column {rule.suppress.hash_column})",
                    table=rule.suppress.table,
                )
            )
        return items

    def _changed_with(self, rule: InventoryRule) -> list[str]:
        if rule.action == "anonymise":
            return [d.table for d in self.tables[rule.table].dependents if self.tables[d.table].personal_data]
        found: list[str] = []

        def dependents_of(name: str) -> None:
            for dep in self.tables[name].dependents:
                found.append(dep.table)
                dependents_of(dep.table)

        dependents_of(rule.table)
        return found
