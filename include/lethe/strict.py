"""What every policy and inventory model shares: strict pydantic models and plain SQL identifiers."""

from __future__ import annotations

import re
from typing import Any, Iterable

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


def coverage_item(
    role: str,
    source: str,
    text: str,
    *,
    table: str | None = None,
    columns: Iterable[str] = (),
    subject: str | None = None,
    pattern: str | None = None,
) -> dict[str, Any]:
    """One thing a rule covers, as the register of retention lists it (names only, no data).

    ``role``: ``acts_on`` (the table the rule acts on), ``deleted_with`` / ``anonymised_with``
    (a dependent table changed along with it), ``catalog`` (a table naming what the rule acts
    on, read only), ``suppression`` (where a keyed hash is kept), ``databases`` / ``files`` (what
    a name pattern selects), ``whole_source`` (a kind that does not say more).
    """
    return {
        "role": role,
        "source": source,
        "table": table,
        "columns": list(columns),
        "subject": subject,
        "pattern": pattern,
        "text": text,
    }


class SourceModel(Strict):
    """The fields every inventory source has; a kind's model adds ``kind: Literal[...]``, its own
    fields and ``rules``."""

    source: str
    connection_id: str
    description: str = ""
    hosting: str = ""

    def register_coverage(self, rule_id: str) -> list[dict[str, Any]]:
        """What rule ``rule_id`` of this source covers (:func:`coverage_item`), for the register
        of retention. A kind that does not describe itself is covered as a whole."""
        return [coverage_item("whole_source", self.source, f"the whole source {self.source}")]

    def personal_tables(self) -> dict[str, list[str]]:
        """Table -> the columns holding personal data, for the register's gaps. A kind without
        tables (or one that does not describe them) has none to check."""
        return {}
