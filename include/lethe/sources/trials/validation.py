"""The checks around rule T1, built from the inventory and run in the catalog's database.

T1's data is the catalog (``crm.trial_signups``: which sign-up names which trial database); the
checks look at it through the catalog source's own database, as the SQL rules' checks do
(:mod:`lethe.sources.sql.validation`).

Before the rule (:func:`before_suite`), on the catalog table: every catalog column the rule
uses exists, its row count (the quarantine share's denominator), its key is present and unique,
and one ``ExpectNoRowsOfQuery`` per :class:`~lethe.sources.sql.actions.Reason` (see
:func:`quarantine_reasons`) counting the catalog rows that fail it. The contact table's columns
are checked by the rule's own :meth:`~lethe.sources.trials.actions.TrialDrop.check`.

**Which rows count.** The key checks look at the whole table. The others count the rows T1
still considers: sign-ups not converted (``subscribed_at`` is null). A converted row keeps its
database whatever else it says, so its data cannot make T1 drop anything. Rows Lethe recorded
dropping (its record is in the audit store, another database, and grows with every drop) are
counted too: a dropped trial's row rarely fails a check (it was due, its name matched), and
leaving them out would mean inlining every settled key in the query GX keeps.

**Quarantine.** A database that any quarantined row names is not dropped this run
(:meth:`TrialDrop.survey` marks it from :func:`quarantined`, the same conditions the suite
counts, in one SQL expression over the catalog). An unfinished drop (the database already gone)
is still recorded: that writes the audit trail of what happened, and drops nothing.

After the rule (:func:`after_suite`): the databases still eligible now, as a listing of indexes
(no names), expected to have no rows.

Queries name catalog keys only and GX runs them as ``SELECT COUNT(*)`` around them: no row, name
or address leaves the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import String, Table, and_, case, cast, exists, func, literal, or_, select
from sqlalchemy.dialects.mysql import BINARY
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement

from lethe import db
from lethe.db import connection_url, make_engine, normalised_email, timestamp_sql
from lethe.schema import key_is_primary, source_engine
from lethe.sources.sql.actions import EMAIL_SHAPE, Reason
from lethe.sources.sql.validation import literal_sql
from lethe.validation import AFTER, BEFORE, SAMPLE, Expect, FrameData, SqlData, Suite

# Reasons GX checks on the key column itself (over the whole table, not a query of rows).
KEY_REASONS = ("key_missing", "key_duplicate")


@dataclass(frozen=True)
class _Catalog:
    """What :func:`~lethe.sources.sql.validation.literal_sql` reads: the dialect and the batch table."""

    engine: Engine
    table: Table


def reading_engine(action) -> Engine:
    """A fresh engine on the catalog's database that only reads (the checks'; the runner disposes
    of it): on SQLite it takes no write lock, so GX never waits for the rule's own engine."""
    source = action.catalog_source
    url = (action.ctx.url_for or connection_url)(source.connection_id)
    return source_engine(make_engine(url, writes=False), source)


def catalog_columns(action) -> list[str]:
    """The catalog table's columns T1 reads, from the inventory."""
    cat = action.catalog
    named = [
        cat.primary_key,
        cat.database_name,
        cat.trial_started_at,
        cat.trial_ends_at,
        cat.subscribed_at,
        cat.contact.foreign_key,
    ]
    return sorted({c for c in named if c})


def covered(action) -> ColumnElement:
    """The catalog rows T1 still considers: sign-ups not converted (see the module's docs)."""
    return action.tables[action.catalog.table].c[action.catalog.subscribed_at].is_(None)


def matches(column, pattern: str, dialect: str) -> ColumnElement:
    """``column`` matches the regular expression ``pattern``, case-sensitively on every back end.

    SQLAlchemy's ``regexp_match``: SQLite's ``REGEXP`` (Python's ``re.search``, registered by
    SQLAlchemy), PostgreSQL's ``~``, MariaDB's ``REGEXP`` (PCRE), which ignores case under the
    usual ``_ci`` collations: there the column is compared as bytes. The anchored pattern of the
    inventory reads the same in all three for the usual classes and counts; a name this lets
    through that Python's ``fullmatch`` would not (a trailing newline) is still refused by
    :meth:`TrialDrop.refusal`, the last gate before any statement.
    """
    if dialect in ("mysql", "mariadb"):
        column = cast(column, BINARY())
    return column.regexp_match(literal(pattern, String()))


def future_limit(action):
    """Trial end dates after this are bad data (``validation.future_tolerance`` past the as-of)."""
    return db.future_limit(action.ctx.as_of, action.ctx.policy.validation.future_tolerance)


