"""Policy as code and the data inventory, read into validated pydantic models.

A file that does not validate raises :class:`ConfigError` naming the file, the entry and the
field, so a DAG shows an import error instead of running on a half-read policy. Unknown keys are
errors too: a misspelt option must never be silently ignored by a deletion system.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator,
                      model_validator)

from lethe.periods import Period

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
RULE_ID = re.compile(r"^[A-Z][A-Z0-9]{0,7}$")

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = PACKAGE_ROOT / "policy" / "retention.yaml"
DEFAULT_INVENTORY = PACKAGE_ROOT / "inventory"


class ConfigError(ValueError):
    """A policy or inventory file is wrong; the message names file, entry and field."""


def _identifier(value: str) -> str:
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a plain SQL identifier (letters, digits, underscore)")
    return value


Identifier = Annotated[str, Field(min_length=1)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- policy


class PolicyRule(Strict):
    id: str
    description: str
    policy_section: str
    legal_basis: str
    data_category: str
    trigger: str
    period: Period
    overdue_after: Period | None = None
    period_source: Literal["policy", "default"]
    action: Literal["delete", "anonymise", "drop_database", "truncate_ip", "delete_file"]

    @field_validator("id")
    @classmethod
    def _rule_id(cls, value: str) -> str:
        if not RULE_ID.match(value):
            raise ValueError(f"{value!r} is not a rule id like 'C1'")
        return value

    @field_validator("period", "overdue_after", mode="before")
    @classmethod
    def _period(cls, value: Any) -> Any:
        return Period.parse(value) if isinstance(value, str) else value

    @property
    def is_default(self) -> bool:
        return self.period_source == "default"

    @property
    def overdue_period(self) -> Period:
        """Counted from the trigger: past it, the data is overdue (the policy is breached)."""
        return self.overdue_after or self.period + Period(days=1)


class PolicyExemption(Strict):
    kind: Literal["legal_hold", "restriction"]
    policy_section: str
    description: str


class PolicyDocument(Strict):
    name: str
    document: str
    language: str


class Policy(Strict):
    policy: PolicyDocument
    rules: list[PolicyRule]
    exemptions: list[PolicyExemption] = []

    @model_validator(mode="after")
    def _unique(self) -> "Policy":
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule {rule.id} is defined twice")
            seen.add(rule.id)
        return self

    def rule(self, rule_id: str) -> PolicyRule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise ConfigError(f"rule {rule_id!r} is not in the policy (known: {', '.join(self.rule_ids)})")

    @property
    def rule_ids(self) -> list[str]:
        return [rule.id for rule in self.rules]


# --------------------------------------------------------------------------- inventory


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


class Subject(Strict):
    column: str
    kind: Literal["email", "cookie", "record"]
    _c = field_validator("column")(lambda cls, v: _identifier(v))


class CustomerLink(Strict):
    """How a table reaches the customer relationship (a company with contract dates)."""

    table: str
    foreign_key: str
    primary_key: str = "id"
    customer_since: str
    customer_until: str
    _c = field_validator("table", "foreign_key", "primary_key", "customer_since", "customer_until")(
        lambda cls, v: _identifier(v)
    )


class Dependent(Strict):
    table: str
    foreign_key: str
    _c = field_validator("table", "foreign_key")(lambda cls, v: _identifier(v))


class Table(Strict):
    primary_key: str
    subject: Subject | None = None
    customer: CustomerLink | None = None
    personal_data: dict[str, Anonymisation] = {}
    dependents: list[Dependent] = []
    _pk = field_validator("primary_key")(lambda cls, v: _identifier(v))

    @field_validator("personal_data")
    @classmethod
    def _columns(cls, value: dict[str, Anonymisation]) -> dict[str, Anonymisation]:
        for name in value:
            _identifier(name)
        return value


class NewestRelated(Strict):
    table: str
    foreign_key: str
    column: str
    _c = field_validator("table", "foreign_key", "column")(lambda cls, v: _identifier(v))


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
            _identifier(self.column)
        return self


class Trigger(Strict):
    """The trigger is the latest of its parts; when all are empty, ``fallback`` (a column)."""

    latest_of: list[TriggerPart] = Field(min_length=1)
    fallback: str | None = None
    _f = field_validator("fallback")(lambda cls, v: v if v is None else _identifier(v))


class Suppression(Strict):
    table: str
    hash_column: str
    added_at_column: str
    reason_column: str
    reason: str
    _c = field_validator("table", "hash_column", "added_at_column", "reason_column")(
        lambda cls, v: _identifier(v)
    )


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
    _c = field_validator("table", "email", "in_force_from", "in_force_until")(
        lambda cls, v: _identifier(v)
    )


class SqlSource(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str
    kind: Literal["sql"]
    connection_id: str
    # ``schema:`` in the file: the PostgreSQL schema holding the tables (default: the search path).
    schema_name: str | None = Field(default=None, alias="schema")
    description: str = ""
    hosting: str = ""
    exemptions: dict[Literal["legal_hold", "restriction"], ExemptionTable] = {}
    tables: dict[str, Table]
    rules: list[InventoryRule] = []

    @model_validator(mode="after")
    def _references(self) -> "SqlSource":
        if self.schema_name is not None:
            _identifier(self.schema_name)
        for name in self.tables:
            _identifier(name)
        known = set(self.tables)

        def need(table: str, where: str) -> None:
            if table not in known:
                raise ValueError(f"{where} names table {table!r}, which is not under tables:")

        for name, table in self.tables.items():
            for dep in table.dependents:
                need(dep.table, f"tables.{name}.dependents")
            if table.customer:
                need(table.customer.table, f"tables.{name}.customer")
        for rule in self.rules:
            need(rule.table, f"rule {rule.rule}")
            table = self.tables[rule.table]
            for part in rule.trigger.latest_of:
                if part.newest_related:
                    need(part.newest_related.table, f"rule {rule.rule} trigger")
                if part.customer_until and not table.customer:
                    raise ValueError(f"rule {rule.rule}: customer_until needs tables.{rule.table}.customer")
            if rule.customer_status != "any" and not table.customer:
                raise ValueError(f"rule {rule.rule}: customer_status needs tables.{rule.table}.customer")
            if rule.suppress:
                need(rule.suppress.table, f"rule {rule.rule} suppress")
                if not table.subject or table.subject.kind != "email":
                    raise ValueError(f"rule {rule.rule}: suppress needs an e-mail subject on {rule.table}")
            if rule.action == "anonymise" and not table.personal_data:
                raise ValueError(f"rule {rule.rule}: anonymise needs personal_data on {rule.table}")
        return self


class CatalogContact(Strict):
    """Where the catalog row's data subject (the sign-up contact) and their e-mail are."""

    table: str
    foreign_key: str
    primary_key: str = "id"
    email: str
    _c = field_validator("table", "foreign_key", "primary_key", "email")(lambda cls, v: _identifier(v))


