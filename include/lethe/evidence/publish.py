"""Write a day's evidence: ``reports/daily/<day>/`` and, for the newest day, ``reports/latest/``.

Accepts the audit trail, policy, inventory, the UTC day, the reports folder and optionally the
chain's state and a forecast. Writes the consolidated report (HTML, JSON, CSV), the chain head
and the register of retention side by side, so a folder is the whole evidence of its day.
Rebuilding an older day leaves ``latest`` alone.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any

from lethe.audit import AuditTrail
from lethe.config import Inventory, Policy
from lethe.evidence.daily import ChainState, build_daily
from lethe.evidence.register import build_register, write_register
from lethe.evidence.render import write_consolidated

DAILY = "daily"
LATEST = "latest"


def publish_daily(
    trail: AuditTrail,
    policy: Policy,
    inventory: Inventory,
    day: date,
    root: Path,
    *,
    chain: ChainState | None = None,
    forecast: dict[str, dict[str, Any]] | None = None,
    forecast_as_of: datetime | None = None,
) -> tuple[dict[str, Any], Path]:
    """Build and write the day's evidence; the report and its folder."""
    report = build_daily(trail, policy, inventory, day, chain=chain, forecast=forecast, forecast_as_of=forecast_as_of)
    folder = root / DAILY / day.isoformat()
    # Both writers name their files by format ("html", "json", ...): keep every path.
    written = [
        *write_consolidated(report, folder).values(),
        *write_register(build_register(policy, inventory), folder).values(),
    ]
    newest = max((p.name for p in (root / DAILY).iterdir() if p.is_dir()), default=day.isoformat())
    if day.isoformat() >= newest:
        latest = root / LATEST
        latest.mkdir(parents=True, exist_ok=True)
        for path in written:
            # Copy then rename: a reader of latest never sees half a file.
            tmp = latest / f".{path.name}.tmp"
            shutil.copyfile(path, tmp)
            tmp.replace(latest / path.name)
    return report, folder
