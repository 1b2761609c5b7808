"""Check the inventory against the live schema before anything changes."""

from __future__ import annotations

from sqlalchemy import MetaData, Table, inspect
from sqlalchemy.engine import Engine

from lethe.config import SqlSource


class SchemaMismatch(RuntimeError):
    """The inventory names a table or column the database does not have."""


def required_columns(source: SqlSource) -> dict[str, set[str]]:
    """Every table and column of ``source`` the engine may read or change."""
    need: dict[str, set[str]] = {}

    def add(table: str, *columns: str) -> None:
        need.setdefault(table, set()).update(c for c in columns if c)

    for name, table in source.tables.items():
        add(name, table.primary_key, *table.personal_data)
        if table.subject:
            add(name, table.subject.column)
        if table.customer:
            add(name, table.customer.foreign_key)
            link = table.customer
            add(link.table, link.primary_key, link.customer_since, link.customer_until)
        for dep in table.dependents:
            add(dep.table, dep.foreign_key)
    for kind, ex in source.exemptions.items():
        add(ex.table, ex.email, ex.in_force_from, ex.in_force_until)
    for rule in source.rules:
        for part in rule.trigger.latest_of:
            if part.column:
                add(rule.table, part.column)
            if part.newest_related:
                rel = part.newest_related
                add(rel.table, rel.foreign_key, rel.column)
        if rule.trigger.fallback:
            add(rule.table, rule.trigger.fallback)
        for wait in rule.wait_for:
            add(wait.table, wait.foreign_key, wait.while_null)
        if rule.suppress:
            s = rule.suppress
            add(s.table, s.hash_column, s.added_at_column, s.reason_column)
    return need


def check_source(engine: Engine, source: SqlSource, origin: str = "") -> None:
    """Raise :class:`SchemaMismatch` listing every unknown table or column of the source."""
    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    problems = []
    for table, columns in sorted(required_columns(source).items()):
        if table not in tables:
            problems.append(f"table {table!r} does not exist")
            continue
        live = {c["name"] for c in inspector.get_columns(table)}
        for column in sorted(columns - live):
            problems.append(f"column {table}.{column} does not exist")
    if problems:
        where = origin or f"inventory source {source.source!r}"
        raise SchemaMismatch(
            f"{where} does not match the database of connection {source.connection_id!r}: "
            + "; ".join(problems) + ". Nothing was changed."
        )


def reflect(engine: Engine, source: SqlSource) -> MetaData:
    """Reflect exactly the tables the inventory names (checked first)."""
    check_source(engine, source)
    metadata = MetaData()
    metadata.reflect(engine, only=sorted(required_columns(source)))
    return metadata


def table(metadata: MetaData, name: str) -> Table:
    return metadata.tables[name]
