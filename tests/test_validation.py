"""The checks before and after a SQL rule (Great Expectations), on SQLite, PostgreSQL and MariaDB.

The estate is the CRM as a DBA might have left it: no key or foreign-key constraints, the last
contact stored as text, the creation date nullable. Into a few hundred clean contacts go rows of
every kind the checks quarantine; each is counted exactly, none is touched, and the clean rows
around them are enforced as usual. Over the share the rule stops with nothing changed; a rule
whose delete does nothing fails its check after; a clean estate passes both checks; and neither
the results, the Data Docs nor the log hold a seeded value.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, func, insert, select

from lethe.audit import audit_table
from lethe.errors import QuarantineTooLarge
from lethe.report import write_run_report
from lethe.runner import check_after, enforce_rule, scan_rule, summarise_rule, validate_rule, with_validation
from lethe.sources.sql.actions import SqlDelete

AS_OF = datetime(2027, 3, 1)
OLD, RECENT = datetime(2020, 1, 1), datetime(2026, 12, 1)
# Values that must never leave the source: searched for in every result, page and log line.
SEEDED = ("quirijn", "zwanenburg", "pii-test.example", "+31 6 5555 0101", "jan(at)")

loose = MetaData()
companies = Table(
    "companies",
    loose,
    Column("id", Integer),
    Column("name", String(100)),
    Column("country", String(2)),
    Column("customer_since", DateTime),
    Column("customer_until", DateTime),
)
contacts = Table(
    "contacts",
    loose,
    Column("id", Integer),  # no primary key constraint: duplicates can happen
    Column("company_id", Integer),  # no foreign key: a link can dangle
    Column("first_name", String(100)),
    Column("last_name", String(100)),
    Column("email", String(254)),
    Column("phone", String(50)),
    Column("job_title", String(200)),
    Column("created_at", DateTime),  # nullable
    Column("last_contact_at", String(40)),  # a date kept as text
)
interactions = Table(
    "interactions",
    loose,
    Column("id", Integer),
    Column("contact_id", Integer),
    Column("occurred_at", String(40)),
    Column("channel", String(20)),
    Column("notes", Text),
)
trial_signups = Table(
    "trial_signups",
    loose,
    Column("id", Integer),
    Column("contact_id", Integer),
    Column("database_name", String(64)),
    Column("trial_started_at", DateTime),
    Column("trial_ends_at", DateTime),
    Column("subscribed_at", DateTime),
)
legal_holds = Table(
    "legal_holds",
    loose,
    Column("id", Integer),
    Column("email", String(254)),
    Column("reason", String(200)),
    Column("placed_at", DateTime),
    Column("released_at", DateTime),
)
restrictions = Table(
    "restrictions",
    loose,
    Column("id", Integer),
    Column("email", String(254)),
    Column("requested_at", DateTime),
    Column("lifted_at", DateTime),
)


def person(pid, *, created=OLD, last=None, email=None, company=1):
    return {
        "id": pid,
        "company_id": company,
        "first_name": "Quirijn",
        "last_name": "Zwanenburg",
        "email": email or f"person{pid}@pii-test.example",
        "phone": "+31 6 5555 0101",
        "job_title": "Planner",
        "created_at": created,
        "last_contact_at": last,
    }


def build(estate, *, clean: int, bad: bool = True) -> dict[str, set]:
    """Companies 1 (prospect) and 2 (customer); ``clean`` due and ``clean`` recent prospects from
    id 100; with ``bad``, one row of each kind the checks quarantine. Returns ids by outcome."""
    engine = estate.engine("crm")
    loose.drop_all(engine)
    loose.create_all(engine)
    rows = [person(100 + i, last="2020-06-01") for i in range(clean)]
    rows += [person(1000 + i, last="2026-12-01 10:00:00") for i in range(clean)]
    talks = [
        {"id": i + 1, "contact_id": 100 + i, "occurred_at": "2021-01-01", "channel": "email", "notes": "Belde Quirijn"}
        for i in range(clean)
    ]
    kept_bad = set()
    if bad:
        rows += [
            person(3, last="last spring"),  # trigger_unparseable
            person(4, last="2031-01-01"),  # trigger_in_future
            person(5, created=None),  # trigger_missing: no date at all
            person(6, email="jan(at)pii-test.example"),  # address_unnormalisable
            person(7, last="2020-01-01"),  # key_duplicate (twice)
            person(7, last="2020-01-01"),
            person(8, company=99),  # company_missing
            person(10, last="2020-01-01"),  # its interaction's date is not a date: trigger_unparseable
        ]
        talks += [
            {"id": 9001, "contact_id": 10, "occurred_at": "soon", "channel": "phone", "notes": None},
            {"id": 9002, "contact_id": 77, "occurred_at": "2020-01-01", "channel": "form", "notes": None},  # orphan
        ]
        kept_bad = {3, 4, 5, 6, 7, 8, 10}
    with engine.begin() as conn:
        conn.execute(
            insert(companies),
            [
                {"id": 1, "name": "Prospect BV", "country": "NL", "customer_since": None, "customer_until": None},
                {"id": 2, "name": "Klant BV", "country": "NL", "customer_since": OLD, "customer_until": None},
            ],
        )
        conn.execute(insert(contacts), rows)
        conn.execute(insert(interactions), talks)
    return {
        "due": {100 + i for i in range(clean)},
        "recent": {1000 + i for i in range(clean)},
        "bad": kept_bad,
    }


def contact_ids(estate) -> Counter:
    with estate.engine("crm").connect() as conn:
        return Counter(conn.execute(select(contacts.c.id)).scalars())


def run_checked(ctx, rule_id):
    """The DAG's steps for one rule: scan, checks before, enforce, check after, summarise."""
    scanned = scan_rule(ctx, rule_id)
    before = validate_rule(ctx, rule_id)
    enforced = enforce_rule(ctx, rule_id, with_validation(scanned, before))
    after = check_after(ctx, rule_id)
    return summarise_rule(ctx, rule_id, enforced, after), before, after


