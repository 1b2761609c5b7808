"""The reference estate of ``shared/reference-estate.md``, built from the document itself.

The DDL below is plain SQL text written from the document's tables (not ``lethe.demo.schema``, which
is the engine's own idea of the estate): a test built on it fails when the engine assumes more than
the document promises. Each *variant* is what a real DBA might have made of the same document:

* ``plain``: exactly the document's columns; timestamps ``TIMESTAMP`` (PostgreSQL: without time
  zone; SQLite: ``TIMESTAMP`` holding text ``YYYY-MM-DD HH:MM:SS``), ``DATETIME`` on MariaDB.
* ``extras``: columns Lethe does not know on every table, tables it does not know, and the
  document's columns declared in another order.
* ``pg_tz_paris`` / ``pg_tz_new_york``: every timestamp ``timestamp with time zone`` and the
  database's ``timezone`` setting set to Europe/Paris / America/New_York.
* ``mariadb_datetime6``: ``DATETIME(6)`` columns.
* ``fk_cascade`` / ``fk_restrict``: indexed foreign keys ``ON DELETE CASCADE`` / ``RESTRICT``.
* ``pg_schema``: the CRM tables in schema ``crm_app``, the marketing tables in ``mkt_app``; the
  inventory copy names them with the sources' ``schema`` field.

The rows are boundary cases at :data:`AS_OF`, each with its expected outcome stated by id
(:data:`REMOVED`, :data:`ANONYMISED`, :data:`DROPPED_TRIALS`, :data:`LOG_FILES`,
:data:`AT_DEADLINE`), worked out by hand with calendar periods (months clamp to the month's end,
then days are added) and not by an oracle.
"""

from __future__ import annotations

import copy
import gzip
import os
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url

from lethe.config import DEFAULT_INVENTORY, Inventory, load_inventory
from lethe.subjects import email_key

from conftest import TEST_KEY

AS_OF = datetime(2026, 11, 26, 2, 0)  # UTC: the nightly run's data interval end
SECOND = timedelta(seconds=1)
UTC = timezone.utc

# --------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class Variant:
    """One way a DBA laid out the document's tables: flags the DDL builder reads, nothing else."""

    name: str
    backends: tuple[str, ...]
    description: str
    extras: bool = False  # unknown columns and tables, another column order
    timestamptz: bool = False  # PostgreSQL: timestamp with time zone
    database_timezone: str | None = None  # PostgreSQL: ALTER DATABASE ... SET timezone
    fractional_seconds: bool = False  # MariaDB: DATETIME(6)
    on_delete: str | None = None  # indexed foreign keys with this ON DELETE action
    schemas: tuple[tuple[str, str], ...] = ()  # (connection id, PostgreSQL schema)

    def schema_for(self, conn_id: str) -> str | None:
        return dict(self.schemas).get(conn_id)


ALL = ("sqlite", "postgresql", "mariadb")
VARIANTS = {
    v.name: v
    for v in (
        Variant("plain", ALL, "exactly the document's columns"),
        Variant("extras", ALL, "unknown columns and tables, columns in another order", extras=True),
        Variant(
            "pg_tz_paris",
            ("postgresql",),
            "timestamptz, database time zone Europe/Paris",
            timestamptz=True,
            database_timezone="Europe/Paris",
        ),
        Variant(
            "pg_tz_new_york",
            ("postgresql",),
            "timestamptz, database time zone America/New_York",
            timestamptz=True,
            database_timezone="America/New_York",
        ),
        Variant("mariadb_datetime6", ("mariadb",), "DATETIME(6) columns", fractional_seconds=True),
        Variant("fk_cascade", ALL, "indexed foreign keys ON DELETE CASCADE", on_delete="CASCADE"),
        Variant("fk_restrict", ALL, "indexed foreign keys ON DELETE RESTRICT", on_delete="RESTRICT"),
        Variant(
            "pg_schema",
            ("postgresql",),
            "tables in schemas crm_app and mkt_app, none in public",
            schemas=(("crm", "crm_app"), ("marketing", "mkt_app")),
        ),
    )
}
PAIRS = [(backend, name) for name, variant in VARIANTS.items() for backend in variant.backends]


def timestamp_type(backend: str, variant: Variant) -> str:
    if backend == "postgresql":
        return "TIMESTAMP WITH TIME ZONE" if variant.timestamptz else "TIMESTAMP WITHOUT TIME ZONE"
    if backend == "mariadb":
        return "DATETIME(6)" if variant.fractional_seconds else "DATETIME"
    return "TIMESTAMP"


# --------------------------------------------------------------------------- the document's tables

# Column by column as the document lists them; ``{ts}`` is the dialect's timestamp type.
CRM_TABLES: dict[str, tuple[str, ...]] = {
    "companies": (
        "id INTEGER NOT NULL",
        "name VARCHAR(200) NOT NULL",
        "country CHAR(2) NOT NULL",
        "customer_since DATE",
        "customer_until DATE",
    ),
    "contacts": (
        "id INTEGER NOT NULL",
        "company_id INTEGER",
        "first_name VARCHAR(100)",
        "last_name VARCHAR(100)",
        "email VARCHAR(254)",
        "phone VARCHAR(50)",
        "job_title VARCHAR(200)",
        "created_at {ts} NOT NULL",
        "last_contact_at {ts}",
    ),
    "interactions": (
        "id INTEGER NOT NULL",
        "contact_id INTEGER NOT NULL",
        "occurred_at {ts} NOT NULL",
        "channel VARCHAR(20) NOT NULL",
        "notes TEXT",
    ),
    "trial_signups": (
        "id INTEGER NOT NULL",
        "contact_id INTEGER NOT NULL",
        "database_name VARCHAR(64) NOT NULL",
        "trial_started_at {ts} NOT NULL",
        "trial_ends_at {ts} NOT NULL",
        "subscribed_at {ts}",
    ),
    "legal_holds": (
        "id INTEGER NOT NULL",
        "email VARCHAR(254) NOT NULL",
        "reason VARCHAR(200) NOT NULL",
        "placed_at {ts} NOT NULL",
        "released_at {ts}",
    ),
    "restrictions": (
        "id INTEGER NOT NULL",
        "email VARCHAR(254) NOT NULL",
        "requested_at {ts} NOT NULL",
        "lifted_at {ts}",
    ),
}
MARKETING_TABLES: dict[str, tuple[str, ...]] = {
    "newsletter_subscribers": (
        "id INTEGER NOT NULL",
        "email VARCHAR(254)",
        "first_name VARCHAR(100)",
        "country CHAR(2)",
        "subscribed_at {ts} NOT NULL",
        "unsubscribed_at {ts}",
    ),
    "suppression_list": ("email_hash VARCHAR(64) NOT NULL", "added_at {ts} NOT NULL", "reason VARCHAR(200) NOT NULL"),
    "cookie_consents": (
        "id INTEGER NOT NULL",
        "cookie_id VARCHAR(64) NOT NULL",
        "consented_at {ts} NOT NULL",
        "categories VARCHAR(100) NOT NULL",
        "ip_address VARCHAR(45)",
    ),
    "web_events": (
        "id INTEGER NOT NULL",
        "cookie_id VARCHAR(64) NOT NULL",
        "cookie_set_at {ts} NOT NULL",
        "occurred_at {ts} NOT NULL",
        "url VARCHAR(500) NOT NULL",
        "ip_address VARCHAR(45)",
        "user_agent VARCHAR(500)",
    ),
}
TRIAL_TABLES: dict[str, tuple[str, ...]] = {
    "users": ("id INTEGER NOT NULL", "name VARCHAR(200) NOT NULL", "email VARCHAR(254)"),
    "resources": ("id INTEGER NOT NULL", "name VARCHAR(200) NOT NULL"),
    "tasks": (
        "id INTEGER NOT NULL",
        "resource_id INTEGER NOT NULL",
        "title VARCHAR(200) NOT NULL",
        "starts_at {ts} NOT NULL",
        "ends_at {ts} NOT NULL",
    ),
}
PRIMARY_KEYS = {"suppression_list": "email_hash"}  # every other table: id
# (child table, column, parent table): the document's arrows, for the foreign-key variants.
FOREIGN_KEYS = (
    ("contacts", "company_id", "companies"),
    ("interactions", "contact_id", "contacts"),
    ("trial_signups", "contact_id", "contacts"),
)