def quarantine_reasons(action, name: str | None = None) -> list[Reason]:
    """Why a catalog row cannot be judged: one :class:`Reason` per check, from the inventory.

    ``name``: only rows naming that database will be asked about (one drop's survey): the twins'
    subqueries then group only the rows that can be twins of those, not the whole catalog. The
    answer for those rows is the same.

    Every condition reads the catalog row (a correlated subquery, on its own alias, for the
    contact; a grouped one, on another alias, for the twins), so it fits both the checks' queries
    and :meth:`TrialDrop.catalog_rows` (whose own join of the contact table it leaves alone).
    A condition that is unknown (NULL) for a row does not quarantine it.
    """
    cat, contact = action.catalog, action.catalog.contact
    t = action.tables[cat.table]
    dialect = action.catalog_engine.dialect.name
    pk, database, ends = t.c[cat.primary_key], t.c[cat.database_name], t.c[cat.trial_ends_at]

    key_twin = t.alias("key_twin")  # its own FROM: never correlated with the outer row
    key_twins = select(key_twin.c[pk.name]).group_by(key_twin.c[pk.name]).having(func.count() > 1)
    name_twin = t.alias("name_twin")
    name_twins = (
        select(name_twin.c[cat.database_name])
        .where(name_twin.c[cat.subscribed_at].is_(None), name_twin.c[cat.database_name].is_not(None))
        .group_by(name_twin.c[cat.database_name])
        .having(func.count() > 1)
    )
    if name is not None:
        keys_named = t.alias("named")
        key_twins = key_twins.where(
            key_twin.c[pk.name].in_(select(keys_named.c[pk.name]).where(keys_named.c[cat.database_name] == name))
        )
        name_twins = name_twins.where(name_twin.c[cat.database_name] == name)
    table = cat.table
    constrained = key_is_primary(t, pk.name)
    reasons = [
        Reason(
            "key_missing",
            "ExpectColumnValuesToNotBeNull",
            pk.name,
            pk.is_(None),
            f"give every {table} row a {pk.name}",
            guaranteed=constrained,
        ),
        Reason(
            "key_duplicate",
            "ExpectColumnValuesToBeUnique",
            pk.name,
            pk.in_(key_twins),
            f"make {table}.{pk.name} unique",
            guaranteed=constrained,
        ),
        Reason(
            "name_refused",
            None,
            cat.database_name,
            and_(database.is_not(None), ~matches(database, action.source.name_pattern, dialect)),
            f"{table}.{cat.database_name} names a database that does not match the trials' name_pattern: "
            "correct the name (T1 never drops it)",
        ),
        Reason(
            "trigger_missing",
            None,
            cat.trial_ends_at,
            ends.is_(None),
            f"give every {table} row the end of its trial ({cat.trial_ends_at})",
        ),
    ]
    bad = db.not_a_timestamp(ends, dialect)
    if bad is not None:
        reasons.append(
            Reason("trigger_unparseable", None, cat.trial_ends_at, bad, f"store dates in {table}.{cat.trial_ends_at}")
        )
    if cat.trial_started_at:
        # A trial's end is planned (up to a trial's length ahead): only its start, an event that
        # has happened, cannot lie in the future.
        starts = t.c[cat.trial_started_at]
        reasons.append(
            Reason(
                "trigger_in_future",
                None,
                cat.trial_started_at,
                db.later_than(timestamp_sql(starts), future_limit(action)),
                f"correct the future dates in {table}.{cat.trial_started_at}",
            )
        )
        reasons.append(
            Reason(
                "trial_dates_inverted",
                None,
                f"{cat.trial_started_at}, {cat.trial_ends_at}",
                and_(ends.is_not(None), db.later_than(timestamp_sql(starts), timestamp_sql(ends))),
                f"correct the {table} rows whose trial ends ({cat.trial_ends_at}) "
                f"before it starts ({cat.trial_started_at})",
            )
        )
    reasons.append(
        Reason(
            "database_duplicated",
            None,
            cat.database_name,
            database.in_(name_twins),
            f"more than one unconverted {table} row names the same database: keep one row per trial database",
        )
    )
    person = action.tables[contact.table].alias("signup_contact")
    own = person.c[contact.primary_key] == t.c[contact.foreign_key]
    address = person.c[contact.email]
    reasons += [
        Reason(
            "contact_missing",
            None,
            contact.foreign_key,
            ~exists().where(own),
            f"{table}.{contact.foreign_key} names {contact.table} rows that do not exist: restore them or fix the link",
        ),
        Reason(
            "address_unnormalisable",
            None,
            f"{contact.table}.{contact.email}",
            exists().where(own, address.is_not(None), ~normalised_email(address).regexp_match(EMAIL_SHAPE)),
            f"correct or empty the addresses in {contact.table}.{contact.email} that are not e-mail addresses",
        ),
    ]
    return reasons


