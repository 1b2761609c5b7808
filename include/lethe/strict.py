"""What every policy and inventory model shares: strict pydantic models and plain SQL identifiers."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def identifier(value: str) -> str:
    """``value`` when it is a plain SQL identifier (letters, digits, underscore), else ValueError."""
    if not isinstance(value, str) or not IDENTIFIER.match(value):
        raise ValueError(f"{value!r} is not a plain SQL identifier (letters, digits, underscore)")
    return value


class Strict(BaseModel):
    """Frozen, and unknown keys are errors: a misspelt option is never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceModel(Strict):
    """The fields every inventory source has; a kind's model adds ``kind: Literal[...]``, its own
    fields and ``rules``."""

    source: str
    connection_id: str
    description: str = ""
    hosting: str = ""
