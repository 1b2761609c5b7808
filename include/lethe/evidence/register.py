"""The register of retention (GDPR art. 30(1)(f): the envisaged time limits for erasure), from the
policy file and the data inventory, with its gaps.

One entry per policy rule (a category of data): what the policy says (purpose, legal basis,
period, trigger, action, section), where the inventory enforces it (source, kind, connection,
hosting) and what the rule covers there, as each kind of source describes it
(``register_coverage`` on the source models). The gaps are what the register cannot vouch for:
a table the inventory lists as holding personal data that no rule covers, and a policy rule that
no source enforces. Hold and restriction tables are listed apart: their e-mail addresses are kept
while a hold or restriction is in force.

The register is a plain dict (written as ``register.json``)::

    {
      "kind": "lethe_register_of_retention", "version": 1,
      "generated_at": "2026-11-26T07:00:03Z",
      "policy": {"name": str, "document": str},
      "headline": str,                     # one sentence: entries, gaps, decisions
      "entries": [{
          "rule": "C1", "data_category": str, "description": str,
          "purpose": str, "purpose_stated": bool,      # "not stated in the policy file" when not
          "legal_basis": str, "period": "3 years", "period_source": "policy" | "default",
          "overdue_after": "3 years 1 day", "trigger": str, "action": str, "policy_section": str,
          "source": str | None, "kind": str | None, "connection_id": str | None,
          "hosting": str, "in_eu": "EU" | "EU, with transfers outside the EU" | "outside the EU"
                                   | "not stated",
          "covers": [{"role": str, "source": str, "table": str | None, "columns": [str],
                      "subject": str | None, "pattern": str | None, "text": str}],
          "flags": [str],                  # what the data protection officer should look at
      }],
      "gaps": [{"kind": "table_not_covered" | "rule_not_enforced", "rule": str | None,
                "source": str | None, "table": str | None, "columns": [str], "text": str}],
      "held": [{"kind": "legal_hold" | "restriction", "source": str, "table": str,
                "columns": [str], "policy_section": str, "text": str}],
      "decisions": [{"rule": str, "period": str, "text": str}],   # configured default periods
    }

Names of tables, columns, files and connections only: no personal data.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader

from lethe.config import Inventory, Policy, PolicyRule
from lethe.errors import ConfigError

__all__ = ["build_register", "write_register"]

PURPOSE_NOT_STATED = "not stated in the policy file"
DEFAULT_PERIOD_TEXT = "configured default: the policy states no period; a decision for the data protection officer"
# Roles of a coverage item (``lethe.strict.coverage_item``) that mean the rule removes or
# anonymises the table's personal data; a catalog or a suppression list is only named.
COVERING_ROLES = {"acts_on", "deleted_with", "anonymised_with"}
HOLD_TEXTS = {
    "legal_hold": "kept while a legal hold is in force",
    "restriction": "kept while a restriction is in force",
}
CSV_FIELDS = (
    "rule",
    "data_category",
    "description",
    "purpose",
    "purpose_stated",
    "legal_basis",
    "period",
    "period_source",
    "overdue_after",
    "trigger",
    "action",
    "policy_section",
    "source",
    "kind",
    "connection_id",
    "hosting",
    "in_eu",
    "covers",
    "flags",
)

_OUTSIDE_EU = re.compile(r"\b(outside|beyond|out of)\s+(the\s+)?(EU|European\s+Union|EEA)\b", re.IGNORECASE)
_EU = re.compile(r"\b(EU|European\s+Union|EEA)\b", re.IGNORECASE)


def _in_eu(hosting: str) -> str:
    """Where the data is, from the inventory's hosting text: it must say so in words, since a
    provider or city name alone does not tell the register whether it is in the EU."""
    outside = bool(_OUTSIDE_EU.search(hosting))
    inside = bool(_EU.search(_OUTSIDE_EU.sub(" ", hosting)))
    if inside and outside:
        return "EU, with transfers outside the EU"
    if inside:
        return "EU"
    if outside:
        return "outside the EU"
    return "not stated"


def _entry(rule: PolicyRule, inventory: Inventory) -> dict[str, Any]:
    try:
        source, _ = inventory.rule(rule.id)
    except ConfigError:
        source = None
    flags = []
    if not rule.purpose:
        flags.append(f"purpose {PURPOSE_NOT_STATED}")
    if rule.is_default:
        flags.append(f"period {rule.period}: {DEFAULT_PERIOD_TEXT}")
    if source is None:
        flags.append("no source in the inventory enforces this rule")
    hosting = source.hosting if source is not None else ""
    return {
        "rule": rule.id,
        "data_category": rule.data_category,
        "description": rule.description,
        "purpose": rule.purpose or PURPOSE_NOT_STATED,
        "purpose_stated": bool(rule.purpose),
        "legal_basis": rule.legal_basis,
        "period": str(rule.period),
        "period_source": rule.period_source,
        "overdue_after": str(rule.overdue_period),
        "trigger": rule.trigger,
        "action": rule.action,
        "policy_section": rule.policy_section,
        "source": source.source if source is not None else None,
        "kind": source.kind if source is not None else None,
        "connection_id": source.connection_id if source is not None else None,
        "hosting": hosting,
        "in_eu": _in_eu(hosting),
        "covers": source.register_coverage(rule.id) if source is not None else [],
        "flags": flags,
    }


def _held(policy: Policy, inventory: Inventory) -> list[dict[str, Any]]:
    sections = {exemption.kind: exemption.policy_section for exemption in policy.exemptions}
    return [
        {
            "kind": kind,
            "source": source.source,
            "table": table.table,
            "columns": [table.email],
            "policy_section": sections.get(kind, ""),
            "text": HOLD_TEXTS[kind],
        }
        for source in inventory.exemption_sources()
        for kind, table in source.exemptions.items()
    ]


def _gaps(inventory: Inventory, entries: list[dict[str, Any]], held: list[dict[str, Any]]) -> list[dict[str, Any]]:
    covered = {(i["source"], i["table"]) for e in entries for i in e["covers"] if i["role"] in COVERING_ROLES}
    # A hold or restriction table keeps its e-mail column on purpose; any other personal data in
    # it needs a rule like every other table.
    held_columns: dict[tuple[str, str], set[str]] = {}
    for h in held:
        held_columns.setdefault((h["source"], h["table"]), set()).update(h["columns"])
    gaps = []
    for source in inventory.sources.values():
        for table, columns in source.personal_tables().items():
            key = (source.source, table)
            uncovered = [c for c in columns if c not in held_columns.get(key, set())]
            if key in covered or not uncovered:
                continue
            gaps.append(
                {
                    "kind": "table_not_covered",
                    "rule": None,
                    "source": source.source,
                    "table": table,
                    "columns": uncovered,
                    "text": f"table {table} of {source.source} holds personal data ({', '.join(uncovered)}) "
                    "that no rule covers",
                }
            )
    for entry in entries:
        if entry["source"] is None:
            gaps.append(
                {
                    "kind": "rule_not_enforced",
                    "rule": entry["rule"],
                    "source": None,
                    "table": None,
                    "columns": [],
                    "text": f"rule {entry['rule']} ({entry['data_category']}) is in the policy but no source "
                    "in the inventory enforces it",
                }
            )
    return gaps


def _headline(entries: list, gaps: list, decisions: list) -> str:
    parts = [f"{len(entries)} categories of data, one per policy rule"]
    parts.append(f"{len(gaps)} gap{'s' if len(gaps) != 1 else ''}" if gaps else "no gaps")
    if decisions:
        parts.append(f"{len(decisions)} default period{'s' if len(decisions) != 1 else ''} to confirm")
    return "; ".join(parts) + "."


def build_register(policy: Policy, inventory: Inventory, *, generated_at: datetime | None = None) -> dict[str, Any]:
    """The register of retention: one entry per policy rule, the gaps, the hold tables."""
    moment = (generated_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    entries = [_entry(rule, inventory) for rule in policy.rules]
    held = _held(policy, inventory)
    gaps = _gaps(inventory, entries, held)
    decisions = [
        {"rule": rule.id, "period": str(rule.period), "text": DEFAULT_PERIOD_TEXT}
        for rule in policy.rules
        if rule.is_default
    ]
    return {
        "kind": "lethe_register_of_retention",
        "version": 1,
        "generated_at": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "policy": {"name": policy.policy.name, "document": policy.policy.document},
        "headline": _headline(entries, gaps, decisions),
        "entries": entries,
        "gaps": gaps,
        "held": held,
        "decisions": decisions,
    }


# --------------------------------------------------------------------------- files


def _html(register: dict[str, Any]) -> str:
    # Escape everything: table, column and file names come from the inventory.
    env = Environment(loader=PackageLoader("lethe", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("register.html.j2").render(register=register)


def _csv(register: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_FIELDS)
    writer.writeheader()
    for entry in register["entries"]:
        row = {name: entry[name] for name in CSV_FIELDS}
        row["covers"] = "; ".join(item["text"] for item in entry["covers"])
        row["flags"] = "; ".join(entry["flags"])
        row["purpose_stated"] = "yes" if entry["purpose_stated"] else "no"
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def write_register(register: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Write register.html, register.json and register.csv into ``folder``; their paths by format."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"html": folder / "register.html", "json": folder / "register.json", "csv": folder / "register.csv"}
    paths["html"].write_text(_html(register), encoding="utf-8")
    paths["json"].write_text(json.dumps(register, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    with paths["csv"].open("w", encoding="utf-8", newline="") as handle:
        handle.write(_csv(register))
    return paths
