"""The demo's free-trial databases: one per CRM sign-up row, plus the decoys T1 must leave alone.

Works on a PostgreSQL or MariaDB server (one database per trial) and on SQLite (a folder with one
``<name>.sqlite`` file per trial). Each trial database holds ``users``, ``resources`` and ``tasks``
with a few Faker rows. Decoys:

* databases that are not trials (``planning_production``, ``billing_archive``),
* orphans: trial-like names that no sign-up row names,
* a converted customer's trial: a trial-named database with an old unconverted sign-up row *and*
  the later sign-up that converted (kept: one converted row keeps the database),
* sign-up rows that are due but whose names T1 must refuse: odd characters (quote, semicolon,
  space, backtick) and a name outside the pattern (upper case); their databases exist too.

``tag`` goes into every name the seed makes up, so that tests on a shared server do not collide.
Names here are quoted by the dialect because the seed deliberately creates odd ones; the rule
itself refuses such names instead.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

from faker import Faker
from sqlalchemy import Column, DateTime, ForeignKey, Integer, MetaData, String, Table, func, insert, select, update
from sqlalchemy.engine import URL, Engine

from lethe.db import make_engine, normalise_url
from lethe.demo import schema

trial_metadata = MetaData()
users = Table(
    "users",
    trial_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("email", String(254)),
)
resources = Table(
    "resources",
    trial_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
)
tasks = Table(
    "tasks",
    trial_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("resource_id", Integer, ForeignKey("resources.id"), nullable=False),
    Column("title", String(200), nullable=False),
    Column("starts_at", DateTime, nullable=False),
    Column("ends_at", DateTime, nullable=False),
)

SQLITE_SUFFIX = ".sqlite"


def _sqlite_path(folder: Path, name: str) -> Path:
    if "/" in name or "\x00" in name or name in (".", ".."):
        raise ValueError(f"{name!r} cannot be a file name")
    return folder / f"{name}{SQLITE_SUFFIX}"


def database_url(trials_url: str | URL, name: str) -> URL:
    """The URL of one database on the trials server (SQLite: its file in the folder)."""
    url = normalise_url(trials_url)
    if url.get_backend_name() == "sqlite":
        return URL.create("sqlite", database=str(_sqlite_path(Path(url.database), name)))
    return url.set(database=name)


def _admin(url: URL) -> Engine:
    return make_engine(url).execution_options(isolation_level="AUTOCOMMIT")


def create_database(trials_url: str | URL, name: str) -> None:
    """Create an empty database (replacing one of the same name)."""
    url = normalise_url(trials_url)
    if url.get_backend_name() == "sqlite":
        path = _sqlite_path(Path(url.database), name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.touch()  # an empty file is an empty SQLite database
        return
    engine = _admin(url)
    try:
        quoted = engine.dialect.identifier_preparer.quote_identifier(name)
        with engine.connect() as conn:
            force = " WITH (FORCE)" if url.get_backend_name() == "postgresql" else ""
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}{force}")
            conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
    finally:
        engine.dispose()


def drop_database(trials_url: str | URL, name: str) -> None:
    """Remove a database the seed or a test made (test clean-up; the rule has its own, stricter drop)."""
    url = normalise_url(trials_url)
    if url.get_backend_name() == "sqlite":
        _sqlite_path(Path(url.database), name).unlink(missing_ok=True)
        return
    engine = _admin(url)
    try:
        quoted = engine.dialect.identifier_preparer.quote_identifier(name)
        force = " WITH (FORCE)" if url.get_backend_name() == "postgresql" else ""
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}{force}")
    finally:
        engine.dispose()


def create_trial_database(
    trials_url: str | URL, name: str, fake: Faker, rng: random.Random, as_of: datetime
) -> dict[str, int]:
    """A trial database with a few planning rows; returns the rows per table."""
    create_database(trials_url, name)
    engine = make_engine(database_url(trials_url, name))
    try:
        trial_metadata.create_all(engine)
        n_users, n_resources, n_tasks = rng.randint(1, 4), rng.randint(1, 5), rng.randint(2, 12)
        with engine.begin() as conn:
            conn.execute(
                insert(users), [{"id": i, "name": fake.name(), "email": fake.email()} for i in range(1, n_users + 1)]
            )
            conn.execute(
                insert(resources),
                [{"id": i, "name": rng.choice([fake.name(), fake.word().title()])} for i in range(1, n_resources + 1)],
            )
            rows = []
            for i in range(1, n_tasks + 1):
                start = (as_of - timedelta(days=rng.randint(90, 500), hours=rng.randint(0, 23))).replace(microsecond=0)
                rows.append(
                    {
                        "id": i,
                        "resource_id": rng.randint(1, n_resources),
                        "title": fake.sentence(nb_words=4),
                        "starts_at": start,
                        "ends_at": start + timedelta(hours=rng.randint(1, 48)),
                    }
                )
            conn.execute(insert(tasks), rows)
    finally:
        engine.dispose()
    return {"users": n_users, "resources": n_resources, "tasks": n_tasks}


def _customer_contact(crm: Engine) -> int:
    """A contact at an active customer: no other rule removes it or its sign-up rows."""
    c, co = schema.contacts, schema.companies
    with crm.connect() as conn:
        found = conn.execute(
            select(func.min(c.c.id))
            .select_from(c.join(co, co.c.id == c.c.company_id))
            .where(co.c.customer_since.is_not(None), co.c.customer_until.is_(None))
        ).scalar()
        return found or conn.execute(select(func.min(c.c.id))).scalar_one()


def _tag_signups(crm_engine: Engine, tag: str) -> None:
    """Put the tag in the sign-ups' database names too (``trial_x`` becomes ``trial_<tag>x``), so
    estates seeded onto one server with different tags never share a trial database."""
    signups = schema.trial_signups
    with crm_engine.begin() as conn:
        for row in conn.execute(select(signups.c.id, signups.c.database_name)).all():
            name = row.database_name
            if name.startswith("trial_") and not name.startswith(f"trial_{tag}"):
                tagged = f"trial_{tag}{name.removeprefix('trial_')}"
                conn.execute(update(signups).where(signups.c.id == row.id).values(database_name=tagged))


def seed_trial_databases(
    trials_url: str | URL,
    crm_engine: Engine,
    as_of: datetime,
    seed: int = 44,
    *,
    tag: str = "",
    refused_names: bool = True,
) -> dict:
    """Create the database of every live CRM sign-up row, and the decoys; returns the names by kind."""
    fake = Faker(["nl_NL", "fr_FR", "en_GB"])
    fake.seed_instance(seed)
    rng = random.Random(seed)
    signups = schema.trial_signups
    contact = _customer_contact(crm_engine)
    long_ago = as_of - timedelta(days=400)

    converted = f"trial_{tag}customer_planning"
    refused = [
        f"trial_{tag}o'brien",
        f"trial_{tag}x; drop",
        f"trial_{tag}a b",
        f"trial_{tag}tick`s",
        f"Trial_{tag}Legacy_Import",
    ]
    if not refused_names:
        refused = []
    if tag:
        _tag_signups(crm_engine, tag)
    with crm_engine.begin() as conn:
        next_id = (conn.execute(select(func.max(signups.c.id))).scalar() or 0) + 1
        decoy_rows = [
            # The converted customer tried once without subscribing, then again and subscribed.
            {"name": converted, "ends": long_ago, "subscribed": None},
            {"name": converted, "ends": as_of - timedelta(days=200), "subscribed": as_of - timedelta(days=215)},
        ] + [{"name": name, "ends": long_ago, "subscribed": None} for name in refused]
        conn.execute(
            insert(signups),
            [
                {
                    "id": next_id + i,
                    "contact_id": contact,
                    "database_name": row["name"],
                    "trial_started_at": row["ends"] - timedelta(days=30),
                    "trial_ends_at": row["ends"],
                    "subscribed_at": row["subscribed"],
                }
                for i, row in enumerate(decoy_rows)
            ],
        )
        named = sorted(set(conn.execute(select(signups.c.database_name)).scalars()))

    orphans = [f"trial_{tag}{label}" for label in ("orphan_import_2019", "restore_copy", "old_demo")]
    others = [f"planning_{tag}production", f"billing_{tag}archive"]
    tables: dict[str, dict[str, int]] = {}
    for name in named + orphans + others:
        tables[name] = create_trial_database(trials_url, name, fake, rng, as_of)
    url = normalise_url(trials_url)
    if url.get_backend_name() == "sqlite":
        # Not a database at all: a file in the folder that only looks related.
        (Path(url.database) / f"trial_{tag}notes.txt").write_text("Not a database: never touched by T1.\n")
    return {
        "trials": [n for n in named if n not in refused and n != converted],
        "converted": converted,
        "refused": refused,
        "orphans": orphans,
        "others": others,
        "tables": tables,
    }
