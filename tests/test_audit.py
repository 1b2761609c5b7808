"""The audit trail: tampering is caught, and entries commit with their change exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime

import pytest
from sqlalchemy import delete, func, select, update

from lethe.audit import (
    GENESIS,
    HASHED_FIELDS,
    AuditBatch,
    AuditEntry,
    AuditTrail,
    _BatchCanonical,
    _canonical,
    audit_table,
    outbox_table,
)
from lethe.db import make_engine
from lethe.demo import schema
from lethe.runner import run_rule
from lethe.sources.sql.actions import SqlDelete

from conftest import TEST_KEY
from test_boundaries import c1_layout, empty_estate, ids

AS_OF = datetime(2026, 11, 26)


def entries(n: int, rule="W1") -> list[AuditEntry]:
    return [
        AuditEntry(
            run_id="r",
            dag_id="d",
            task_id="t",
            rule_id=rule,
            source="marketing",
            action="deleted",
            subject_key=f"{i:064x}",
            record_count=1,
            as_of=AS_OF,
            details={"table": "web_events"},
        )
        for i in range(n)
    ]


DROP_GUARDS = {
    "sqlite": ["DROP TRIGGER lethe_audit_no_update", "DROP TRIGGER lethe_audit_no_delete"],
    "postgresql": ["DROP TRIGGER lethe_audit_append_only ON lethe_audit"],
    "mysql": ["DROP TRIGGER lethe_audit_no_update", "DROP TRIGGER lethe_audit_no_delete"],
}


@contextmanager
def tamper(engine):
    """A transaction of someone with owner rights, who first drops the append-only triggers."""
    with engine.begin() as conn:
        for statement in DROP_GUARDS[engine.dialect.name]:
            conn.exec_driver_sql(statement)
        yield conn


@pytest.fixture
def trail(databases):
    trail = AuditTrail(make_engine(databases.new("audit")), TEST_KEY)
    trail.create()
    trail.append(entries(5))
    assert trail.verify().ok
    yield trail
    trail.engine.dispose()


def test_chain_links_every_entry(trail):
    rows = list(trail.entries())
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["entry_hash"] for a, b in zip(rows, rows[1:], strict=False))
    assert trail.verify().entries == 5


def test_edited_entry_is_caught(trail):
    with tamper(trail.engine) as conn:
        conn.execute(update(audit_table).where(audit_table.c.seq == 3).values(record_count=2))
    result = trail.verify()
    assert not result.ok and result.first_bad_seq == 3 and "changed" in result.problem


def test_deleted_entry_is_caught(trail):
    with tamper(trail.engine) as conn:
        conn.execute(delete(audit_table).where(audit_table.c.seq == 2))
    result = trail.verify()
    assert not result.ok and result.first_bad_seq == 2 and "missing" in result.problem


def test_deleted_last_entry_is_caught(trail):
    with tamper(trail.engine) as conn:
        conn.execute(delete(audit_table).where(audit_table.c.seq == 5))
    result = trail.verify()
    assert not result.ok and result.first_bad_seq == 5 and "removed" in result.problem


def test_reordered_entries_are_caught(trail):
    with tamper(trail.engine) as conn:
        conn.execute(update(audit_table).where(audit_table.c.seq == 2).values(seq=100))
        conn.execute(update(audit_table).where(audit_table.c.seq == 3).values(seq=2))
        conn.execute(update(audit_table).where(audit_table.c.seq == 100).values(seq=3))
    result = trail.verify()
    assert not result.ok and result.first_bad_seq == 2


def test_the_chain_refuses_updates_and_deletes(trail):
    for statement in (
        update(audit_table).where(audit_table.c.seq == 3).values(record_count=2),
        delete(audit_table).where(audit_table.c.seq == 5),
    ):
        with pytest.raises(Exception, match="append-only"):
            with trail.engine.begin() as conn:
                conn.execute(statement)
    trail.create()  # idempotent, guards included
    assert trail.verify().ok and trail.verify().entries == 5


def test_resealing_without_the_key_fails(trail):
    """Recomputing the hashes needs the key: a forger with another key is caught."""
    forger = AuditTrail(trail.engine, "another-key-0123456789")
    assert not forger.verify().ok


def test_crash_after_the_commit_is_chained_exactly_once_by_the_next_run(estate, monkeypatch):
    """The change and its outbox entries commit together; a crash before chaining loses nothing."""
    empty_estate(estate)
    c1_layout(estate)
    ctx = estate.context(datetime(2027, 3, 1))

    calls = {"n": 0}
    real_drain = AuditTrail.drain

    def drain_then_crash(self, source_engine, batch_size=5000):
        calls["n"] += 1
        if calls["n"] == 2:  # the first drain clears leftovers; the second chains this batch
            raise SystemExit("killed between commit and chaining")
        return real_drain(self, source_engine, batch_size)

    monkeypatch.setattr(AuditTrail, "drain", drain_then_crash)
    with pytest.raises(SystemExit):
        run_rule(ctx, "C1")
    monkeypatch.setattr(AuditTrail, "drain", real_drain)
    assert ids(estate, "crm", schema.contacts) == set()  # the change committed ...
    with estate.engine("crm").connect() as conn:  # ... with its entries in the outbox
        assert conn.execute(select(func.count()).select_from(outbox_table)).scalar_one() == 1
    with estate.engine("lethe_audit").connect() as conn:
        assert conn.execute(select(func.count()).select_from(audit_table)).scalar_one() == 0

    second = run_rule(estate.context(datetime(2027, 3, 1), run_id="next"), "C1")
    assert second["deleted"] == 0
    with estate.engine("lethe_audit").connect() as conn:
        actions = conn.execute(select(audit_table.c.action, audit_table.c.run_id)).all()
    assert actions == [("deleted", "test-run"), ("rule_summary", "next")]
    assert ctx.audit.verify().ok


def test_failure_inside_a_batch_rolls_back_change_and_entries(estate, monkeypatch):
    empty_estate(estate)
    c1_layout(estate)

    def failing_change(self, conn, rows):
        original(self, conn, rows)
        raise RuntimeError("database went away mid-batch")

    original = SqlDelete.change
    monkeypatch.setattr(SqlDelete, "change", failing_change)
    with pytest.raises(RuntimeError):
        run_rule(estate.context(datetime(2027, 3, 1)), "C1")
    assert ids(estate, "crm", schema.contacts) == {1}
    assert ids(estate, "crm", schema.interactions) == {1}
    with estate.engine("crm").connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox_table)).scalar_one() == 0


def _cli(env, *args):
    # Wide enough that the table's cells are not wrapped (a terminal wraps them to fit).
    env = {**env, "COLUMNS": "400"}
    return subprocess.run([sys.executable, "-m", "lethe.cli", *args], env=env, capture_output=True, text=True)


def _table_rows(output: str) -> list[list[str]]:
    """The data rows of `lethe audit find`'s table, cell by cell."""
    rows = []
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if len(cells) == 8 and cells[0].isdigit():
            rows.append(cells)
    return rows


