"""Deadlines are instants in UTC whatever the server's, database's or session's time zone.

13 months after 2025-01-31 00:00 UTC is 2026-02-28 00:00 UTC on every back end and column type:
at that as-of the record due then is deleted and the one due a second later is not. Each case
is one table (W2's ``cookie_consents``, the only table W2 reads) written with its own DDL, values
written as absolute instants, and Lethe's connection set up the way a DBA's would be: a session
time zone in the URL (PostgreSQL ``options``, MariaDB ``init_command``) or the database's default.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lethe.db import make_engine
from lethe.runner import Engines, run_rule, scan_rule

AS_OF = datetime(2026, 2, 28)  # 2025-01-31 00:00 UTC + 13 months
DUE = datetime(2025, 1, 31, tzinfo=timezone.utc)
ONE_SECOND_SHORT = DUE + timedelta(seconds=1)

# backend, column type, how the session or database is set, how a value is written
CASES = {
    "pg-timestamptz-db-new-york": ("postgresql", "timestamp with time zone", "database:America/New_York", "aware"),
    "pg-timestamptz-db-paris": ("postgresql", "timestamp with time zone", "database:Europe/Paris", "aware"),
    "pg-timestamptz-session-tokyo": ("postgresql", "timestamp with time zone", "session:Asia/Tokyo", "aware"),
    "pg-timestamp-session-new-york": ("postgresql", "timestamp without time zone", "session:America/New_York", "naive"),
    "pg-text-with-offsets-db-paris": ("postgresql", "varchar(40)", "database:Europe/Paris", "offset-text"),
    "mariadb-datetime6-session-minus-5": ("mariadb", "DATETIME(6)", "session:-05:00", "naive"),
    "mariadb-timestamp-session-plus-9": ("mariadb", "TIMESTAMP(6) NULL", "session:+09:00", "aware"),
    "mariadb-text-with-offsets-session-minus-5": ("mariadb", "VARCHAR(40)", "session:-05:00", "offset-text"),
    "mariadb-text-utc-z": ("mariadb", "VARCHAR(40)", "", "z-text"),
    "sqlite-text-with-offsets": ("sqlite", "TEXT", "", "offset-text"),
    "sqlite-datetime": ("sqlite", "DATETIME", "", "naive"),
}


def _literal(moment: datetime, style: str) -> str:
    if style == "naive":
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if style == "aware":
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S+00:00")
    if style == "z-text":
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    # The same instant as a person in New York would have typed it (a negative offset: read
    # without it, the deadline would come five hours early).
    return moment.astimezone(timezone(timedelta(hours=-5))).isoformat()


def build(case: str, databases) -> str:
    """The case's database with its two rows; returns the URL Lethe connects with."""
    backend, column_type, zone, style = CASES[case]
    url = databases.new("tz")
    zone = zone or ""
    if backend == "sqlite":
        location = make_url(url)
    else:
        location = make_url(url)
        setting = zone.split(":", 1)[1] if zone else ""
        if zone.startswith("database:"):
            admin = make_engine(url)
            with admin.begin() as conn:
                conn.exec_driver_sql(f"ALTER DATABASE {location.database} SET timezone TO '{setting}'")
            admin.dispose()
        elif not zone:
            pass
        elif backend == "postgresql":
            location = location.update_query_dict({"options": f"-c timezone={setting}"})
        else:
            location = location.update_query_dict({"init_command": f"SET time_zone = '{setting}'"})
    # The rows are written through a plain connection in the zone the DBA set up (no Lethe
    # session settings); the literals carry their offsets, or are UTC, so the instants are exact.
    writer = create_engine(location)
    with writer.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE cookie_consents (id INTEGER PRIMARY KEY, cookie_id VARCHAR(64) NOT NULL,"
            f" consented_at {column_type}, categories VARCHAR(100), ip_address VARCHAR(45))"
        )
        if backend == "mariadb" and style == "aware":
            # A TIMESTAMP is stored in UTC and read in the session's zone: write it in UTC.
            conn.exec_driver_sql("SET time_zone = '+00:00'")
        for rid, moment in ((1, DUE), (2, ONE_SECOND_SHORT)):
            value = _literal(moment, "naive" if backend == "mariadb" and style == "aware" else style)
            conn.execute(
                text(
                    "INSERT INTO cookie_consents (id, cookie_id, consented_at, categories) "
                    "VALUES (:id, :cookie, :at, 'analytics')"
                ),
                {"id": rid, "cookie": f"c{rid}", "at": value},
            )
    writer.dispose()
    return location.render_as_string(hide_password=False)


