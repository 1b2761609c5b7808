"""The append-only, hash-chained audit trail (``lethe_audit`` in the audit store).

Every entry carries the previous entry's hash and its own: an HMAC-SHA256 over the entry's
canonical JSON, keyed with the audit key, so an edited, deleted or reordered entry breaks the
chain and cannot be re-sealed without the key. Entries hold keyed hashes, counts and names of
tables and rules: never a raw e-mail, name, phone number or IP address.

Atomicity with the change: the audit store is another database than the source being changed,
so an enforcement batch first writes its entries to an outbox table *in the source database*, in
the same transaction as the change. :meth:`AuditTrail.drain` then moves outbox entries into the
chain, skipping any already chained (each entry has a unique id), and clears the outbox. A crash
at any point leaves either nothing (change and entries rolled back together) or entries waiting
in the outbox, which the next drain chains exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    insert,
    select,
)
from sqlalchemy.engine import Connection, Engine

from lethe.db import schema_change

GENESIS = "0" * 64
OUTBOX_TABLE = "lethe_audit_outbox"

audit_metadata = MetaData()
audit_table = Table(
    "lethe_audit",
    audit_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("entry_id", String(36), nullable=False),
    Column("run_id", String(250), nullable=False),
    Column("dag_id", String(250), nullable=False),
    Column("task_id", String(250), nullable=False),
    Column("rule_id", String(16), nullable=False),
    Column("source", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject_key", String(64), nullable=False),
    Column("record_count", Integer, nullable=False),
    Column("details", Text, nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("as_of", DateTime, nullable=False),
    Column("recorded_at", DateTime, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("entry_hash", String(64), nullable=False),
    UniqueConstraint("entry_id", name="uq_lethe_audit_entry_id"),
)
# Rules read their own record back by action (T1: what it dropped, L1/L2: what it rewrote).
rule_action_index = Index("ix_lethe_audit_rule_action", audit_table.c.rule_id, audit_table.c.action)
# One row: the newest sequence number and hash. Appenders lock it, so the chain stays linear
# under concurrent tasks, and verify compares it, so a deleted last entry is noticed too.
head_table = Table(
    "lethe_audit_head",
    audit_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("entry_hash", String(64), nullable=False),
)

outbox_metadata = MetaData()
outbox_table = Table(
    OUTBOX_TABLE,
    outbox_metadata,
    Column("entry_id", String(36), primary_key=True),
    Column("payload", Text, nullable=False),
)

_REFUSED = "lethe_audit is append-only"
APPEND_ONLY_GUARDS = {
    "sqlite": [
        f"CREATE TRIGGER IF NOT EXISTS lethe_audit_no_{op.lower()} BEFORE {op} ON lethe_audit "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSED}'); END"
        for op in ("UPDATE", "DELETE")
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION lethe_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN RAISE EXCEPTION '{_REFUSED}'; END $$",
        "CREATE OR REPLACE TRIGGER lethe_audit_append_only BEFORE UPDATE OR DELETE ON lethe_audit "
        "FOR EACH ROW EXECUTE FUNCTION lethe_audit_append_only()",
    ],
    "mysql": [
        f"CREATE TRIGGER IF NOT EXISTS lethe_audit_no_{op.lower()} BEFORE {op} ON lethe_audit FOR EACH ROW "
        f"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{_REFUSED}'"
        for op in ("UPDATE", "DELETE")
    ],
}

HASHED_FIELDS = (
    "seq",
    "entry_id",
    "run_id",
    "dag_id",
    "task_id",
    "rule_id",
    "source",
    "action",
    "subject_key",
    "record_count",
    "details",
    "dry_run",
    "as_of",
    "recorded_at",
    "prev_hash",
)


@dataclass
class AuditEntry:
    """One thing that happened (or, in a dry run, would have happened) to one subject."""

    run_id: str
    dag_id: str
    task_id: str
    rule_id: str
    source: str
    action: str
    subject_key: str
    record_count: int
    as_of: datetime
    dry_run: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    entry_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    recorded_at: datetime = field(
        default_factory=lambda: datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    )

    def to_payload(self) -> str:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["as_of"] = self.as_of.isoformat()
        data["recorded_at"] = self.recorded_at.isoformat()
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_payload(cls, payload: str) -> "AuditEntry":
        data = json.loads(payload)
        data["as_of"] = datetime.fromisoformat(data["as_of"])
        data["recorded_at"] = datetime.fromisoformat(data["recorded_at"])
        return cls(**data)


def _canonical(row: dict[str, Any]) -> bytes:
    values = {}
    for name in HASHED_FIELDS:
        value = row[name]
        if isinstance(value, datetime):
            value = value.replace(microsecond=0).isoformat()
        elif isinstance(value, bool) or name == "dry_run":
            value = bool(value)
        values[name] = value
    return json.dumps(values, sort_keys=True, separators=(",", ":")).encode()


def entry_hash(key: str, row: dict[str, Any]) -> str:
    return hmac.new(key.encode(), _canonical(row), hashlib.sha256).hexdigest()


@dataclass
class VerifyResult:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str = ""


class AuditTrail:
    """The chain in the audit store, plus the outboxes in source databases."""

    def __init__(self, engine: Engine, key: str):
        self.engine = engine
        self.key = key

    def create(self) -> None:
        """Create the chain's tables, its head row and the append-only guard (idempotent)."""
        with schema_change(self.engine) as conn:
            audit_metadata.create_all(conn)
            rule_action_index.create(conn, checkfirst=True)  # a chain made before the index had none
            if conn.execute(select(head_table.c.id).where(head_table.c.id == 1)).first() is None:
                conn.execute(insert(head_table), {"id": 1, "seq": 0, "entry_hash": GENESIS})
            # Triggers that refuse UPDATE and DELETE on the chain, so no code path can rewrite it.
            # Someone with owner rights can still drop them; the hash chain proves tampering.
            for statement in APPEND_ONLY_GUARDS[self.engine.dialect.name]:
                conn.exec_driver_sql(statement)

    @staticmethod
    def create_outbox(source_engine: Engine) -> None:
        with schema_change(source_engine) as conn:
            outbox_metadata.create_all(conn)

    @staticmethod
    def stage(conn: Connection, entries: Iterable[AuditEntry]) -> int:
        """Write entries to the outbox in the caller's transaction (the one making the change)."""
        rows = [{"entry_id": e.entry_id, "payload": e.to_payload()} for e in entries]
        if rows:
            conn.execute(insert(outbox_table), rows)
        return len(rows)

    def drain(self, source_engine: Engine, batch_size: int = 5000) -> int:
        """Move every staged entry of a source into the chain, exactly once."""
        moved = 0
        while True:
            with source_engine.connect() as source:
                staged = source.execute(
                    select(outbox_table.c.entry_id, outbox_table.c.payload)
                    .order_by(outbox_table.c.entry_id)
                    .limit(batch_size)
                ).all()
            if not staged:
                return moved
            entries = [AuditEntry.from_payload(row.payload) for row in staged]
            self.append(entries)
            ids = [row.entry_id for row in staged]
            with source_engine.begin() as source:
                source.execute(delete(outbox_table).where(outbox_table.c.entry_id.in_(ids)))
            moved += len(ids)

    def append(self, entries: list[AuditEntry]) -> int:
        """Chain entries in one transaction; entries already chained (same id) are skipped."""
        if not entries:
            return 0
        with self.engine.begin() as conn:
            head = conn.execute(select(head_table).where(head_table.c.id == 1).with_for_update()).first()
            if head is None:
                conn.execute(insert(head_table), {"id": 1, "seq": 0, "entry_hash": GENESIS})
                seq, prev = 0, GENESIS
            else:
                seq, prev = head.seq, head.entry_hash
            ids = [e.entry_id for e in entries]
            present = set()
            for start in range(0, len(ids), 1000):
                present.update(
                    conn.execute(
                        select(audit_table.c.entry_id).where(audit_table.c.entry_id.in_(ids[start : start + 1000]))
                    ).scalars()
                )
            rows = []
            for entry in entries:
                if entry.entry_id in present:
                    continue
                seq += 1
                row = {
                    "seq": seq,
                    "entry_id": entry.entry_id,
                    "run_id": entry.run_id,
                    "dag_id": entry.dag_id,
                    "task_id": entry.task_id,
                    "rule_id": entry.rule_id,
                    "source": entry.source,
                    "action": entry.action,
                    "subject_key": entry.subject_key,
                    "record_count": int(entry.record_count),
                    "details": json.dumps(entry.details, sort_keys=True),
                    "dry_run": bool(entry.dry_run),
                    "as_of": entry.as_of.replace(microsecond=0),
                    "recorded_at": entry.recorded_at.replace(microsecond=0),
                    "prev_hash": prev,
                }
                row["entry_hash"] = prev = entry_hash(self.key, row)
                rows.append(row)
            if rows:
                conn.execute(insert(audit_table), rows)
                conn.execute(head_table.update().where(head_table.c.id == 1).values(seq=seq, entry_hash=prev))
            return len(rows)

    def entries(self, *conditions, batch_size: int = 5000) -> Iterator[dict[str, Any]]:
        """Stream entries in sequence order (keyset pages: memory stays flat)."""
        last = 0
        while True:
            with self.engine.connect() as conn:
                page = (
                    conn.execute(
                        select(audit_table)
                        .where(audit_table.c.seq > last, *conditions)
                        .order_by(audit_table.c.seq)
                        .limit(batch_size)
                    )
                    .mappings()
                    .all()
                )
            if not page:
                return
            for row in page:
                yield dict(row)
            last = page[-1]["seq"]

    def verify(self) -> VerifyResult:
        """Recompute the chain; the first bad entry is named."""
        expected_seq, prev, count = 1, GENESIS, 0
        for row in self.entries():
            seq = row["seq"]
            if seq != expected_seq:
                return VerifyResult(
                    False, count, expected_seq, f"entry {expected_seq} is missing (next entry is {seq})"
                )
            if row["prev_hash"] != prev:
                return VerifyResult(
                    False, count, seq, f"entry {seq} does not follow entry {seq - 1} (reordered or replaced)"
                )
            if entry_hash(self.key, row) != row["entry_hash"]:
                return VerifyResult(False, count, seq, f"entry {seq} was changed after it was written")
            prev, expected_seq, count = row["entry_hash"], seq + 1, count + 1
        with self.engine.connect() as conn:
            head = conn.execute(select(head_table).where(head_table.c.id == 1)).first()
        head_seq, head_hash = (head.seq, head.entry_hash) if head else (0, GENESIS)
        if head_seq != count or head_hash != prev:
            return VerifyResult(
                False,
                count,
                count + 1,
                f"the chain ends at entry {count} but the head says {head_seq}: entries after it were removed",
            )
        return VerifyResult(True, count)