def test_cli_verify_and_find(estate, tmp_path):
    empty_estate(estate)
    c1_layout(estate)
    run_rule(estate.context(datetime(2027, 3, 1)), "C1")
    env = {**os.environ, "LETHE_AUDIT_KEY": TEST_KEY, "AIRFLOW_CONN_LETHE_AUDIT": estate.urls["lethe_audit"]}
    ok = _cli(env, "audit", "verify")
    assert ok.returncode == 0 and "intact: 2 entries" in ok.stdout
    found = _cli(env, "audit", "find", "--email", " ANN.LEE@example.com")
    assert found.returncode == 0 and "ann.lee" not in found.stdout.lower()
    rows = _table_rows(found.stdout)
    assert [(r[2], r[3], r[4], r[5]) for r in rows] == [
        ("C1 (§6.2)", "crm", "deleted: 1 record (and 1 row of interactions)", "contacts")
    ]
    assert "no audit entries" in _cli(env, "audit", "find", "--email", "nobody@example.com").stdout
    with tamper(estate.engine("lethe_audit")) as conn:
        conn.execute(update(audit_table).where(audit_table.c.seq == 1).values(action="kept"))
    bad = _cli(env, "audit", "verify")
    assert bad.returncode == 1 and "entry 1" in bad.stderr
    no_key = _cli(
        {
            **{k: v for k, v in env.items() if k not in ("LETHE_AUDIT_KEY", "LETHE_DEMO_KEY_FILE")},
            "LETHE_ESTATE_DIR": str(tmp_path / "no-estate"),
        },
        "audit",
        "verify",
    )
    assert no_key.returncode == 2 and "no audit key" in no_key.stderr