@pytest.mark.parametrize(("backend", "case"), [(CASES[c][0], c) for c in CASES], indirect=["backend"], ids=list(CASES))
def test_deadline_is_the_same_utc_instant_in_every_time_zone(backend, case, databases):
    from conftest import Estate

    urls = {"marketing": build(case, databases), "lethe_audit": databases.new("audit")}
    estate = Estate(urls, Engines(resolve=lambda conn_id: urls[conn_id]))
    try:
        short = scan_rule(estate.context(AS_OF - timedelta(seconds=1)), "W2")
        assert short["eligible"] == 0 and short["due"] == 0
        at = run_rule(estate.context(AS_OF), "W2")
        assert at["deleted"] == 1 and at["due"] == 1 and at["remaining_after"] == 0
        with estate.engine("marketing").connect() as conn:
            left = conn.execute(text("SELECT id FROM cookie_consents")).scalars().all()
        assert left == [2]  # due one second after the as-of: never touched
        later = run_rule(estate.context(AS_OF + timedelta(seconds=1), run_id="later"), "W2")
        assert later["deleted"] == 1
    finally:
        estate.engines.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"], indirect=True)
def test_text_in_another_form_is_quarantined_and_too_much_of_it_stops_the_rule(backend, databases):
    """Text a back end would read wrongly or not at all is never judged: two rows in three stop the
    rule before anything changes; with the share lifted, they are quarantined and the date is acted on."""
    from lethe.config import ValidationSettings, load_policy
    from lethe.errors import BadData

    from conftest import Estate

    url = databases.new("tz")
    writer = create_engine(make_url(url))
    with writer.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE cookie_consents (id INTEGER PRIMARY KEY, cookie_id VARCHAR(64) NOT NULL,"
            " consented_at VARCHAR(40), categories VARCHAR(100), ip_address VARCHAR(45))"
        )
        for rid, value in ((1, "2025-01-31 00:00:00"), (2, "31/01/2025"), (3, "2025-01-31T00:00:00+0100")):
            conn.execute(
                text(
                    "INSERT INTO cookie_consents (id, cookie_id, consented_at, categories) "
                    "VALUES (:id, :c, :v, 'analytics')"
                ),
                {"id": rid, "c": f"c{rid}", "v": value},
            )
    writer.dispose()
    urls = {"marketing": url, "lethe_audit": databases.new("audit")}
    estate = Estate(urls, Engines(resolve=lambda conn_id: urls[conn_id]))
    try:
        with pytest.raises(
            BadData,
            match=r"2 of 3 rows of cookie_consents \(66\.7%\).*trigger_unparseable.*cookie_consents\.consented_at",
        ):
            run_rule(estate.context(AS_OF), "W2")
        with estate.engine("marketing").connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM cookie_consents")).scalar_one() == 3
        lenient = load_policy().model_copy(update={"validation": ValidationSettings(max_quarantine_share=1.0)})
        result = run_rule(estate.context(AS_OF, policy=lenient, run_id="lenient"), "W2")
        assert result["quarantine"] == {"trigger_unparseable": 2} and result["deleted"] == 1
        with estate.engine("marketing").connect() as conn:
            assert conn.execute(text("SELECT id FROM cookie_consents ORDER BY id")).scalars().all() == [2, 3]
    finally:
        estate.engines.dispose()
