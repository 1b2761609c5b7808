"""The append-only, hash-chained audit trail (``lethe_audit`` in the audit store).

Every entry carries the previous entry's hash and its own: an HMAC-SHA256 over the entry's
canonical JSON, keyed with the audit key, so an edited, deleted or reordered entry breaks the
chain and cannot be re-sealed without the key. Entries hold keyed hashes, counts and names of
tables and rules: never a raw e-mail, name, phone number or IP address.

Atomicity with the change: the audit store is another database than the source being changed,
so an enforcement batch first writes its entries to an outbox table *in the source database*, in
the same transaction as the change: one outbox row per batch, holding the batch's entries.
:meth:`AuditTrail.drain` then chains each outbox row's entries in one transaction, skipping a
row already chained (its first entry's id is in the chain: a row is chained all at once or not
at all), and clears the outbox. A crash at any point leaves either nothing (change and entries
rolled back together) or entries waiting in the outbox, which the next drain chains exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from json.encoder import encode_basestring_ascii
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
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from lethe.db import bulk_insert, keys_in, schema_change
from lethe.errors import AuditStoreNotReady

GENESIS = "0" * 64
OUTBOX_TABLE = "lethe_audit_outbox"
# Entries per outbox row: a payload of about 100 entries is some 30 KiB, under MariaDB's TEXT limit.
OUTBOX_ROW_ENTRIES = 100

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

# The triggers APPEND_ONLY_GUARDS makes, by dialect: create() looks them up in the catalog first.
GUARD_TRIGGERS = {
    "sqlite": ("lethe_audit_no_update", "lethe_audit_no_delete"),
    "postgresql": ("lethe_audit_append_only",),
    "mysql": ("lethe_audit_no_update", "lethe_audit_no_delete"),
}
_TRIGGERS_OF_TABLE = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table",
    "postgresql": "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(:table) AND NOT tgisinternal",
    # Listed for a user with any privilege on the table (the body only with TRIGGER).
    "mysql": (
        "SELECT trigger_name FROM information_schema.triggers "
        "WHERE event_object_schema = DATABASE() AND event_object_table = :table"
    ),
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

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["as_of"] = self.as_of.isoformat()
        data["recorded_at"] = self.recorded_at.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AuditEntry":
        data = dict(data)
        data["as_of"] = datetime.fromisoformat(data["as_of"])
        data["recorded_at"] = datetime.fromisoformat(data["recorded_at"])
        return cls(**data)


# The fields every entry of one batch shares (one rule, one run, one action).
COMMON_FIELDS = ("run_id", "dag_id", "task_id", "rule_id", "source", "action", "as_of", "dry_run", "recorded_at")


@dataclass
class AuditBatch:
    """Entries of one rule, run and action, as a batch writes them: the shared fields once, then
    per subject (entry id, subject key, record count, details as canonical JSON text: keys
    sorted, as the chain stores them). Staged as one outbox row."""

    common: dict[str, Any]
    items: list[tuple[str, str, int, str]]

    @classmethod
    def of(cls, entry: AuditEntry, items: list[tuple[str, int, str]]) -> "AuditBatch":
        """A batch with ``entry``'s shared fields and ids that are unique without a uuid each:
        one random prefix per batch and the item's position."""
        prefix = uuid.uuid4().hex[:24]
        common = {name: getattr(entry, name) for name in COMMON_FIELDS}
        return cls(common, [(f"{prefix}-{i:011d}", subject, n, d) for i, (subject, n, d) in enumerate(items)])

    def __len__(self) -> int:
        return len(self.items)

    def parts(self, size: int) -> list["AuditBatch"]:
        """The batch cut into batches of at most ``size`` entries, in order."""
        return [AuditBatch(self.common, self.items[i : i + size]) for i in range(0, len(self.items), size)]

    def to_payload(self) -> str:
        common = dict(self.common, as_of=self.common["as_of"].isoformat())
        common["recorded_at"] = self.common["recorded_at"].isoformat()
        return json.dumps({"common": common, "items": self.items}, sort_keys=True)

    @classmethod
    def from_payload(cls, payload: str) -> "AuditBatch":
        """An outbox row: a batch, or (rows staged one entry each) a single entry."""
        data = json.loads(payload)
        if "common" not in data:
            entry = AuditEntry.from_dict(data)
            return cls.of_entries([entry])[0]
        common = data["common"]
        common["as_of"] = datetime.fromisoformat(common["as_of"])
        common["recorded_at"] = datetime.fromisoformat(common["recorded_at"])
        return cls(common, [tuple(item) for item in data["items"]])

    @classmethod
    def of_entries(cls, entries: list[AuditEntry]) -> list["AuditBatch"]:
        """Entries grouped, in order, into runs that share the common fields."""
        batches: list[AuditBatch] = []
        for entry in entries:
            common = {name: getattr(entry, name) for name in COMMON_FIELDS}
            item = (entry.entry_id, entry.subject_key, entry.record_count, json.dumps(entry.details, sort_keys=True))
            if batches and batches[-1].common == common:
                batches[-1].items.append(item)
            else:
                batches.append(cls(common, [item]))
        return batches