def test_a_person_kept_by_a_hold_leaves_one_trace_per_hold(estate, tmp_path):
    from lethe.subjects import email_key

    from test_boundaries import add

    empty_estate(estate)
    c1_layout(estate)  # Ann Lee, due for C1 since 2027-02-28 10:00
    add(
        estate,
        "crm",
        schema.legal_holds,
        {
            "id": 1,
            "email": " ann.lee@EXAMPLE.com",
            "reason": "dispute",
            "placed_at": datetime(2026, 5, 4, 9, 30),
            "released_at": None,
        },
    )
    dry = run_rule(estate.context(datetime(2027, 3, 1), dry_run=True, run_id="dry"), "C1")
    assert dry["exempt_hold"] == 1 and "kept_recorded" not in dry["extra"]
    first = run_rule(estate.context(datetime(2027, 3, 1), run_id="night-1"), "C1")
    second = run_rule(estate.context(datetime(2027, 3, 2), run_id="night-2"), "C1")
    assert first["extra"]["kept_recorded"] == 1 and second["extra"]["kept_recorded"] == 0
    with estate.engine("lethe_audit").connect() as conn:
        kept = conn.execute(select(audit_table).where(audit_table.c.action == "kept_by_legal_hold")).mappings().all()
    assert len(kept) == 1
    assert kept[0]["subject_key"] == email_key(TEST_KEY, EMAIL_OF_ANN) and kept[0]["rule_id"] == "C1"
    assert '"since": "2026-05-04T09:30:00"' in kept[0]["details"]
    assert ids(estate, "crm", schema.contacts) == {1}

    # Released, then a new hold: a new trace, since the new date.
    with estate.engine("crm").begin() as conn:
        conn.execute(update(schema.legal_holds).values(released_at=datetime(2027, 3, 3)))
    add(
        estate,
        "crm",
        schema.legal_holds,
        {"id": 2, "email": EMAIL_OF_ANN, "reason": "claim", "placed_at": datetime(2027, 3, 3), "released_at": None},
    )
    third = run_rule(estate.context(datetime(2027, 3, 4), run_id="night-3"), "C1")
    assert third["extra"]["kept_recorded"] == 1

    env = {**os.environ, "LETHE_AUDIT_KEY": TEST_KEY, "AIRFLOW_CONN_LETHE_AUDIT": estate.urls["lethe_audit"]}
    found = _cli(env, "audit", "find", "--email", EMAIL_OF_ANN)
    assert found.returncode == 0
    kept = [(r[2], r[4]) for r in _table_rows(found.stdout)]
    assert kept == [
        ("C1 (§6.2)", "kept by a legal hold since 2026-05-04T09:30:00, past the deadline"),
        ("C1 (§6.2)", "kept by a legal hold since 2027-03-03T00:00:00, past the deadline"),
    ]
    assert "ann.lee" not in found.stdout.lower()


EMAIL_OF_ANN = "Ann.Lee@Example.com"


def _reference_canonical(row):
    """The hashed form as first defined: json.dumps of the hashed fields, keys sorted, compact."""
    values = {}
    for name in HASHED_FIELDS:
        value = row[name]
        if isinstance(value, datetime):
            value = value.replace(microsecond=0).isoformat()
        elif isinstance(value, bool) or name == "dry_run":
            value = bool(value)
        values[name] = value
    return json.dumps(values, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "text",
    ["plain", 'quote " and backslash \\', "tab\tnew\nline\x00\x1f", "é ü ß 名前 🙂", "", '{"json": [1, 2]}'],
)
@pytest.mark.parametrize("dry_run", [True, False, 0, 1])
def test_the_hashed_form_is_byte_for_byte_the_json_it_always_was(text, dry_run):
    row = {
        "seq": 12345678901,
        "entry_id": "0f4c1b9e-8a2d-4c5e-9b7a-3d2e1f0a9b8c",
        "run_id": f"manual__{text}",
        "dag_id": "lethe_crm_retention",
        "task_id": text,
        "rule_id": "C1",
        "source": "crm",
        "action": "deleted",
        "subject_key": "a" * 64,
        "record_count": 0,
        "details": json.dumps({"table": text, "related": {"interactions": 3}}, sort_keys=True),
        "dry_run": dry_run,
        "as_of": datetime(2026, 11, 26, 0, 0, 0, 123456),
        "recorded_at": datetime(2026, 11, 26, 3, 4, 5),
        "prev_hash": "0" * 64,
    }
    assert _canonical(row) == _reference_canonical(row)


