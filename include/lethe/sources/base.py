"""The interface every rule action implements, and what a run passes to them.

:class:`RuleAction` holds the plumbing every action shares (its source and rule from the
inventory, its result, the holds and restrictions in force); :class:`MappedAction` is the base of
actions whose work list is data (one mapped task per trial database or log file).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Callable, ClassVar

from lethe.audit import AuditEntry, AuditTrail
from lethe.config import Inventory, Policy, PolicyRule
from lethe.errors import ConfigError
from lethe.exemptions import Exemptions, load_exemptions
from lethe.sources import registry
from lethe.sources.registry import register_action as register
from lethe.validation import Suite

log = logging.getLogger("lethe")

# Rows per batch unless the rule or LETHE_BATCH_SIZE says otherwise: each batch is one transaction
# with its audit entries, so larger batches mean fewer commits; memory holds only one batch's keys.
DEFAULT_BATCH_SIZE = 5000


@dataclass
class RunContext:
    """What every action needs to know about the run; no wall clock in here on purpose."""

    run_id: str
    dag_id: str
    task_id: str
    as_of: datetime
    dry_run: bool
    policy: Policy
    inventory: Inventory
    audit: AuditTrail
    key: str
    engine_for: Callable[[str], Any]  # connection id -> SQLAlchemy engine
    batch_size: int = DEFAULT_BATCH_SIZE
    url_for: Callable[[str], Any] | None = None  # connection id -> SQLAlchemy URL (servers, folders)
    folder_for: Callable[[str], str] | None = None  # connection id -> folder of an ``fs`` connection


@dataclass
class RuleResult:
    """Counts for one rule in one run: the unit of the task log and of the report."""

    rule_id: str
    source: str
    action: str
    dry_run: bool
    as_of: str
    # SQL rules: every due record is eligible, exempt (hold, restriction) or waiting.
    due: int = 0
    eligible: int = 0
    deleted: int = 0
    anonymised: int = 0
    exempt_hold: int = 0
    exempt_restriction: int = 0
    overdue_before: int = 0
    remaining_after: int | None = None
    # Rows the checks before the rule kept out of the run (by reason), and the checks' verdicts.
    quarantined: int = 0
    quarantine: dict[str, int] = field(default_factory=dict)
    before: str | None = None
    after: str | None = None
    batches: int = 0
    related: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # Keys of due records the decision left waiting for another rule (``wait_for``): the check
    # after, a later task, counts them as waiting even if the other rule has since closed them.
    waited: list = field(default_factory=list)
    status: str = "ok"
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RuleResult":
        return cls(**data)


class RuleAction(ABC):
    """One policy action on one kind of source.

    ``scan`` counts (changes nothing), ``enforce`` acts in batches, each batch committing with
    its audit entries, and ``verify`` counts what is still eligible afterwards. ``check`` is the
    live check run before any change (and by ``lethe policy check``).
    """

    name: ClassVar[str]
    source_kind: ClassVar[str]
    mapped: ClassVar[bool] = False
    # The audit actions of a real run that record records acted on, one entry per subject (its
    # details' "rows", else 1 record): the audit verification adds them up against the rule's
    # summary. Empty: the kind records its counts in the summary only.
    done_actions: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: RunContext, policy_rule: PolicyRule):
        self.ctx = ctx
        self.policy_rule = policy_rule
        self.source, self.rule = ctx.inventory.rule(policy_rule.id)
        self._exemptions: Exemptions | None = None

    @property
    def user(self) -> str:
        """Who needs the names a check finds missing (leads its message)."""
        return f"rule {self.policy_rule.id}"

    @property
    def connection(self) -> Any:
        """The source's connection as its kind resolves it (an engine, a URL, a folder)."""
        return registry.kind(self.source_kind).connect(self.ctx, self.source.connection_id)

    @property
    def uses_holds(self) -> bool:
        """Whether legal holds and restrictions decide this rule's records."""
        return True

    @property
    def exemptions(self) -> Exemptions:
        """The holds and restrictions in force at the as-of (read once, when first needed)."""
        if self._exemptions is None:
            self._exemptions = (
                load_exemptions(self.ctx.inventory, self.ctx.engine_for, self.ctx.as_of, user=self.user)
                if self.uses_holds
                else Exemptions()
            )
        return self._exemptions

    def new_result(self) -> RuleResult:
        return RuleResult(
            rule_id=self.policy_rule.id,
            source=self.source.source,
            action=self.name,
            dry_run=self.ctx.dry_run,
            as_of=self.ctx.as_of.isoformat(),
        )

    # The result fields a rule's closing audit entry carries (with the result's extra counts).
    summary_fields: ClassVar[tuple[str, ...]] = (
        "eligible",
        "deleted",
        "anonymised",
        "exempt_hold",
        "exempt_restriction",
        "overdue_before",
        "quarantined",
        "quarantine",
        "before",
        "batches",
        "related",
    )

    def audit_entry(self, action: str, subject_key: str, record_count: int, details: dict[str, Any]) -> AuditEntry:
        """An entry of this rule in this run; details hold names and counts, never personal data."""
        return AuditEntry(
            run_id=self.ctx.run_id,
            dag_id=self.ctx.dag_id,
            task_id=self.ctx.task_id,
            rule_id=self.policy_rule.id,
            source=self.source.source,
            action=action,
            subject_key=subject_key,
            record_count=record_count,
            as_of=self.ctx.as_of,
            dry_run=self.ctx.dry_run,
            details=details,
        )

    def summary_entry(self, result: RuleResult) -> AuditEntry:
        """The rule's closing entry for the run: its counts, so the trail alone tells the story."""
        counts = result.to_dict()
        return self.audit_entry(
            "rule_summary",
            "-",
            result.deleted + result.anonymised,
            {**{k: counts[k] for k in self.summary_fields}, **result.extra},
        )

    @abstractmethod
    def check(self) -> None:
        """Check every configured name against the live system; raise before anything changes."""

    def check_summary(self) -> str:
        """What :meth:`check` found, in a few words (``lethe policy check``)."""
        return "names match the live system"

    @abstractmethod
    def scan(self) -> RuleResult:
        """Count what is due, exempt and overdue; change nothing."""

    @abstractmethod
    def enforce(self, scanned: RuleResult | None = None) -> RuleResult:
        """Act on every eligible record (or only record what would change, in a dry run).

        ``scanned``: this run's scan of the rule (its counts are not taken again); else it scans.
        """

    @abstractmethod
    def verify(self) -> int:
        """How many eligible records remain."""

    def before_suite(self) -> Suite:
        """The checks before the rule acts, from the inventory (:mod:`lethe.validation`)."""
        raise NotImplementedError(f"{type(self).__name__} has no checks before it acts")

    def after_suite(self) -> Suite:
        """The check after the rule: nothing eligible remains apart from exempt and quarantined."""
        raise NotImplementedError(f"{type(self).__name__} has no check after it acts")

    def quarantine_samples(self, reasons: dict[str, int]) -> dict[str, list[str]]:
        """For each failing reason, the subject keys (audit HMACs) of a few of its rows."""
        return {}

    def keep_waiting(self, keys: list) -> None:
        """Count these records as waiting, as the enforcement decided (rules that wait override)."""
        if keys:
            raise ConfigError(f"rule {self.policy_rule.id} ({self.name}) waits for no other rule")

    def open_rows(self) -> tuple[str, str, str, list]:
        """Rows this rule still needs kept (table, key column, link column, keys): ``wait_for``."""
        raise ConfigError(f"rule {self.policy_rule.id} ({self.name}) cannot be waited for")


