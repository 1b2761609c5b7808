"""A reference estate at scale on PostgreSQL or MariaDB, built in the server, and reset between runs.

:func:`build` creates three databases, ``lethe_bench_crm``, ``lethe_bench_marketing`` and
``lethe_bench_audit`` (dropped first), with the reference estate's tables and indexes on the
foreign keys, and fills them with ``generate_series`` (PostgreSQL) or the ``seq_1_to_N`` tables
(MariaDB), so that a million rows take seconds, not minutes. Sizes follow ``contacts`` (N):

* ``companies`` N/10: kind ``id % 10``: 0-3 customers, 4 former customers whose contract ended in
  2019 (K1 due), 5 former customers since 2024 (not due), 6-9 never customers;
* ``contacts`` N: company ``(id - 1) % (N/10) + 1`` (every 50th has none); a third of the
  prospects last heard of before 2023 (C1 due), every 13th of those with a recent interaction
  that keeps them; every 7th with no ``last_contact_at`` (its creation date counts);
* ``interactions`` 2N, two per contact, dated by their contact's class; ``notes`` set;
* ``legal_holds`` and ``restrictions``: 200 and 100 addresses of due contacts (some in upper case);
* ``newsletter_subscribers`` N, every 10th unsubscribed (N1 due at once);
* ``web_events`` 5N over N cookies, every 10th cookie set 200+ days before the as-of (W1 due).

:func:`save` keeps, once, the rows any measured rule changes (what the baseline's queries select)
in ``bench_saved_*`` tables; :func:`reset` puts them back exactly, so every run starts from the
same data, and empties the suppression list, the baseline's audit table and Lethe's audit store.
:func:`fingerprint` summarises the changed tables, so two runs can be shown to have done the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine

AS_OF = "2026-11-26 00:00:00"
DATABASES = ("crm", "marketing", "audit")
SERVER = {
    "postgresql": URL.create("postgresql+psycopg", username="postgres", host="127.0.0.1", port=5432),
    "mariadb": URL.create("mysql+pymysql", username="root", host="127.0.0.1", port=3306),
}


def database_name(part: str) -> str:
    """``lethe_bench_<part>``; ``LETHE_BENCH_DB_PREFIX`` sets another prefix (the smoke test's)."""
    return f"{os.environ.get('LETHE_BENCH_DB_PREFIX') or 'lethe_bench'}_{part}"


def url(backend: str, part: str) -> URL:
    return SERVER[backend].set(database=database_name(part))


@dataclass
class Estate:
    backend: str
    contacts: int

    @property
    def companies(self) -> int:
        return max(self.contacts // 10, 10)

    def engine(self, part: str) -> Engine:
        return create_engine(url(self.backend, part), isolation_level="AUTOCOMMIT")

    def run(self, part: str, statements: list[str]) -> None:
        """Execute statements as written (the driver's own cursor: no placeholders, so ``%`` is modulo)."""
        engine = self.engine(part)
        try:
            raw = engine.raw_connection()
            try:
                cursor = raw.cursor()
                for statement in statements:
                    cursor.execute(statement)
                raw.commit()
            finally:
                raw.close()
        finally:
            engine.dispose()

    def scalar(self, part: str, query: str):
        engine = self.engine(part)
        try:
            with engine.connect() as conn:
                return conn.exec_driver_sql(query).scalar()
        finally:
            engine.dispose()


# --------------------------------------------------------------------------- dialect pieces


def _pg_day(base: str, days: str) -> str:
    return f"(TIMESTAMP '{base}' + ({days}) * INTERVAL '1 day')"


def _maria_day(base: str, days: str) -> str:
    return f"(TIMESTAMP '{base} 00:00:00' + INTERVAL ({days}) DAY)"  # MariaDB wants the time too


DDL = {
    "postgresql": {
        "crm": [
            "CREATE TABLE companies (id integer PRIMARY KEY, name text NOT NULL, country char(2), "
            "customer_since date, customer_until date)",
            "CREATE TABLE contacts (id integer PRIMARY KEY, company_id integer, "
            "first_name text, last_name text, email text, phone text, job_title text, "
            "created_at timestamp NOT NULL, last_contact_at timestamp)",
            "CREATE TABLE interactions (id integer PRIMARY KEY, contact_id integer NOT NULL, "
            "occurred_at timestamp NOT NULL, channel text, notes text)",
            "CREATE TABLE trial_signups (id integer PRIMARY KEY, contact_id integer, "
            "database_name text, trial_started_at timestamp, trial_ends_at timestamp, subscribed_at timestamp)",
            "CREATE TABLE legal_holds (id integer PRIMARY KEY, email text, reason text, placed_at timestamp, "
            "released_at timestamp)",
            "CREATE TABLE restrictions (id integer PRIMARY KEY, email text, requested_at timestamp, "
            "lifted_at timestamp)",
        ],
        "marketing": [
            "CREATE TABLE newsletter_subscribers (id integer PRIMARY KEY, email text, first_name text, "
            "country char(2), subscribed_at timestamp, unsubscribed_at timestamp)",
            "CREATE TABLE suppression_list (email_hash varchar(64) PRIMARY KEY, added_at timestamp, reason text)",
            "CREATE TABLE cookie_consents (id integer PRIMARY KEY, cookie_id varchar(40), consented_at timestamp, "
            "categories text, ip_address varchar(45))",
            "CREATE TABLE web_events (id integer PRIMARY KEY, cookie_id varchar(40), cookie_set_at timestamp, "
            "occurred_at timestamp, url text, ip_address varchar(45), user_agent text)",
        ],
    },
    "mariadb": {
        "crm": [
            "CREATE TABLE companies (id int PRIMARY KEY, name varchar(200) NOT NULL, country char(2), "
            "customer_since date, customer_until date) ENGINE=InnoDB",
            "CREATE TABLE contacts (id int PRIMARY KEY, company_id int, first_name varchar(100), "
            "last_name varchar(100), email varchar(255), phone varchar(40), job_title varchar(100), "
            "created_at datetime NOT NULL, last_contact_at datetime NULL) ENGINE=InnoDB",
            "CREATE TABLE interactions (id int PRIMARY KEY, contact_id int NOT NULL, occurred_at datetime NOT NULL, "
            "channel varchar(20), notes text) ENGINE=InnoDB",
            "CREATE TABLE trial_signups (id int PRIMARY KEY, contact_id int, database_name varchar(64), "
            "trial_started_at datetime, trial_ends_at datetime, subscribed_at datetime NULL) ENGINE=InnoDB",
            "CREATE TABLE legal_holds (id int PRIMARY KEY, email varchar(255), reason varchar(200), "
            "placed_at datetime, released_at datetime NULL) ENGINE=InnoDB",
            "CREATE TABLE restrictions (id int PRIMARY KEY, email varchar(255), requested_at datetime, "
            "lifted_at datetime NULL) ENGINE=InnoDB",
        ],
        "marketing": [
            "CREATE TABLE newsletter_subscribers (id int PRIMARY KEY, email varchar(255), first_name varchar(100), "
            "country char(2), subscribed_at datetime, unsubscribed_at datetime NULL) ENGINE=InnoDB",
            "CREATE TABLE suppression_list (email_hash varchar(64) PRIMARY KEY, added_at datetime, "
            "reason varchar(200)) ENGINE=InnoDB",
            "CREATE TABLE cookie_consents (id int PRIMARY KEY, cookie_id varchar(40), consented_at datetime, "
            "categories varchar(100), ip_address varchar(45)) ENGINE=InnoDB",
            "CREATE TABLE web_events (id int PRIMARY KEY, cookie_id varchar(40), cookie_set_at datetime, "
            "occurred_at datetime, url varchar(500), ip_address varchar(45), user_agent varchar(300)) ENGINE=InnoDB",
        ],
    },
}
# Indexes and foreign keys come after the data (one pass each instead of a check per row).
INDEXES = {
    "crm": [
        "ALTER TABLE contacts ADD CONSTRAINT fk_contacts_company FOREIGN KEY (company_id) REFERENCES companies (id)",
        "ALTER TABLE interactions ADD CONSTRAINT fk_interactions_contact FOREIGN KEY (contact_id) "
        "REFERENCES contacts (id)",
        "ALTER TABLE trial_signups ADD CONSTRAINT fk_trial_signups_contact FOREIGN KEY (contact_id) "
        "REFERENCES contacts (id)",
        "CREATE INDEX ix_contacts_company ON contacts (company_id)",
        "CREATE INDEX ix_interactions_contact ON interactions (contact_id)",
        "CREATE INDEX ix_trial_signups_contact ON trial_signups (contact_id)",
    ],
    "marketing": ["CREATE INDEX ix_web_events_cookie ON web_events (cookie_id)"],
}


def _series(backend: str, n: int, alias: str = "g") -> str:
    """A derived table of integers 1..n named ``alias`` with the column ``i``."""
    if backend == "postgresql":
        return f"generate_series(1, {n}) AS {alias}(i)"
    return f"(SELECT seq AS i FROM seq_1_to_{n}) AS {alias}"


def _fill(estate: Estate) -> dict[str, list[str]]:
    """INSERT ... SELECT statements that generate the estate in the server."""
    b, n, nc = estate.backend, estate.contacts, estate.companies
    day = _pg_day if b == "postgresql" else _maria_day
    if b == "postgresql":
        concat = lambda *parts: " || ".join(parts)  # noqa: E731
    else:
        concat = lambda *parts: f"CONCAT({', '.join(parts)})"  # noqa: E731
    text_of = (lambda e: f"CAST({e} AS text)") if b == "postgresql" else (lambda e: f"CAST({e} AS CHAR)")
    # A contact's class, from its id (the same expression in every statement that needs it).
    company = f"((i - 1) % {nc} + 1)"
    prospect = f"(i % 50 = 0 OR {company} % 10 >= 6)"
    div = "DIV" if b == "mariadb" else "/"  # integer division
    stale = f"({prospect} AND ((i - 1) {div} {nc}) % 3 = 0)"
    company_name = concat("'Company '", text_of("i"))
    contact_email = concat("'c'", text_of("i"), "'@example.com'")
    subscriber_email = concat("'s'", text_of("i"), "'@example.org'")
    consent_cookie, event_cookie = concat("'ck'", text_of("i")), concat("'ck'", text_of("c"))
    crm = [
        f"INSERT INTO companies (id, name, country, customer_since, customer_until) "
        f"SELECT i, {company_name}, 'NL', "
        f"CASE WHEN i % 10 <= 5 THEN CAST({day('2012-01-01', 'i % 1000')} AS DATE) END, "
        f"CASE WHEN i % 10 = 4 THEN CAST({day('2019-01-01', 'i % 300')} AS DATE) "
        f"WHEN i % 10 = 5 THEN CAST({day('2024-03-01', 'i % 300')} AS DATE) END "
        f"FROM {_series(b, nc)}",
        f"INSERT INTO contacts (id, company_id, first_name, last_name, email, phone, job_title, created_at, "
        f"last_contact_at) "
        f"SELECT i, CASE WHEN i % 50 = 0 THEN NULL ELSE {company} END, 'Ann', 'Lee', "
        f"{contact_email}, '+31 20 555 0000', 'Planner', "
        f"CASE WHEN {stale} THEN {day('2019-01-01', 'i % 400')} ELSE {day('2024-01-01', 'i % 300')} END, "
        f"CASE WHEN i % 7 = 0 THEN NULL WHEN {stale} THEN {day('2021-01-01', 'i % 600')} "
        f"ELSE {day('2025-01-01', 'i % 500')} END "
        f"FROM {_series(b, n)}",
        # Two interactions per contact; a stale contact's are old, except every 13th's second one.
        f"INSERT INTO interactions (id, contact_id, occurred_at, channel, notes) "
        f"SELECT j, i, CASE WHEN {stale} AND NOT (j > {n} AND i % 13 = 0) THEN {day('2020-06-01', 'j % 800')} "
        f"ELSE {day('2025-06-01', 'j % 300')} END, 'email', 'Called about the planning demo' "
        f"FROM (SELECT g.i AS j, (g.i - 1) % {n} + 1 AS i FROM {_series(b, 2 * n)}) AS x",
    ]
    # Holds on 200 due prospects (every 4th address in upper case: matched case-insensitively) and
    # restrictions on 100 contacts of former customers: those rows are due but exempt.
    crm += [
        "INSERT INTO legal_holds (id, email, reason, placed_at, released_at) "
        "SELECT k, CASE WHEN k % 4 = 0 THEN UPPER(email) ELSE email END, 'litigation', "
        "TIMESTAMP '2026-01-01 00:00:00', NULL FROM (SELECT ROW_NUMBER() OVER (ORDER BY id) AS k, id, email "
        "FROM contacts WHERE last_contact_at < TIMESTAMP '2023-01-01 00:00:00' "
        "AND (company_id IS NULL OR company_id % 10 >= 6) "
        "ORDER BY id LIMIT 200) AS h",
        "INSERT INTO restrictions (id, email, requested_at, lifted_at) "
        "SELECT k, email, TIMESTAMP '2026-02-01 00:00:00', NULL FROM (SELECT ROW_NUMBER() OVER (ORDER BY id) AS k, "
        "id, email FROM contacts WHERE company_id % 10 = 4 ORDER BY id LIMIT 100) AS r",
    ]
    marketing = [
        f"INSERT INTO newsletter_subscribers (id, email, first_name, country, subscribed_at, unsubscribed_at) "
        f"SELECT i, {subscriber_email}, 'Ann', 'NL', {day('2023-01-01', 'i % 600')}, "
        f"CASE WHEN i % 10 = 0 THEN {day('2025-01-01', 'i % 600')} END FROM {_series(b, n)}",
        f"INSERT INTO cookie_consents (id, cookie_id, consented_at, categories, ip_address) "
        f"SELECT i, {consent_cookie}, {day('2025-06-01', 'i % 300')}, 'analytics', '192.0.2.10' "
        f"FROM {_series(b, 1000)}",
        f"INSERT INTO web_events (id, cookie_id, cookie_set_at, occurred_at, url, ip_address, user_agent) "
        f"SELECT k, {event_cookie}, "
        f"CASE WHEN c % 10 = 0 THEN {day('2026-01-01', 'c % 100')} ELSE {day('2026-09-01', 'c % 60')} END, "
        f"{day('2026-09-02', 'k % 60')}, '/planning/demo', '203.0.113.7', 'Mozilla/5.0 (X11; Linux x86_64)' "
        f"FROM (SELECT g.i AS k, (g.i - 1) % {n} + 1 AS c FROM {_series(b, 5 * n)}) AS x",
    ]
    return {"crm": crm, "marketing": marketing}


def build(estate: Estate, rules: list[str], parts: tuple[str, ...] = ("crm", "marketing")) -> None:
    """Drop and create the bench databases, fill ``parts`` of them, and save each rule's rows."""
    recreate(estate.backend, DATABASES)
    fill = _fill(estate)
    for part in ("crm", "marketing"):
        estate.run(part, DDL[estate.backend][part] + (fill[part] if part in parts else []) + INDEXES[part])
    save(estate, rules)
    analyse(estate)


def analyse(estate: Estate) -> None:
    if estate.backend == "postgresql":
        estate.run("crm", ["VACUUM ANALYZE"])
        estate.run("marketing", ["VACUUM ANALYZE"])
    else:
        estate.run("crm", ["ANALYZE TABLE companies, contacts, interactions, trial_signups, legal_holds, restrictions"])
        estate.run("marketing", ["ANALYZE TABLE newsletter_subscribers, suppression_list, web_events"])


# What each rule changes, parents first: (database, table, rows of it, by the rule's decision).
SAVED = {
    "C1": [
        ("crm", "contacts", "id IN (SELECT id FROM ({due}) AS due)"),
        ("crm", "interactions", "contact_id IN (SELECT id FROM bench_saved_c1_contacts)"),
    ],
    "K1": [
        ("crm", "contacts", "id IN (SELECT id FROM ({due}) AS due)"),
        ("crm", "interactions", "contact_id IN (SELECT id FROM bench_saved_k1_contacts)"),
    ],
    "N1": [("marketing", "newsletter_subscribers", "id IN (SELECT id FROM ({due}) AS due)")],
    "W1": [("marketing", "web_events", "id IN (SELECT id FROM ({due}) AS due)")],
}


def copy_exemptions(estate: Estate) -> None:
    """Each database gets the addresses held at the as-of as ``bench_exempt`` (the baselines read it)."""
    from benchmarks.cases.sql_baselines import EXEMPT_QUERY

    engine = estate.engine("crm")
    try:
        with engine.connect() as conn:
            addresses = [row[0] for row in conn.exec_driver_sql(EXEMPT_QUERY)]
    finally:
        engine.dispose()
    values = ", ".join("('" + a.replace("'", "''") + "')" for a in addresses)
    for part in ("crm", "marketing"):
        statements = ["DROP TABLE IF EXISTS bench_exempt", "CREATE TABLE bench_exempt (email varchar(255))"]
        estate.run(part, statements + ([f"INSERT INTO bench_exempt (email) VALUES {values}"] if values else []))


def save(estate: Estate, rules: list[str]) -> None:
    """Keep, once, exactly the rows each rule changes (``bench_saved_<rule>_<table>``)."""
    from benchmarks.cases.sql_baselines import EXEMPT_TABLE, due_query

    copy_exemptions(estate)
    for rule in rules:
        for part, table, where in SAVED[rule]:
            saved = f"bench_saved_{rule.lower()}_{table}"
            estate.run(
                part,
                [
                    f"CREATE TEMPORARY TABLE {EXEMPT_TABLE} AS SELECT email FROM bench_exempt",
                    f"DROP TABLE IF EXISTS {saved}",
                    f"CREATE TABLE {saved} AS SELECT * FROM {table} "
                    f"WHERE {where.format(due=due_query(rule, estate.backend))}",
                    f"CREATE INDEX ix_{saved} ON {saved} (id)",
                ],
            )


def reset(estate: Estate, rule: str) -> None:
    """Put the rows ``rule`` changes back as they were; empty what runs add to."""
    entries = SAVED[rule]
    for part, table, _where in entries[::-1]:  # children first
        estate.run(part, [f"DELETE FROM {table} WHERE id IN (SELECT id FROM bench_saved_{rule.lower()}_{table})"])
    for part, table, _where in entries:
        estate.run(part, [f"INSERT INTO {table} SELECT * FROM bench_saved_{rule.lower()}_{table}"])
    estate.run("marketing", ["DELETE FROM suppression_list"])
    for part in ("crm", "marketing"):
        estate.run(part, ["DROP TABLE IF EXISTS bench_audit", "DROP TABLE IF EXISTS lethe_audit_outbox"])
    # Lethe's audit store starts empty every run (its chain is append-only: drop the database).
    recreate(estate.backend, ["audit"])
    # Deleted and rewritten rows leave dead versions behind: clean them so every run starts alike.
    if estate.backend == "postgresql":
        for part, table, _where in entries:
            estate.run(part, [f"VACUUM ANALYZE {table}"])


FINGERPRINTS = {
    "C1": ("crm", "SELECT COUNT(*), SUM(id) FROM contacts", "SELECT COUNT(*), SUM(id) FROM interactions"),
    "K1": (
        "crm",
        "SELECT COUNT(*), SUM(id) FROM contacts WHERE email IS NULL AND first_name = 'anonymised'",
        "SELECT COUNT(*), SUM(id) FROM interactions WHERE notes IS NULL",
    ),
    "N1": (
        "marketing",
        "SELECT COUNT(*), SUM(id) FROM newsletter_subscribers",
        "SELECT COUNT(*) FROM suppression_list",
    ),
    "W1": ("marketing", "SELECT COUNT(*), SUM(id) FROM web_events", "SELECT COUNT(DISTINCT cookie_id) FROM web_events"),
}


def fingerprint(estate: Estate, rule: str) -> list[str]:
    """What a rule's tables look like now (counts and key sums): equal after Lethe and the baseline."""
    part, *queries = FINGERPRINTS[rule]
    engine = estate.engine(part)
    try:
        with engine.connect() as conn:
            return [" ".join(str(v) for v in conn.exec_driver_sql(q).one()) for q in queries]
    finally:
        engine.dispose()


def drop(backend: str) -> None:
    """Drop the bench databases of a back end."""
    recreate(backend, DATABASES, create=False)


def recreate(backend: str, parts, *, create: bool = True) -> None:
    """Drop the bench databases of ``parts`` (and create them empty again unless ``create`` is false)."""
    server = create_engine(SERVER[backend], isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            for part in parts:
                name = database_name(part)
                if backend == "postgresql":
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    if create:
                        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
                else:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
                    if create:
                        conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    finally:
        server.dispose()