def test_a_batch_hashes_each_entry_exactly_as_a_single_entry_is_hashed():
    """Batches encode their shared fields once; the bytes hashed are the same as entry by entry."""
    common = {
        "run_id": 'run "quoted" é',
        "dag_id": "lethe_crm_retention",
        "task_id": "C1.enforce",
        "rule_id": "C1",
        "source": "crm",
        "action": "deleted",
        "as_of": datetime(2026, 11, 26, 0, 0, 0, 5),
        "dry_run": 0,
        "recorded_at": datetime(2026, 11, 26, 1, 2, 3),
    }
    canonical = _BatchCanonical(common)
    for details, entry_id, prev, count, seq, subject in [
        ('{"related": {}, "table": "contacts"}', "abc-00000000001", "0" * 64, 1, 1, "f" * 64),
        ('{"table": "naïve \\ "x""}', "id\twith tab", "e" * 64, 123456, 10**12, ""),
    ]:
        row = {**common, "details": details, "entry_id": entry_id, "prev_hash": prev}
        row |= {"record_count": count, "seq": seq, "subject_key": subject}
        assert canonical(details, entry_id, prev, count, seq, subject) == _canonical(row)


def test_a_batch_chained_before_a_crash_cleared_the_outbox_is_not_chained_again(estate):
    """Chained, but the outbox row survived (the crash came before it was cleared): the next drain
    finds the batch's first entry in the chain and adds nothing; the outbox is emptied."""
    empty_estate(estate)
    trail = estate.context(datetime(2027, 3, 1)).audit
    entry = AuditEntry("run", "dag", "task", "C1", "crm", "deleted", "-", 0, datetime(2027, 3, 1))
    details = json.dumps({"table": "contacts"}, sort_keys=True)
    batch = AuditBatch.of(entry, [("a" * 64, 2, details), ("b" * 64, 1, details)])
    assert trail.append_batch(batch) == 2
    AuditTrail.create_outbox(estate.engine("crm"))
    with estate.engine("crm").begin() as conn:
        AuditTrail.stage(conn, batch)
    assert trail.drain(estate.engine("crm")) == 0
    with estate.engine("crm").connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox_table)).scalar_one() == 0
    verified = trail.verify()
    assert verified.ok and verified.entries == 2


def test_a_large_batch_fits_the_outbox_on_every_back_end(estate):
    """5000 entries with long details (about 1.5 MB) staged in one transaction and chained whole:
    MariaDB's TEXT holds 64 KiB, so the outbox keeps a batch in rows of bounded size."""
    empty_estate(estate)
    trail = estate.context(datetime(2027, 3, 1)).audit
    entry = AuditEntry("run", "dag", "task", "C1", "crm", "deleted", "-", 0, datetime(2027, 3, 1))
    details = json.dumps({"table": "contacts", "related": {f"dependent_{i}": i for i in range(8)}}, sort_keys=True)
    batch = AuditBatch.of(entry, [(f"{i:064x}", 1 + i % 7, details) for i in range(5000)])
    AuditTrail.create_outbox(estate.engine("crm"))
    with estate.engine("crm").begin() as conn:
        assert AuditTrail.stage(conn, batch) == 5000
    assert trail.drain(estate.engine("crm")) == 5000
    verified = trail.verify()
    assert verified.ok and verified.entries == 5000
    with estate.engine("lethe_audit").connect() as conn:
        assert (
            conn.execute(select(audit_table.c.subject_key).where(audit_table.c.seq == 4321)).scalar_one()
            == f"{4320:064x}"
        )
