"""The checks around a SQL rule, built from the inventory and run in the source's database.

Before the rule (:func:`before_suite`), on the rule's table: every column the rule uses exists,
its row count, and one expectation per :class:`~lethe.sources.sql.actions.Reason` the rule can
quarantine a row for (its key null or repeated, a trigger date missing, not a date or in the
future, an address that cannot be normalised, a company link to nothing), counting the rows the
rule covers that fail it; and, for a delete, one per dependent table counting rows whose parent
is missing (no delete ever reaches them). The rows a reason counts are exactly the rows the rule
keeps out of its run: both come from the same condition.

After the rule (:func:`after_suite`): GX's unexpected-rows check with the rule's own eligibility
query (rows due, judged, not waiting, not kept by a hold or restriction at the as-of). The rows a
hold keeps are named by primary key in that query, never by address: the query is part of the
results and of Data Docs.

Queries name primary keys only and run as ``SELECT COUNT(*)`` around them: no row leaves the
database.
"""

from __future__ import annotations

import re

from sqlalchemy import and_, exists, select

from lethe.subjects import subject_key
from lethe.validation import AFTER, BEFORE, SAMPLE, Expect, SqlData, Suite

# The name GX gives the batch when it is a subquery (a whole-table batch is ``SELECT * FROM t``).
BATCH_ALIAS = "subselect"


def literal_sql(action, query, *, batch_table=None) -> str:
    """``query`` as SQL text with its values inline, reading the rule's table from GX's batch.

    The first ``FROM`` of the table becomes ``{batch}`` and the table's columns are read from the
    batch's alias. GX names that alias itself unless the query joins, when the query must.
    """
    engine = action.engine
    text = str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    text = text.replace("{", "{{").replace("}", "}}")
    table = batch_table if batch_table is not None else action.table
    name = engine.dialect.identifier_preparer.format_table(table)
    batch = "{batch}" + (f" AS {BATCH_ALIAS}" if re.search(r"\bJOIN\b", text) else "")
    text = re.sub(rf"\bFROM {re.escape(name)}(?=\s|$)", lambda _: f"FROM {batch}", text, count=1)
    return re.sub(rf"(?<![\w.\"`]){re.escape(name)}\.", f"{BATCH_ALIAS}.", text)


def _data(action) -> SqlData:
    return SqlData(
        engine=action.reading_engine,
        table=action.rule.table,
        schema=action.source.schema_name,
        connection_id=action.source.connection_id,
    )


def before_suite(action) -> Suite:
    """The checks before a SQL rule acts (see the module's docs)."""
    rule_id, name = action.policy_rule.id, action.rule.table
    needs = action.needs()
    expectations = [Expect("ExpectTableRowCountToBeBetween", {"min_value": 0})]
    expectations += [
        Expect("ExpectColumnToExist", {"column": column}, fix=f"the inventory names {name}.{column}")
        for column in sorted(needs[name])
    ]
    covered = and_(action.scope(), action.pending())
    for reason in action.quarantine_reasons():
        if reason.expectation:  # a check on the key itself, over the whole table
            expectations.append(
                Expect(reason.expectation, {"column": reason.column}, reason=reason.name, table=name, fix=reason.fix)
            )
            continue
        query = select(action.pk).where(covered, reason.condition)
        expectations.append(
            Expect(
                "ExpectNoRowsOfQuery",
                {
                    "unexpected_rows_query": literal_sql(action, query),
                    "description": f"{reason.name}: {reason.column}",
                },
                reason=reason.name,
                table=name,
                fix=reason.fix,
            )
        )
    if action.name == "delete":
        for dep in action.spec.dependents:
            child = action.t(dep.table)
            child_spec = action.source.tables[dep.table]
            foreign = child.c[dep.foreign_key]
            orphans = select(child.c[child_spec.primary_key]).where(
                foreign.is_not(None), ~exists().where(action.pk == foreign)
            )
            expectations.append(
                Expect(
                    "ExpectNoRowsOfQuery",
                    {
                        "unexpected_rows_query": literal_sql(action, orphans),
                        "description": f"parent_missing: {dep.table}.{dep.foreign_key}",
                    },
                    reason="parent_missing",
                    table=dep.table,
                    fix=f"{dep.table}.{dep.foreign_key} names {name} rows that do not exist: "
                    "delete or relink those rows",
                )
            )
    dependents = sorted({e.table for e in expectations if e.table and e.table != name})
    return Suite(
        name=f"{rule_id}.{BEFORE}", data=_data(action), expectations=expectations, tables=table_rows(action, dependents)
    )


def table_rows(action, tables) -> dict[str, int]:
    """Row counts of the tables whose rows a check can quarantine (the share's denominator)."""
    from sqlalchemy import func

    counts = {}
    with action.engine.connect() as conn:
        for table in tables:
            counts[table] = int(conn.execute(select(func.count()).select_from(action.t(table))).scalar_one())
    return counts


def after_suite(action) -> Suite:
    """The check after a SQL rule: no row eligible at the as-of remains."""
    source, trigger, covered, _quarantined = action.whole_table()
    from lethe.db import due_by

    due = due_by(trigger, action.policy_rule.period, action.ctx.as_of)
    # The keys the holds and restrictions keep now, found with bound parameters: the query
    # GX stores names them by key, never by address.
    with action.engine.connect() as conn:
        kept = (
            conn.execute(
                select(action.pk).select_from(source).where(covered, due, action.exempt(action.exemptions.any))
            )
            .scalars()
            .all()
        )
    exempt = action.pk.in_(sorted(kept)) if kept else None
    remaining = action.eligible_rows(action.pk, exempt=exempt if exempt is not None else _never())
    return Suite(
        name=f"{action.policy_rule.id}.{AFTER}",
        data=_data(action),
        expectations=[
            Expect(
                "UnexpectedRowsExpectation",
                {
                    "unexpected_rows_query": literal_sql(action, remaining),
                    "description": f"no {action.rule.table} row eligible under {action.policy_rule.id} "
                    f"at the as-of remains (exempt and quarantined rows apart)",
                },
                fix=f"rows eligible under {action.policy_rule.id} remain: see the rule's enforce task log",
            )
        ],
    )


def _never():
    from sqlalchemy import false

    return false()


def quarantine_samples(action, reasons: dict[str, int]) -> dict[str, list[str]]:
    """Up to :data:`SAMPLE` subject keys (audit HMACs) per failing reason on the rule's table."""
    covered = and_(action.scope(), action.pending())
    subject = action.subject_column()
    kind = action.spec.subject.kind if action.spec.subject else "record"
    columns = [action.pk] + ([subject] if subject is not None else [])
    samples: dict[str, list[str]] = {}
    with action.engine.connect() as conn:
        for reason in action.quarantine_reasons():
            if not reasons.get(reason.name) or reason.name in samples:
                continue
            rows = conn.execute(
                select(*columns).where(covered, reason.condition).order_by(action.pk).limit(SAMPLE)
            ).all()
            keys = []
            for row in rows:
                value = row[1] if subject is not None else row[0]
                if value is None and row[0] is None:
                    continue  # neither an address nor a key: counted, not named
                if value is None or (subject is not None and reason.name == "address_unnormalisable"):
                    # No address to key on (or none that normalises): the row's own key.
                    keys.append(
                        subject_key(
                            action.ctx.key, "record", row[0], source=action.source.source, table=action.rule.table
                        )
                    )
                else:
                    keys.append(
                        subject_key(action.ctx.key, kind, value, source=action.source.source, table=action.rule.table)
                    )
            samples[reason.name] = keys
    return samples
