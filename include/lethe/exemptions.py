"""Legal holds and restrictions in force at the as-of: they exempt a subject from every rule."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable

from sqlalchemy import DateTime, bindparam, or_, select

from lethe.config import Inventory
from lethe.db import timestamp_sql
from lethe.periods import to_utc_naive
from lethe.schema import exemption_needs, reflect_tables, source_engine
from lethe.subjects import normalise_email


@dataclass(frozen=True)
class Exemptions:
    """Normalised e-mail addresses under a legal hold, and under a restriction."""

    held: frozenset[str] = field(default_factory=frozenset)
    restricted: frozenset[str] = field(default_factory=frozenset)
    # (kind, address) -> since when the hold or restriction in force has been (its earliest start)
    since: dict[tuple[str, str], datetime] = field(default_factory=dict)

    @property
    def any(self) -> frozenset[str]:
        return self.held | self.restricted


def check_exemptions(inventory: Inventory, engine_for, *, user: str) -> None:
    """Check the hold and restriction tables' names (only those) for ``user`` (``"rule N1"``)."""
    for source in inventory.exemption_sources():
        engine = source_engine(engine_for(source.connection_id), source)
        reflect_tables(engine, source, exemption_needs(source), user=user)


def load_exemptions(
    inventory: Inventory, engine_for, as_of: datetime, *, user: str = "", reflected: dict | None = None
) -> Exemptions:
    """Read every hold and restriction table of the inventory.

    In force at the as-of: started at or before it and not ended by it. A hold names an address:
    an empty one names nobody and is left out. If a source with exemption tables cannot be read,
    this raises: no rule may run without knowing its holds. ``reflected``: a dict the caller keeps
    between calls, so that reading the holds again (every batch) does not reflect the tables again.
    """
    found: dict[str, set[str]] = {"legal_hold": set(), "restriction": set()}
    since: dict[tuple[str, str], datetime] = {}
    reflected = {} if reflected is None else reflected
    for source in inventory.exemption_sources():
        engine = source_engine(engine_for(source.connection_id), source)
        # A misnamed hold table or column stops the rule, clearly; only these names are checked.
        if source.source not in reflected:
            reflected[source.source] = reflect_tables(engine, source, exemption_needs(source), user=user or "holds")
        tables = reflected[source.source]
        for kind, ex in source.exemptions.items():
            t = tables[ex.table]
            as_of_param = bindparam(None, as_of, type_=DateTime)
            query = select(t.c[ex.email], timestamp_sql(t.c[ex.in_force_from])).where(
                t.c[ex.email].is_not(None),
                timestamp_sql(t.c[ex.in_force_from]) <= as_of_param,
                or_(t.c[ex.in_force_until].is_(None), timestamp_sql(t.c[ex.in_force_until]) > as_of_param),
            )
            with engine.connect() as conn:
                for address, started in conn.execute(query):
                    address = normalise_email(address)
                    if address:
                        found[kind].add(address)
                        started = to_utc_naive(started) if isinstance(started, (str, datetime)) else started
                        since[(kind, address)] = min(since.get((kind, address), started), started)
    return Exemptions(frozenset(found["legal_hold"]), frozenset(found["restriction"]), since)


# The audit action recording that a hold or restriction keeps a person past the deadline.
KEPT = {"legal_hold": "kept_by_legal_hold", "restriction": "kept_by_restriction"}


def record_kept(
    audit,
    rule_id: str,
    key: str,
    exemptions: Exemptions,
    make_entry: Callable[..., Any],
    kept: Iterable[tuple[str, str, dict[str, Any]]],
) -> int:
    """Chain one entry per person, rule and hold for those a hold keeps past their deadline.

    ``kept``: (kind, address, details) for each record kept, ``kind`` "legal_hold" or
    "restriction". The entry holds the subject key (never the address), the kind and since when
    it has been in force; a person already recorded for the same hold is not recorded again, so
    ``lethe audit find`` answers "kept by a legal hold since ..." once. Returns the entries added.
    """
    from lethe.audit import audit_table
    from lethe.subjects import email_key

    recorded = {
        (row["subject_key"], row["action"], json.loads(row["details"]).get("since"))
        for row in audit.entries(
            audit_table.c.rule_id == rule_id,
            audit_table.c.action.in_(list(KEPT.values())),
            audit_table.c.dry_run.is_(False),
        )
    }
    new = []
    for kind, address, details in kept:
        since = exemptions.since[(kind, normalise_email(address))].isoformat()
        subject = email_key(key, address)
        if (subject, KEPT[kind], since) in recorded:
            continue
        recorded.add((subject, KEPT[kind], since))
        new.append(make_entry(KEPT[kind], subject, 1, {**details, "since": since}))
    for start in range(0, len(new), 1000):
        audit.append(new[start : start + 1000])
    return len(new)
