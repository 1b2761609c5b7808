"""The hand-written SQL a data engineer would run instead of Lethe, one script per rule and back end.

Each script, in one transaction: decides the rule's rows once into a temporary table (the same
decision as the policy and inventory: scope, trigger with calendar periods, legal holds and
restrictions in force), writes one row per subject to ``bench_audit`` with an HMAC-SHA256 of the
subject computed in the database (``sha256`` on PostgreSQL, ``SHA2`` on MariaDB, with the key's
inner and outer pads, so the keyed hash equals Lethe's), then deletes or updates set-based. It has
no chain, no batches, no checks and no report: the floor Lethe's cost is measured against.
"""

from __future__ import annotations

import hashlib

from benchmarks.cases.sql_estate import AS_OF

TS = f"TIMESTAMP '{AS_OF}'"


def hmac_pads(key: str) -> tuple[str, str]:
    """HMAC-SHA256's inner and outer padded keys, in hex (RFC 2104)."""
    raw = key.encode()
    if len(raw) > 64:
        raw = hashlib.sha256(raw).digest()
    raw = raw.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in raw).hex(), bytes(b ^ 0x5C for b in raw).hex()


class Dialect:
    """What differs between the two servers' SQL."""

    def __init__(self, key: str):
        self.ipad, self.opad = hmac_pads(key)


class PostgreSQL(Dialect):
    name = "postgresql"
    begin, commit = "BEGIN;", "COMMIT;"

    def temp(self, name: str) -> str:
        return f"CREATE TEMP TABLE {name} ON COMMIT DROP AS"

    audit_table = (
        "CREATE TABLE IF NOT EXISTS bench_audit (id bigserial PRIMARY KEY, rule_id varchar(8), "
        "subject_key char(64), record_count integer, recorded_at timestamp);"
    )
    now = "now()"

    def hmac(self, message: str) -> str:
        return (
            f"encode(sha256(decode('{self.opad}', 'hex') || sha256(decode('{self.ipad}', 'hex') || "
            f"convert_to({message}, 'UTF8'))), 'hex')"
        )

    def concat(self, *parts: str) -> str:
        return "(" + " || ".join(parts) + ")"

    def plus(self, column: str, amount: int, unit: str) -> str:
        return f"({column} + INTERVAL '{amount} {unit}')"

    def greatest(self, *args: str) -> str:
        return f"GREATEST({', '.join(args)})"  # PostgreSQL's GREATEST skips NULLs

    def delete_in(self, table: str, column: str, doomed: str) -> str:
        return f"DELETE FROM {table} WHERE {column} IN (SELECT id FROM {doomed});"

    def update_in(self, table: str, column: str, doomed: str, assignments: str) -> str:
        return f"UPDATE {table} SET {assignments} WHERE {column} IN (SELECT id FROM {doomed});"

    def insert_ignore(self, table: str, columns: str, select: str) -> str:
        return f"INSERT INTO {table} ({columns}) {select} ON CONFLICT DO NOTHING;"

    def distinct_from(self, column: str, value: str) -> str:
        return f"{column} IS DISTINCT FROM {value}"

    def text(self, column: str) -> str:
        return f"CAST({column} AS text)"