class TrialCatalog(Strict):
    """The table (in another SQL source) that names each trial database."""

    source: str
    table: str
    primary_key: str = "id"
    database_name: str
    trial_ends_at: str
    subscribed_at: str
    contact: CatalogContact
    _c = field_validator("table", "primary_key", "database_name", "trial_ends_at", "subscribed_at",
                         )(lambda cls, v: _identifier(v))


class TrialRule(Strict):
    rule: str
    action: Literal["drop_database"]


class TrialDatabasesSource(Strict):
    """A server (or, on SQLite, a folder of files) holding one database per free trial."""

    source: str
    kind: Literal["trial_databases"]
    connection_id: str
    description: str = ""
    hosting: str = ""
    catalog: TrialCatalog
    name_pattern: str = r"^trial_[a-z0-9_]{1,56}$"
    rules: list[TrialRule] = []

    @field_validator("name_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        if not value.startswith("^") or not value.endswith("$"):
            raise ValueError("the pattern must be anchored with ^ and $")
        return value


class LogRule(Strict):
    rule: str
    action: Literal["truncate_ip", "delete_file"]
    ipv4_mask: int = Field(default=8, ge=1, le=32)
    ipv6_mask: int = Field(default=80, ge=1, le=128)


class LogFolderSource(Strict):
    """A folder of daily web server access logs (``access.log-YYYYMMDD[.gz]``)."""

    source: str
    kind: Literal["log_folder"]
    connection_id: str
    description: str = ""
    hosting: str = ""
    file_pattern: str = r"^access\.log-(?P<date>\d{8})(?P<gz>\.gz)?$"
    rules: list[LogRule] = []


AnySource = Annotated[SqlSource | TrialDatabasesSource | LogFolderSource, Field(discriminator="kind")]


class Inventory(BaseModel):
    model_config = ConfigDict(frozen=True)

    sources: dict[str, AnySource]

    def rule(self, rule_id: str) -> tuple[Any, Any]:
        for source in self.sources.values():
            for rule in source.rules:
                if rule.rule == rule_id:
                    return source, rule
        raise ConfigError(f"rule {rule_id!r} is not in the inventory")

    def rules_of(self, source_id: str) -> list[str]:
        return [rule.rule for rule in self.sources[source_id].rules]

    def exemption_sources(self) -> list[SqlSource]:
        return [s for s in self.sources.values() if s.kind == "sql" and s.exemptions]


# --------------------------------------------------------------------------- loading


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def _describe(exc: ValidationError, path: Path, data: Any, list_key: str, id_key: str) -> ConfigError:
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        where = ".".join(str(part) for part in loc)
        if len(loc) >= 2 and loc[0] == list_key and isinstance(loc[1], int):
            try:
                entry = data[list_key][loc[1]].get(id_key, f"#{loc[1] + 1}")
            except (KeyError, IndexError, AttributeError, TypeError):
                entry = f"#{loc[1] + 1}"
            field = ".".join(str(part) for part in loc[2:]) or "(entry)"
            where = f"rule {entry}, field {field}"
        elif loc:
            where = f"field {where}"
        lines.append(f"{path}: {where}: {error['msg']}")
    return ConfigError("\n".join(lines))


_SOURCE_ADAPTER = TypeAdapter(AnySource)


def load_policy(path: str | os.PathLike | None = None) -> Policy:
    path = Path(path or os.environ.get("LETHE_POLICY_FILE") or DEFAULT_POLICY)
    data = _read_yaml(path)
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise _describe(exc, path, data, "rules", "id") from None


def load_inventory(
    directory: str | os.PathLike | None = None, policy: Policy | None = None
) -> Inventory:
    """Read every ``*.yaml`` in the inventory folder and check it against the policy."""
    directory = Path(directory or os.environ.get("LETHE_INVENTORY_DIR") or DEFAULT_INVENTORY)
    policy = policy or load_policy()
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ConfigError(f"{directory}: no inventory files (*.yaml)")
    sources: dict[str, Any] = {}
    for path in files:
        data = _read_yaml(path)
        try:
            source = _SOURCE_ADAPTER.validate_python(data)
        except ValidationError as exc:
            raise _describe(exc, path, data, "rules", "rule") from None
        if source.source in sources:
            raise ConfigError(f"{path}: source {source.source!r} is defined twice")
        for rule in source.rules:
            if rule.rule not in policy.rule_ids:
                raise ConfigError(
                    f"{path}: rule {rule.rule}: not in the policy (known: {', '.join(policy.rule_ids)})"
                )
            if policy.rule(rule.rule).action != rule.action:
                raise ConfigError(
                    f"{path}: rule {rule.rule}, field action: {rule.action!r} but the policy says "
                    f"{policy.rule(rule.rule).action!r}"
                )
        sources[source.source] = source
    for source in sources.values():
        if source.kind == "trial_databases" and source.catalog.source not in sources:
            raise ConfigError(f"source {source.source}: catalog.source {source.catalog.source!r} is not an inventory source")
        if source.kind == "trial_databases" and sources[source.catalog.source].kind != "sql":
            raise ConfigError(f"source {source.source}: catalog.source {source.catalog.source!r} is not a SQL source")
    seen: dict[str, str] = {}
    for source in sources.values():
        for rule in source.rules:
            if rule.rule in seen:
                raise ConfigError(f"rule {rule.rule} is enforced by both {seen[rule.rule]} and {source.source}")
            seen[rule.rule] = source.source
    for source in sources.values():
        for rule in source.rules:
            for wait in getattr(rule, "wait_for", []):
                _check_wait(sources, seen, source, rule, wait)
    return Inventory(sources=sources)


def _check_wait(sources: dict[str, Any], enforced_by: dict[str, str], source: SqlSource,
                rule: InventoryRule, wait: WaitFor) -> None:
    """``wait_for`` names a rule whose catalog rows point at this rule's table, in this source."""
    where = f"source {source.source}: rule {rule.rule}, field wait_for"
    if wait.rule not in enforced_by:
        raise ConfigError(f"{where}: rule {wait.rule!r} is not enforced by any source")
    other = sources[enforced_by[wait.rule]]
    if other.kind != "trial_databases":
        raise ConfigError(f"{where}: rule {wait.rule} is not a drop_database rule (only those can be waited for)")
    catalog = other.catalog
    if catalog.source != source.source or catalog.contact.table != rule.table:
        raise ConfigError(f"{where}: the catalog of rule {wait.rule} ({catalog.source}.{catalog.table}) "
                          f"does not point at {source.source}.{rule.table}")
    if catalog.table not in source.tables:
        raise ConfigError(f"{where}: the catalog table {catalog.table!r} is not under tables: of {source.source}")