class MappedAction(RuleAction):
    """An action whose work list is data (databases, files): scan lists the items, Airflow maps
    one enforce task over them, and combine makes the rule's result of the items' results."""

    mapped: ClassVar[bool] = True

    @abstractmethod
    def work_items(self) -> list[dict[str, Any]]:
        """What enforce_item will be called with, one dict per item (names and counts only)."""

    @abstractmethod
    def enforce_item(self, item: dict[str, Any]) -> dict[str, Any]:
        """One item: decided again from the live system, never from the item alone."""

    @abstractmethod
    def combine(self, scanned: RuleResult, item_results: list[dict[str, Any]]) -> RuleResult:
        """The rule's result from the scan and every item's result."""

    def enforce(self, scanned: RuleResult | None = None) -> RuleResult:
        """Unmapped use (the tests): every item in turn."""
        scanned = scanned or self.scan()
        return self.combine(scanned, [self.enforce_item(item) for item in self.work_items()])


def action_for(ctx: RunContext, rule_id: str) -> RuleAction:
    """The registered action for a rule, from the policy's action and the source's kind."""
    policy_rule = ctx.policy.rule(rule_id)
    source, _ = ctx.inventory.rule(rule_id)
    return registry.action_class(source.kind, policy_rule.action)(ctx, policy_rule)


__all__ = ["MappedAction", "RuleAction", "RuleResult", "RunContext", "action_for", "register"]