class MariaDB(Dialect):
    name = "mariadb"
    begin, commit = "START TRANSACTION;", "COMMIT;"

    def temp(self, name: str) -> str:
        return f"CREATE TEMPORARY TABLE {name} (PRIMARY KEY (id)) AS"

    audit_table = (
        "CREATE TABLE IF NOT EXISTS bench_audit (id bigint AUTO_INCREMENT PRIMARY KEY, rule_id varchar(8), "
        "subject_key char(64), record_count int, recorded_at datetime) ENGINE=InnoDB;"
    )
    now = "NOW()"

    def hmac(self, message: str) -> str:
        return f"SHA2(CONCAT(UNHEX('{self.opad}'), UNHEX(SHA2(CONCAT(UNHEX('{self.ipad}'), {message}), 256))), 256)"

    def concat(self, *parts: str) -> str:
        return f"CONCAT({', '.join(parts)})"

    def plus(self, column: str, amount: int, unit: str) -> str:
        return f"DATE_ADD({column}, INTERVAL {amount} {unit.rstrip('s').upper()})"

    def greatest(self, *args: str) -> str:
        # MariaDB's GREATEST is NULL when any argument is: coalesce each with the others.
        return f"GREATEST({', '.join(f'COALESCE({a}, {b})' for a, b in zip(args, args[1:] + args[:1], strict=True))})"

    def delete_in(self, table: str, column: str, doomed: str) -> str:
        return f"DELETE t FROM {table} t JOIN {doomed} d ON t.{column} = d.id;"

    def update_in(self, table: str, column: str, doomed: str, assignments: str) -> str:
        qualified = ", ".join(f"t.{part.strip()}" for part in assignments.split(","))
        return f"UPDATE {table} t JOIN {doomed} d ON t.{column} = d.id SET {qualified};"

    def insert_ignore(self, table: str, columns: str, select: str) -> str:
        return f"INSERT IGNORE INTO {table} ({columns}) {select};"

    def distinct_from(self, column: str, value: str) -> str:
        return f"NOT ({column} <=> {value})"

    def text(self, column: str) -> str:
        return f"CAST({column} AS CHAR)"


DIALECTS = {"postgresql": PostgreSQL, "mariadb": MariaDB}


def normalised(column: str) -> str:
    return f"LOWER(REPLACE(TRIM({column}), ' ', ''))"


def _exempt(d: Dialect) -> list[str]:
    """The addresses under a legal hold or restriction in force at the as-of.

    They live in the CRM; PostgreSQL cannot read another database in a query, so each database
    gets a copy, ``bench_exempt`` (normalised addresses), written before the timed script
    (:data:`EXEMPT_QUERY`, untimed; Lethe reads the CRM's tables in its own time).
    """
    return [f"CREATE TEMPORARY TABLE {EXEMPT_TABLE} AS SELECT email FROM bench_exempt;"]


EXEMPT_TABLE = "exempt"


EXEMPT_QUERY = (
    f"SELECT {normalised('email')} FROM legal_holds WHERE email IS NOT NULL AND placed_at <= {TS} "
    f"AND (released_at IS NULL OR released_at > {TS}) UNION SELECT {normalised('email')} FROM restrictions "
    f"WHERE email IS NOT NULL AND requested_at <= {TS} AND (lifted_at IS NULL OR lifted_at > {TS})"
)


def _not_exempt(column: str) -> str:
    return f"({column} IS NULL OR {normalised(column)} NOT IN (SELECT email FROM exempt))"


def _email_subject(d: Dialect, column: str, table: str) -> str:
    record = d.hmac(d.concat(f"'record:{SOURCE[table]}.{table}:'", d.text("id")))
    email = d.hmac(d.concat("'email:'", normalised(column)))
    return f"CASE WHEN {column} IS NULL OR {column} = '' THEN {record} ELSE {email} END"


SOURCE = {"contacts": "crm", "newsletter_subscribers": "marketing"}


def c1_due(d: Dialect) -> str:
    newest = "(SELECT contact_id, MAX(occurred_at) AS newest FROM interactions GROUP BY contact_id)"
    trigger = f"COALESCE({d.greatest('c.last_contact_at', 'i.newest')}, c.created_at)"
    return (
        f"SELECT c.id, c.email FROM contacts c "
        f"LEFT JOIN companies co ON co.id = c.company_id LEFT JOIN {newest} i ON i.contact_id = c.id "
        f"WHERE co.customer_since IS NULL AND {d.plus(trigger, 3, 'years')} <= {TS} AND {_not_exempt('c.email')}"
    )


def c1(d: Dialect) -> list[str]:
    return [
        d.begin,
        d.audit_table,
        *_exempt(d),
        f"{d.temp('doomed')} {c1_due(d)};",
        f"INSERT INTO bench_audit (rule_id, subject_key, record_count, recorded_at) "
        f"SELECT 'C1', {_email_subject(d, 'email', 'contacts')}, "
        f"1 + (SELECT COUNT(*) FROM interactions x WHERE x.contact_id = doomed.id), {d.now} FROM doomed;",
        d.delete_in("interactions", "contact_id", "doomed"),
        d.delete_in("trial_signups", "contact_id", "doomed"),
        d.delete_in("contacts", "id", "doomed"),
        d.commit,
    ]