# The hashed form of an entry is json.dumps(values, sort_keys=True, separators=(",", ":")). It is
# written out field by field below, byte for byte the same (keys in sorted order, strings quoted
# by json's own quoting function, ints and booleans as JSON writes them), because hashing is done
# once per entry and json.dumps of a dict was the larger part of that cost.
_SORTED_FIELDS = sorted(HASHED_FIELDS)
_KEY_PREFIXES = [("," if i else "{") + encode_basestring_ascii(name) + ":" for i, name in enumerate(_SORTED_FIELDS)]


def _json_value(name: str, value: Any) -> str:
    if isinstance(value, datetime):
        return encode_basestring_ascii(value.replace(microsecond=0).isoformat())
    if name == "dry_run" or isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _canonical(row: dict[str, Any]) -> bytes:
    parts = [prefix + _json_value(name, row[name]) for prefix, name in zip(_KEY_PREFIXES, _SORTED_FIELDS, strict=True)]
    parts.append("}")
    return "".join(parts).encode()


class _BatchCanonical:
    """The hashed form of a batch's entries: the shared fields encoded once, the rest per entry.

    Gives exactly :func:`_canonical` of each entry's row (tests compare the two).
    """

    def __init__(self, common: dict[str, Any]):
        row = dict.fromkeys(HASHED_FIELDS, "")
        row.update(common)
        encoded = {name: _json_value(name, row[name]) for name in HASHED_FIELDS}
        varying = ("details", "entry_id", "prev_hash", "record_count", "seq", "subject_key")
        self.pieces: list[str] = []  # text before each varying field, in sorted key order
        text = ""
        for prefix, name in zip(_KEY_PREFIXES, _SORTED_FIELDS, strict=True):
            text += prefix
            if name in varying:
                self.pieces.append(text)
                text = ""
            else:
                text += encoded[name]
        self.tail = text + "}"

    def __call__(self, details: str, entry_id: str, prev_hash: str, record_count: int, seq: int, subject: str) -> bytes:
        p = self.pieces
        q = encode_basestring_ascii
        return (
            f"{p[0]}{q(details)}{p[1]}{q(entry_id)}{p[2]}{q(prev_hash)}{p[3]}{record_count}"
            f"{p[4]}{seq}{p[5]}{q(subject)}{self.tail}"
        ).encode()


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

    def create(self) -> list[str]:
        """Make what the chain lacks of its tables, index, head row and append-only guard; returns
        what it made (empty: nothing was missing).

        Every run calls this at its start, through a role that may only append to the chain and
        read it (``deploy/roles``): everything is looked up first (the inspector, the head row,
        the catalog for the triggers) and, when it is all there, no DDL is issued and no lock is
        taken. An administrator makes the chain once (``lethe audit init``); a role that may not
        run DDL and finds something missing raises :class:`AuditStoreNotReady` saying so.
        """
        with self.engine.connect() as conn:
            if not self.missing(conn):
                return []
        try:
            with schema_change(self.engine) as conn:
                missing = self.missing(conn)  # again, under the lock: another task may have made them
                if {f"table {audit_table.name}", f"table {head_table.name}"} & set(missing):
                    audit_metadata.create_all(conn)
                if f"index {rule_action_index.name}" in missing:
                    rule_action_index.create(conn, checkfirst=True)  # a chain made before the index had none
                if "head row" in missing:
                    conn.execute(insert(head_table), {"id": 1, "seq": 0, "entry_hash": GENESIS})
                # Triggers that refuse UPDATE and DELETE on the chain, so no code path can rewrite
                # it. Someone with owner rights can still drop them; the hash chain proves tampering.
                if "append-only guard" in missing:
                    for statement in APPEND_ONLY_GUARDS[self.engine.dialect.name]:
                        conn.exec_driver_sql(statement)
        except DBAPIError as exc:
            raise AuditStoreNotReady(
                f"the audit store ({self.engine.url.render_as_string(hide_password=True)}) lacks "
                f"{', '.join(self.missing_now())} and this connection may not create them "
                f"({type(exc.orig).__name__}): an administrator sets it up once with `lethe audit init`"
            ) from None
        return missing

    def missing_now(self) -> list[str]:
        with self.engine.connect() as conn:
            return self.missing(conn)

    @staticmethod
    def missing(conn: Connection) -> list[str]:
        """What the chain lacks, read from the catalog (needs no privilege beyond reading the chain)."""
        inspector = inspect(conn)
        tables = set(inspector.get_table_names())
        found = [f"table {table.name}" for table in (audit_table, head_table) if table.name not in tables]
        if audit_table.name not in tables or rule_action_index.name not in {
            index["name"] for index in inspector.get_indexes(audit_table.name)
        }:
            found.append(f"index {rule_action_index.name}")
        if head_table.name not in tables or (
            conn.execute(select(head_table.c.id).where(head_table.c.id == 1)).first() is None
        ):
            found.append("head row")
        dialect = conn.dialect.name
        triggers = set()
        if audit_table.name in tables:
            triggers = set(conn.execute(text(_TRIGGERS_OF_TABLE[dialect]), {"table": audit_table.name}).scalars())
        if not set(GUARD_TRIGGERS[dialect]) <= triggers:
            found.append("append-only guard")
        return found

    @staticmethod
    def create_outbox(source_engine: Engine) -> None:
        """The source's outbox, when it is missing (a look first: CREATE is needed only once)."""
        with source_engine.connect() as conn:
            if inspect(conn).has_table(OUTBOX_TABLE, schema=conn.schema_for_object(outbox_table)):
                return
        with schema_change(source_engine) as conn:
            outbox_metadata.create_all(conn)

    @staticmethod
    def stage(conn: Connection, batch: AuditBatch) -> int:
        """Write a batch's entries to the outbox in the caller's transaction (the one making the
        change): one row per :data:`OUTBOX_ROW_ENTRIES` entries, named by its first entry's id,
        each chained later all at once. (Rows stay small: MariaDB's TEXT holds 64 KiB.)"""
        rows = [
            {"entry_id": part.items[0][0], "payload": part.to_payload()} for part in batch.parts(OUTBOX_ROW_ENTRIES)
        ]
        if rows:
            conn.execute(insert(outbox_table), rows)
        return len(batch)

    def drain(self, source_engine: Engine, batch_size: int = 100, read_size: int = 10) -> int:
        """Move every staged batch of a source into the chain, exactly once.

        Up to ``batch_size`` outbox rows are chained in one transaction of the audit store, read
        ``read_size`` rows at a time (memory holds those), then cleared from the outbox.
        """
        moved = 0
        while True:
            with source_engine.connect() as source:
                staged = (
                    source.execute(select(outbox_table.c.entry_id).order_by(outbox_table.c.entry_id).limit(batch_size))
                    .scalars()
                    .all()
                )
            if not staged:
                return moved

            def groups(ids: list[str]) -> Iterator[list[AuditBatch]]:
                for start in range(0, len(ids), read_size):
                    part = ids[start : start + read_size]
                    with source_engine.connect() as source:
                        payloads = source.execute(
                            select(outbox_table.c.entry_id, outbox_table.c.payload)
                            .where(keys_in(outbox_table.c.entry_id, part))
                            .order_by(outbox_table.c.entry_id)
                        ).all()
                    # A row gone meanwhile was chained and cleared by another task's drain (rules
                    # share an outbox); chaining is idempotent anyway: a chained batch is skipped.
                    yield [AuditBatch.from_payload(row.payload) for row in payloads]

            moved += self.append_batches(groups(staged))
            with source_engine.begin() as source:
                source.execute(delete(outbox_table).where(keys_in(outbox_table.c.entry_id, staged)))

    def append(self, entries: list[AuditEntry]) -> int:
        """Chain entries (grouped into batches of shared fields, each chained all or none)."""
        return self.append_batches([AuditBatch.of_entries(entries)])

    def append_batch(self, batch: AuditBatch) -> int:
        return self.append_batches([[batch]])

    def append_batches(self, groups: Iterable[list[AuditBatch]]) -> int:
        """Chain groups of batches in one transaction, in order, each batch all or none.

        A batch whose first entry is in the chain already (an outbox batch chained before a crash
        cleared it) is chained already, whole, and is skipped: one lookup by unique keys per group,
        whatever the size of the batches or of the chain.
        """
        added = 0
        with self.engine.begin() as conn:
            head = conn.execute(select(head_table).where(head_table.c.id == 1).with_for_update()).first()
            if head is None:
                conn.execute(insert(head_table), {"id": 1, "seq": 0, "entry_hash": GENESIS})
                seq, prev = 0, GENESIS
            else:
                seq, prev = head.seq, head.entry_hash
            for group in groups:
                group = [batch for batch in group if batch.items]
                firsts = [batch.items[0][0] for batch in group]
                chained = (
                    set(
                        conn.execute(
                            select(audit_table.c.entry_id).where(keys_in(audit_table.c.entry_id, firsts))
                        ).scalars()
                    )
                    if firsts
                    else set()
                )
                rows: list[dict[str, Any]] = []
                for batch in group:
                    if batch.items[0][0] not in chained:
                        seq, prev = self._chain(batch, seq, prev, rows)
                bulk_insert(conn, audit_table, rows)
                added += len(rows)
            if added:
                conn.execute(head_table.update().where(head_table.c.id == 1).values(seq=seq, entry_hash=prev))
            return added

    def _chain(self, batch: AuditBatch, seq: int, prev: str, rows: list[dict[str, Any]]) -> tuple[int, str]:
        """Seal a batch's entries after (seq, prev) into ``rows``; the new head."""
        common = batch.common
        canonical = _BatchCanonical(common)
        fixed = {
            **common,
            "as_of": common["as_of"].replace(microsecond=0),
            "recorded_at": common["recorded_at"].replace(microsecond=0),
            "dry_run": bool(common["dry_run"]),
        }
        key = self.key.encode()
        for entry_id, subject, record_count, details_json in batch.items:
            seq += 1
            record_count = int(record_count)
            digest = hmac.digest(
                key, canonical(details_json, entry_id, prev, record_count, seq, subject), "sha256"
            ).hex()
            rows.append(
                {
                    **fixed,
                    "seq": seq,
                    "entry_id": entry_id,
                    "subject_key": subject,
                    "record_count": record_count,
                    "details": details_json,
                    "prev_hash": prev,
                    "entry_hash": digest,
                }
            )
            prev = digest
        return seq, prev

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
