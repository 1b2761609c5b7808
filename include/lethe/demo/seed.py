"""Write a deterministic demo estate laid out as the reference estate.

Thousands of Faker rows spread around every rule's boundary, plus records exactly at each
deadline and one second after it, holds and restrictions (in force, released, not yet placed;
addresses written with other case and spaces), and active, former and never customers.
The same as-of and seed always give the same estate.
"""

from __future__ import annotations

import random
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from faker import Faker
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from lethe.demo import schema
from lethe.periods import Period, add_period, subtract_period
from lethe.subjects import DEMO_KEY_PREFIX

SECOND = timedelta(seconds=1)


def at_deadline(as_of: datetime, period: Period) -> datetime:
    """A trigger whose deadline (trigger + period) is exactly the as-of."""
    guess = subtract_period(as_of, period)
    for shift in range(-4, 5):
        candidate = guess + timedelta(days=shift)
        if add_period(candidate, period) == as_of:
            return candidate
    return guess  # month-end clamping leaves no exact preimage; the tests compute the truth


@dataclass
class DemoSizes:
    companies: int = 300
    contacts: int = 2500
    subscribers: int = 2000
    consents: int = 2000
    web_events: int = 5000
    trials: int = 300  # random free-trial sign-ups, besides the boundary and held ones
    refused_names: bool = True  # trial databases whose names T1 must refuse (decoys)


# A small estate for a deployment's live test: every rule still has due, kept and boundary rows.
# Its few trials would make the five refused names more than the share that stops T1: it has none.
SMALL = DemoSizes(
    companies=40, contacts=300, subscribers=200, consents=200, web_events=400, trials=12, refused_names=False
)


def _chunks(rows, size=1000):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _insert(engine: Engine, table, rows) -> None:
    with engine.begin() as conn:
        for chunk in _chunks(rows):
            conn.execute(insert(table), chunk)


def _spaced(address: str, rng: random.Random) -> str:
    """The same address as a person might type it into a hold register."""
    variants = [address.upper(), f"  {address} ", address.title(), address.replace("@", " @")]
    return rng.choice(variants)


def _random_companies(fake: Faker, rng: random.Random, count: int, today) -> list[dict]:
    """Prospects, active and former customers, with contract dates around ``today``."""
    companies = []
    for cid in range(1, count + 1):
        kind = rng.choices(["prospect", "active", "former"], [5, 3, 2])[0]
        since = until = None
        if kind != "prospect":
            since = today - timedelta(days=rng.randint(400, 4500))
        if kind == "active" and rng.random() < 0.2:
            until = today + timedelta(days=rng.randint(1, 700))  # contract ends in the future
        if kind == "former":
            until = today - timedelta(days=rng.randint(1, 3000))
            since = min(since, until - timedelta(days=30))
        companies.append(
            {
                "id": cid,
                "name": fake.company(),
                "country": fake.country_code(),
                "customer_since": since,
                "customer_until": until,
            }
        )
    return companies


