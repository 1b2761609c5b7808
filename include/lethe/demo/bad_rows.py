"""A few rows of each kind the checks before a rule quarantine, added to the demo estate.

So that ``make demo`` shows quarantine at work: each is kept, counted and reported, and the clean
rows around it are enforced as usual. Far below the share that stops a rule (5%). SQLite only
(the embedded default): the demo's constraints are switched off for the writes that break them,
as a bulk load or a hand edit would.

* CRM ``contacts``: a last contact that is not a date, a creation date in the future, an address
  that is not an e-mail address, a company link to a company that does not exist; an
  ``interactions`` row whose contact does not exist;
* CRM ``trial_signups``: a second row naming a trial's database, a trial that ends before it
  starts;
* marketing: a consent date that is not a date, a cookie set in the future;
* connection logs: a gzip file cut short (a rewrite would fail half-way) and a file named after a
  day that does not exist.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

FILE_PATTERN_DAY = "access.log-{:%Y%m%d}"


def _next_id(db: sqlite3.Connection, table: str) -> int:
    return int(db.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}").fetchone()[0])  # noqa: S608 (demo names)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def add_bad_rows(estate: Path, as_of: datetime) -> dict[str, int]:
    """Add the bad rows to the demo estate in ``estate``; returns how many of each were added."""
    added: dict[str, int] = {}
    long_ago, far_ahead = as_of - timedelta(days=5 * 365), as_of + timedelta(days=400)
    with closing(sqlite3.connect(estate / "crm.sqlite")) as db, db:
        db.execute("PRAGMA foreign_keys=OFF")
        contact = _next_id(db, "contacts")
        rows = [
            (contact, None, "Onbekend", "Datum", "onbekend.datum@example.nl", _stamp(long_ago), "sometime in 2021"),
            (contact + 1, None, "Toekomst", "Import", "toekomst@example.nl", _stamp(far_ahead), None),
            (contact + 2, None, "Geen", "Adres", "g.adres(at)example.nl", _stamp(long_ago), None),
            (contact + 3, 999_999, "Verloren", "Bedrijf", "verloren@example.nl", _stamp(long_ago), None),
        ]
        db.executemany(
            "INSERT INTO contacts (id, company_id, first_name, last_name, email, created_at, last_contact_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        added["contacts"] = len(rows)
        db.execute(
            "INSERT INTO interactions (id, contact_id, occurred_at, channel, notes) VALUES (?, ?, ?, 'email', NULL)",
            (_next_id(db, "interactions"), 999_999, _stamp(long_ago)),
        )
        added["interactions"] = 1
        signup = _next_id(db, "trial_signups")
        named = db.execute(
            "SELECT database_name, contact_id FROM trial_signups WHERE subscribed_at IS NULL ORDER BY id LIMIT 1"
        ).fetchone()
        if named:
            db.execute(
                "INSERT INTO trial_signups (id, contact_id, database_name, trial_started_at, trial_ends_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (signup, named[1], named[0], _stamp(long_ago - timedelta(days=30)), _stamp(long_ago)),
            )
            db.execute(
                "INSERT INTO trial_signups (id, contact_id, database_name, trial_started_at, trial_ends_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (signup + 1, named[1], "trial_inverted_dates", _stamp(long_ago), _stamp(long_ago - timedelta(days=30))),
            )
            added["trial_signups"] = 2
    with closing(sqlite3.connect(estate / "marketing.sqlite")) as db, db:
        db.execute(
            "INSERT INTO cookie_consents (id, cookie_id, consented_at, categories, ip_address) "
            "VALUES (?, ?, 'yesterday', 'analytics', NULL)",
            (_next_id(db, "cookie_consents"), "f" * 32),
        )
        db.execute(
            "INSERT INTO web_events (id, cookie_id, cookie_set_at, occurred_at, url, ip_address, user_agent) "
            "VALUES (?, ?, ?, ?, 'https://www.planningpme.nl/', NULL, NULL)",
            (_next_id(db, "web_events"), "e" * 32, _stamp(far_ahead), _stamp(far_ahead)),
        )
        added["marketing"] = 2
    added["weblogs"] = _bad_logs(estate / "weblogs", as_of)
    return added


def _bad_logs(folder: Path, as_of: datetime) -> int:
    """Cut short one gzip log that L1 would rewrite tonight; add a log named after 31 November."""
    if not folder.is_dir():
        return 0
    count = 0
    day = datetime(as_of.year, as_of.month, as_of.day) - timedelta(days=120)
    gz = folder / (FILE_PATTERN_DAY.format(day) + ".gz")
    if gz.exists():
        data = gz.read_bytes()
        gz.write_bytes(data[: len(data) // 2])
        count += 1
    impossible = folder / "access.log-20251131"
    impossible.write_bytes(b'192.0.2.1 - - [30/Nov/2025:23:59:59 +0000] "GET / HTTP/1.1" 200 512 "-" "demo"\n')
    return count + 1
