"""Subject keys: keyed hashes that let the audit trail name a person without holding their data.

The key comes from ``LETHE_AUDIT_KEY`` (or the Airflow variable ``lethe_audit_key``). A key made
by ``lethe seed-demo`` starts with :data:`DEMO_KEY_PREFIX`, and every report says so.
"""

from __future__ import annotations

import hmac
import os

from lethe.errors import MissingAuditKey

__all__ = ["MissingAuditKey", "audit_key", "email_key", "is_demo_key", "keyed_hash", "normalise_email", "subject_key"]

DEMO_KEY_PREFIX = "lethe-demo-key-"


def normalise_email(address: str) -> str:
    """Case and spaces ignored: ``' Ann.Lee@Example.COM'`` and ``'ann.lee@example.com'`` match."""
    return address.strip().replace(" ", "").lower()


def audit_key(explicit: str | None = None) -> str:
    key = explicit or os.environ.get("LETHE_AUDIT_KEY", "")
    if not key:
        raise MissingAuditKey(
            "no audit key: set LETHE_AUDIT_KEY or the Airflow variable lethe_audit_key "
            "(`make seed` writes a demo key for the demo estate)"
        )
    if len(key) < 16:
        raise MissingAuditKey("the audit key is shorter than 16 characters")
    return key


def is_demo_key(key: str) -> bool:
    return key.startswith(DEMO_KEY_PREFIX)


def keyed_hash(key: str, kind: str, value: str) -> str:
    """HMAC-SHA256 of ``kind:value`` (the kind keeps an e-mail and a record id apart)."""
    return hmac.digest(key.encode(), f"{kind}:{value}".encode(), "sha256").hex()  # one-shot: OpenSSL's HMAC


def email_key(key: str, address: str) -> str:
    return keyed_hash(key, "email", normalise_email(address))


def subject_key(key: str, kind: str, value, *, source: str = "", table: str = "") -> str:
    """The audit subject key of one record: by e-mail, cookie id or record id."""
    if kind == "email" and value:
        return email_key(key, str(value))
    if kind == "cookie" and value:
        return keyed_hash(key, "cookie", str(value))
    return keyed_hash(key, "record", f"{source}.{table}:{value}")
