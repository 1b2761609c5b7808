"""The two-step record of a change that cannot share a transaction with the audit trail.

Dropping a database, renaming a rewritten file over the original or deleting a file happens
outside the audit store, so it is bracketed: an *intent* entry is chained before the change,
a *done* entry after it. An intent that no later done entry closes is *open*: the change may or
may not have happened, and the next run looks at the live system to finish the record (the
done entry says ``recovered``) or redo the change. Every two-step change goes through
:class:`TwoStep`; the rules say only what the entries hold and how an entry names its object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable

from lethe.audit import AuditEntry, AuditTrail

# action, details -> the entry (the rule's audit_entry with its subject key and count)
EntryFor = Callable[[str, dict[str, Any]], AuditEntry]


@dataclass(frozen=True)
class TwoStep:
    """The action names of one kind of two-step change: ``intent`` before it, ``done`` after it."""

    intent: str
    done: str

    @property
    def actions(self) -> tuple[str, str]:
        return (self.intent, self.done)

    @property
    def would(self) -> str:
        """What a dry run records instead (never taken for work done)."""
        return f"would_{self.done}"

    def perform(
        self,
        audit: AuditTrail,
        entry: EntryFor,
        details: dict[str, Any],
        change: Callable[[], Any],
        done_details: Callable[[AuditEntry], dict[str, Any]] | None = None,
    ) -> AuditEntry:
        """Chain the intent, make the change, chain the done entry; returns the intent entry.

        The intent is chained before the change, so a crash leaves a trace; the done entry holds
        ``done_details(intent)`` (default: the intent's details).
        """
        intent = self.begin(audit, entry, details)
        change()
        self.finish(audit, entry, done_details(intent) if done_details else details)
        return intent

    def begin(self, audit: AuditTrail, entry: EntryFor, details: dict[str, Any]) -> AuditEntry:
        """Chain the intent alone (the change follows, then :meth:`finish`)."""
        intent = entry(self.intent, details)
        audit.append([intent])
        return intent

    def finish(self, audit: AuditTrail, entry: EntryFor, details: dict[str, Any]) -> None:
        audit.append([entry(self.done, details)])

    def recover(self, audit: AuditTrail, entry: EntryFor, details: dict[str, Any]) -> None:
        """The change of an open intent happened: chain its done entry now."""
        self.finish(audit, entry, {**details, "recovered": True})

    def open_intents(
        self, entries: Iterable[tuple[str, dict[str, Any]]], key: Callable[[dict[str, Any]], Hashable]
    ) -> dict[Hashable, dict[str, Any]]:
        """Intents no later done entry closes, by ``key(details)``; ``entries`` in chain order.

        A done entry closes the intent with the same key; the newest open intent of a key wins.
        """
        open_: dict[Hashable, dict[str, Any]] = {}
        for action, details in entries:
            if action == self.intent:
                open_[key(details)] = details
            elif action == self.done:
                open_.pop(key(details), None)
        return open_
