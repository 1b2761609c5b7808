"""The one notifier: what went wrong with a night, told to the people who must act.

Accepts an :class:`Alert` of one of :data:`KINDS`:

- ``deadline_missed``: a nightly DAG had not finished by its deadline (06:00 UTC);
- ``rule_failed``: a rule of a nightly run failed or was stopped by its checks;
- ``breach``: the consolidated report found a breach (overdue after a run, a rule that did not
  run, an audit chain that does not verify);
- ``verification_failed``: the weekly audit verification failed.

:func:`notify` always writes one log line (logger ``lethe.alerts``, level ERROR, starting
``LETHE ALERT``), then hands subject and body to ``send`` when one is given: the Airflow adapter
passes a mailer that uses Airflow's SMTP connection when one is configured. Alerts hold rule ids,
DAG and run ids, counts and the chain's sequence numbers: never personal data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable

log = logging.getLogger("lethe.alerts")

KINDS = {
    "deadline_missed": "deadline missed",
    "rule_failed": "rule failed",
    "breach": "breach of the retention policy",
    "verification_failed": "audit verification failed",
}
ALERT_PREFIX = "LETHE ALERT"


@dataclass
class Alert:
    """What happened, in a subject line and a few lines of plain words."""

    kind: str
    summary: str
    lines: list[str] = field(default_factory=list)
    dag_id: str = ""
    run_id: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r} (known: {', '.join(KINDS)})")

    @property
    def subject(self) -> str:
        return f"[Lethe] {KINDS[self.kind]}: {self.summary}"

    def body(self) -> str:
        where = [f"DAG {self.dag_id}" if self.dag_id else "", f"run {self.run_id}" if self.run_id else ""]
        head = ", ".join(w for w in where if w)
        return "\n".join([self.subject, *([head] if head else []), "", *self.lines, ""])

    def log_line(self) -> str:
        parts = [f"{ALERT_PREFIX} [{self.kind}] {self.summary}"]
        if self.dag_id:
            parts.append(f"dag={self.dag_id}")
        if self.run_id:
            parts.append(f"run={self.run_id}")
        if self.lines:
            parts.append("| " + " | ".join(self.lines))
        return " ".join(parts)


Sender = Callable[[str, str], object]
AsyncSender = Callable[[str, str], Awaitable[object]]


def notify(alert: Alert, send: Sender | None = None) -> bool:
    """Log the alert, then send it when a sender is given; whether it was sent.

    A sender that fails is logged (the alert itself is already in the log): telling must never
    hide what it was telling about.
    """
    log.error("%s", alert.log_line())
    if send is None:
        return False
    try:
        send(alert.subject, alert.body())
    except Exception as exc:
        _not_sent(alert, exc)
        return False
    return True


async def anotify(alert: Alert, send: AsyncSender | None = None) -> bool:
    """:func:`notify` for an event loop (the triggerer runs deadline callbacks in one)."""
    log.error("%s", alert.log_line())
    if send is None:
        return False
    try:
        await send(alert.subject, alert.body())
    except Exception as exc:
        _not_sent(alert, exc)
        return False
    return True


def _not_sent(alert: Alert, exc: Exception) -> None:
    # The log line stands; say why the mail did not go (SMTP errors name servers, not people).
    log.error("%s [%s] could not be e-mailed: %s: %s", ALERT_PREFIX, alert.kind, type(exc).__name__, exc)


def recipients(value: str | list[str] | None) -> list[str]:
    """Addresses from a list or a comma- or semicolon-separated string."""
    if not value:
        return []
    items = value if isinstance(value, list) else value.replace(";", ",").split(",")
    return [item.strip() for item in items if item and item.strip()]
