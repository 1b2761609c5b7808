"""Each rule one second before and after its deadline, holds and restrictions, anonymisation.

The dates are the policy's own examples: 3 years after 2024-02-29 is 2027-02-28; 13 months after
2025-01-31 is 2026-02-28.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from lethe.audit import audit_table
from lethe.demo import schema
from lethe.runner import run_rule, scan_rule
from lethe.subjects import email_key

from conftest import TEST_KEY

SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
EMAIL = "Ann.Lee@Example.com"


def empty_estate(estate):
    for meta, conn_id in ((schema.crm, "crm"), (schema.marketing, "marketing")):
        meta.drop_all(estate.engine(conn_id))
        meta.create_all(estate.engine(conn_id))


def add(estate, conn_id, table, *rows):
    with estate.engine(conn_id).begin() as conn:
        conn.execute(insert(table), list(rows))


def company(cid, since=None, until=None):
    return {"id": cid, "name": f"Company {cid}", "country": "NL", "customer_since": since, "customer_until": until}


def contact(pid, company_id, *, created, last=None, email=EMAIL):
    return {
        "id": pid,
        "company_id": company_id,
        "first_name": "Ann",
        "last_name": "Lee",
        "email": email,
        "phone": "+31 20 123 4567",
        "job_title": "Planner",
        "created_at": created,
        "last_contact_at": last,
    }


def ids(estate, conn_id, table):
    with estate.engine(conn_id).connect() as conn:
        return set(conn.execute(select(table.c[list(table.primary_key.columns)[0].name])).scalars())


# Each case: rule, how to lay out one subject, the deadline, the overdue instant, what to look at.
def c1_layout(estate):
    add(estate, "crm", schema.companies, company(1))
    add(estate, "crm", schema.contacts, contact(1, 1, created=datetime(2023, 5, 1), last=datetime(2024, 2, 29, 10)))
    add(
        estate,
        "crm",
        schema.interactions,
        {
            "id": 1,
            "contact_id": 1,
            "occurred_at": datetime(2024, 1, 5),
            "channel": "email",
            "notes": "Asked for a quote",
        },
    )


def c1_created_only(estate):
    add(estate, "crm", schema.companies, company(1))
    add(estate, "crm", schema.contacts, contact(1, None, created=datetime(2024, 2, 29, 10)))


def c1_newest_interaction(estate):
    add(estate, "crm", schema.companies, company(1))
    add(estate, "crm", schema.contacts, contact(1, 1, created=datetime(2020, 1, 1), last=datetime(2021, 1, 1)))
    add(
        estate,
        "crm",
        schema.interactions,
        {"id": 1, "contact_id": 1, "occurred_at": datetime(2024, 2, 29, 10), "channel": "meeting", "notes": "Demo"},
    )


def k1_layout(estate):
    add(estate, "crm", schema.companies, company(1, since=date(2015, 1, 1), until=date(2020, 2, 29)))
    add(estate, "crm", schema.contacts, contact(1, 1, created=datetime(2016, 1, 1)))


def n1_layout(estate):
    add(
        estate,
        "marketing",
        schema.newsletter_subscribers,
        {
            "id": 1,
            "email": EMAIL,
            "first_name": "Ann",
            "country": "NL",
            "subscribed_at": datetime(2025, 1, 1),
            "unsubscribed_at": datetime(2026, 1, 31, 23, 59, 59),
        },
    )


def w1_layout(estate):
    add(
        estate,
        "marketing",
        schema.web_events,
        {
            "id": 1,
            "cookie_id": "c" * 32,
            "cookie_set_at": datetime(2025, 11, 28, 12),
            "occurred_at": datetime(2025, 11, 28, 12, 5),
            "url": "https://www.planningpme.fr/",
            "ip_address": "192.0.2.7",
            "user_agent": "Mozilla/5.0",
        },
    )


def w2_layout(estate):
    add(
        estate,
        "marketing",
        schema.cookie_consents,
        {
            "id": 1,
            "cookie_id": "d" * 32,
            "consented_at": datetime(2025, 1, 31),
            "categories": "analytics",
            "ip_address": "2001:db8::7",
        },
    )


CASES = {
    "C1-last-contact-leap-day": ("C1", c1_layout, datetime(2027, 2, 28, 10), "crm", schema.contacts),
    "C1-created-only": ("C1", c1_created_only, datetime(2027, 2, 28, 10), "crm", schema.contacts),
    "C1-newest-interaction": ("C1", c1_newest_interaction, datetime(2027, 2, 28, 10), "crm", schema.contacts),
    "K1-leap-day-contract-end": ("K1", k1_layout, datetime(2025, 2, 28), "crm", schema.contacts),
    "N1-unsubscribed": ("N1", n1_layout, datetime(2026, 1, 31, 23, 59, 59), "marketing", schema.newsletter_subscribers),
    "W1-cookie-90-days": ("W1", w1_layout, datetime(2026, 2, 26, 12), "marketing", schema.web_events),
    "W2-consent-13-months": ("W2", w2_layout, datetime(2026, 2, 28), "marketing", schema.cookie_consents),
}
OVERDUE_AFTER = {"N1": timedelta(days=7)}


@pytest.mark.parametrize("case", list(CASES))
def test_one_second_before_and_at_the_deadline(estate, case):
    rule, layout, deadline, conn_id, table = CASES[case]
    empty_estate(estate)
    layout(estate)
    scans = {offset: scan_rule(estate.context(deadline + offset), rule) for offset in (-SECOND, timedelta(0), SECOND)}
    assert [scans[o]["eligible"] for o in (-SECOND, timedelta(0), SECOND)] == [0, 1, 1]

    # Overdue: one nightly run after the deadline (N1: 7 days after the unsubscribe).
    overdue_at = deadline + OVERDUE_AFTER.get(rule, DAY)
    assert scan_rule(estate.context(overdue_at - SECOND), rule)["overdue_before"] == 0
    assert scan_rule(estate.context(overdue_at), rule)["overdue_before"] == 1

    before = run_rule(estate.context(deadline - SECOND, run_id="early"), rule)
    assert before["deleted"] + before["anonymised"] == 0
    assert ids(estate, conn_id, table) == {1}
    at = run_rule(estate.context(deadline, run_id="on-time"), rule)
    assert at["deleted"] + at["anonymised"] == 1 and at["remaining_after"] == 0
    if rule == "K1":
        with estate.engine("crm").connect() as conn:
            row = conn.execute(select(schema.contacts)).mappings().one()
        assert (row["first_name"], row["last_name"], row["email"], row["phone"], row["job_title"]) == (
            "anonymised",
            "anonymised",
            None,
            None,
            None,
        )
    else:
        assert ids(estate, conn_id, table) == set()


def trial_on_the_server(estate):
    """Contact 1's sign-up names the trial database trial_ann, which is on the (SQLite) trial
    server: C1 waits for T1. Returns the database's file (unlink it: T1 dropped it)."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    add(
        estate,
        "crm",
        schema.trial_signups,
        {
            "id": 1,
            "contact_id": 1,
            "database_name": "trial_ann",
            "trial_started_at": datetime(2023, 5, 1),
            "trial_ends_at": datetime(2023, 5, 31),
        },
    )
    trial_file = Path(make_url(estate.urls["trials"]).database) / "trial_ann.sqlite"
    trial_file.write_bytes(b"")
    return trial_file


