"""The checks before and after rule T1 (Great Expectations), on SQLite, PostgreSQL and MariaDB.

A catalog with bad rows of every kind the checks know: each is quarantined (counted by reason,
named in samples by subject key only), the databases those rows name stay on the server while
the clean due ones are dropped, and the check after passes. Past the allowed share the rule
stops before anything changes. A clean catalog passes both checks.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import insert, text, update
from sqlalchemy.engine import make_url
from test_trials import AS_OF, DEADLINE, OLD, Trials, _drop_leftovers

from lethe.demo import schema
from lethe.demo.trials import create_database
from lethe.errors import QuarantineTooLarge
from lethe.runner import check_after, run_rule, validate_rule
from lethe.schema import SchemaMismatch
from lethe.sources.base import action_for
from lethe.subjects import email_key, subject_key

from conftest import SERVER_URLS, TEST_KEY

# T1 lists every trial-like database on a server: tests that make them share one xdist worker.
pytestmark = pytest.mark.xdist_group("trial_servers")

# What the bad rows of :func:`bad_rows` fail, by reason (rows); SQLite adds a date that is text.
REASONS = {
    "name_refused": 1,
    "trial_dates_inverted": 1,
    "database_duplicated": 2,
    "contact_missing": 1,
    "address_unnormalisable": 1,
    "trigger_in_future": 1,
}
FILLER = 190  # clean rows enough to keep the bad ones under the default 5% share


@pytest.fixture
def trials(backend, estate, tmp_path):
    tag = f"{uuid.uuid4().hex[:8]}_"
    if backend == "sqlite":
        folder = tmp_path / "trials"
        folder.mkdir()
        url = f"sqlite:///{folder}"
    else:
        url = SERVER_URLS[backend]
    estate.urls["trials"] = url
    found = Trials(backend, estate, tmp_path, tag, rf"^trial_{tag}[a-z0-9_]{{1,40}}$", url)
    yield found
    estate.engines.dispose()
    _drop_leftovers(backend, url, tag)


def row_key(key: int) -> str:
    """The subject key of a sign-up row without a usable contact address."""
    return subject_key(TEST_KEY, "record", key, source="crm", table="trial_signups")


def expected(backend: str) -> dict[str, int]:
    return {**REASONS, "trigger_unparseable": 1} if backend == "sqlite" else dict(REASONS)


def dangle(trials: Trials, key: int) -> None:
    """Point sign-up ``key`` at a contact that does not exist (past the foreign key)."""
    t = schema.trial_signups
    if trials.backend == "sqlite":  # Lethe's engines enforce foreign keys; a plain connection does not
        with sqlite3.connect(make_url(trials.estate.urls["crm"]).database) as db:
            db.execute("UPDATE trial_signups SET contact_id = 9999 WHERE id = ?", (key,))
        return
    with trials.crm.begin() as conn:
        if trials.backend == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))  # no foreign key triggers
        else:
            conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
        conn.execute(update(t).where(t.c.id == key).values(contact_id=9999))
        if trials.backend == "mariadb":
            conn.execute(text("SET FOREIGN_KEY_CHECKS = 1"))


def bad_rows(trials: Trials) -> dict[str, object]:
    """One catalog row (two for the duplicate) per reason, each naming a due trial database that
    exists; returns the databases that must stay, and the sign-up keys by reason."""
    t = schema.trial_signups
    refused = f"trial_{trials.tag}Upper"  # off the pattern (also on MariaDB, whose REGEXP ignores case)
    trials.signup(refused, OLD)
    create_database(trials.url, refused)
    inverted = trials.trial("inverted", OLD)
    with trials.crm.begin() as conn:
        conn.execute(update(t).where(t.c.database_name == inverted).values(trial_started_at=OLD + timedelta(days=1)))
    twice = trials.trial("twice", OLD)
    trials.signup(twice, OLD - timedelta(days=3))  # a second unconverted sign-up for the same database
    lost = trials.name("lost_contact")
    dangle(trials, trials.signup(lost, OLD))
    trials.database(lost)
    odd = trials.trial("odd_address", OLD, email="not an address")
    # Its trial starts (ends - 30 days) 10 days after the as-of: beyond the 1-day tolerance.
    future = trials.trial("future", AS_OF + timedelta(days=40))
    keys = {
        "contact_missing": [5],
        "address_unnormalisable": [6],
        "database_duplicated": [3, 4],
    }
    if trials.backend == "sqlite":  # SQLite keeps any text in a DATETIME column
        key = trials.signup(trials.name("text_date"), OLD)
        with sqlite3.connect(make_url(trials.estate.urls["crm"]).database) as db:
            db.execute("UPDATE trial_signups SET trial_ends_at = 'next spring' WHERE id = ?", (key,))
    return {"kept": {refused, inverted, twice, lost, odd, future}, "keys": keys}


def filler(trials: Trials, n: int) -> None:
    """``n`` clean sign-ups, not yet due, whose databases are not on the server (one transaction)."""
    contacts, signups = [], []
    for _ in range(n):
        contact, key = trials._next("contacts"), trials._next("trial_signups")
        contacts.append({"id": contact, "company_id": 1, "email": f"filler{contact}@example.org", "created_at": OLD})
        ends = DEADLINE + timedelta(days=10)
        signups.append(
            {
                "id": key,
                "contact_id": contact,
                "database_name": trials.name(f"filler{key}"),
                "trial_started_at": ends - timedelta(days=30),
                "trial_ends_at": ends,
                "subscribed_at": None,
            }
        )
    with trials.crm.begin() as conn:
        conn.execute(insert(schema.contacts), contacts)
        conn.execute(insert(schema.trial_signups), signups)


def clean(trials: Trials) -> dict[str, set[str]]:
    """Two due trials (dropped), one not yet due and one converted (kept)."""
    due = {trials.trial("clean_old", OLD), trials.trial("clean_due_now", DEADLINE)}
    kept = {
        trials.trial("clean_later", DEADLINE + timedelta(days=5)),
        trials.trial("clean_converted", OLD, subscribed=OLD),
    }
    return {"due": due, "kept": kept}


def test_bad_catalog_rows_are_quarantined_and_their_databases_kept(trials, backend):
    bad = bad_rows(trials)
    good = clean(trials)
    filler(trials, FILLER)
    reasons = expected(backend)

    validated = validate_rule(trials.context(), "T1")
    assert validated["verdict"] == "quarantined"
    assert validated["reasons"] == reasons
    assert validated["tables"] == {"trial_signups": trials._ids["trial_signups"]}
    # Samples name subjects by keyed hash: the contact's address, or the sign-up row itself.
    samples = validated["samples"]
    assert set(samples) == set(reasons)
    assert samples["contact_missing"] == [row_key(k) for k in bad["keys"]["contact_missing"]]
    assert samples["address_unnormalisable"] == [row_key(k) for k in bad["keys"]["address_unnormalisable"]]
    assert samples["database_duplicated"] == [
        email_key(TEST_KEY, trials.emails[3]),
        email_key(TEST_KEY, trials.emails[4]),
    ]
    published = json.dumps(validated, default=str)
    assert not any(address in published for address in trials.emails.values())

    # The rule's own decision reads the same conditions: only the clean due trials are items.
    action = action_for(trials.context(), "T1")
    assert sorted(item["name"] for item in action.work_items()) == sorted(good["due"])
    # Each drop decides again for its one database, with the same conditions.
    for label in ("twice", "inverted", "lost_contact"):
        outcome = action.enforce_item({"name": trials.name(label)})
        assert (outcome["status"], outcome["reason"]) == ("kept", "quarantined")

    result = run_rule(trials.context(run_id="quarantined"), "T1")
    assert trials.mine() == bad["kept"] | good["kept"]
    assert result["deleted"] == 2 and result["status"] == "ok"
    assert result["quarantine"] == reasons and result["before"] == "quarantined"
    assert result["quarantined"] == sum(reasons.values())  # rows: no row here fails two checks
    # Kept because of the checks: the databases named by quarantined rows, the refused name apart.
    assert result["extra"]["kept_quarantined"] == len(bad["kept"]) - 1
    assert result["extra"]["refused"] == 1 and result["extra"]["not_yet_due"] == 1
    assert result["after"] == "passed" and result["remaining_after"] == 0

    # Corrected, a row is judged again on the next run.
    t = schema.trial_signups
    inverted = trials.name("inverted")
    with trials.crm.begin() as conn:
        conn.execute(update(t).where(t.c.database_name == inverted).values(trial_started_at=OLD - timedelta(days=30)))
    again = run_rule(trials.context(AS_OF + timedelta(days=1), run_id="corrected"), "T1")
    assert again["deleted"] == 1 and inverted not in trials.mine()
    assert "trial_dates_inverted" not in again["quarantine"] and again["after"] == "passed"


def test_without_a_trial_start_the_dates_are_not_compared(trials, backend):
    trials.trial("inverted", OLD)
    t = schema.trial_signups
    with trials.crm.begin() as conn:
        conn.execute(update(t).values(trial_started_at=OLD + timedelta(days=1)))
    filler(trials, 30)
    named = validate_rule(trials.context(), "T1")
    assert named["reasons"] == {"trial_dates_inverted": 1}
    unnamed = validate_rule(trials.context(inventory=trials.inventory(trial_started_at=None)), "T1")
    assert unnamed["verdict"] == "passed" and unnamed["reasons"] == {}
    assert not any("trial_started_at" in json.dumps(c) for c in unnamed["checks"])


def test_too_many_bad_rows_stop_the_rule_before_anything_is_dropped(trials, backend):
    bad = bad_rows(trials)
    good = clean(trials)
    before = trials.mine()
    assert before == bad["kept"] | good["kept"] | good["due"]

    with pytest.raises(QuarantineTooLarge, match="fail the checks before enforcement") as stopped:
        validate_rule(trials.context(), "T1")
    assert stopped.value.validation["verdict"] == "stopped"
    assert stopped.value.validation["reasons"] == expected(backend)

    with pytest.raises(QuarantineTooLarge):
        run_rule(trials.context(run_id="stopped"), "T1")
    assert trials.mine() == before
    assert trials.audit("drop_intent", "database_dropped") == []


def test_a_missing_catalog_column_stops_the_checks(trials):
    trials.trial("safe", OLD)
    # The inventory names a start column the live table does not have: the rule's check stops it.
    ctx = trials.context(inventory=trials.inventory(trial_started_at="trial_begun_at"))
    with pytest.raises(SchemaMismatch, match="trial_signups.trial_begun_at"):
        validate_rule(ctx, "T1")
    assert trials.name("safe") in trials.mine()


def test_a_clean_catalog_passes_both_checks(trials):
    good = clean(trials)

    validated = validate_rule(trials.context(), "T1")
    assert validated["verdict"] == "passed" and validated["reasons"] == {} and validated["samples"] == {}
    checks = {c["expectation"] for c in validated["checks"]}
    assert {"ExpectColumnToExist", "ExpectColumnValuesToBeUnique", "ExpectNoRowsOfQuery"} <= checks

    # Nothing dropped yet: the check after counts the due databases and fails.
    pending = check_after(trials.context(), "T1")
    assert pending["verdict"] == "failed" and pending["remaining"] == 2

    result = run_rule(trials.context(run_id="clean"), "T1")
    assert result["deleted"] == 2 and trials.mine() == good["kept"]
    assert result["before"] == "passed" and result["quarantine"] == {} and result["quarantined"] == 0
    assert result["after"] == "passed" and result["remaining_after"] == 0 and result["status"] == "ok"