EXPECTED_REASONS = {
    "trigger_unparseable": 2,
    "trigger_in_future": 1,
    "trigger_missing": 1,
    "address_unnormalisable": 1,
    "key_duplicate": 2,
    "company_missing": 1,
    "parent_missing": 1,
}


def test_bad_rows_are_quarantined_counted_and_kept_while_clean_rows_are_enforced(estate, backend, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="lethe")
    ids = build(estate, clean=100)
    before_ids = contact_ids(estate)
    ctx = estate.context(AS_OF, run_id="night")

    result, before, after = run_checked(ctx, "C1")

    assert before["verdict"] == "quarantined"
    assert before["reasons"] == EXPECTED_REASONS
    # One row can fail one check only here: eight contacts (id 7 twice) are kept out.
    assert result["quarantined"] == 8 and result["quarantine"] == EXPECTED_REASONS
    assert result["deleted"] == len(ids["due"]) == result["eligible"]
    assert after["verdict"] == "passed" and result["remaining_after"] == 0 and result["status"] == "ok"
    left = contact_ids(estate)
    assert set(left) == ids["recent"] | ids["bad"]
    assert left[7] == 2 and all(left[i] == before_ids[i] for i in ids["bad"])
    with estate.engine("crm").connect() as conn:
        orphan = conn.execute(select(func.count()).select_from(interactions).where(interactions.c.id == 9002))
        assert orphan.scalar_one() == 1
    # Samples name subjects by audit key (64 hex), never by value.
    assert set(before["samples"]) == set(EXPECTED_REASONS) - {"parent_missing"}
    assert all(len(key) == 64 for keys in before["samples"].values() for key in keys)
    # The audit trail counts the quarantine in the rule's summary.
    with estate.engine("lethe_audit").connect() as conn:
        details = conn.execute(
            select(audit_table.c.details).where(audit_table.c.action == "rule_summary", audit_table.c.rule_id == "C1")
        ).scalar_one()
    summary = json.loads(details)
    assert summary["quarantined"] == 8 and summary["quarantine"] == EXPECTED_REASONS
    assert summary["before"] == "quarantined"

    # No seeded value in the results, the Data Docs or the log.
    root = tmp_path / "reports"
    run = {"run_id": "night", "as_of": AS_OF.isoformat(), "dry_run": False, "rules": ["C1"]}
    path, failed = write_run_report(
        dag_id="lethe_crm_retention",
        run=run,
        results={"C1": result},
        root=root,
        checks={"C1": {"before": before, "after": after}},
    )
    assert failed == []
    folder = path.parent
    written = [p for p in folder.rglob("*") if p.is_file() and "static" not in p.parts]
    assert (folder / "validation" / "C1.before.json").exists() and (folder / "data_docs" / "index.html").exists()
    assert any("validations" in p.parts for p in written)
    html = (folder / "report.html").read_text()
    assert "data_docs/index.html" in html and "duplicate key" in html
    for p in written:
        text = p.read_text(errors="replace").lower()
        for value in SEEDED:
            assert value.lower() not in text, f"{value!r} in {p.relative_to(folder)}"
    for value in SEEDED:
        assert value.lower() not in caplog.text.lower()


def test_over_the_share_the_rule_stops_and_nothing_changes(estate, backend):
    build(estate, clean=10)  # 8 bad rows in 28: far over 5%
    before_ids = contact_ids(estate)
    ctx = estate.context(AS_OF, run_id="night")
    scan_rule(ctx, "C1")
    with pytest.raises(
        QuarantineTooLarge, match=r"8 of 28 rows of contacts \(28\.6%\).*more than the 5% allowed"
    ) as exc:
        validate_rule(ctx, "C1")
    assert exc.value.validation["verdict"] == "stopped"
    assert contact_ids(estate) == before_ids
    with estate.engine("lethe_audit").connect() as conn:
        stopped = conn.execute(select(audit_table.c.details).where(audit_table.c.action == "validation_stopped"))
        assert json.loads(stopped.scalar_one())["quarantine"]["key_duplicate"] == 2


def test_a_delete_that_does_nothing_fails_the_check_after(estate, backend, monkeypatch):
    ids = build(estate, clean=20, bad=False)
    monkeypatch.setattr(SqlDelete, "change", lambda self, conn, rows: {})
    result, before, after = run_checked(estate.context(AS_OF, run_id="sabotaged"), "C1")
    assert before["verdict"] == "passed"
    assert after["verdict"] == "failed" and after["remaining"] == len(ids["due"])
    assert result["status"] == "incomplete" and result["remaining_after"] == len(ids["due"])
    # A dry run leaves everything by design: its check after reports it and does not fail the rule.
    dry, _, dry_after = run_checked(estate.context(AS_OF, run_id="dry", dry_run=True), "C1")
    assert dry_after["remaining"] == len(ids["due"]) and dry["status"] == "ok"


def test_a_clean_estate_passes_both_checks(estate, backend):
    ids = build(estate, clean=30, bad=False)
    result, before, after = run_checked(estate.context(AS_OF, run_id="clean"), "C1")
    assert before["verdict"] == "passed" and before["reasons"] == {} and result["quarantined"] == 0
    assert after["verdict"] == "passed" and result["deleted"] == len(ids["due"])
    assert set(contact_ids(estate)) == ids["recent"]