def test_c1_waits_for_the_trial_database_then_deletes_interactions_and_signups(estate):
    empty_estate(estate)
    c1_layout(estate)
    add(estate, "crm", schema.contacts, contact(2, 1, created=datetime(2026, 1, 1), email="keep@example.com"))
    add(
        estate,
        "crm",
        schema.interactions,
        {"id": 2, "contact_id": 2, "occurred_at": datetime(2026, 1, 2), "channel": "phone", "notes": "call back"},
    )
    trial_file = trial_on_the_server(estate)
    # While the trial database is on the server, its sign-up row must stay: the contact waits.
    waiting = run_rule(estate.context(datetime(2027, 3, 1)), "C1")
    assert waiting["deleted"] == 0 and waiting["extra"]["waiting"] == 1 and waiting["remaining_after"] == 0
    assert waiting["due"] == 1 and waiting["eligible"] == 0
    assert ids(estate, "crm", schema.contacts) == {1, 2}
    trial_file.unlink()  # gone from the server (dropped by T1, or never there)
    result = run_rule(estate.context(datetime(2027, 3, 1), run_id="after-t1"), "C1")
    assert result["deleted"] == 1 and result["related"] == {"interactions": 1, "trial_signups": 1}
    assert ids(estate, "crm", schema.contacts) == {2}
    assert ids(estate, "crm", schema.interactions) == {2}
    assert ids(estate, "crm", schema.trial_signups) == set()


