"""The registry of kinds of source and of their actions.

Light on purpose: the DAG files read it at parse time (the inventory union, the action names,
which kinds are mapped and in which pool) without importing SQLAlchemy or any action. A kind's
actions module is imported only when one of its rules runs (:func:`action_class`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Callable, Union, get_args

from pydantic import Field, TypeAdapter

from lethe.errors import ConfigError, DuplicateRegistration


def _no_cross_check(source: Any, sources: dict[str, Any], enforced_by: dict[str, str]) -> None:
    """A kind whose sources refer to no other source checks nothing across the inventory."""


@dataclass(frozen=True)
class SourceKind:
    """One kind of source: everything Lethe needs to know of it, in one record.

    ``name`` is the inventory's ``kind:``; ``model`` the pydantic model of one source (its
    ``kind`` field is ``Literal[name]``) and ``rule_model`` of one of its rules (its ``action``
    field lists the kind's actions). ``actions`` is the module whose :class:`RuleAction`
    subclasses register the actions (imported when a rule runs). ``mapped``: the work list is
    data, one mapped Airflow task per item, in ``pool`` (or none). ``connect(ctx, conn_id)``
    resolves a source's connection to what its actions use (an engine, a URL, a folder).
    ``cross_check(source, sources, enforced_by)`` checks what a source names in other sources.
    """

    name: str
    model: type
    rule_model: type
    actions: str
    connect: Callable[[Any, str], Any]
    mapped: bool = False
    pool: str | None = None
    cross_check: Callable[[Any, dict[str, Any], dict[str, str]], None] = _no_cross_check

    @property
    def action_names(self) -> tuple[str, ...]:
        return get_args(self.rule_model.model_fields["action"].annotation)


KINDS: dict[str, SourceKind] = {}
# (kind, action) -> the RuleAction subclass (lethe.sources.base), filled by register_action
ACTIONS: dict[tuple[str, str], type] = {}


def register_kind(kind: SourceKind) -> SourceKind:
    if kind.name in KINDS:
        raise DuplicateRegistration(f"a kind of source {kind.name!r} is already registered")
    KINDS[kind.name] = kind
    source_adapter.cache_clear()
    return kind


def unregister_kind(name: str) -> None:
    """Forget a kind and its actions (a kind registered for one test)."""
    KINDS.pop(name, None)
    for key in [k for k in ACTIONS if k[0] == name]:
        del ACTIONS[key]
    source_adapter.cache_clear()


def kinds() -> list[SourceKind]:
    return list(KINDS.values())


def kind(name: str) -> SourceKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(f"no kind of source {name!r} (known: {', '.join(KINDS)})") from None


def action_names() -> list[str]:
    """Every action of every registered kind, in registration order."""
    return list(dict.fromkeys(name for k in KINDS.values() for name in k.action_names))


def mapped_kinds() -> dict[str, str | None]:
    """Kinds whose work list is data, with the pool their mapped tasks run in (or None)."""
    return {k.name: k.pool for k in KINDS.values() if k.mapped}


@lru_cache(maxsize=1)
def source_adapter() -> TypeAdapter:
    """Validates one inventory file as the model of its ``kind``; an unknown kind names the known."""
    models = tuple(k.model for k in KINDS.values())
    return TypeAdapter(Annotated[Union[models], Field(discriminator="kind")])  # noqa: UP007


def register_action(cls: type) -> type:
    """Class decorator: ``cls`` handles ``cls.name`` on sources of kind ``cls.source_kind``."""
    key = (cls.source_kind, cls.name)
    if key in ACTIONS:
        raise DuplicateRegistration(
            f"action {cls.name!r} of {cls.source_kind} sources is already registered "
            f"({ACTIONS[key].__module__}.{ACTIONS[key].__qualname__})"
        )
    known = kind(cls.source_kind).action_names
    if cls.name not in known:
        raise ConfigError(
            f"{cls.__qualname__}: {cls.source_kind} sources have no action {cls.name!r} "
            f"in their rule model (known: {', '.join(known)})"
        )
    ACTIONS[key] = cls
    return cls


def action_class(kind_name: str, action: str) -> type:
    """The class that runs ``action`` on a source of ``kind_name`` (imports the kind's actions)."""
    importlib.import_module(kind(kind_name).actions)
    try:
        return ACTIONS[(kind_name, action)]
    except KeyError:
        raise LookupError(f"no action {action!r} for {kind_name} sources") from None