def k1_due(d: Dialect) -> str:
    pending = " OR ".join(
        [
            d.distinct_from("c.first_name", "'anonymised'"),
            d.distinct_from("c.last_name", "'anonymised'"),
            "c.email IS NOT NULL",
            "c.phone IS NOT NULL",
            "c.job_title IS NOT NULL",
        ]
    )
    return (
        f"SELECT c.id, c.email FROM contacts c JOIN companies co ON co.id = c.company_id "
        f"WHERE co.customer_since IS NOT NULL AND co.customer_until IS NOT NULL AND co.customer_until <= {TS} "
        f"AND {d.plus('co.customer_until', 5, 'years')} <= {TS} AND ({pending}) AND {_not_exempt('c.email')}"
    )


def k1(d: Dialect) -> list[str]:
    return [
        d.begin,
        d.audit_table,
        *_exempt(d),
        f"{d.temp('doomed')} {k1_due(d)};",
        f"INSERT INTO bench_audit (rule_id, subject_key, record_count, recorded_at) "
        f"SELECT 'K1', {_email_subject(d, 'email', 'contacts')}, "
        f"1 + (SELECT COUNT(*) FROM interactions x WHERE x.contact_id = doomed.id), {d.now} FROM doomed;",
        d.update_in("interactions", "contact_id", "doomed", "notes = NULL"),
        d.update_in(
            "contacts",
            "id",
            "doomed",
            "first_name = 'anonymised', last_name = 'anonymised', email = NULL, phone = NULL, job_title = NULL",
        ),
        d.commit,
    ]


def n1_due(d: Dialect) -> str:
    return (
        f"SELECT id, email FROM newsletter_subscribers "
        f"WHERE {d.plus('unsubscribed_at', 0, 'days')} <= {TS} AND {_not_exempt('email')}"
    )


def n1(d: Dialect) -> list[str]:
    key = d.hmac(d.concat("'email:'", normalised("email")))
    return [
        d.begin,
        d.audit_table,
        *_exempt(d),
        f"{d.temp('doomed')} {n1_due(d)};",
        d.insert_ignore(
            "suppression_list",
            "email_hash, added_at, reason",
            f"SELECT DISTINCT {key}, {TS}, 'newsletter unsubscribe (N1)' FROM doomed "
            "WHERE email IS NOT NULL AND email <> ''",
        ),
        f"INSERT INTO bench_audit (rule_id, subject_key, record_count, recorded_at) "
        f"SELECT 'N1', {_email_subject(d, 'email', 'newsletter_subscribers')}, 1, {d.now} FROM doomed;",
        d.delete_in("newsletter_subscribers", "id", "doomed"),
        d.commit,
    ]


def w1_due(d: Dialect) -> str:
    return f"SELECT id, cookie_id FROM web_events WHERE {d.plus('cookie_set_at', 90, 'days')} <= {TS}"


def w1(d: Dialect) -> list[str]:
    key = d.hmac(d.concat("'cookie:'", "cookie_id"))
    return [
        d.begin,
        d.audit_table,
        f"{d.temp('doomed')} {w1_due(d)};",
        f"INSERT INTO bench_audit (rule_id, subject_key, record_count, recorded_at) "
        f"SELECT 'W1', {key}, COUNT(*), {d.now} FROM doomed GROUP BY cookie_id;",
        d.delete_in("web_events", "id", "doomed"),
        d.commit,
    ]


SCRIPTS = {"C1": ("crm", c1), "K1": ("crm", k1), "N1": ("marketing", n1), "W1": ("marketing", w1)}
# Each rule's decision alone (rows with ``id``): the estate saves exactly these rows to reset.
DUE = {"C1": c1_due, "K1": k1_due, "N1": n1_due, "W1": w1_due}


def script(rule: str, backend: str, key: str) -> tuple[str, str]:
    """(database part, script text) of a rule's baseline on a back end."""
    part, build = SCRIPTS[rule]
    return part, "\n".join(build(DIALECTS[backend](key))) + "\n"


def due_query(rule: str, backend: str) -> str:
    """The rows the rule acts on (``exempt`` must be a table: :data:`EXEMPT_TABLE` makes it)."""
    return DUE[rule](DIALECTS[backend]("-" * 16))