# The ``extras`` variant: columns on every table and tables Lethe has never heard of.
EXTRA_COLUMNS = (
    "updated_at {ts} NOT NULL DEFAULT CURRENT_TIMESTAMP",
    "source_system VARCHAR(40) NOT NULL DEFAULT 'legacy_crm'",
    "gdpr_note VARCHAR(500)",
)
EXTRA_TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    "crm": {
        "products": ("id INTEGER NOT NULL", "name VARCHAR(200) NOT NULL", "price DECIMAL(10, 2)"),
        "audit_log": (
            "id INTEGER NOT NULL",
            "table_name VARCHAR(64) NOT NULL",
            "row_id INTEGER NOT NULL",
            "action VARCHAR(20) NOT NULL",
            "changed_by VARCHAR(100)",
            "changed_at {ts} NOT NULL",
        ),
    },
    "marketing": {
        "campaigns": ("id INTEGER NOT NULL", "name VARCHAR(200) NOT NULL", "sent_at {ts}"),
    },
}
EXTRA_ROWS: dict[str, list[dict[str, Any]]] = {
    "products": [
        {"id": 1, "name": "PlanningPME Web Access", "price": "39.00"},
        {"id": 2, "name": "PlanningPME Team", "price": "119.00"},
    ],
    "audit_log": [
        {
            "id": 1,
            "table_name": "contacts",
            "row_id": 101,
            "action": "update",
            "changed_by": "dba",
            "changed_at": datetime(2024, 3, 1, 9, 0),
        },
        {
            "id": 2,
            "table_name": "companies",
            "row_id": 3,
            "action": "update",
            "changed_by": "dba",
            "changed_at": datetime(2021, 11, 26, 17, 0),
        },
    ],
    "campaigns": [{"id": 1, "name": "Autumn newsletter", "sent_at": datetime(2026, 10, 1, 8, 0)}],
}

TABLES = {"crm": CRM_TABLES, "marketing": MARKETING_TABLES}


def column_name(definition: str) -> str:
    return definition.split()[0]