def test_c1_check_after_counts_what_it_decided_was_waiting_even_if_t1_drops_it_meanwhile(estate):
    """The nightly DAGs run at once: T1 may drop the trial database between C1's enforce task and
    its check after (another task). The contact was waiting when C1 decided; it is not "left"."""
    from lethe.runner import check_after, enforce_rule, scan_rule

    empty_estate(estate)
    c1_layout(estate)
    trial_file = trial_on_the_server(estate)
    ctx = estate.context(datetime(2027, 3, 1))
    enforced = enforce_rule(ctx, "C1", scan_rule(ctx, "C1"))
    assert enforced["deleted"] == 0 and enforced["extra"]["waiting"] == 1 and enforced["waited"] == [1]
    trial_file.unlink()  # T1 drops it now, before C1's check after runs
    after = estate.context(datetime(2027, 3, 1))  # a new task: its actions read the trial server afresh
    assert check_after(after, "C1", enforced)["remaining"] == 0
    assert check_after(after, "C1")["remaining"] == 1  # read afresh, the contact is due now
    assert ids(estate, "crm", schema.contacts) == {1}


def test_active_and_former_customers_are_not_prospects(estate):
    empty_estate(estate)
    add(
        estate,
        "crm",
        schema.companies,
        company(1, since=date(2010, 1, 1)),  # active
        company(2, since=date(2010, 1, 1), until=date(2030, 1, 1)),  # ends later
        company(3, since=date(2010, 1, 1), until=date(2024, 1, 1)),
    )  # former, < 5 y
    for pid, cid in ((1, 1), (2, 2), (3, 3)):
        add(
            estate,
            "crm",
            schema.contacts,
            contact(pid, cid, created=datetime(2012, 1, 1), last=datetime(2013, 1, 1), email=f"p{pid}@example.com"),
        )
    ctx = estate.context(datetime(2026, 11, 26))
    assert run_rule(ctx, "C1")["deleted"] == 0
    assert run_rule(ctx, "K1")["anonymised"] == 0
    assert ids(estate, "crm", schema.contacts) == {1, 2, 3}


HOLD_CASES = {
    # (table, row, exempt at the as-of 2027-03-01?)
    "hold-in-force": (
        "legal_holds",
        {"placed_at": datetime(2027, 1, 1), "released_at": None, "reason": "dispute"},
        True,
    ),
    "hold-placed-at-as-of": (
        "legal_holds",
        {"placed_at": datetime(2027, 3, 1), "released_at": None, "reason": "claim"},
        True,
    ),
    "hold-placed-after": (
        "legal_holds",
        {"placed_at": datetime(2027, 3, 1) + SECOND, "released_at": None, "reason": "claim"},
        False,
    ),
    "hold-released-at-as-of": (
        "legal_holds",
        {"placed_at": datetime(2026, 1, 1), "released_at": datetime(2027, 3, 1), "reason": "dispute"},
        False,
    ),
    "hold-released-after": (
        "legal_holds",
        {"placed_at": datetime(2026, 1, 1), "released_at": datetime(2027, 3, 1) + SECOND, "reason": "dispute"},
        True,
    ),
    "restriction-in-force": ("restrictions", {"requested_at": datetime(2026, 6, 1), "lifted_at": None}, True),
    "restriction-lifted": (
        "restrictions",
        {"requested_at": datetime(2026, 6, 1), "lifted_at": datetime(2027, 2, 1)},
        False,
    ),
}


