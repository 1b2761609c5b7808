"""SQL sources (SQLite, PostgreSQL, MariaDB): ``delete`` and ``anonymise`` in batched statements."""

from __future__ import annotations

from typing import Any

from lethe.errors import ConfigError
from lethe.sources.registry import SourceKind, register_kind
from lethe.sources.sql.models import InventoryRule, SqlSource, WaitFor


def connect(ctx, connection_id: str):
    """A SQL source's connection is a SQLAlchemy engine (the run's, shared by its rules)."""
    return ctx.engine_for(connection_id)


def cross_check(source: SqlSource, sources: dict[str, Any], enforced_by: dict[str, str]) -> None:
    for rule in source.rules:
        for wait in rule.wait_for:
            _check_wait(sources, enforced_by, source, rule, wait)


def _check_wait(
    sources: dict[str, Any], enforced_by: dict[str, str], source: SqlSource, rule: InventoryRule, wait: WaitFor
) -> None:
    """``wait_for`` names a rule whose catalog rows point at this rule's table, in this source."""
    where = f"source {source.source}: rule {rule.rule}, field wait_for"
    if wait.rule not in enforced_by:
        raise ConfigError(f"{where}: rule {wait.rule!r} is not enforced by any source")
    other = sources[enforced_by[wait.rule]]
    if other.kind != "trial_databases":
        raise ConfigError(f"{where}: rule {wait.rule} is not a drop_database rule (only those can be waited for)")
    catalog = other.catalog
    if catalog.source != source.source or catalog.contact.table != rule.table:
        raise ConfigError(
            f"{where}: the catalog of rule {wait.rule} ({catalog.source}.{catalog.table}) "
            f"does not point at {source.source}.{rule.table}"
        )
    if catalog.table not in source.tables:
        raise ConfigError(f"{where}: the catalog table {catalog.table!r} is not under tables: of {source.source}")


KIND = register_kind(
    SourceKind(
        name="sql",
        model=SqlSource,
        rule_model=InventoryRule,
        actions="lethe.sources.sql.actions",
        connect=connect,
        cross_check=cross_check,
    )
)