def table_columns(definitions: tuple[str, ...], variant: Variant) -> list[str]:
    """The column definitions in the order the variant declares them."""
    if not variant.extras:
        return list(definitions)
    # The document's columns backwards, the unknown ones in between.
    columns = list(reversed(definitions))
    columns.insert(len(columns) // 2, EXTRA_COLUMNS[0])
    columns.insert(0, EXTRA_COLUMNS[1])
    columns.append(EXTRA_COLUMNS[2])
    return columns


def create_table_sql(qualified: str, table: str, definitions: list[str], ts: str, constraints: list[str] = ()) -> str:
    pk = PRIMARY_KEYS.get(table, "id")
    body = [d.format(ts=ts) for d in definitions] + [f"PRIMARY KEY ({pk})", *constraints]
    return f"CREATE TABLE {qualified} (\n    " + ",\n    ".join(body) + "\n)"


# --------------------------------------------------------------------------- the rows
#
# Deadlines at AS_OF = 2026-11-26 02:00:00 UTC. "due" means trigger + period <= as-of.
# N1 0 days: unsubscribed_at <= 2026-11-26 02:00:00.
# W1 90 days: cookie_set_at <= 2026-08-28 02:00:00.
# W2 13 months: consented_at <= 2025-10-26 02:00:00.
# C1 3 years: latest(last_contact_at, newest interaction) else created_at <= 2023-11-26 02:00:00.
# K1 5 years: customer_until (a date, 00:00) <= 2021-11-26.
# T1 90 days: trial_ends_at <= 2026-08-28 02:00:00 and subscribed_at NULL.
# L1 90 days: file date <= 2026-08-28; L2 12 months: file date <= 2025-11-26.

HELD = "held.person@example.org"
RESTRICTED = "restricted.person@example.org"
K1_HELD = "k1.held@example.org"

COMPANIES = [
    {"id": 1, "name": "Prospect BV", "country": "NL", "customer_since": None, "customer_until": None},
    {
        "id": 2,
        "name": "Active Customer SA",
        "country": "FR",
        "customer_since": date(2019, 3, 1),
        "customer_until": None,
    },
    # K1 due: 2021-11-26 + 5 years = 2026-11-26 00:00 <= as-of.
    {
        "id": 3,
        "name": "Former Customer GmbH",
        "country": "DE",
        "customer_since": date(2015, 1, 1),
        "customer_until": date(2021, 11, 26),
    },
    # K1 not due: 2026-11-27 00:00.
    {
        "id": 4,
        "name": "Former Later Ltd",
        "country": "GB",
        "customer_since": date(2016, 1, 1),
        "customer_until": date(2021, 11, 27),
    },
    # Still a customer: the contract ends in the future.
    {
        "id": 5,
        "name": "Ending Customer NV",
        "country": "BE",
        "customer_since": date(2018, 1, 1),
        "customer_until": date(2027, 6, 30),
    },
    # K1 due: 5 years after 2020-02-29 is 2025-02-28 (clamped).
    {
        "id": 6,
        "name": "Leap Day Former BV",
        "country": "NL",
        "customer_since": date(2010, 1, 1),
        "customer_until": date(2020, 2, 29),
    },
    # A former customer since today (until <= as-of): not a prospect, K1 due only in 2031.
    {
        "id": 7,
        "name": "Just Ended SARL",
        "country": "FR",
        "customer_since": date(2020, 1, 1),
        "customer_until": date(2026, 11, 26),
    },
]


def _contact(
    cid: int, company: int | None, email: str | None, created: datetime, last: datetime | None
) -> dict[str, Any]:
    return {
        "id": cid,
        "company_id": company,
        "first_name": "Ann",
        "last_name": f"Lee{cid}",
        "email": email,
        "phone": f"+31 20 555 0{cid}",
        "job_title": "Planner",
        "created_at": created,
        "last_contact_at": last,
    }


CONTACTS = [
    # C1, prospects (company 1 has no contract; None: no company at all).
    _contact(101, 1, "c101@example.org", datetime(2022, 1, 10, 9), datetime(2023, 11, 26, 2, 0, 0)),  # at deadline
    _contact(102, 1, "c102@example.org", datetime(2022, 1, 10, 9), datetime(2023, 11, 26, 2, 0, 1)),  # +1 s: kept
    _contact(103, 1, "c103@example.org", datetime(2021, 3, 3, 8), datetime(2021, 5, 5, 10)),  # 1032: at deadline
    _contact(104, 1, "c104@example.org", datetime(2021, 3, 3, 8), datetime(2023, 1, 1, 12)),  # 1041: +1 s
    _contact(105, None, "c105@example.org", datetime(2023, 11, 26, 2, 0, 0), None),  # created only: at deadline
    _contact(106, None, "c106@example.org", datetime(2023, 11, 26, 2, 0, 1), None),  # created only: +1 s
    _contact(107, 1, "c107@example.org", datetime(2020, 1, 1), datetime(2023, 11, 25, 23, 30)),  # due 2026-11-25 23:30
    _contact(108, 1, "c108@example.org", datetime(2020, 1, 1), datetime(2023, 11, 26, 0, 30)),  # due 2026-11-26 00:30
    _contact(109, 1, None, datetime(2019, 1, 1), None),  # no address; interaction 1091 (2020): due
    _contact(110, None, "", datetime(2020, 2, 2), datetime(2021, 2, 2)),  # empty address: due
    _contact(111, 1, HELD, datetime(2018, 6, 1), datetime(2020, 1, 15)),  # due, legal hold in force
    _contact(112, 1, RESTRICTED, datetime(2019, 6, 1), datetime(2022, 8, 8)),  # due, restriction in force
    _contact(113, 1, "released.person@example.org", datetime(2019, 6, 1), datetime(2023, 2, 2)),  # hold released
    _contact(114, 2, "active.customer@example.org", datetime(2014, 1, 1), datetime(2015, 5, 5)),  # active customer
    _contact(115, 5, "ending.customer@example.org", datetime(2015, 1, 1), datetime(2016, 1, 1)),  # contract not ended
    _contact(116, 1, "c116@example.org", datetime(2021, 1, 1), datetime(2022, 5, 1)),  # due; trial 601 not dropped
    _contact(117, 1, "c117@example.org", datetime(2021, 1, 1), datetime(2022, 4, 1)),  # due; trial 602 not on server
    _contact(118, None, "c118@example.org", datetime(2022, 9, 1), datetime(2023, 1, 20)),  # due; T1 drops 603 at as-of
    _contact(119, 1, "c119@example.org", datetime(2025, 5, 1), datetime(2026, 7, 15)),  # recent; trials 604, 606
    # K1, contacts of former customers.
    _contact(201, 3, "c201@example.org", datetime(2016, 2, 2), datetime(2021, 10, 10)),  # due (00:00 today)
    _contact(202, 4, "c202@example.org", datetime(2017, 2, 2), datetime(2021, 11, 1)),  # due tomorrow: kept
    _contact(203, 6, "c203@example.org", datetime(2012, 1, 1), datetime(2019, 12, 12)),  # due (leap-day clamp)
    _contact(204, 3, K1_HELD, datetime(2016, 2, 2), datetime(2021, 6, 1)),  # due, legal hold in force
    _contact(205, 3, None, datetime(2016, 2, 2), None),  # due, no address
    _contact(206, 7, "c206@example.org", datetime(2020, 2, 2), datetime(2026, 11, 1)),  # former since today
]

INTERACTIONS = [
    {
        "id": 1031,
        "contact_id": 103,
        "occurred_at": datetime(2022, 3, 1, 9, 15),
        "channel": "email",
        "notes": "Asked for a quote",
    },
    {
        "id": 1032,
        "contact_id": 103,
        "occurred_at": datetime(2023, 11, 26, 2, 0, 0),
        "channel": "form",
        "notes": "Demo request",
    },
    {
        "id": 1041,
        "contact_id": 104,
        "occurred_at": datetime(2023, 11, 26, 2, 0, 1),
        "channel": "phone",
        "notes": "Follow-up call",
    },
    {"id": 1091, "contact_id": 109, "occurred_at": datetime(2020, 6, 1, 14), "channel": "form", "notes": None},
    {
        "id": 1111,
        "contact_id": 111,
        "occurred_at": datetime(2019, 4, 1, 10),
        "channel": "meeting",
        "notes": "Dispute about an invoice",
    },
    {"id": 1141, "contact_id": 114, "occurred_at": datetime(2015, 5, 5, 10), "channel": "meeting", "notes": "Kick-off"},
    {
        "id": 2011,
        "contact_id": 201,
        "occurred_at": datetime(2020, 5, 1, 11),
        "channel": "phone",
        "notes": "Renewal talk, call back on +49 170 1234567",
    },
    {
        "id": 2021,
        "contact_id": 202,
        "occurred_at": datetime(2021, 1, 15, 11),
        "channel": "email",
        "notes": "Contract end notice",
    },
    {
        "id": 2041,
        "contact_id": 204,
        "occurred_at": datetime(2021, 6, 1, 16),
        "channel": "email",
        "notes": "Claim pending",
    },
    {
        "id": 2051,
        "contact_id": 205,
        "occurred_at": datetime(2019, 9, 9, 9),
        "channel": "phone",
        "notes": "Called reception",
    },
]

# Sign-ups naming trial databases by label (the database is trial_<tag><label>; which ones exist
# on the server: TRIAL_LABELS_ON_SERVER). T1 deadline: trial_ends_at + 90 days.
TRIAL_SIGNUPS = [
    # Ends 2026-10-01 10:00: T1 due 2026-12-30; contact 116 waits for it.
    {
        "id": 601,
        "contact_id": 116,
        "label": "waiting",
        "trial_started_at": datetime(2026, 9, 1, 10),
        "trial_ends_at": datetime(2026, 10, 1, 10),
        "subscribed_at": None,
    },
    # Long due, and its database is gone from the server: contact 117 does not wait.
    {
        "id": 602,
        "contact_id": 117,
        "label": "gone",
        "trial_started_at": datetime(2023, 1, 1, 9),
        "trial_ends_at": datetime(2023, 1, 31, 9),
        "subscribed_at": None,
    },
    # T1 due exactly at the as-of (2026-08-28 02:00:00 + 90 days).
    {
        "id": 603,
        "contact_id": 118,
        "label": "due_now",
        "trial_started_at": datetime(2026, 7, 29, 2, 0, 0),
        "trial_ends_at": datetime(2026, 8, 28, 2, 0, 0),
        "subscribed_at": None,
    },
    # T1 due one second after the as-of.
    {
        "id": 604,
        "contact_id": 119,
        "label": "second_late",
        "trial_started_at": datetime(2026, 7, 29, 2, 0, 1),
        "trial_ends_at": datetime(2026, 8, 28, 2, 0, 1),
        "subscribed_at": None,
    },
    # Converted: kept whatever its dates.
    {
        "id": 605,
        "contact_id": 114,
        "label": "converted",
        "trial_started_at": datetime(2024, 3, 1, 9),
        "trial_ends_at": datetime(2024, 3, 31, 9),
        "subscribed_at": datetime(2024, 3, 20, 15),
    },
    # Due since 2025-08-29: dropped; its contact (119) is recent, so the sign-up row stays.
    {
        "id": 606,
        "contact_id": 119,
        "label": "old_unconverted",
        "trial_started_at": datetime(2025, 5, 1, 8),
        "trial_ends_at": datetime(2025, 5, 31, 8),
        "subscribed_at": None,
    },
    # Due, but the sign-up contact (204) is under a legal hold.
    {
        "id": 607,
        "contact_id": 204,
        "label": "held",
        "trial_started_at": datetime(2025, 1, 1, 8),
        "trial_ends_at": datetime(2025, 1, 31, 8),
        "subscribed_at": None,
    },
]
TRIAL_LABELS_ON_SERVER = (
    "waiting",
    "due_now",
    "second_late",
    "converted",
    "old_unconverted",
    "held",
    "orphan",
)  # orphan: named like a trial, no sign-up row: never touched
OTHER_DATABASE = "planning_{tag}production"  # not a trial at all: never touched

LEGAL_HOLDS = [
    # Typed differently from the addresses it holds: other case, spaces around.
    {
        "id": 1,
        "email": "  HELD.Person@Example.ORG ",
        "reason": "dispute about an invoice",
        "placed_at": datetime(2026, 1, 10, 9),
        "released_at": None,
    },
    {
        "id": 2,
        "email": "released.person@example.org",
        "reason": "claim settled",
        "placed_at": datetime(2024, 1, 1, 9),
        "released_at": datetime(2025, 6, 1, 9),
    },
    {
        "id": 3,
        "email": " K1.Held@EXAMPLE.org",
        "reason": "authority request",
        "placed_at": datetime(2025, 12, 1, 9),
        "released_at": None,
    },
    # Placed one second after the as-of: not in force for this run.
    {"id": 4, "email": "c107@example.org", "reason": "claim", "placed_at": AS_OF + SECOND, "released_at": None},
]
RESTRICTIONS = [
    {"id": 1, "email": "Restricted.Person@example.org", "requested_at": datetime(2026, 3, 1, 8), "lifted_at": None},
    {
        "id": 2,
        "email": "c108@example.org",
        "requested_at": datetime(2025, 1, 1, 8),
        "lifted_at": datetime(2025, 2, 1, 8),
    },  # lifted long ago
]

SUBSCRIBERS = [
    {
        "id": 301,
        "email": "n301@example.org",
        "first_name": "Bo",
        "country": "NL",
        "subscribed_at": datetime(2024, 1, 1, 12),
        "unsubscribed_at": datetime(2026, 11, 26, 2, 0, 0),
    },  # at deadline
    {
        "id": 302,
        "email": "n302@example.org",
        "first_name": "Cas",
        "country": "NL",
        "subscribed_at": datetime(2024, 1, 1, 12),
        "unsubscribed_at": datetime(2026, 11, 26, 2, 0, 1),
    },  # +1 s
    {
        "id": 303,
        "email": "n303@example.org",
        "first_name": "Dé",
        "country": "FR",
        "subscribed_at": datetime(2024, 2, 1, 12),
        "unsubscribed_at": datetime(2026, 11, 25, 23, 30),
    },
    {
        "id": 304,
        "email": "n304@example.org",
        "first_name": "Eli",
        "country": "BE",
        "subscribed_at": datetime(2024, 2, 1, 12),
        "unsubscribed_at": datetime(2026, 11, 26, 0, 30),
    },
    {
        "id": 305,
        "email": "n305@example.org",
        "first_name": "Fay",
        "country": "DE",
        "subscribed_at": datetime(2023, 5, 5, 5),
        "unsubscribed_at": None,
    },  # still subscribed
    {
        "id": 306,
        "email": None,
        "first_name": "Gus",
        "country": "NL",
        "subscribed_at": datetime(2023, 5, 5, 5),
        "unsubscribed_at": datetime(2026, 10, 1, 7),
    },  # no address
    {
        "id": 311,
        "email": HELD,
        "first_name": "Ann",
        "country": "NL",
        "subscribed_at": datetime(2022, 1, 1, 7),
        "unsubscribed_at": datetime(2026, 6, 1, 7),
    },  # held
    {
        "id": 312,
        "email": "RESTRICTED.person@example.org",
        "first_name": "Ann",
        "country": "NL",
        "subscribed_at": datetime(2022, 1, 1, 7),
        "unsubscribed_at": datetime(2026, 5, 5, 7),
    },  # restricted
    {
        "id": 313,
        "email": " Mixed.Case@Example.COM",
        "first_name": "Hal",
        "country": "GB",
        "subscribed_at": datetime(2022, 1, 1, 7),
        "unsubscribed_at": datetime(2026, 9, 9, 9),
    },
]
OLD_SUPPRESSED = "old.unsubscriber@example.org"  # already in the suppression list (by keyed hash)


def _event(eid: int, cookie_set_at: datetime) -> dict[str, Any]:
    return {
        "id": eid,
        "cookie_id": f"{eid:032x}",
        "cookie_set_at": cookie_set_at,
        "occurred_at": cookie_set_at + timedelta(minutes=5),
        "url": "https://www.planningpme.com/planning/pricing",
        "ip_address": f"192.0.2.{eid % 250}",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    }


WEB_EVENTS = [
    _event(401, datetime(2026, 8, 28, 2, 0, 0)),  # at deadline
    _event(402, datetime(2026, 8, 28, 2, 0, 1)),  # +1 s
    _event(403, datetime(2026, 8, 27, 23, 30)),  # due 2026-11-25 23:30
    _event(404, datetime(2026, 8, 28, 0, 30)),  # due 2026-11-26 00:30
    _event(405, datetime(2026, 11, 20, 12)),
    _event(406, datetime(2026, 8, 29, 0, 30)),  # due 2026-11-27 00:30
]


def _consent(cid: int, consented_at: datetime) -> dict[str, Any]:
    return {
        "id": cid,
        "cookie_id": f"{cid:032x}",
        "consented_at": consented_at,
        "categories": "analytics,ads",
        "ip_address": f"2001:db8::{cid}",
    }


COOKIE_CONSENTS = [
    _consent(501, datetime(2025, 10, 26, 2, 0, 0)),  # + 13 months = the as-of
    _consent(502, datetime(2025, 10, 26, 2, 0, 1)),  # +1 s
    _consent(503, datetime(2025, 10, 31, 23, 59, 59)),  # 2026-11-30 23:59:59 (clamped): kept
    _consent(504, datetime(2025, 8, 31, 23, 30)),  # 2026-09-30 23:30 (clamped): due
    _consent(505, datetime(2025, 10, 25, 23, 30)),  # 2026-11-25 23:30
    _consent(506, datetime(2025, 10, 26, 0, 30)),  # 2026-11-26 00:30
    _consent(507, datetime(2025, 12, 31, 12)),  # 2027-01-31
]

# --------------------------------------------------------------------------- expected outcomes

# What every rule (T1 first, as the nightly DAGs run) removes at AS_OF from the fresh estate.
REMOVED: dict[str, frozenset] = {
    "contacts": frozenset({101, 103, 105, 107, 108, 109, 110, 113, 117, 118}),
    "interactions": frozenset({1031, 1032, 1091}),
    "trial_signups": frozenset({602, 603}),
    "newsletter_subscribers": frozenset({301, 303, 304, 306, 313}),
    "web_events": frozenset({401, 403, 404}),
    "cookie_consents": frozenset({501, 504, 505, 506}),
}
ANONYMISED: dict[str, frozenset] = {
    "contacts": frozenset({201, 203, 205}),
    "interactions": frozenset({2011, 2051}),
}
ANONYMISED_VALUES = {
    "contacts": {
        "first_name": "anonymised",
        "last_name": "anonymised",
        "email": None,
        "phone": None,
        "job_title": None,
    },
    "interactions": {"notes": None},
}
DROPPED_TRIALS = frozenset({"due_now", "old_unconverted"})
# Deleted subscribers with an address: their keyed hashes join the suppression list.
SUPPRESSED = frozenset({"n301@example.org", "n303@example.org", "n304@example.org", " Mixed.Case@Example.COM"})

# What has its deadline exactly at AS_OF (or waits for something that has): untouched by a run
# one second earlier.
AT_DEADLINE: dict[str, frozenset] = {
    "contacts": frozenset({101, 103, 105, 118}),
    "interactions": frozenset({1031, 1032}),
    "trial_signups": frozenset({603}),
    "newsletter_subscribers": frozenset({301}),
    "web_events": frozenset({401}),
    "cookie_consents": frozenset({501}),
}
TRIALS_AT_DEADLINE = frozenset({"due_now"})
SUPPRESSED_AT_DEADLINE = frozenset({"n301@example.org"})

# Counts. "due" = eligible + exempt_hold + exempt_restriction + waiting (C1's extra).
# Every rule run at AS_OF - 1 s on the fresh estate, in DAG order: what each changes.
EARLY_RUN = {
    "T1": {"deleted": 1, "exempt_hold": 1},
    "C1": {"due": 10, "eligible": 6, "exempt_hold": 1, "exempt_restriction": 1, "waiting": 2, "deleted": 6},
    "K1": {"due": 4, "eligible": 3, "exempt_hold": 1, "exempt_restriction": 0, "anonymised": 3},
    "N1": {"due": 6, "eligible": 4, "exempt_hold": 1, "exempt_restriction": 1, "deleted": 4},
    "W1": {"due": 2, "eligible": 2, "deleted": 2},
    "W2": {"due": 3, "eligible": 3, "deleted": 3},
}
# Then every rule at AS_OF: exactly what is due at the as-of itself (T1 first frees contact 118).
AT_AS_OF_RUN = {
    "T1": {"eligible": 1, "deleted": 1, "exempt_hold": 1},
    "C1": {"due": 7, "eligible": 4, "exempt_hold": 1, "exempt_restriction": 1, "waiting": 1, "deleted": 4},
    "K1": {"due": 1, "eligible": 0, "exempt_hold": 1, "exempt_restriction": 0, "anonymised": 0},
    "N1": {"due": 3, "eligible": 1, "exempt_hold": 1, "exempt_restriction": 1, "deleted": 1},
    "W1": {"due": 1, "eligible": 1, "deleted": 1},
    "W2": {"due": 1, "eligible": 1, "deleted": 1},
}
# The nightly DAGs at AS_OF on the fresh estate (trials before crm): the report's counts.
NIGHTLY_RUN = {
    "T1": {"deleted": 2, "exempt_hold": 1},
    "C1": {"eligible": 10, "deleted": 10, "exempt_hold": 1, "exempt_restriction": 1, "waiting": 1},
    "K1": {"eligible": 3, "anonymised": 3, "exempt_hold": 1},
    "N1": {"eligible": 5, "deleted": 5, "exempt_hold": 1, "exempt_restriction": 1},
    "W1": {"eligible": 3, "deleted": 3},
    "W2": {"eligible": 4, "deleted": 4},
}
RULE_ORDER = ("T1", "C1", "K1", "N1", "W1", "W2")  # the DAGs' order: trials before crm

# --------------------------------------------------------------------------- connection logs

# Client fields and what truncation (IPv4 /24, IPv6 /48: anonip's defaults 8 and 80 bits) leaves.
LOG_CLIENTS = (
    ("83.149.9.216", "83.149.9.0"),
    ("24.236.252.67", "24.236.252.0"),
    ("2a01:e0a:1f3:9a40:c4f1:2b6e:91d0:7a15", "2a01:e0a:1f3::"),
    ("2001:4860:4860::8888", "2001:4860:4860::"),
    ("client.example.net", "client.example.net"),  # a resolved host name: not an address, kept
    ("93.114.45.13", "93.114.45.0"),
)
# Requests in the style of shared/data/apache_access_sample.log (combined log format).
LOG_REQUESTS = (
    '"GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 '
    '"http://semicomplete.com/presentations/logstash-monitorama-2013/" "Mozilla/5.0 (Macintosh; Intel Mac '
    'OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36"',
    '"GET /planning/free-trial HTTP/1.1" 200 18211 "https://www.google.com/" "Mozilla/5.0 (Windows NT '
    '10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"',
    '"GET /favicon.ico HTTP/1.1" 304 - "-" "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 '
    'Firefox/133.0"',
)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# File -> what the nightly run does to it at AS_OF.
LOG_FILES = {
    "access.log-20251126.gz": "deleted",  # L2: + 12 months = 2026-11-26 00:00
    "access.log-20251127.gz": "rewritten",  # L2 due tomorrow; L1 long due
    "access.log-20260601": "rewritten",  # uncompressed, L1 due
    "access.log-20260828.gz": "rewritten",  # L1: + 90 days = 2026-11-26 00:00
    "access.log-20260829.gz": "untouched",  # L1 due 2026-11-27
    "access.log-20261125": "untouched",
    "access.log": "untouched",  # the live log: never matched by the pattern
    "error.log": "untouched",
}


def log_lines(day: date, masked: bool) -> bytes:
    lines = []
    for i, (client, truncated) in enumerate(LOG_CLIENTS):
        stamp = f"{day.day:02d}/{MONTHS[day.month - 1]}/{day.year}:{3 + i:02d}:{7 * i:02d}:{11 * i % 60:02d} +0000"
        lines.append(f"{truncated if masked else client} - - [{stamp}] {LOG_REQUESTS[i % len(LOG_REQUESTS)]}\n")
    return "".join(lines).encode()


def log_day(name: str) -> date:
    stem = name.removeprefix("access.log-").removesuffix(".gz")
    return date(int(stem[:4]), int(stem[4:6]), int(stem[6:8])) if stem.isdigit() else AS_OF.date()


def expected_log_text(name: str) -> bytes:
    """A file's content (decompressed) after the nightly run."""
    if name == "error.log":
        return ERROR_LOG
    return log_lines(log_day(name), masked=LOG_FILES[name] == "rewritten")


ERROR_LOG = b"[Thu Nov 26 01:12:09 2026] [error] [client 83.149.9.216] File does not exist: /srv/www/x.php\n"


def write_weblogs(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in LOG_FILES:
        path = folder / name
        data = ERROR_LOG if name == "error.log" else log_lines(log_day(name), masked=False)
        if name.endswith(".gz"):
            with open(path, "wb") as raw, gzip.GzipFile(filename=name[:-3], mode="wb", fileobj=raw, mtime=0) as out:
                out.write(data)
        else:
            path.write_bytes(data)
        os.chmod(path, 0o640)


def read_weblogs(folder: Path) -> dict[str, bytes]:
    """Every file in the folder, decompressed (hidden temporary files included: none may remain)."""
    found = {}
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        found[path.name] = gzip.decompress(data) if path.name.endswith(".gz") else data
    return found


# --------------------------------------------------------------------------- building it


def _plain_engine(url: str, **kwargs) -> Engine:
    """SQLAlchemy alone (not Lethe's engine): the session is whatever the server gives."""
    return create_engine(url, **kwargs)


def _admin_engine(server_url: str) -> Engine:
    return _plain_engine(server_url, isolation_level="AUTOCOMMIT")


@dataclass
class ReferenceEstate:
    """The reference estate on one backend in one variant, with the helpers to look at it.

    ``urls``: connection id -> SQLAlchemy URL for ``crm``, ``marketing``, ``lethe_audit`` (made by
    the caller, e.g. conftest's ``estate`` fixture) and ``trials`` (set here: the server, or on
    SQLite a folder). Trial databases carry ``tag`` and the inventory copy admits only that tag.
    """

    backend: str
    variant: Variant
    urls: dict[str, str]
    root: Path
    server_url: str | None = None  # PostgreSQL/MariaDB: the server's admin URL
    tag: str = field(default_factory=lambda: f"{uuid.uuid4().hex[:8]}_")

    def __post_init__(self):
        self.weblogs = self.root / "weblogs"
        self.inventory_dir = self.root / "inventory"
        if self.backend == "sqlite":
            self.trial_folder = self.root / "trials"
            self.trial_folder.mkdir(parents=True, exist_ok=True)
            self.urls["trials"] = f"sqlite:///{self.trial_folder}"
        else:
            self.urls["trials"] = self.server_url

    # -- names

    @property
    def ts(self) -> str:
        return timestamp_type(self.backend, self.variant)

    def trial_name(self, label: str) -> str:
        return f"trial_{self.tag}{label}"

    @property
    def name_pattern(self) -> str:
        return rf"^trial_{self.tag}[a-z0-9_]{{1,40}}$"

    def qualified(self, conn_id: str, table: str) -> str:
        schema = self.variant.schema_for(conn_id) if self.backend == "postgresql" else None
        return f"{schema}.{table}" if schema else table

    def database(self, conn_id: str) -> str:
        return make_url(self.urls[conn_id]).database

    def tables(self, conn_id: str) -> dict[str, tuple[str, ...]]:
        """Every table this variant creates in a database, with its document columns."""
        found = dict(TABLES[conn_id])
        if self.variant.extras:
            found.update(EXTRA_TABLES[conn_id])
        return found

    # -- building

    def build(self) -> "ReferenceEstate":
        if self.backend == "postgresql" and self.variant.database_timezone:
            # Before any session that inserts: new sessions take the database's setting.
            admin = _admin_engine(self.server_url)
            with admin.connect() as conn:
                for conn_id in ("crm", "marketing"):
                    conn.execute(
                        text(
                            f"ALTER DATABASE {self.database(conn_id)} SET timezone TO "
                            f"'{self.variant.database_timezone}'"
                        )
                    )
            admin.dispose()
        self._create_schema("crm")
        self._create_schema("marketing")
        self._insert(
            "crm",
            {
                "companies": COMPANIES,
                "contacts": CONTACTS,
                "interactions": INTERACTIONS,
                "trial_signups": [self._signup(row) for row in TRIAL_SIGNUPS],
                "legal_holds": LEGAL_HOLDS,
                "restrictions": RESTRICTIONS,
                **(
                    {"products": EXTRA_ROWS["products"], "audit_log": EXTRA_ROWS["audit_log"]}
                    if self.variant.extras
                    else {}
                ),
            },
        )
        self._insert(
            "marketing",
            {
                "newsletter_subscribers": SUBSCRIBERS,
                "suppression_list": [
                    {
                        "email_hash": email_key(TEST_KEY, OLD_SUPPRESSED),
                        "added_at": datetime(2025, 3, 3, 3),
                        "reason": "newsletter unsubscribe (N1)",
                    }
                ],
                "cookie_consents": COOKIE_CONSENTS,
                "web_events": WEB_EVENTS,
                **({"campaigns": EXTRA_ROWS["campaigns"]} if self.variant.extras else {}),
            },
        )
        for label in TRIAL_LABELS_ON_SERVER:
            self._create_trial_database(self.trial_name(label))
        self._create_trial_database(OTHER_DATABASE.format(tag=self.tag))
        write_weblogs(self.weblogs)
        self.write_inventory()
        return self

    def _signup(self, row: dict[str, Any]) -> dict[str, Any]:
        return {**{k: v for k, v in row.items() if k != "label"}, "database_name": self.trial_name(row["label"])}

    def _create_schema(self, conn_id: str) -> None:
        engine = _plain_engine(self.urls[conn_id])
        schema = self.variant.schema_for(conn_id) if self.backend == "postgresql" else None
        with engine.begin() as conn:
            if schema:
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            for table, definitions in self.tables(conn_id).items():
                constraints, indexes = [], []
                if self.variant.on_delete:
                    for child, column, parent in FOREIGN_KEYS:
                        if child == table:
                            constraints.append(
                                f"CONSTRAINT fk_{child}_{column} FOREIGN KEY ({column}) REFERENCES "
                                f"{self.qualified(conn_id, parent)} (id) ON DELETE {self.variant.on_delete}"
                            )
                            indexes.append(
                                f"CREATE INDEX ix_{child}_{column} ON {self.qualified(conn_id, child)} ({column})"
                            )
                extra = self.variant.extras and table in TABLES[conn_id]
                columns = table_columns(definitions, self.variant) if extra else list(definitions)
                conn.execute(
                    text(create_table_sql(self.qualified(conn_id, table), table, columns, self.ts, constraints))
                )
                for statement in indexes:
                    conn.execute(text(statement))
        engine.dispose()

    def value(self, value: Any) -> Any:
        """A Python value as this variant stores it (every datetime here is naive UTC)."""
        if isinstance(value, datetime):
            if self.backend == "sqlite":
                return value.strftime("%Y-%m-%d %H:%M:%S")
            if self.variant.timestamptz:
                return value.replace(tzinfo=UTC)  # the instant, whatever the session's time zone
            return value
        if isinstance(value, date) and self.backend == "sqlite":
            return value.isoformat()
        return value

    def _insert(self, conn_id: str, rows_by_table: dict[str, list[dict[str, Any]]]) -> None:
        engine = _plain_engine(self.urls[conn_id])
        with engine.begin() as conn:
            for table, rows in rows_by_table.items():
                if not rows:
                    continue
                columns = list(rows[0])
                statement = text(
                    f"INSERT INTO {self.qualified(conn_id, table)} ({', '.join(columns)}) "
                    f"VALUES ({', '.join(':' + c for c in columns)})"
                )
                conn.execute(statement, [{c: self.value(row[c]) for c in columns} for row in rows])
        engine.dispose()

    def trial_url(self, name: str) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.trial_folder / (name + '.sqlite')}"
        return make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    def _create_trial_database(self, name: str) -> None:
        if self.backend != "sqlite":
            admin = _admin_engine(self.server_url)
            with admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {name}"))
            admin.dispose()
        engine = _plain_engine(self.trial_url(name))
        with engine.begin() as conn:
            for table, definitions in TRIAL_TABLES.items():
                conn.execute(text(create_table_sql(table, table, list(definitions), self.ts)))
            rows = {
                "users": [
                    {"id": 1, "name": "Trial Owner", "email": f"owner.{name}@example.net"},
                    {"id": 2, "name": "Second Planner", "email": None},
                ],
                "resources": [{"id": 1, "name": "Van 1"}, {"id": 2, "name": "Meeting room"}],
                "tasks": [
                    {
                        "id": i,
                        "resource_id": 1 + i % 2,
                        "title": f"Job {i}",
                        "starts_at": datetime(2026, 8, i, 8),
                        "ends_at": datetime(2026, 8, i, 17),
                    }
                    for i in (1, 2, 3)
                ],
            }
            for table, table_rows in rows.items():
                columns = list(table_rows[0])
                conn.execute(
                    text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"),
                    [{c: self.value(r[c]) for c in columns} for r in table_rows],
                )
        engine.dispose()

    # -- the inventory copy

    def write_inventory(self) -> Path:
        """Copy the project's inventory, then admit only this estate's trials and name the schemas."""
        self.inventory_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(Path(DEFAULT_INVENTORY).glob("*.yaml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            if data.get("kind") == "trial_databases":
                data["name_pattern"] = self.name_pattern
            schema = self.variant.schema_for(data.get("connection_id", "")) if self.backend == "postgresql" else None
            if data.get("kind") == "sql" and schema:
                data = {
                    **{k: v for k, v in data.items() if k not in ("tables", "rules", "exemptions")},
                    "schema": schema,
                    **{k: data[k] for k in ("exemptions", "tables", "rules") if k in data},
                }
            (self.inventory_dir / path.name).write_text(
                yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8"
            )
        return self.inventory_dir

    def inventory(self) -> Inventory:
        return load_inventory(self.inventory_dir)

    # -- looking

    def trials_present(self) -> set[str]:
        """Databases (SQLite: files) on the trial server that carry this estate's tag."""
        if self.backend == "sqlite":
            return {p.name.removesuffix(".sqlite") for p in self.trial_folder.iterdir()}
        admin = _admin_engine(self.server_url)
        query = "SELECT datname FROM pg_database" if self.backend == "postgresql" else "SHOW DATABASES"
        with admin.connect() as conn:
            names = {row[0] for row in conn.execute(text(query)) if self.tag in row[0]}
        admin.dispose()
        return names

    def trial_labels(self) -> set[str]:
        prefix = self.trial_name("")
        return {n.removeprefix(prefix) if n.startswith(prefix) else n for n in self.trials_present()}

    def expected_trials(self, dropped: frozenset[str]) -> set[str]:
        """The labels :meth:`trial_labels` should give once ``dropped`` are gone."""
        return {label for label in TRIAL_LABELS_ON_SERVER if label not in dropped} | {
            OTHER_DATABASE.format(tag=self.tag)
        }

    def snapshot(self) -> dict[str, dict[Any, dict[str, Any]]]:
        """Every row of every table this estate created, by table and primary key."""
        found = {}
        for conn_id in ("crm", "marketing"):
            engine = _plain_engine(self.urls[conn_id])
            with engine.connect() as conn:
                for table in self.tables(conn_id):
                    pk = PRIMARY_KEYS.get(table, "id")
                    rows = conn.execute(text(f"SELECT * FROM {self.qualified(conn_id, table)} ORDER BY {pk}"))
                    found[table] = {row._mapping[pk]: dict(row._mapping) for row in rows}
            engine.dispose()
        return found

    def drop_leftovers(self) -> None:
        """Drop every database on the trial server that carries this estate's tag."""
        if self.backend == "sqlite":
            return
        admin = _admin_engine(self.server_url)
        with admin.connect() as conn:
            for name in sorted(self.trials_present()):
                force = " WITH (FORCE)" if self.backend == "postgresql" else ""
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
        admin.dispose()


def all_ids() -> dict[str, set]:
    """Every primary key the fixture writes, by table (suppression list excepted)."""
    return {
        "companies": {r["id"] for r in COMPANIES},
        "contacts": {r["id"] for r in CONTACTS},
        "interactions": {r["id"] for r in INTERACTIONS},
        "trial_signups": {r["id"] for r in TRIAL_SIGNUPS},
        "legal_holds": {r["id"] for r in LEGAL_HOLDS},
        "restrictions": {r["id"] for r in RESTRICTIONS},
        "newsletter_subscribers": {r["id"] for r in SUBSCRIBERS},
        "web_events": {r["id"] for r in WEB_EVENTS},
        "cookie_consents": {r["id"] for r in COOKIE_CONSENTS},
    }


def expected_snapshot(before: dict, removed: dict[str, frozenset], anonymised: dict[str, frozenset]) -> dict:
    """``before`` with the given rows removed and overwritten (the suppression list is left out)."""
    after = copy.deepcopy(before)
    for table, ids in removed.items():
        for key in ids:
            after[table].pop(key, None)
    for table, ids in anonymised.items():
        for key in ids:
            after[table][key].update(ANONYMISED_VALUES[table])
    after.pop("suppression_list", None)
    return after


def minus(a: dict[str, frozenset], b: dict[str, frozenset]) -> dict[str, frozenset]:
    return {table: ids - b.get(table, frozenset()) for table, ids in a.items()}


def server_connection(url: str) -> str:
    """An ``AIRFLOW_CONN_*`` value for a SQLAlchemy URL (Airflow's own connection types)."""
    import json

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return f"sqlite:///{parsed.database}"
    return json.dumps(
        {
            "conn_type": "postgres" if backend == "postgresql" else "mysql",
            "host": parsed.host,
            "port": parsed.port,
            "login": parsed.username,
            "password": parsed.password,
            "schema": parsed.database,
        }
    )


# --------------------------------------------------------------------------- checking the fixture


def _on_delete(engine: Engine, key: dict) -> str:
    """A reflected foreign key's ON DELETE action (MariaDB's SHOW CREATE TABLE leaves RESTRICT out)."""
    found = (key.get("options") or {}).get("ondelete", "").upper()
    if found or engine.dialect.name != "mysql":
        return found
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT delete_rule FROM information_schema.referential_constraints "
                "WHERE constraint_schema = DATABASE() AND constraint_name = :name"
            ),
            {"name": key["name"]},
        ).scalar()


def check_layout(ref: ReferenceEstate) -> None:
    """The estate is what the variant says, before any rule ran: a failure here is the fixture's.

    Tables and columns (and their order), timestamp types, foreign keys, schemas, the database
    time zone, that stored instants are exactly the intended UTC instants, the trial databases
    and the log files.
    """
    variant, pg = ref.variant, ref.backend == "postgresql"
    for conn_id in ("crm", "marketing"):
        engine = _plain_engine(ref.urls[conn_id])
        insp = inspect(engine)
        schema = variant.schema_for(conn_id) if pg else None
        assert set(insp.get_table_names(schema=schema)) == set(ref.tables(conn_id)), f"fixture: {conn_id} tables"
        if schema:
            assert insp.get_table_names(schema="public") == [], f"fixture: {conn_id} has tables in public"
        for table, definitions in ref.tables(conn_id).items():
            live = insp.get_columns(table, schema=schema)
            names = [c["name"] for c in live]
            document = [column_name(d) for d in definitions]
            if variant.extras and table in TABLES[conn_id]:
                assert sorted(names) == sorted(document + [column_name(c) for c in EXTRA_COLUMNS]), table
                assert [n for n in names if n in document] != document, f"fixture: {table} in document order"
            else:
                assert names == document, f"fixture: {table} columns"
            stamps = {column_name(d) for d in definitions if "{ts}" in d}
            for column in live:
                if column["name"] not in stamps:
                    continue
                kind = column["type"]
                if pg:
                    assert bool(getattr(kind, "timezone", False)) == variant.timestamptz, (table, column)
                elif ref.backend == "mariadb":
                    assert type(kind).__name__ == "DATETIME", (table, column)
                    fsp = getattr(kind, "fsp", None) or 0
                    assert fsp == (6 if variant.fractional_seconds else 0), (table, column)
                else:
                    assert str(kind) == "TIMESTAMP", (table, column)
        for child, column, parent in FOREIGN_KEYS if conn_id == "crm" else ():
            keys = insp.get_foreign_keys(child, schema=schema)
            if variant.on_delete:
                assert [(k["constrained_columns"], k["referred_table"], _on_delete(engine, k)) for k in keys] == [
                    ([column], parent, variant.on_delete)
                ], (child, keys)
                assert any(i["column_names"] == [column] for i in insp.get_indexes(child, schema=schema)), child
            else:
                assert keys == [], (child, keys)
        with engine.connect() as conn:
            if pg and variant.database_timezone:
                assert conn.execute(text("SHOW timezone")).scalar() == variant.database_timezone, conn_id
            table = ref.qualified(conn_id, "contacts" if conn_id == "crm" else "newsletter_subscribers")
            column = "last_contact_at" if conn_id == "crm" else "unsubscribed_at"
            key = 101 if conn_id == "crm" else 301
            want = datetime(2023, 11, 26, 2, 0) if conn_id == "crm" else AS_OF
            stored = conn.execute(text(f"SELECT {column} FROM {table} WHERE id = {key}")).scalar()
            if isinstance(stored, str):
                stored = datetime.fromisoformat(stored)
            if stored.tzinfo is not None:
                stored = stored.astimezone(UTC).replace(tzinfo=None)
            assert stored == want, f"fixture: {table}.{column} of {key} is {stored}, not {want} UTC"
        engine.dispose()
    assert ref.trial_labels() == ref.expected_trials(frozenset()), "fixture: trial databases"
    assert sorted(read_weblogs(ref.weblogs)) == sorted(LOG_FILES), "fixture: log files"
    copies = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(ref.inventory_dir.glob("*.yaml"))]
    assert [c["name_pattern"] for c in copies if c.get("kind") == "trial_databases"] == [ref.name_pattern]
    assert {c["connection_id"]: c.get("schema") for c in copies if c.get("kind") == "sql"} == {
        conn_id: variant.schema_for(conn_id) if pg else None for conn_id in ("crm", "marketing")
    }
