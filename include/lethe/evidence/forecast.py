"""What each rule will act on in the coming days, from the sources themselves, read-only.

Accepts a run context factory's ingredients (policy, inventory, engines, folder resolver, audit
key), the instant to count from and the horizons in days (7 and 30). For each horizon each rule's
own ``scan`` runs as a dry run at the later as-of: the same names checked, the same calendar
periods, holds and restrictions as they are recorded now. Scans count; they change nothing and
write no audit entry. A rule whose scan fails is reported as ``None`` with the error's type, so one
unreachable source does not hide the others' forecast.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Callable

from lethe.config import Inventory, Policy
from lethe.periods import to_utc_naive
from lethe.runner import Engines, make_context
from lethe.sources.base import action_for

log = logging.getLogger("lethe")

HORIZONS = (7, 30)


def forecast(
    *,
    policy: Policy,
    inventory: Inventory,
    rule_ids: list[str],
    engines: Engines,
    key: str,
    since: datetime,
    folder_for: Callable[[str], str] | None = None,
    horizons: tuple[int, ...] = HORIZONS,
) -> dict[str, dict[str, Any]]:
    """``{rule: {"7": n, "30": n}}``: records each rule would act on by ``since`` + each horizon."""
    found: dict[str, dict[str, Any]] = {rule_id: {} for rule_id in rule_ids}
    for days in horizons:
        ctx = make_context(
            run_id=f"forecast__{since:%Y%m%dT%H%M%S}",
            dag_id="lethe_report",
            task_id="forecast",
            as_of=to_utc_naive(since) + timedelta(days=days),
            dry_run=True,
            key=key,
            engines=engines,
            policy=policy,
            inventory=inventory,
            create_audit=False,
            **({"folder_for": folder_for} if folder_for else {}),
        )
        for rule_id in rule_ids:
            try:
                action = action_for(ctx, rule_id)
                action.check()
                found[rule_id][str(days)] = action.scan().eligible
            except Exception as exc:  # one source down must not hide the others' forecast
                log.warning("forecast of %s at +%d days failed: %s", rule_id, days, type(exc).__name__)
                found[rule_id][str(days)] = None
                found[rule_id]["error"] = type(exc).__name__
    return found