def seed_crm(engine: Engine, as_of: datetime, seed: int = 42, sizes: DemoSizes | None = None) -> dict:
    """Create and fill the CRM; returns the e-mail addresses it used (for the marketing seed)."""
    sizes = sizes or DemoSizes()
    fake = Faker(["nl_NL", "fr_FR", "en_GB"])
    fake.seed_instance(seed)
    rng = random.Random(seed)
    schema.crm.drop_all(engine)
    schema.crm.create_all(engine)
    today = as_of.date()

    companies = _random_companies(fake, rng, sizes.companies, today)
    # Companies exactly at the K1 boundary (customer_until is a date: 00:00 UTC).
    k1 = Period(months=60)
    k1_due = at_deadline(as_of, k1).date()
    for offset, cid in ((0, sizes.companies + 1), (1, sizes.companies + 2)):
        companies.append(
            {
                "id": cid,
                "name": fake.company(),
                "country": "NL",
                "customer_since": k1_due - timedelta(days=2000),
                "customer_until": k1_due + timedelta(days=offset),
            }
        )
    _insert(engine, schema.companies, companies)

    contacts, interactions, used = [], [], []
    iid = 0
    n_companies = len(companies)
    for pid in range(1, sizes.contacts + 1):
        created = as_of - timedelta(days=rng.randint(10, 3400), seconds=rng.randint(0, 86399))
        last = None
        if rng.random() < 0.7:
            last = created + (as_of - created) * rng.random()
            last = last.replace(microsecond=0)
        email = fake.unique.email()
        used.append(email)
        contacts.append(
            {
                "id": pid,
                "company_id": rng.randint(1, n_companies) if rng.random() > 0.03 else None,
                "first_name": fake.first_name(),
                "last_name": fake.last_name(),
                "email": email,
                "phone": fake.phone_number(),
                "job_title": fake.job(),
                "created_at": created,
                "last_contact_at": last,
            }
        )
        for _ in range(rng.choice([0, 0, 1, 2, 3, 5])):
            iid += 1
            when = (created + (as_of - created) * rng.random()).replace(microsecond=0)
            interactions.append(
                {
                    "id": iid,
                    "contact_id": pid,
                    "occurred_at": when,
                    "channel": rng.choice(["email", "phone", "form", "meeting"]),
                    "notes": f"{fake.sentence()} Bel {fake.first_name()} op {fake.phone_number()}.",
                }
            )

    # C1 boundaries at prospects: last contact exactly at the deadline and one second after;
    # creation date only; an old last contact but a recent interaction.
    c1 = Period(months=36)
    c1_due = at_deadline(as_of, c1)
    prospect_company = next(c["id"] for c in companies if c["customer_since"] is None)
    former_company = sizes.companies + 1
    pid = sizes.contacts

    def boundary_contact(company_id, created, last):
        nonlocal pid
        pid += 1
        email = fake.unique.email()
        used.append(email)
        contacts.append(
            {
                "id": pid,
                "company_id": company_id,
                "first_name": fake.first_name(),
                "last_name": fake.last_name(),
                "email": email,
                "phone": fake.phone_number(),
                "job_title": fake.job(),
                "created_at": created,
                "last_contact_at": last,
            }
        )
        return pid

    boundary_contact(prospect_company, c1_due - timedelta(days=90), c1_due)
    boundary_contact(prospect_company, c1_due - timedelta(days=90), c1_due + SECOND)
    boundary_contact(prospect_company, c1_due, None)
    boundary_contact(prospect_company, c1_due + SECOND, None)
    recent = boundary_contact(prospect_company, c1_due - timedelta(days=400), c1_due - timedelta(days=300))
    iid += 1
    interactions.append(
        {
            "id": iid,
            "contact_id": recent,
            "occurred_at": c1_due + SECOND,
            "channel": "meeting",
            "notes": "Follow-up meeting.",
        }
    )
    boundary_contact(former_company, c1_due - timedelta(days=900), c1_due - timedelta(days=800))
    boundary_contact(former_company + 1, c1_due - timedelta(days=900), c1_due - timedelta(days=800))

    _insert(engine, schema.contacts, contacts)
    _insert(engine, schema.interactions, interactions)

    # Holds and restrictions: in force, released before the as-of, placed after it.
    sample = rng.sample(used, 120)
    holds, restrictions = [], []
    for hid, address in enumerate(sample[:60], start=1):
        placed = as_of - timedelta(days=rng.randint(1, 900))
        state = rng.choice(["in_force", "in_force", "released", "future"])
        released = placed + timedelta(days=rng.randint(1, 30)) if state == "released" else None
        if state == "released" and released > as_of:
            released = as_of
        if state == "future":
            placed = as_of + timedelta(days=rng.randint(1, 30))
        holds.append(
            {
                "id": hid,
                "email": _spaced(address, rng),
                "placed_at": placed,
                "released_at": released,
                "reason": rng.choice(["dispute", "claim", "authority request"]),
            }
        )
    for rid, address in enumerate(sample[60:], start=1):
        requested = as_of - timedelta(days=rng.randint(1, 900))
        lifted = requested + timedelta(days=rng.randint(1, 60)) if rng.random() < 0.3 else None
        if lifted and lifted > as_of:
            lifted = None
        restrictions.append({"id": rid, "email": _spaced(address, rng), "requested_at": requested, "lifted_at": lifted})
    # A hold exactly at the as-of is in force; one released exactly at the as-of is not.
    contact_at_deadline = contacts[sizes.contacts]["email"]
    holds.append(
        {
            "id": len(holds) + 1,
            "email": contact_at_deadline.upper(),
            "placed_at": as_of,
            "released_at": None,
            "reason": "dispute",
        }
    )
    _insert(engine, schema.legal_holds, holds)
    _insert(engine, schema.restrictions, restrictions)
    _seed_trial_signups(engine, as_of, seed, contacts, holds, restrictions, sample, sizes.trials)
    return {"emails": used}


