"""The SQL rules end to end on SQLite, PostgreSQL and MariaDB against an independent oracle."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from sqlalchemy import func, select

from lethe.audit import audit_table
from lethe.config import load_inventory, load_policy
from lethe.demo import schema
from lethe.demo.seed import DemoSizes, seed_crm, seed_marketing
from lethe.runner import run_rule
from lethe.schema import SchemaMismatch
from lethe.sources.sql.actions import SqlDelete

from conftest import TEST_KEY
from oracle import CRM_TABLES, MARKETING_TABLES, expected, snapshot
from test_boundaries import add, company, contact, empty_estate, ids
from test_config import inventory_copy

SQL_RULES = ["N1", "W1", "W2", "C1", "K1"]
SMALL = DemoSizes(companies=60, contacts=400, subscribers=300, consents=300, web_events=600)


def seeded(estate, as_of: datetime):
    crm = seed_crm(estate.engine("crm"), as_of, sizes=SMALL)
    seed_marketing(estate.engine("marketing"), as_of, crm["emails"], sizes=SMALL)


def snapshots(estate):
    return snapshot(estate.engine("crm"), CRM_TABLES), snapshot(estate.engine("marketing"), MARKETING_TABLES)


def run_all(estate, as_of, **kwargs):
    ctx = estate.context(as_of, **kwargs)
    return {rule: run_rule(ctx, rule) for rule in SQL_RULES}


@pytest.mark.parametrize("as_of", [datetime(2026, 11, 26), datetime(2028, 2, 29), datetime(2027, 3, 31, 12, 30)])
def test_enforcement_matches_the_oracle_exactly(estate, backend, as_of):
    seeded(estate, as_of)
    crm_before, marketing_before = snapshots(estate)
    crm_expected, marketing_expected = expected(crm_before, marketing_before, as_of, TEST_KEY)

    results = run_all(estate, as_of, batch_size=97)
    crm_after, marketing_after = snapshots(estate)

    for name in crm_expected:
        assert crm_after[name] == crm_expected[name], f"{backend}: table {name} differs from the oracle"
    for name in marketing_expected:
        assert marketing_after[name] == marketing_expected[name], f"{backend}: table {name} differs"
    # The counts in the results are the changes that happened.
    assert results["C1"]["deleted"] == len(crm_before["contacts"]) - len(crm_after["contacts"]) > 0
    assert (
        results["N1"]["deleted"]
        == len(marketing_before["newsletter_subscribers"]) - len(marketing_after["newsletter_subscribers"])
        > 0
    )
    assert results["W1"]["deleted"] == len(marketing_before["web_events"]) - len(marketing_after["web_events"]) > 0
    assert (
        results["W2"]["deleted"]
        == len(marketing_before["cookie_consents"]) - len(marketing_after["cookie_consents"])
        > 0
    )
    assert results["K1"]["anonymised"] > 0
    assert all(r["remaining_after"] == 0 and r["status"] == "ok" for r in results.values())
    assert results["C1"]["exempt_hold"] + results["C1"]["exempt_restriction"] > 0


def test_second_run_changes_nothing(estate):
    as_of = datetime(2026, 11, 26)
    seeded(estate, as_of)
    run_all(estate, as_of)
    after_first = snapshots(estate)
    audit = estate.engine("lethe_audit")
    with audit.connect() as conn:
        entries_first = conn.execute(select(func.count()).select_from(audit_table)).scalar_one()

    results = run_all(estate, as_of, run_id="second")
    assert snapshots(estate) == after_first
    assert all(r["deleted"] == 0 and r["anonymised"] == 0 and r["eligible"] == 0 for r in results.values())
    with audit.connect() as conn:
        actions = conn.execute(select(audit_table.c.action).where(audit_table.c.seq > entries_first)).scalars().all()
    assert actions == ["rule_summary"] * len(SQL_RULES)


def test_dry_run_changes_nothing_and_records_what_it_would_do(estate):
    as_of = datetime(2026, 11, 26)
    seeded(estate, as_of)
    before = snapshots(estate)
    results = run_all(estate, as_of, dry_run=True)
    assert snapshots(estate) == before
    assert results["C1"]["deleted"] > 0 and results["C1"]["remaining_after"] == results["C1"]["eligible"]
    with estate.engine("lethe_audit").connect() as conn:
        rows = conn.execute(select(audit_table.c.action, audit_table.c.dry_run)).all()
    assert {action for action, _ in rows} == {"would_deleted", "would_anonymised", "rule_summary"}
    assert all(dry for _, dry in rows)
    # And the real run afterwards still does the work.
    real = run_all(estate, as_of, run_id="real")
    assert real["C1"]["deleted"] == results["C1"]["deleted"]


def test_an_unknown_column_stops_the_rules_that_use_it_and_only_those(estate, tmp_path):
    as_of = datetime(2026, 11, 26)
    seeded(estate, as_of)
    # K1 rewrites personal data: a personal-data column the CRM lacks stops it. C1 deletes whole
    # rows and never names that column: it is not stopped.
    folder = inventory_copy(
        tmp_path, "crm.yaml", lambda d: d["tables"]["contacts"]["personal_data"].update(mobile={"anonymise": "null"})
    )
    policy = load_policy()
    inventory = load_inventory(folder, policy)
    before = snapshots(estate)
    ctx = estate.context(as_of, policy=policy, inventory=inventory)
    with pytest.raises(
        SchemaMismatch, match=r"^rule K1: .*column contacts\.mobile does not exist.*Nothing was changed"
    ):
        run_rule(ctx, "K1")
    assert snapshots(estate) == before
    assert run_rule(ctx, "C1")["deleted"] > 0

    # A trigger column only C1 reads stops C1, not K1.
    folder = inventory_copy(
        tmp_path / "second",
        "crm.yaml",
        lambda d: d["rules"][0]["trigger"]["latest_of"][0].update(column="last_touch_at"),
    )
    ctx = estate.context(as_of, policy=policy, inventory=load_inventory(folder, policy), run_id="second")
    before = snapshots(estate)
    with pytest.raises(SchemaMismatch, match=r"^rule C1: .*column contacts\.last_touch_at does not exist"):
        run_rule(ctx, "C1")
    assert snapshots(estate) == before
    assert run_rule(ctx, "K1")["anonymised"] > 0


def test_batches_commit_with_their_audit_entries(estate):
    """Every changed row is in exactly one audit entry, one entry per subject and batch, however
    the work is batched; a cookie's events go together (the batches follow the subject order)."""
    as_of = datetime(2026, 11, 26)
    seeded(estate, as_of)
    results = run_all(estate, as_of, batch_size=5)
    assert results["W1"]["batches"] > 10
    with estate.engine("lethe_audit").connect() as conn:
        entries = conn.execute(
            select(audit_table.c.rule_id, audit_table.c.subject_key, audit_table.c.run_id, audit_table.c.details).where(
                audit_table.c.action.in_(["deleted", "anonymised"])
            )
        ).all()
        entry_ids = conn.execute(select(func.count(func.distinct(audit_table.c.entry_id)))).scalar_one()
        total = conn.execute(select(func.count()).select_from(audit_table)).scalar_one()
    rows_per_rule: dict[str, int] = {}
    per_subject: dict[tuple, list[int]] = {}  # (rule, subject, run) -> [entries, rows]
    for rule_id, subject, run_id, details in entries:
        rows = json.loads(details).get("rows", 1)
        rows_per_rule[rule_id] = rows_per_rule.get(rule_id, 0) + rows
        found = per_subject.setdefault((rule_id, subject, run_id), [0, 0])
        found[0], found[1] = found[0] + 1, found[1] + rows
    for rule, result in results.items():
        assert rows_per_rule.get(rule, 0) == result["deleted"] + result["anonymised"], rule
    # Batches of 5 in subject order: a subject's n rows are in at most ceil(n / 5) + 1 batches.
    w1 = {k: v for k, v in per_subject.items() if k[0] == "W1"}
    assert all(n_entries <= -(-rows // 5) + 1 for n_entries, rows in w1.values())
    assert len(w1) < results["W1"]["deleted"]  # cookies with several events: fewer entries than rows
    assert entry_ids == total


def test_a_misnamed_hold_column_stops_every_rule_that_consults_holds_and_only_those(estate, tmp_path):
    as_of = datetime(2026, 11, 26)
    seeded(estate, as_of)
    folder = inventory_copy(
        tmp_path, "crm.yaml", lambda d: d["exemptions"]["legal_hold"].update(in_force_until="lifted_on")
    )
    policy = load_policy()
    ctx = estate.context(as_of, policy=policy, inventory=load_inventory(folder, policy))
    before = snapshots(estate)
    for rule in ("N1", "C1", "K1"):  # N1 is a marketing rule: its holds live in the CRM
        with pytest.raises(SchemaMismatch, match=rf"^rule {rule}: .*column legal_holds\.lifted_on does not exist"):
            run_rule(ctx, rule)
    assert snapshots(estate) == before
    # Cookie-keyed rules consult no hold (a hold names an address): they run.
    assert run_rule(ctx, "W1")["deleted"] > 0 and run_rule(ctx, "W2")["deleted"] > 0


def test_rules_running_at_the_same_time_share_the_sources_and_the_chain(estate):
    """As under a live scheduler: tasks of several rules write the same databases at once."""
    from concurrent.futures import ThreadPoolExecutor

    from lethe.runner import Engines

    as_of = datetime(2026, 11, 26)
    seeded(estate, as_of)
    crm_before, marketing_before = snapshots(estate)
    crm_expected, marketing_expected = expected(crm_before, marketing_before, as_of, TEST_KEY)

    def one(rule):
        engines = Engines(resolve=lambda conn_id: estate.urls[conn_id])  # own connections per task
        try:
            ctx = estate.context(as_of, run_id=f"run-{rule}", batch_size=20)
            ctx.engine_for = engines
            ctx.audit.engine = engines("lethe_audit")
            return run_rule(ctx, rule)
        finally:
            engines.dispose()

    with ThreadPoolExecutor(max_workers=len(SQL_RULES)) as pool:
        results = dict(zip(SQL_RULES, pool.map(one, SQL_RULES), strict=False))
    assert all(r["status"] == "ok" and r["remaining_after"] == 0 for r in results.values())
    assert snapshots(estate) == (crm_expected, marketing_expected)
    trail = estate.context(as_of).audit
    assert trail.verify().ok


def test_a_hold_placed_while_the_rule_runs_keeps_its_subject(estate, monkeypatch):
    """The eligible set is decided once, but each batch decides its keys again from the holds as
    they are then: a hold placed between two batches keeps its person, the rest are deleted."""
    empty_estate(estate)
    add(estate, "crm", schema.companies, company(1))
    emails = ["a.first@example.com", "b.second@example.com", "c.third@example.com"]
    for pid, email in enumerate(emails, start=1):
        add(estate, "crm", schema.contacts, contact(pid, 1, created=datetime(2020, 1, 1), email=email))
    as_of = datetime(2026, 11, 26)
    real = SqlDelete.current_exemptions
    calls = {"n": 0}

    def hold_placed_before_the_second_batch(self):
        calls["n"] += 1
        if calls["n"] == 2:
            hold = {"id": 1, "email": "C.Third@Example.com ", "reason": "court order", "placed_at": as_of}
            add(estate, "crm", schema.legal_holds, {**hold, "released_at": None})
        return real(self)

    monkeypatch.setattr(SqlDelete, "current_exemptions", hold_placed_before_the_second_batch)
    result = run_rule(estate.context(as_of, batch_size=1), "C1")
    assert result["eligible"] == 3  # the scan, before the hold
    assert result["deleted"] == 2 and result["batches"] == 2
    assert result["remaining_after"] == 0  # the held person is exempt now, not overdue
    assert ids(estate, "crm", schema.contacts) == {3}
