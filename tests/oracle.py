"""An independent, row-by-row reading of the rules over the reference estate, for the tests.

The engine decides in SQL; this decides in Python from the same policy, one row at a time, so a
dialect's arithmetic or a wrong join shows up as a difference.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from lethe.demo import schema
from lethe.periods import Period, add_period
from lethe.subjects import email_key, normalise_email

CRM_TABLES = [
    schema.companies,
    schema.contacts,
    schema.interactions,
    schema.trial_signups,
    schema.legal_holds,
    schema.restrictions,
]
MARKETING_TABLES = [schema.newsletter_subscribers, schema.suppression_list, schema.cookie_consents, schema.web_events]
ANONYMISED = {"first_name": "anonymised", "last_name": "anonymised", "email": None, "phone": None, "job_title": None}


def _dt(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return datetime.fromisoformat(str(value))


def snapshot(engine, tables) -> dict[str, dict[Any, dict]]:
    """Every row of every table, by primary key, with datetimes at second precision."""
    out: dict[str, dict[Any, dict]] = {}
    with engine.connect() as conn:
        for table in tables:
            pk = list(table.primary_key.columns)[0].name
            rows = {}
            for row in conn.execute(select(table)).mappings():
                row = {k: (v.replace(microsecond=0) if isinstance(v, datetime) else v) for k, v in row.items()}
                rows[row[pk]] = row
            out[table.name] = rows
    return out


def exempt_addresses(crm: dict, as_of: datetime) -> tuple[set[str], set[str]]:
    def in_force(rows, start, end):
        return {
            normalise_email(r["email"])
            for r in rows.values()
            if _dt(r[start]) <= as_of and (r[end] is None or _dt(r[end]) > as_of)
        }

    return (
        in_force(crm["legal_holds"], "placed_at", "released_at"),
        in_force(crm["restrictions"], "requested_at", "lifted_at"),
    )


def due(trigger, period: Period, as_of: datetime) -> bool:
    return trigger is not None and add_period(_dt(trigger), period) <= as_of


def expected(
    crm: dict,
    marketing: dict,
    as_of: datetime,
    key: str,
    rules=("N1", "W1", "W2", "C1", "K1"),
    trial_databases: frozenset[str] = frozenset(),
):
    """The estate after the rules ran at ``as_of``; ``trial_databases``: those on the trial server."""
    import copy

    crm, marketing = copy.deepcopy(crm), copy.deepcopy(marketing)
    held, restricted = exempt_addresses(crm, as_of)
    exempt = held | restricted

    def is_exempt(address):
        return address is not None and normalise_email(address) in exempt

    if "N1" in rules:
        for sid, row in list(marketing["newsletter_subscribers"].items()):
            if due(row["unsubscribed_at"], Period(), as_of) and not is_exempt(row["email"]):
                del marketing["newsletter_subscribers"][sid]
                h = email_key(key, row["email"])
                marketing["suppression_list"].setdefault(
                    h, {"email_hash": h, "added_at": as_of, "reason": "newsletter unsubscribe (N1)"}
                )
    if "W1" in rules:
        marketing["web_events"] = {
            k: r for k, r in marketing["web_events"].items() if not due(r["cookie_set_at"], Period(days=90), as_of)
        }
    if "W2" in rules:
        marketing["cookie_consents"] = {
            k: r
            for k, r in marketing["cookie_consents"].items()
            if not due(r["consented_at"], Period(months=13), as_of)
        }
    companies = crm["companies"]
    if "C1" in rules:
        newest: dict[Any, datetime] = {}
        for r in crm["interactions"].values():
            when = _dt(r["occurred_at"])
            newest[r["contact_id"]] = max(newest.get(r["contact_id"], when), when)
        # A contact whose trial database is still on the server waits for rule T1.
        open_trials = {r["contact_id"] for r in crm["trial_signups"].values() if r["database_name"] in trial_databases}
        gone = set()
        for cid, r in crm["contacts"].items():
            if cid in open_trials:
                continue
            company = companies.get(r["company_id"])
            prospect = company is None or company["customer_since"] is None
            dates = [d for d in (_dt(r["last_contact_at"]), newest.get(cid)) if d is not None]
            trigger = max(dates) if dates else _dt(r["created_at"])
            if prospect and due(trigger, Period(months=36), as_of) and not is_exempt(r["email"]):
                gone.add(cid)
        crm["contacts"] = {k: r for k, r in crm["contacts"].items() if k not in gone}
        crm["interactions"] = {k: r for k, r in crm["interactions"].items() if r["contact_id"] not in gone}
        crm["trial_signups"] = {k: r for k, r in crm["trial_signups"].items() if r["contact_id"] not in gone}
    if "K1" in rules:
        done = set()
        for cid, r in crm["contacts"].items():
            company = companies.get(r["company_id"])
            if company is None or company["customer_since"] is None or company["customer_until"] is None:
                continue
            until = _dt(company["customer_until"])
            if until <= as_of and due(until, Period(months=60), as_of) and not is_exempt(r["email"]):
                r.update(ANONYMISED)
                done.add(cid)
        for r in crm["interactions"].values():
            if r["contact_id"] in done:
                r["notes"] = None
    return crm, marketing
