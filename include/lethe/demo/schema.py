"""The reference estate (shared/reference-estate.md) as SQLAlchemy tables, for the demo and tests."""

from __future__ import annotations

from sqlalchemy import Column, Date, DateTime, ForeignKey, Integer, MetaData, String, Table, Text

crm = MetaData()
companies = Table(
    "companies",
    crm,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("country", String(2), nullable=False),
    Column("customer_since", Date),
    Column("customer_until", Date),
)
contacts = Table(
    "contacts",
    crm,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("company_id", Integer, ForeignKey("companies.id")),
    Column("first_name", String(100)),
    Column("last_name", String(100)),
    Column("email", String(254)),
    Column("phone", String(50)),
    Column("job_title", String(200)),
    Column("created_at", DateTime, nullable=False),
    Column("last_contact_at", DateTime),
)
interactions = Table(
    "interactions",
    crm,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("contact_id", Integer, ForeignKey("contacts.id"), nullable=False),
    Column("occurred_at", DateTime, nullable=False),
    Column("channel", String(20), nullable=False),
    Column("notes", Text),
)
trial_signups = Table(
    "trial_signups",
    crm,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("contact_id", Integer, ForeignKey("contacts.id"), nullable=False),
    Column("database_name", String(64), nullable=False),
    Column("trial_started_at", DateTime, nullable=False),
    Column("trial_ends_at", DateTime, nullable=False),
    Column("subscribed_at", DateTime),
)
legal_holds = Table(
    "legal_holds",
    crm,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("email", String(254), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("placed_at", DateTime, nullable=False),
    Column("released_at", DateTime),
)
restrictions = Table(
    "restrictions",
    crm,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("email", String(254), nullable=False),
    Column("requested_at", DateTime, nullable=False),
    Column("lifted_at", DateTime),
)

marketing = MetaData()
newsletter_subscribers = Table(
    "newsletter_subscribers",
    marketing,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("email", String(254)),
    Column("first_name", String(100)),
    Column("country", String(2)),
    Column("subscribed_at", DateTime, nullable=False),
    Column("unsubscribed_at", DateTime),
)
suppression_list = Table(
    "suppression_list",
    marketing,
    Column("email_hash", String(64), primary_key=True),
    Column("added_at", DateTime, nullable=False),
    Column("reason", String(200), nullable=False),
)
cookie_consents = Table(
    "cookie_consents",
    marketing,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("cookie_id", String(64), nullable=False),
    Column("consented_at", DateTime, nullable=False),
    Column("categories", String(100), nullable=False),
    Column("ip_address", String(45)),
)
web_events = Table(
    "web_events",
    marketing,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("cookie_id", String(64), nullable=False),
    Column("cookie_set_at", DateTime, nullable=False),
    Column("occurred_at", DateTime, nullable=False),
    Column("url", String(500), nullable=False),
    Column("ip_address", String(45)),
    Column("user_agent", String(500)),
)