@pytest.mark.parametrize("case", list(HOLD_CASES))
@pytest.mark.parametrize("rule", ["C1", "N1", "K1"])
def test_holds_and_restrictions_win_over_every_rule(estate, case, rule):
    table_name, row, exempt = HOLD_CASES[case]
    empty_estate(estate)
    {"C1": c1_layout, "N1": n1_layout, "K1": k1_layout}[rule](estate)
    table = schema.legal_holds if table_name == "legal_holds" else schema.restrictions
    # Written as a person might type it: other case, spaces around.
    add(estate, "crm", table, {"id": 1, "email": "  ann.lee@EXAMPLE.COM ", **row})
    result = run_rule(estate.context(datetime(2027, 3, 1)), rule)
    changed = result["deleted"] + result["anonymised"]
    if exempt:
        assert changed == 0
        assert result["exempt_hold" if table_name == "legal_holds" else "exempt_restriction"] == 1
    else:
        assert changed == 1 and result["exempt_hold"] + result["exempt_restriction"] == 0


def test_n1_suppresses_the_address_by_keyed_hash_only(estate):
    empty_estate(estate)
    n1_layout(estate)
    result = run_rule(estate.context(datetime(2026, 2, 1)), "N1")
    assert result["deleted"] == 1
    with estate.engine("marketing").connect() as conn:
        rows = conn.execute(select(schema.suppression_list)).mappings().all()
    assert [r["email_hash"] for r in rows] == [email_key(TEST_KEY, " ann.lee@example.COM")]
    assert rows[0]["added_at"] == datetime(2026, 2, 1) and "N1" in rows[0]["reason"]


def test_anonymisation_leaves_nothing_recoverable(estate, backend):
    empty_estate(estate)
    k1_layout(estate)
    add(
        estate,
        "crm",
        schema.interactions,
        {
            "id": 1,
            "contact_id": 1,
            "occurred_at": datetime(2019, 1, 1),
            "channel": "email",
            "notes": "Ann Lee asked to call +31 20 123 4567",
        },
    )
    result = run_rule(estate.context(datetime(2026, 11, 26)), "K1")
    assert result["anonymised"] == 1 and result["related"] == {"interactions": 1}
    originals = ["Ann", "Lee", "ann.lee", "123 4567", "Planner", email_key(TEST_KEY, EMAIL)]
    with estate.engine("crm").connect() as conn:
        contact_row = conn.execute(select(schema.contacts)).mappings().one()
        notes = conn.execute(select(schema.interactions.c.notes)).scalar_one()
    assert notes is None
    text = " ".join(str(v) for v in contact_row.values())
    for original in originals:
        assert original.lower() not in text.lower()
    if backend == "sqlite":
        # secure_delete: the old values are not left in free pages of the file either.
        raw = open(estate.urls["crm"].removeprefix("sqlite:///"), "rb").read()
        for original in ("ann.lee@example.com".encode(), b"Planner", b"asked to call"):
            assert original.lower() not in raw.lower()


def test_audit_holds_keyed_hashes_not_addresses(estate):
    empty_estate(estate)
    c1_layout(estate)
    run_rule(estate.context(datetime(2027, 3, 1)), "C1")
    with estate.engine("lethe_audit").connect() as conn:
        rows = conn.execute(select(audit_table)).mappings().all()
    deleted = [r for r in rows if r["action"] == "deleted"]
    assert len(deleted) == 1 and deleted[0]["subject_key"] == email_key(TEST_KEY, EMAIL)
    assert deleted[0]["record_count"] == 2  # the contact and its interaction
    dump = repr([dict(r) for r in rows]).lower()
    for original in ("ann.lee", "example.com", "lee", "4567", "quote"):
        assert original not in dump


