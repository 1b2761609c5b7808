"""The inventory models of a trial database server and its catalog."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import field_validator

from lethe.strict import SourceModel, Strict, coverage_item, identifier


class CatalogContact(Strict):
    """Where the catalog row's data subject (the sign-up contact) and their e-mail are."""

    table: str
    foreign_key: str
    primary_key: str = "id"
    email: str
    _c = field_validator("table", "foreign_key", "primary_key", "email")(lambda cls, v: identifier(v))


class TrialCatalog(Strict):
    """The table (in another SQL source) that names each trial database."""

    source: str
    table: str
    primary_key: str = "id"
    database_name: str
    trial_ends_at: str
    # When named, the checks before T1 quarantine a sign-up whose trial ends before it started.
    trial_started_at: str | None = None
    subscribed_at: str
    contact: CatalogContact
    _c = field_validator(
        "table",
        "primary_key",
        "database_name",
        "trial_ends_at",
        "subscribed_at",
    )(lambda cls, v: identifier(v))
    _s = field_validator("trial_started_at")(lambda cls, v: v if v is None else identifier(v))


class TrialRule(Strict):
    rule: str
    action: Literal["drop_database"]


class TrialDatabasesSource(SourceModel):
    """A server (or, on SQLite, a folder of files) holding one database per free trial."""

    kind: Literal["trial_databases"]
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

    def register_coverage(self, rule_id: str) -> list[dict[str, Any]]:
        """The catalog that names each trial database (read, never changed by the rule), and the
        databases the rule drops: named by the catalog and matching the pattern."""
        catalog = self.catalog
        return [
            coverage_item(
                "catalog",
                catalog.source,
                f"catalog table {catalog.table} of {catalog.source} names each trial database "
                f"(column {catalog.database_name}); read, not changed",
                table=catalog.table,
            ),
            coverage_item(
                "databases",
                self.source,
                f"trial databases on the server of connection {self.connection_id} whose name matches "
                f"{self.name_pattern} and that the catalog names: dropped whole",
                pattern=self.name_pattern,
            ),
        ]
