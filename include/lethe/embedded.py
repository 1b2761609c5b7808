"""The embedded default: the demo estate `make demo` writes under ``.lethe/estate``.

The DAGs read connections from Airflow; the ``lethe`` command reads the same ``AIRFLOW_CONN_<ID>``
variables and key. Where one is not set and the embedded estate exists, the command falls back
to it, so that every command works from the venv after ``make demo`` without ``make``, and says
which it used (:func:`describe_fallbacks`). ``LETHE_ESTATE_DIR`` points at another estate folder.

Accepts: a connection id (:func:`default_connection`); returns a URI or a JSON field object in
the form ``AIRFLOW_CONN_<ID>`` takes, or None when there is no embedded estate.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lethe.config import PACKAGE_ROOT

REPO_ROOT = PACKAGE_ROOT.parent
DEMO_KEY_FILE_NAME = "demo-audit-key"


def estate_dir() -> Path:
    """The embedded estate's folder (``LETHE_ESTATE_DIR``, default ``<repo>/.lethe/estate``)."""
    return Path(os.environ.get("LETHE_ESTATE_DIR") or REPO_ROOT / ".lethe" / "estate")


def default_connections(estate: Path | None = None) -> dict[str, str]:
    """The embedded estate's connections, as ``AIRFLOW_CONN_<ID>`` values (``make`` sets the same)."""
    estate = estate or estate_dir()
    return {
        "crm": f"sqlite:///{estate / 'crm.sqlite'}",
        "marketing": f"sqlite:///{estate / 'marketing.sqlite'}",
        "lethe_audit": f"sqlite:///{estate / 'audit.sqlite'}",
        "trials": f"sqlite:///{estate / 'trials'}",
        "weblogs": json.dumps({"conn_type": "fs", "extra": {"path": str(estate / "weblogs")}}),
    }


def default_connection(conn_id: str) -> str | None:
    """The embedded estate's value for ``conn_id``, or None (no estate, or not one of its ids)."""
    if not estate_dir().is_dir():
        return None
    return default_connections().get(conn_id)


def demo_key_file() -> Path | None:
    """The demo key to fall back on: ``LETHE_DEMO_KEY_FILE``, else the embedded estate's."""
    explicit = os.environ.get("LETHE_DEMO_KEY_FILE")
    path = Path(explicit) if explicit else estate_dir() / DEMO_KEY_FILE_NAME
    return path if path.is_file() else None


def airflow_home() -> str | None:
    """``AIRFLOW_HOME``, else the embedded default's (``<repo>/.lethe/airflow``) when it exists."""
    if os.environ.get("AIRFLOW_HOME"):
        return os.environ["AIRFLOW_HOME"]
    home = REPO_ROOT / ".lethe" / "airflow"
    return str(home) if home.is_dir() else None


def describe_fallbacks(conn_ids: list[str], key_needed: bool) -> str | None:
    """One line naming what comes from the embedded default rather than the environment."""
    used = [c for c in conn_ids if not os.environ.get(f"AIRFLOW_CONN_{c.upper()}") and default_connection(c)]
    key = key_needed and not os.environ.get("LETHE_AUDIT_KEY") and demo_key_file() is not None
    if not used and not key:
        return None
    parts = []
    if used:
        parts.append(f"connection(s) {', '.join(used)} of the embedded default in {estate_dir()}")
    if key:
        parts.append(f"the demo audit key in {demo_key_file()}")
    return "using " + " and ".join(parts) + " (set AIRFLOW_CONN_<ID> and LETHE_AUDIT_KEY to point elsewhere)"