# Only SQLite stores text in a timestamp column; PostgreSQL and MariaDB refuse it themselves.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_trigger_that_is_not_a_date_stops_the_rule_when_too_many_rows_fail(estate):
    """Half the table cannot be judged: far over the share, so the rule stops, changing nothing."""
    from lethe.errors import BadData

    empty_estate(estate)
    c1_layout(estate)
    add(estate, "crm", schema.contacts, contact(2, 1, created=datetime(2020, 1, 1), email="b@example.com"))
    with estate.engine("crm").begin() as conn:
        conn.exec_driver_sql("UPDATE contacts SET last_contact_at = 'last spring' WHERE id = 2")
    with pytest.raises(
        BadData, match=r"1 of 2 rows of contacts \(50\.0%\).*trigger_unparseable.*contacts\.last_contact_at"
    ):
        run_rule(estate.context(datetime(2027, 3, 1)), "C1")
    assert ids(estate, "crm", schema.contacts) == {1, 2}


def test_records_without_an_address_are_decided_while_holds_are_in_force(estate):
    """A hold names an address: it cannot keep a record that has none (NULL or blank)."""
    empty_estate(estate)
    old = dict(created=datetime(2020, 1, 1), last=datetime(2021, 1, 1))
    add(estate, "crm", schema.companies, company(1), company(2, since=date(2010, 1, 1), until=date(2015, 1, 1)))
    add(
        estate,
        "crm",
        schema.contacts,
        contact(1, 1, **old),  # held (EMAIL)
        contact(2, 1, **old, email=None),  # no address: due, deleted
        contact(3, 1, **old, email=""),  # blank address: due, deleted
        contact(4, 1, **old, email="other@example.com"),  # due, deleted
        contact(5, 1, created=datetime(2026, 1, 1), email=None),  # no address, not due: kept
        contact(6, 1, **old, email="restricted@example.com"),  # restricted
        contact(7, 2, created=datetime(2012, 1, 1), email=None),
    )  # former customer, no address: K1
    add(
        estate,
        "crm",
        schema.legal_holds,
        {"id": 1, "email": EMAIL.upper(), "reason": "dispute", "placed_at": datetime(2026, 1, 1), "released_at": None},
    )
    add(
        estate,
        "crm",
        schema.restrictions,
        {"id": 1, "email": " Restricted@Example.com", "lifted_at": None, "requested_at": datetime(2026, 1, 1)},
    )
    add(
        estate,
        "marketing",
        schema.newsletter_subscribers,
        *[
            {
                "id": i,
                "email": email,
                "first_name": "Ann",
                "country": "NL",
                "subscribed_at": datetime(2025, 1, 1),
                "unsubscribed_at": datetime(2026, 1, 1),
            }
            for i, email in ((1, EMAIL), (2, None), (3, ""))
        ],
    )
    as_of = datetime(2027, 3, 1)

    c1 = run_rule(estate.context(as_of), "C1")
    assert (c1["due"], c1["eligible"], c1["exempt_hold"], c1["exempt_restriction"], c1["extra"]["waiting"]) == (
        5,
        3,
        1,
        1,
        0,
    )
    assert c1["due"] == c1["eligible"] + c1["exempt_hold"] + c1["exempt_restriction"] + c1["extra"]["waiting"]
    assert c1["deleted"] == 3 and c1["remaining_after"] == 0
    assert ids(estate, "crm", schema.contacts) == {1, 5, 6, 7}

    k1 = run_rule(estate.context(as_of, run_id="k1"), "K1")
    assert (k1["due"], k1["eligible"], k1["anonymised"]) == (1, 1, 1)
    with estate.engine("crm").connect() as conn:
        assert (
            conn.execute(select(schema.contacts.c.first_name).where(schema.contacts.c.id == 7)).scalar_one()
            == "anonymised"
        )

    n1 = run_rule(estate.context(as_of, run_id="n1"), "N1")
    assert (n1["due"], n1["eligible"], n1["exempt_hold"], n1["deleted"]) == (3, 2, 1, 2)
    assert ids(estate, "marketing", schema.newsletter_subscribers) == {1}
    assert ids(estate, "marketing", schema.suppression_list) == set()  # no address, nothing to suppress
