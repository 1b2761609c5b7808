"""Check the names a rule uses against the live schema before anything changes.

Each rule checks exactly the tables and columns it reads or writes (its own table, the trigger's,
the customer link's, the dependents it deletes or rewrites, the suppression list, the hold and
restriction tables it consults), and nothing else: a column that only another rule needs cannot
stop it. A missing name raises :class:`SchemaMismatch` naming the rule, the connection and every
missing table or column; nothing has changed at that point.

A SQL source may name a PostgreSQL ``schema``; its tables are then reflected there, and the
source's engine puts Lethe's own outbox table there too (``schema_translate_map``).
"""

from __future__ import annotations

from sqlalchemy import MetaData, Table, inspect
from sqlalchemy.engine import Engine

from lethe.errors import SchemaMismatch
from lethe.sources.sql.models import SqlSource

__all__ = [
    "Needs",
    "SchemaMismatch",
    "check_tables",
    "exemption_needs",
    "key_is_primary",
    "need",
    "reflect_tables",
    "source_engine",
]

# table name -> the column names used in it
Needs = dict[str, set[str]]


def need(needs: Needs, table: str, *columns: str | None) -> Needs:
    """Add ``columns`` of ``table`` to ``needs`` (None is skipped); returns ``needs``."""
    needs.setdefault(table, set()).update(c for c in columns if c)
    return needs


def exemption_needs(source: SqlSource) -> Needs:
    """The hold and restriction tables of a source, with the columns read from them."""
    needs: Needs = {}
    for ex in source.exemptions.values():
        need(needs, ex.table, ex.email, ex.in_force_from, ex.in_force_until)
    return needs


def source_engine(engine: Engine, source: SqlSource) -> Engine:
    """The engine a source's statements run on: in the source's schema when it names one."""
    if source.schema_name:
        return engine.execution_options(schema_translate_map={None: source.schema_name})
    return engine


def check_tables(engine: Engine, source: SqlSource, needs: Needs, *, user: str) -> None:
    """Raise :class:`SchemaMismatch` listing every table or column of ``needs`` that is missing.

    ``user`` says who needs them (``"rule C1"``) and leads the message.
    """
    schema = source.schema_name
    inspector = inspect(engine)
    tables = set(inspector.get_table_names(schema=schema))
    prefix = f"{schema}." if schema else ""
    problems = []
    for table, columns in sorted(needs.items()):
        if table not in tables:
            problems.append(f"table {prefix}{table} does not exist")
            continue
        live = {c["name"] for c in inspector.get_columns(table, schema=schema)}
        for column in sorted(columns - live):
            problems.append(f"column {prefix}{table}.{column} does not exist")
    if problems:
        raise SchemaMismatch(
            f"{user}: inventory source {source.source!r} does not match the database of connection "
            f"{source.connection_id!r}: " + "; ".join(problems) + ". Nothing was changed."
        )


def reflect_tables(engine: Engine, source: SqlSource, needs: Needs, *, user: str) -> dict[str, Table]:
    """Check ``needs``, then reflect exactly those tables; keyed by the inventory's table names."""
    check_tables(engine, source, needs, user=user)
    schema = source.schema_name
    metadata = MetaData()
    metadata.reflect(engine, only=sorted(needs), schema=schema)
    return {name: metadata.tables[f"{schema}.{name}" if schema else name] for name in needs}


def key_is_primary(table: Table, column: str) -> bool:
    """Whether ``column`` alone is ``table``'s primary key in the database: then no row can lack
    it or share it, and the checks for that need not exclude anything (they still run)."""
    return [c.name for c in table.primary_key.columns] == [column]