def condition(action, reason: Reason) -> ColumnElement:
    """The rows ``reason`` quarantines: the key checks over the whole table, the others among the
    rows T1 considers."""
    return reason.condition if reason.name in KEY_REASONS else and_(covered(action), reason.condition)


def quarantined(action, name: str | None = None) -> ColumnElement:
    """1 for a catalog row any check quarantines, else 0 (never NULL): what the suite counts.

    ``name``: the query reads only the rows naming that database (see :func:`quarantine_reasons`).
    """
    reasons = [r for r in action.quarantine_reasons(name) if not r.guaranteed]
    return case((or_(*(condition(action, r) for r in reasons)), 1), else_=0)


def count_quarantined(action) -> int:
    """How many catalog rows the checks quarantine (each once, whatever it fails)."""
    t = action.tables[action.catalog.table]
    with action.catalog_engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(quarantined(action)), 0)).select_from(t)).scalar_one())


def before_suite(action) -> Suite:
    """The checks before T1 acts (see the module's docs)."""
    cat, source = action.catalog, action.catalog_source
    t = action.tables[cat.table]
    batch = _Catalog(action.catalog_engine, t)
    expectations = [Expect("ExpectTableRowCountToBeBetween", {"min_value": 0})]
    expectations += [
        Expect(
            "ExpectColumnToExist",
            {"column": column},
            fix=f"the trials inventory's catalog names {cat.source}.{cat.table}.{column}",
        )
        for column in catalog_columns(action)
    ]
    for reason in action.quarantine_reasons():
        if reason.expectation:
            expectations.append(
                Expect(
                    reason.expectation, {"column": reason.column}, reason=reason.name, table=cat.table, fix=reason.fix
                )
            )
            continue
        query = select(t.c[cat.primary_key]).where(condition(action, reason))
        expectations.append(
            Expect(
                "ExpectNoRowsOfQuery",
                {"unexpected_rows_query": literal_sql(batch, query), "description": f"{reason.name}: {reason.column}"},
                reason=reason.name,
                table=cat.table,
                fix=reason.fix,
            )
        )
    return Suite(
        name=f"{action.policy_rule.id}.{BEFORE}",
        data=SqlData(
            engine=reading_engine(action),
            table=cat.table,
            schema=source.schema_name,
            connection_id=source.connection_id,
        ),
        expectations=expectations,
    )


def after_suite(action) -> Suite:
    """The check after T1: no trial database eligible at the as-of remains (held, converted, not
    yet due, refused and quarantined ones apart), nor an unfinished drop left unrecorded.

    The listing holds one index per such database, never its name: the count is what matters.
    """
    remaining = action.verify()
    rule_id = action.policy_rule.id
    return Suite(
        name=f"{rule_id}.{AFTER}",
        data=FrameData(
            name="eligible_trial_databases", rows=[{"index": i} for i in range(remaining)], columns=("index",)
        ),
        expectations=[
            Expect(
                "ExpectTableRowCountToEqual",
                {"value": 0},
                fix=f"trial databases eligible under {rule_id} remain: see the rule's enforce task logs",
            )
        ],
    )


def quarantine_samples(action, reasons: dict[str, int]) -> dict[str, list[str]]:
    """Up to :data:`SAMPLE` subject keys (audit HMACs) per failing reason.

    The sign-up contact's key, as T1 keys its audit entries (:meth:`TrialDrop._subject`); the
    sign-up row's own key when there is no contact address, or one that cannot be normalised.
    """
    cat, contact = action.catalog, action.catalog.contact
    t, c = action.tables[cat.table], action.tables[contact.table]
    pk = t.c[cat.primary_key]
    source = t.outerjoin(c, c.c[contact.primary_key] == t.c[contact.foreign_key])
    samples: dict[str, list[str]] = {}
    with action.catalog_engine.connect() as conn:
        for reason in action.quarantine_reasons():
            if not reasons.get(reason.name) or reason.name in samples:
                continue
            rows = conn.execute(
                select(pk, c.c[contact.email])
                .select_from(source)
                .where(condition(action, reason))
                .order_by(pk)
                .limit(SAMPLE)
            ).all()
            samples[reason.name] = [
                action._subject(key, None if reason.name == "address_unnormalisable" else address)
                for key, address in rows
                if key is not None or address
            ]
    return samples