def _trial_name(fake: Faker, tid: int) -> str:
    """``trial_`` + an ASCII slug of a company name + the id (unique, within the T1 pattern)."""
    slug = unicodedata.normalize("NFKD", fake.company()).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "_", slug).strip("_")[:40] or "planning"
    return f"trial_{slug}_{tid}"


def _seed_trial_signups(
    engine: Engine,
    as_of: datetime,
    seed: int,
    contacts: list[dict],
    holds: list[dict],
    restrictions: list[dict],
    sample: list[str],
    count: int,
) -> None:
    """A few hundred (``count``) free-trial sign-ups around the T1 boundary (trial end + 90 days).

    Their own generators keep the rest of the CRM as it is when these change. Sign-ups go to
    contacts no other rule removes at this as-of (C1 would delete a sign-up row with its contact,
    leaving the trial database without its catalog row); a few go to held and restricted contacts.
    """
    fake = Faker(["nl_NL", "fr_FR", "en_GB"])
    fake.seed_instance(seed + 1000)
    rng = random.Random(seed + 1000)
    recent = as_of - timedelta(days=730)
    pool = [
        c["id"]
        for c in contacts
        if c["created_at"] >= recent or (c["last_contact_at"] and c["last_contact_at"] >= recent)
    ]
    by_email = {c["email"]: c["id"] for c in contacts}
    # holds[i] and restrictions[i] were drawn for sample[i] and sample[60 + i].
    held = [
        by_email[sample[i]]
        for i, h in enumerate(holds[:60])
        if h["placed_at"] <= as_of and (h["released_at"] is None or h["released_at"] > as_of)
    ]
    lapsed = [
        by_email[sample[i]]
        for i, h in enumerate(holds[:60])
        if (h["released_at"] is not None and h["released_at"] <= as_of) or h["placed_at"] > as_of
    ]
    restricted = [by_email[sample[60 + i]] for i, r in enumerate(restrictions) if r["lifted_at"] is None]
    t1 = Period(days=90)
    deadline = at_deadline(as_of, t1)  # a trial ending here is due exactly at the as-of
    trials = []

    def signup(ends: datetime, contact_id: int, subscribed: datetime | None = None) -> None:
        tid = len(trials) + 1
        trials.append(
            {
                "id": tid,
                "contact_id": contact_id,
                "database_name": _trial_name(fake, tid),
                "trial_started_at": ends - timedelta(days=30),
                "trial_ends_at": ends,
                "subscribed_at": subscribed,
            }
        )

    for _ in range(count):
        started = as_of - timedelta(days=rng.randint(5, 420), seconds=rng.randint(0, 86399))
        ends = started + timedelta(days=30)
        subscribed = ends - timedelta(days=rng.randint(0, 29)) if rng.random() < 0.3 else None
        signup(ends, rng.choice(pool), subscribed)
    # Boundaries: due exactly at the as-of, one second earlier (due), one second later (not yet).
    for offset in (timedelta(0), -SECOND, SECOND):
        signup(deadline + offset, rng.choice(pool))
    signup(deadline, rng.choice(pool), subscribed=deadline - timedelta(days=3))  # converted: kept
    # Held and restricted sign-up contacts keep long-due trials; lapsed holds do not.
    for contact_id in held[:4] + restricted[:3] + lapsed[:2]:
        signup(deadline - timedelta(days=rng.randint(10, 200)), contact_id)
    _insert(engine, schema.trial_signups, trials)


