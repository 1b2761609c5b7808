"""Policy as code and the data inventory, read into validated pydantic models.

A file that does not validate raises :class:`ConfigError` naming the file, the entry and the
field, so a DAG shows an import error instead of running on a half-read policy. Unknown keys are
errors too: a misspelt option must never be silently ignored by a deletion system.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from lethe.errors import ConfigError
from lethe.periods import Period
from lethe.sources import registry
from lethe.sources.sql.models import SqlSource
from lethe.strict import IDENTIFIER, Strict

__all__ = [
    "DEFAULT_INVENTORY",
    "DEFAULT_POLICY",
    "IDENTIFIER",
    "ConfigError",
    "Inventory",
    "Policy",
    "PolicyRule",
    "Strict",
    "load_inventory",
    "load_policy",
]

RULE_ID = re.compile(r"^[A-Z][A-Z0-9]{0,7}$")

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = PACKAGE_ROOT / "policy" / "retention.yaml"
DEFAULT_INVENTORY = PACKAGE_ROOT / "inventory"


# --------------------------------------------------------------------------- policy


class PolicyRule(Strict):
    id: str
    description: str
    policy_section: str
    legal_basis: str
    data_category: str
    trigger: str
    period: Period
    overdue_after: Period | None = None
    period_source: Literal["policy", "default"]
    # One of the actions the registered kinds of source offer (``lethe.sources``).
    action: str
    # The purpose of processing as the published policy states it (the register of retention
    # shows it); None when the policy file states none, which the register flags.
    purpose: str | None = None

    @field_validator("action")
    @classmethod
    def _action(cls, value: str) -> str:
        known = registry.action_names()
        if value not in known:
            raise ValueError(f"{value!r} is not an action of any kind of source (known: {', '.join(known)})")
        return value

    @field_validator("id")
    @classmethod
    def _rule_id(cls, value: str) -> str:
        if not RULE_ID.match(value):
            raise ValueError(f"{value!r} is not a rule id like 'C1'")
        return value

    @field_validator("period", "overdue_after", mode="before")
    @classmethod
    def _period(cls, value: Any) -> Any:
        return Period.parse(value) if isinstance(value, str) else value

    @property
    def is_default(self) -> bool:
        return self.period_source == "default"

    @property
    def overdue_period(self) -> Period:
        """Counted from the trigger: past it, the data is overdue (the policy is breached)."""
        return self.overdue_after or self.period + Period(days=1)


class PolicyExemption(Strict):
    kind: Literal["legal_hold", "restriction"]
    policy_section: str
    description: str


class PolicyDocument(Strict):
    name: str
    document: str
    language: str


class ValidationSettings(Strict):
    """How the checks before and after every rule judge the data (``validation:`` in the policy).

    ``future_tolerance``: a trigger date later than the as-of by more than this is bad data (a
    clock or an import gone wrong), not a deadline far away: the row is quarantined.
    ``max_quarantine_share``: when more than this share of a table's rows fail the checks, the
    rule stops before changing anything (a fraction, ``0.05``, or a percentage, ``"5%"``).
    """

    future_tolerance: Period = Period(days=1)
    max_quarantine_share: float = 0.05

    @field_validator("future_tolerance", mode="before")
    @classmethod
    def _tolerance(cls, value: Any) -> Any:
        return Period.parse(value) if isinstance(value, str) else value

    @field_validator("max_quarantine_share", mode="before")
    @classmethod
    def _share(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().endswith("%"):
            return float(value.strip()[:-1]) / 100
        return value

    @field_validator("max_quarantine_share")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 <= value <= 1:
            raise ValueError("a share between 0 and 1 (or 0% and 100%)")
        return value


class Policy(Strict):
    policy: PolicyDocument
    rules: list[PolicyRule]
    exemptions: list[PolicyExemption] = []
    validation: ValidationSettings = ValidationSettings()

    @model_validator(mode="after")
    def _unique(self) -> "Policy":
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule {rule.id} is defined twice")
            seen.add(rule.id)
        return self

    def rule(self, rule_id: str) -> PolicyRule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise ConfigError(f"rule {rule_id!r} is not in the policy (known: {', '.join(self.rule_ids)})")

    @property
    def rule_ids(self) -> list[str]:
        return [rule.id for rule in self.rules]


# --------------------------------------------------------------------------- inventory


class Inventory(BaseModel):
    model_config = ConfigDict(frozen=True)

    # source id -> the model of its kind (``lethe.sources``), validated by :func:`load_inventory`
    sources: dict[str, Any]

    def rule(self, rule_id: str) -> tuple[Any, Any]:
        for source in self.sources.values():
            for rule in source.rules:
                if rule.rule == rule_id:
                    return source, rule
        raise ConfigError(f"rule {rule_id!r} is not in the inventory")

    def rules_of(self, source_id: str) -> list[str]:
        return [rule.rule for rule in self.sources[source_id].rules]

    def exemption_sources(self) -> list[SqlSource]:
        return [s for s in self.sources.values() if s.kind == "sql" and s.exemptions]


# --------------------------------------------------------------------------- loading


# libyaml's loader when PyYAML was built with it (several times faster: the DAG files read the
# policy and inventory at parse time); the same safe subset of YAML either way.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_SAFE_LOADER)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def _describe(exc: ValidationError, path: Path, data: Any, list_key: str, id_key: str) -> ConfigError:
    lines = []
    for error in exc.errors():
        loc = list(error["loc"])
        where = ".".join(str(part) for part in loc)
        if len(loc) >= 2 and loc[0] == list_key and isinstance(loc[1], int):
            try:
                entry = data[list_key][loc[1]].get(id_key, f"#{loc[1] + 1}")
            except (KeyError, IndexError, AttributeError, TypeError):
                entry = f"#{loc[1] + 1}"
            field = ".".join(str(part) for part in loc[2:]) or "(entry)"
            where = f"rule {entry}, field {field}"
        elif loc:
            where = f"field {where}"
        lines.append(f"{path}: {where}: {error['msg']}")
    return ConfigError("\n".join(lines))


def load_policy(path: str | os.PathLike | None = None) -> Policy:
    path = Path(path or os.environ.get("LETHE_POLICY_FILE") or DEFAULT_POLICY)
    data = _read_yaml(path)
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise _describe(exc, path, data, "rules", "id") from None


def load_inventory(directory: str | os.PathLike | None = None, policy: Policy | None = None) -> Inventory:
    """Read every ``*.yaml`` in the inventory folder and check it against the policy."""
    directory = Path(directory or os.environ.get("LETHE_INVENTORY_DIR") or DEFAULT_INVENTORY)
    policy = policy or load_policy()
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ConfigError(f"{directory}: no inventory files (*.yaml)")
    sources: dict[str, Any] = {}
    for path in files:
        data = _read_yaml(path)
        try:
            source = registry.source_adapter().validate_python(data)
        except ValidationError as exc:
            raise _describe(exc, path, data, "rules", "rule") from None
        if source.source in sources:
            raise ConfigError(f"{path}: source {source.source!r} is defined twice")
        for rule in source.rules:
            if rule.rule not in policy.rule_ids:
                raise ConfigError(f"{path}: rule {rule.rule}: not in the policy (known: {', '.join(policy.rule_ids)})")
            if policy.rule(rule.rule).action != rule.action:
                raise ConfigError(
                    f"{path}: rule {rule.rule}, field action: {rule.action!r} but the policy says "
                    f"{policy.rule(rule.rule).action!r}"
                )
        sources[source.source] = source
    seen: dict[str, str] = {}
    for source in sources.values():
        for rule in source.rules:
            if rule.rule in seen:
                raise ConfigError(f"rule {rule.rule} is enforced by both {seen[rule.rule]} and {source.source}")
            seen[rule.rule] = source.source
    for source in sources.values():
        registry.kind(source.kind).cross_check(source, sources, seen)
    return Inventory(sources=sources)