def seed_marketing(
    engine: Engine, as_of: datetime, crm_emails: list[str], seed: int = 43, sizes: DemoSizes | None = None
) -> None:
    sizes = sizes or DemoSizes()
    fake = Faker(["nl_NL", "fr_FR", "en_GB"])
    fake.seed_instance(seed)
    rng = random.Random(seed)
    schema.marketing.drop_all(engine)
    schema.marketing.create_all(engine)

    subscribers = []
    for sid in range(1, sizes.subscribers + 1):
        subscribed = as_of - timedelta(days=rng.randint(1, 1500), seconds=rng.randint(0, 86399))
        unsubscribed = None
        if rng.random() < 0.35:
            unsubscribed = (subscribed + (as_of - subscribed) * rng.random()).replace(microsecond=0)
        email = rng.choice(crm_emails) if rng.random() < 0.15 else fake.unique.email()
        subscribers.append(
            {
                "id": sid,
                "email": email,
                "first_name": fake.first_name(),
                "country": fake.country_code(),
                "subscribed_at": subscribed,
                "unsubscribed_at": unsubscribed,
            }
        )
    # N1 boundaries: unsubscribed exactly at the as-of (acted on) and one second after (kept).
    for offset in (timedelta(0), SECOND, -timedelta(days=8)):
        sid = len(subscribers) + 1
        subscribers.append(
            {
                "id": sid,
                "email": fake.unique.email(),
                "first_name": fake.first_name(),
                "country": "FR",
                "subscribed_at": as_of - timedelta(days=100),
                "unsubscribed_at": as_of + offset,
            }
        )
    _insert(engine, schema.newsletter_subscribers, subscribers)

    def cookie() -> str:
        return fake.unique.hexify("^" * 32)

    consents = []
    w2 = Period(months=13)
    w2_due = at_deadline(as_of, w2)
    for cid in range(1, sizes.consents + 1):
        consents.append(
            {
                "id": cid,
                "cookie_id": cookie(),
                "consented_at": as_of - timedelta(days=rng.randint(0, 800), seconds=rng.randint(0, 86399)),
                "categories": rng.choice(["analytics", "analytics,ads", "ads"]),
                "ip_address": fake.ipv4_public() if rng.random() < 0.8 else fake.ipv6(),
            }
        )
    for offset in (timedelta(0), SECOND):
        consents.append(
            {
                "id": len(consents) + 1,
                "cookie_id": cookie(),
                "consented_at": w2_due + offset,
                "categories": "analytics",
                "ip_address": fake.ipv4_public(),
            }
        )
    _insert(engine, schema.cookie_consents, consents)

    events = []
    w1 = Period(days=90)
    w1_due = at_deadline(as_of, w1)
    cookies = [
        (cookie(), as_of - timedelta(days=rng.randint(0, 200), seconds=rng.randint(0, 86399)))
        for _ in range(sizes.web_events // 5)
    ]
    cookies += [(cookie(), w1_due), (cookie(), w1_due + SECOND)]
    for eid in range(1, sizes.web_events + 1):
        cookie_id, set_at = cookies[eid % len(cookies)] if eid > 2 else cookies[-eid]
        events.append(
            {
                "id": eid,
                "cookie_id": cookie_id,
                "cookie_set_at": set_at,
                "occurred_at": set_at + timedelta(minutes=rng.randint(0, 60 * 24 * 30)),
                "url": fake.uri(),
                "ip_address": fake.ipv4_public(),
                "user_agent": fake.user_agent(),
            }
        )
    _insert(engine, schema.web_events, events)


def write_demo_key(path: Path) -> str:
    """A random audit key marked as a demo key (reports say so)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text().strip().startswith(DEMO_KEY_PREFIX):
        return path.read_text().strip()
    key = DEMO_KEY_PREFIX + secrets.token_hex(24)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def seed_date(value: str | date | datetime) -> datetime:
    from lethe.periods import to_utc_naive

    return to_utc_naive(value)
