"""Least privilege: what each SQL role of Lethe needs, as SQL per back end, and what a connection has.

One role per SQL connection Lethe uses: each SQL source of the inventory (``crm``,
``marketing``), each trial database server (``trials``) and the audit store (``audit``,
connection ``lethe_audit``). Log folders use no SQL connection and get no role.

:func:`required` computes a role's needs from the inventory alone, through the code of the rules
(each SQL action's :meth:`needs` and :meth:`writes`, the trial rule's catalog and server):

* SELECT on every table the source's inventory names (rules' tables, dependents, customer links,
  exemption tables, the trial catalog); DELETE on the tables a delete rule removes rows from and
  on their dependents; UPDATE on exactly the columns an anonymise rule writes; INSERT into a
  suppression list;
* the audit outbox (``lethe_audit_outbox``, created in the source on the first enforcing run):
  creating it, then SELECT, INSERT and DELETE on it; a temporary table per rule run;
* on a trial server, listing the trial databases, reading their tables and dropping them: on
  MariaDB SELECT and DROP on the databases named like the inventory's ``name_pattern`` (a LIKE
  pattern of its literal prefix), nothing else, so no other database is even listed; on
  PostgreSQL, where only an owner drops a database, membership of the role owning them;
* on the audit store, INSERT and SELECT on the chain (never UPDATE or DELETE), SELECT and UPDATE
  on its head row (locked ``FOR UPDATE`` and advanced).

A back end (:class:`PostgreSQL`, :class:`MariaDB`, registered by dialect name like sqlglot's
dialects) renders a role as an idempotent script of its client (``deploy/roles/<dialect>/<name>.sql``,
written by ``lethe policy roles --write``) and reads back what a connection's user actually has
from the server's catalogs, as missing and excess privileges (``lethe policy check``). Nothing
here names a table: every name comes from the validated inventory and is quoted for the dialect.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Iterable

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from lethe.audit import OUTBOX_TABLE, audit_table, head_table
from lethe.config import PACKAGE_ROOT, Inventory
from lethe.errors import ConfigError
from lethe.runner import AUDIT_CONN_ID
from lethe.sources import registry
from lethe.sources.base import RunContext
from lethe.sources.trials.actions import SYSTEM_DATABASES

__all__ = [
    "AUDIT_STORE",
    "DEPLOY_DIR",
    "Backend",
    "Findings",
    "Grant",
    "MariaDB",
    "PostgreSQL",
    "REPO_ROOT",
    "RoleNeeds",
    "backend",
    "check",
    "dialects",
    "like_pattern",
    "required",
    "roles",
    "script",
    "scripts",
]

AUDIT_STORE = "audit"  # the role name of the audit store (connection lethe_audit)
REPO_ROOT = PACKAGE_ROOT.parent
DEPLOY_DIR = REPO_ROOT / "deploy" / "roles"  # the committed scripts (paths below are relative to REPO_ROOT)

# What a grant is on.
TABLES = "tables"  # table-level privileges on ``tables``
COLUMNS = "columns"  # column-level privileges on ``columns`` of ``tables[0]``
OUTBOX = "outbox"  # creating the audit outbox in the source, then SELECT, INSERT, DELETE on it
TEMPORARY = "temporary"  # temporary tables of the session
TRIAL_DATABASES = "trial_databases"  # the databases matching the trial name pattern, whole

# The kinds of role.
SOURCE, TRIAL_SERVER, AUDIT = "source", "trial_server", "audit_store"

OUTBOX_PRIVILEGES = ("CREATE", "SELECT", "INSERT", "DELETE")
_ORDER = {TABLES: 0, COLUMNS: 1, OUTBOX: 2, TEMPORARY: 3, TRIAL_DATABASES: 4}
_PRIVILEGE_ORDER = {"SELECT": 0, "INSERT": 1, "UPDATE": 2, "DELETE": 3, "CREATE": 4, "DROP": 5}


# --------------------------------------------------------------------------- what a role needs


@dataclass(frozen=True)
class Grant:
    """Privileges on one kind of object, for the same rules and reason: one line of a script's
    header (and one or a few statements)."""

    privileges: tuple[str, ...]
    on: str
    tables: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    why: str = ""


@dataclass(frozen=True)
class RoleNeeds:
    """Everything one SQL role of Lethe needs, from the inventory."""

    name: str  # crm, marketing, trials, audit: the script's file name and the default role name
    kind: str  # SOURCE, TRIAL_SERVER or AUDIT
    connection_id: str
    grants: tuple[Grant, ...]
    schema: str | None = None  # the source's PostgreSQL schema when the inventory names one
    name_pattern: str | None = None  # trial servers: the inventory's anchored pattern
    append_only: tuple[str, ...] = ()  # tables no one may UPDATE or DELETE (the audit chain)

    @property
    def role(self) -> str:
        return f"lethe_{self.name}"

    @property
    def database(self) -> str:
        """The default database of the scripts (MariaDB ``@db``)."""
        return AUDIT_CONN_ID if self.kind == AUDIT else self.name

    def wanted(self) -> dict[tuple[str, str, str | None, str | None], tuple[str, ...]]:
        """Each single privilege, (privilege, on, table, column), with the rules needing it."""
        found: dict[tuple[str, str, str | None, str | None], set[str]] = defaultdict(set)
        for grant in self.grants:
            for privilege in grant.privileges:
                if grant.on == COLUMNS:
                    for column in grant.columns:
                        found[(privilege, COLUMNS, grant.tables[0], column)].update(grant.rules)
                elif grant.tables:
                    for table in grant.tables:
                        found[(privilege, grant.on, table, None)].update(grant.rules)
                else:
                    found[(privilege, grant.on, None, None)].update(grant.rules)
        return {item: tuple(sorted(rules)) for item, rules in found.items()}

    def rules_for(self, on: str) -> tuple[str, ...]:
        """The rules needing any privilege on objects of kind ``on``."""
        return tuple(sorted({rule for grant in self.grants if grant.on == on for rule in grant.rules}))


@dataclass(frozen=True)
class _Use:
    """One privilege one rule uses through one role's connection."""

    role: str
    privilege: str
    on: str
    rule: str
    why: str
    table: str | None = None
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class _RuleId:
    """Stands for a policy rule where an action is built only to read what it touches."""

    id: str


def _no_connection(conn_id: str) -> Any:
    raise RuntimeError("computing privileges opens no connection")


def _actions(inventory: Inventory) -> dict[str, Any]:
    """Every rule's action, built without a run (no connection is opened: only the inventory is read)."""
    ctx = RunContext(
        run_id="lethe-policy-roles",
        dag_id="",
        task_id="",
        as_of=datetime.min,
        dry_run=True,
        policy=None,  # type: ignore[arg-type]  # the actions read only the inventory here
        inventory=inventory,
        audit=None,  # type: ignore[arg-type]
        key="",
        engine_for=_no_connection,
    )
    return {
        rule.rule: registry.action_class(source.kind, rule.action)(ctx, _RuleId(rule.rule))
        for source in inventory.sources.values()
        for rule in source.rules
    }


def _holds(inventory: Inventory, rule: str) -> list[_Use]:
    """SELECT on every hold and restriction table (through its source's role)."""
    return [
        _Use(
            source.source,
            "SELECT",
            TABLES,
            rule,
            "the legal holds and restrictions every rule keyed on a person consults",
            ex.table,
        )
        for source in inventory.exemption_sources()
        for ex in source.exemptions.values()
    ]


def _sql_rule_uses(inventory: Inventory, source, action) -> list[_Use]:
    """A delete or anonymise rule: what it reads and writes in its source, the holds, the outbox,
    its temporary table, and the trial servers it waits for."""
    rule = action.rule.rule
    uses = [
        _Use(source.source, "SELECT", TABLES, rule, "the rows the rules judge (and change)", t) for t in action.needs()
    ]
    for privilege, tables in action.writes().items():
        for table, columns in tables.items():
            why = {
                "DELETE": "due rows are deleted, their dependents first",
                "INSERT": "the keyed hash of a removed address goes to the suppression list",
                "UPDATE": "exactly these personal-data columns are overwritten",
            }[privilege]
            on = COLUMNS if columns else TABLES
            uses.append(_Use(source.source, privilege, on, rule, why, table, tuple(columns)))
    if action.uses_holds:
        uses += _holds(inventory, rule)
    for privilege in OUTBOX_PRIVILEGES:
        uses.append(
            _Use(
                source.source,
                privilege,
                OUTBOX,
                rule,
                "audit entries are staged in it, in the transaction of the change "
                "(Lethe creates it on the first enforcing run)",
            )
        )
    uses.append(
        _Use(source.source, "CREATE", TEMPORARY, rule, "each run decides into a temporary table of its session")
    )
    for wait in action.rule.wait_for:
        server = inventory.rule(wait.rule)[0]
        uses.append(
            _Use(
                server.source,
                "SELECT",
                TRIAL_DATABASES,
                rule,
                "records that wait for a drop wait while their trial database is listed",
            )
        )
    return uses


def _trial_rule_uses(inventory: Inventory, source, action) -> list[_Use]:
    """A drop_database rule: the catalog and holds (read), the server's trial databases (listed,
    counted, dropped)."""
    rule = action.rule.rule
    catalog = source.catalog
    uses = [
        _Use(catalog.source, "SELECT", TABLES, rule, "the trial catalog and its sign-up contacts", table)
        for table in (catalog.table, catalog.contact.table)
    ]
    uses += _holds(inventory, rule)
    uses.append(_Use(source.source, "SELECT", TRIAL_DATABASES, rule, "listed, and their rows counted before a drop"))
    uses.append(_Use(source.source, "DROP", TRIAL_DATABASES, rule, "the unconverted ones that are due are dropped"))
    return uses


# What the rules of each kind of source use through SQL connections, and the kind of role such a
# source gets; log folders use none. A new kind of source reached through SQL adds its entries.
_RULE_USES = {"sql": _sql_rule_uses, "trial_databases": _trial_rule_uses}
_ROLE_KINDS = {"sql": SOURCE, "trial_databases": TRIAL_SERVER}


def _audit_uses(inventory: Inventory) -> list[_Use]:
    """Every rule, and ``lethe arm``/``disarm``, appends to the chain and reads it back."""
    uses = []
    for source in inventory.sources.values():
        for rule in source.rules:
            for privilege in ("INSERT", "SELECT"):
                uses.append(
                    _Use(
                        AUDIT_STORE,
                        privilege,
                        TABLES,
                        rule.rule,
                        "entries are appended and read back (lethe arm too); never updated or deleted",
                        audit_table.name,
                    )
                )
            for privilege in ("SELECT", "UPDATE"):
                uses.append(
                    _Use(
                        AUDIT_STORE,
                        privilege,
                        TABLES,
                        rule.rule,
                        "the head row is locked (FOR UPDATE) and advanced with every append",
                        head_table.name,
                    )
                )
    return uses


def _grants(uses: Iterable[_Use]) -> tuple[Grant, ...]:
    """Uses grouped into grants, each object once per privilege: objects with the same privilege,
    rules and reasons together, then privileges on the same objects for the same rules and reasons.
    UPDATE on columns: one grant per table, with every column any rule writes."""
    per_object: dict[tuple, tuple[set[str], set[str], set[str]]] = {}
    for use in uses:
        rules, whys, columns = per_object.setdefault((use.privilege, use.on, use.table), (set(), set(), set()))
        rules.add(use.rule)
        whys.add(use.why)
        columns.update(use.columns)
    objects: dict[tuple, set] = defaultdict(set)
    grants = []
    for (privilege, on, table), (rules, whys, columns) in per_object.items():
        reasons = "; ".join(sorted(whys))
        if on == COLUMNS:
            grants.append(Grant((privilege,), on, (table,), tuple(sorted(columns)), tuple(sorted(rules)), reasons))
        else:
            objects[(privilege, on, tuple(sorted(r for r in rules if r)), reasons)].add(table)
    merged: dict[tuple, set[str]] = defaultdict(set)
    for (privilege, on, rules, reasons), tables in objects.items():
        merged[(on, tuple(sorted(t for t in tables if t)), rules, reasons)].add(privilege)
    grants += [
        Grant(tuple(sorted(privileges, key=_PRIVILEGE_ORDER.get)), on, tables, (), rules, reasons)
        for (on, tables, rules, reasons), privileges in merged.items()
    ]
    return tuple(
        sorted(
            grants,
            key=lambda g: (_ORDER[g.on], _PRIVILEGE_ORDER.get(g.privileges[0], 9), g.tables, g.rules, g.why),
        )
    )


def _named_tables(source) -> list[_Use]:
    """SELECT on a table the inventory names that no rule reads (it is named for a reason)."""
    return [_Use(source.source, "SELECT", TABLES, "", "named in the inventory", table) for table in source.tables]


def roles(inventory: Inventory) -> dict[str, RoleNeeds]:
    """Every SQL role of the inventory, by name: its SQL sources and trial servers, then the audit store."""
    if AUDIT_STORE in inventory.sources:
        raise ConfigError(f"source {AUDIT_STORE!r}: the name is the audit store's role; rename the source")
    uses: list[_Use] = []
    actions = _actions(inventory)
    for source in inventory.sources.values():
        uses_of = _RULE_USES.get(source.kind)
        if uses_of is None:
            continue
        for rule in source.rules:
            uses += uses_of(inventory, source, actions[rule.rule])
    by_role: dict[str, list[_Use]] = defaultdict(list)
    for use in uses:
        by_role[use.role].append(use)
    found = {}
    for source in inventory.sources.values():
        kind = _ROLE_KINDS.get(source.kind)
        if kind is None:
            continue
        mine = by_role[source.source]
        if kind == SOURCE:
            read = {u.table for u in mine if u.privilege == "SELECT" and u.on == TABLES}
            mine = mine + [u for u in _named_tables(source) if u.table not in read]
        found[source.source] = RoleNeeds(
            name=source.source,
            kind=kind,
            connection_id=source.connection_id,
            grants=_grants(mine),
            schema=getattr(source, "schema_name", None),
            name_pattern=getattr(source, "name_pattern", None),
        )
    found[AUDIT_STORE] = RoleNeeds(
        name=AUDIT_STORE,
        kind=AUDIT,
        connection_id=AUDIT_CONN_ID,
        grants=_grants(_audit_uses(inventory)),
        append_only=(audit_table.name,),
    )
    return found


def required(inventory: Inventory, source_id: str) -> RoleNeeds:
    """What the role of ``source_id`` needs (``audit``: the audit store's role)."""
    found = roles(inventory)
    if source_id not in found:
        if source_id in inventory.sources:
            raise ConfigError(
                f"source {source_id!r} (kind {inventory.sources[source_id].kind}) is reached through "
                "no SQL connection: it needs no SQL role"
            )
        raise ConfigError(f"no SQL role {source_id!r} (the inventory has: {', '.join(found)})")
    return found[source_id]


def like_pattern(name_pattern: str) -> str:
    """The LIKE pattern (MariaDB grant syntax) of the names an anchored pattern admits: its literal
    prefix, ``_`` escaped, then ``%``. ``^trial_[a-z0-9_]{1,56}$`` -> ``trial\\_%``.

    The grant admits more names than the pattern (any suffix); T1 still checks every name against
    the pattern itself. A pattern with no literal prefix, or with an alternative at its top
    level, would grant every database: refused.
    """
    body = name_pattern[1:] if name_pattern.startswith("^") else ""
    literal = "" if _top_level_alternative(body) else _literal_prefix(body)
    if not literal or not re.fullmatch(r"[A-Za-z0-9_]+", literal):
        raise ConfigError(
            f"name_pattern {name_pattern!r} starts with no literal prefix of letters, digits and underscores "
            "(like ^trial_...): a grant on its databases would reach every database of the server"
        )
    return literal.replace("_", "\\_") + "%"


# A regular expression's parts: an escape, a character class, or one character.
_REGEX_TOKEN = re.compile(r"\\.?|\[\^?\]?(?:\\.|[^\]])*\]|.", re.DOTALL)


def _top_level_alternative(body: str) -> bool:
    """Whether ``body`` has a ``|`` outside every group (then no prefix is common to all names)."""
    depth = 0
    for token in _REGEX_TOKEN.findall(body):
        depth += {"(": 1, ")": -1}.get(token, 0)
        if token == "|" and depth == 0:
            return True
    return False


def _literal_prefix(body: str) -> str:
    """The characters every match of ``body`` starts with: literal ones (escaped punctuation too),
    up to the first class, group, wildcard or anchor, or a character a quantifier may leave out."""
    tokens = _REGEX_TOKEN.findall(body)
    prefix = []
    for token, following in zip(tokens, tokens[1:] + [""], strict=True):
        if token.startswith("\\") and len(token) == 2 and not token[1].isalnum():
            token = token[1]  # escaped punctuation: the character itself
        elif len(token) != 1 or token in ".^$*+?{}[]()|":
            break  # \d, [a-z], (...), ., an anchor: not one literal character
        if following in ("*", "?", "{"):
            break  # the character may be absent (or repeated by a count we do not read)
        prefix.append(token)
        if following == "+":
            break
    return "".join(prefix)


def _like_regex(pattern: str) -> re.Pattern:
    """A MariaDB database-grant pattern (``%``, ``_``, backslash escapes) as a regular expression."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _covers(granted: str, wanted: str) -> bool:
    """Whether a database-grant pattern admits every name the pattern ``wanted`` (prefix, then %) does."""
    if granted == wanted:
        return True
    literal = wanted[:-1].replace("\\_", "_")
    return granted.endswith("%") and not granted.endswith("\\%") and bool(_like_regex(granted).fullmatch(literal))


def _rules_text(rules: Iterable[str]) -> str:
    rules = [r for r in rules if r]
    if not rules:
        return "named in the inventory"
    return ("rule " if len(rules) == 1 else "rules ") + ", ".join(rules)


# --------------------------------------------------------------------------- what a connection has


@dataclass
class Findings:
    """What a connection's user has, against what its role needs. Names of objects and roles
    only: no row is read."""

    connection_id: str
    backend: str
    user: str = ""
    missing: list[str] = field(default_factory=list)
    excess: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# What a privilege held beyond the role's needs would let the role do.
_EXCESS_WHY = {
    "SELECT": "no rule reads it",
    "INSERT": "no rule inserts into it",
    "UPDATE": "no rule writes it",
    "DELETE": "no rule deletes from it",
    "TRUNCATE": "no rule truncates it",
    "REFERENCES": "no rule needs it",
    "TRIGGER": "no rule needs it",
}


def _whole_table_excess(needs: RoleNeeds, wanted: dict, name: str, table: str, privilege: str) -> str:
    """A privilege held on a whole table the rules do not need it on (or need on some columns only)."""
    columns = sorted(c for (p, on, t, c) in wanted if p == privilege and on == COLUMNS and t == table)
    if columns:
        return f"{privilege} on every column of {name} (rules write only {', '.join(columns)})"
    return f"{privilege} on {name} ({_excess_why(needs, privilege, table)})"


def _excess_why(needs: RoleNeeds, privilege: str, table: str) -> str:
    if table in needs.append_only and privilege in ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER"):
        return "the chain is append-only"
    return _EXCESS_WHY.get(privilege, "no rule needs it")


# --------------------------------------------------------------------------- back ends


class Backend(ABC):
    """One database server product: renders a role as a script of its client and reads back what
    a connection has. Registered by dialect name (:func:`backend`)."""

    name: ClassVar[str]  # postgresql, mariadb: the folder under deploy/roles
    aliases: ClassVar[tuple[str, ...]] = ()  # other names (SQLAlchemy's dialect name)
    title: ClassVar[str]  # the product's name in a script's header

    def script(self, needs: RoleNeeds) -> str:
        """The role's script: its header (what, why, how to run it), then the statements."""
        renderers = {SOURCE: self.source_statements, TRIAL_SERVER: self.trial_statements, AUDIT: self.audit_statements}
        lines = [f"-- {self.path(needs.name)}: the {self.title} role Lethe connects with through connection "]
        lines[0] += f"`{needs.connection_id}`" + (f" (inventory source {needs.name})" if needs.kind != AUDIT else "")
        lines += [
            "-- Generated by `lethe policy roles` from the inventory (include/inventory/*.yaml) and the rules' code;",
            "-- do not edit: `lethe policy roles --write` rewrites it, and a test fails when it no longer matches.",
            "--",
            "-- It grants exactly what the rules need, and why:",
        ]
        lines += [f"--   {line}" for line in self.grant_lines(needs)]
        lines += ["--", *[f"-- {line}" for line in self.how_to_run(needs)], ""]
        return "\n".join(lines + renderers[needs.kind](needs)) + "\n"

    def path(self, name: str) -> str:
        """Where the script of role ``name`` is, relative to the repository (REPO_ROOT)."""
        return f"deploy/roles/{self.name}/{name}.sql"

    @abstractmethod
    def grant_lines(self, needs: RoleNeeds) -> list[str]:
        """One line per grant group: what, on what, the rules needing it and why."""

    @abstractmethod
    def how_to_run(self, needs: RoleNeeds) -> list[str]:
        """The header's lines on running the script and its variables."""

    @abstractmethod
    def source_statements(self, needs: RoleNeeds) -> list[str]: ...

    @abstractmethod
    def trial_statements(self, needs: RoleNeeds) -> list[str]: ...

    @abstractmethod
    def audit_statements(self, needs: RoleNeeds) -> list[str]: ...

    def check(self, conn: Connection, needs: RoleNeeds) -> Findings:
        """What the connection's user has compared with ``needs``, from the server's catalogs."""
        findings = Findings(needs.connection_id, self.name)
        checkers = {SOURCE: self.check_tables, AUDIT: self.check_tables, TRIAL_SERVER: self.check_trial_server}
        checkers[needs.kind](conn, needs, findings)
        return findings

    @abstractmethod
    def check_tables(self, conn: Connection, needs: RoleNeeds, findings: Findings) -> None:
        """A source or the audit store: privileges on its database, schema, tables and columns."""

    @abstractmethod
    def check_trial_server(self, conn: Connection, needs: RoleNeeds, findings: Findings) -> None:
        """A trial server: the trial databases reachable and droppable, and nothing else."""


BACKENDS: dict[str, type[Backend]] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator: the back end answers to its name and aliases."""
    for name in (cls.name, *cls.aliases):
        BACKENDS[name] = cls
    return cls


def dialects() -> list[str]:
    """The registered back ends' names (their aliases apart)."""
    return list(dict.fromkeys(cls.name for cls in BACKENDS.values()))


def backend(name: str) -> Backend:
    """The back end of a dialect name (``postgresql``, ``mariadb``; SQLAlchemy's ``mysql`` too)."""
    try:
        return BACKENDS[name]()
    except KeyError:
        raise ConfigError(f"no privileges back end {name!r} (known: {', '.join(dialects())})") from None


def _quote_pg(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_mariadb(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


@register_backend
class PostgreSQL(Backend):
    """PostgreSQL: a psql script run in the source's database; variables ``role``, ``password``,
    ``schema`` (trial servers: ``owner``, and the current database is the server's own).

    Table privileges are revoked from the role first, so the script converges on exactly the
    grants below on the schema's tables. A trial server's role is a member of the role owning the
    trial databases: PostgreSQL lets only an owner drop a database. Read back with
    ``has_table_privilege``, ``has_column_privilege``, ``has_schema_privilege``,
    ``has_database_privilege``, ``pg_has_role`` and ``pg_roles``.
    """

    name = "postgresql"
    title = "PostgreSQL"

    # ----------------------------------------------------------------- scripts

    def _table_list(self, tables: Iterable[str]) -> str:
        return ", ".join(f':"schema".{_quote_pg(t)}' for t in tables)

    def grant_lines(self, needs: RoleNeeds) -> list[str]:
        lines = []
        if needs.kind == TRIAL_SERVER:
            lines.append("CONNECT on the server's own database (the current one): to list the databases")
        else:
            temporary = needs.rules_for(TEMPORARY)
            lines.append(
                "CONNECT"
                + (", TEMPORARY" if temporary else "")
                + " on the database, USAGE on the schema: to reach the tables"
                + (f" (TEMPORARY: {_rules_text(temporary)}, {self._why(needs, TEMPORARY)})" if temporary else "")
            )
        for grant in needs.grants:
            privileges = ", ".join(grant.privileges)
            if grant.on == TABLES:
                what = f"{privileges} on {', '.join(grant.tables)}"
            elif grant.on == COLUMNS:
                what = f"{privileges} ({', '.join(grant.columns)}) on {grant.tables[0]}"
            elif grant.on == OUTBOX:
                what = f"CREATE on the schema, then SELECT, INSERT, DELETE on {OUTBOX_TABLE}"
            elif grant.on == TRIAL_DATABASES:
                what = f"{privileges} on the trial databases (membership of the role owning them, :owner)"
            else:
                continue  # TEMPORARY: on the first line
            lines.append(f"{what}: {_rules_text(grant.rules)}: {grant.why}")
        return lines

    @staticmethod
    def _why(needs: RoleNeeds, on: str) -> str:
        return next(g.why for g in needs.grants if g.on == on)

    def how_to_run(self, needs: RoleNeeds) -> list[str]:
        database = {SOURCE: needs.name, AUDIT: AUDIT_CONN_ID, TRIAL_SERVER: "postgres"}[needs.kind]
        owner = " -v owner=trial_owner" if needs.kind == TRIAL_SERVER else ""
        lines = [
            "Run it as an administrator, in "
            + ("the trial server's own database" if needs.kind == TRIAL_SERVER else "the database it serves")
            + "; it is idempotent (run it again after an inventory change):",
            f"  psql -v ON_ERROR_STOP=1 -d {database} -v role={needs.role} -v password=secret{owner} "
            f"-f {self.path(needs.name)}",
            f"Variables: role (default {needs.role}); password (unset: the role logs in without one, for trust or",
            "certificate authentication; set: it is set, again on every run)",
        ]
        if needs.kind == TRIAL_SERVER:
            lines[-1] += "; owner (required): the role that owns"
            lines.append("the trial databases (and their tables); the role becomes a member of it.")
        else:
            lines[-1] += f"; schema (default {needs.schema or 'public'})."
            lines.append(
                "Grants the role held on the schema's tables before are revoked first: it ends with exactly these."
            )
        if needs.kind == AUDIT:
            lines.append("The chain's tables must exist first: `lethe audit init` (as an administrator) makes them.")
        lines.append(
            f"Check it: lethe policy check --strict, with AIRFLOW_CONN_{needs.connection_id.upper()} naming the role."
        )
        return lines

    def _role_statements(self, needs: RoleNeeds) -> list[str]:
        lines = [
            f"\\if :{{?role}} \\else \\set role {needs.role} \\endif",
        ]
        if needs.kind != TRIAL_SERVER:
            lines.append(f"\\if :{{?schema}} \\else \\set schema {needs.schema or 'public'} \\endif")
        lines += [
            "SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') AS lethe_new_role \\gset",
            "\\if :lethe_new_role",
            'CREATE ROLE :"role" LOGIN;',
            "\\endif",
            "\\if :{?password}",
            "ALTER ROLE :\"role\" LOGIN PASSWORD :'password';",
            "\\endif",
        ]
        return lines

    def source_statements(self, needs: RoleNeeds) -> list[str]:
        lines = self._role_statements(needs)
        temporary = ", TEMPORARY" if needs.rules_for(TEMPORARY) else ""
        outbox = bool(needs.rules_for(OUTBOX))
        lines += [
            'REVOKE ALL ON ALL TABLES IN SCHEMA :"schema" FROM :"role";',
            f'GRANT CONNECT{temporary} ON DATABASE :"DBNAME" TO :"role";',
            f'GRANT USAGE{", CREATE" if outbox else ""} ON SCHEMA :"schema" TO :"role";',
        ]
        if not outbox:
            lines.append('REVOKE CREATE ON SCHEMA :"schema" FROM :"role";')
        for grant in needs.grants:
            if grant.on == TABLES:
                lines.append(
                    f'GRANT {", ".join(grant.privileges)} ON TABLE {self._table_list(grant.tables)} TO :"role";'
                )
            elif grant.on == COLUMNS:
                columns = ", ".join(_quote_pg(c) for c in grant.columns)
                lines.append(
                    f"GRANT {', '.join(grant.privileges)} ({columns}) ON TABLE {self._table_list(grant.tables)} "
                    'TO :"role";'
                )
        if outbox:
            table = _quote_pg(OUTBOX_TABLE)
            lines += [
                f"SELECT to_regclass(format('%I.%I', :'schema', '{OUTBOX_TABLE}')) IS NOT NULL AS lethe_outbox \\gset",
                "\\if :lethe_outbox",
                f'GRANT SELECT, INSERT, DELETE ON TABLE :"schema".{table} TO :"role";',
                "\\endif",
            ]
        return lines

    def audit_statements(self, needs: RoleNeeds) -> list[str]:
        return self.source_statements(needs)

    def trial_statements(self, needs: RoleNeeds) -> list[str]:
        return [
            "\\if :{?owner}",
            "\\else",
            "DO $$ BEGIN RAISE EXCEPTION 'set -v owner=ROLE: the role that owns the trial databases'; END $$;",
            "\\quit",
            "\\endif",
            *self._role_statements(needs),
            'GRANT CONNECT ON DATABASE :"DBNAME" TO :"role";',
            'GRANT :"owner" TO :"role";',
        ]

    # ----------------------------------------------------------------- reading back

    def _role(self, conn: Connection, findings: Findings) -> bool:
        """The user and its attributes; True when it is a superuser (then every privilege is held)."""
        row = conn.execute(
            text(
                "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls "
                "FROM pg_roles WHERE rolname = current_user"
            )
        ).one()
        findings.user = row.rolname
        for held, what in (
            (row.rolsuper, "superuser (every privilege on the server)"),
            (row.rolcreatedb, "CREATEDB (may create databases)"),
            (row.rolcreaterole, "CREATEROLE (may create and alter roles)"),
            (row.rolreplication, "REPLICATION"),
            (row.rolbypassrls, "BYPASSRLS"),
        ):
            if held:
                findings.excess.append(what)
        return bool(row.rolsuper)

    def check_tables(self, conn: Connection, needs: RoleNeeds, findings: Findings) -> None:
        if self._role(conn, findings):
            return  # a superuser holds everything: that one line says it
        database, current_schema = conn.execute(text("SELECT current_database(), current_schema()")).one()
        schema = needs.schema or current_schema or "public"
        wanted = needs.wanted()
        if self._check_places(conn, findings, wanted, database, schema):
            held = self._tables(conn, f"{database}.{schema}", schema)
            findings.missing += _missing_on_tables(wanted, held)
            findings.excess += _excess_on_tables(needs, wanted, held)

    @staticmethod
    def _check_places(conn: Connection, findings: Findings, wanted: dict, database: str, schema: str) -> bool:
        """The database and the schema; False when the schema does not exist."""
        place = conn.execute(
            text(
                "SELECT has_database_privilege(current_database(), 'CONNECT') AS can_connect, "
                "has_database_privilege(current_database(), 'TEMPORARY') AS temporary, "
                "has_database_privilege(current_database(), 'CREATE') AS create_schemas, "
                "n.oid IS NOT NULL AS schema_exists, "
                "n.oid IS NOT NULL AND has_schema_privilege(n.oid, 'USAGE') AS usage, "
                "n.oid IS NOT NULL AND has_schema_privilege(n.oid, 'CREATE') AS create_tables "
                "FROM (SELECT 1) AS one LEFT JOIN pg_namespace n ON n.nspname = :schema"
            ),
            {"schema": schema},
        ).one()
        every_rule = _rules_text(sorted({r for rules in wanted.values() for r in rules}))
        temporary = wanted.get(("CREATE", TEMPORARY, None, None))
        outbox = wanted.get(("CREATE", OUTBOX, None, None))
        checks = [
            (not place.can_connect, findings.missing, f"CONNECT on database {database} ({every_rule})"),
            (
                temporary and not place.temporary,
                findings.missing,
                f"TEMPORARY on database {database} ({_rules_text(temporary or ())})",
            ),
            (
                place.create_schemas,
                findings.excess,
                f"CREATE on database {database} (may create schemas; no rule needs it)",
            ),
            (not place.schema_exists, findings.missing, f"schema {database}.{schema} (it does not exist)"),
            (
                place.schema_exists and not place.usage,
                findings.missing,
                f"USAGE on schema {database}.{schema} ({every_rule})",
            ),
            (
                outbox and place.schema_exists and not place.create_tables,
                findings.missing,
                f"CREATE on schema {database}.{schema} (to create {OUTBOX_TABLE}: {_rules_text(outbox or ())})",
            ),
            (
                not outbox and place.create_tables,
                findings.excess,
                f"CREATE on schema {database}.{schema} (may create tables; no rule needs it)",
            ),
        ]
        for failed, where, line in checks:
            if failed:
                where.append(line)
        return bool(place.schema_exists)

    @staticmethod
    def _tables(conn: Connection, label: str, schema: str) -> _TablePrivileges:
        """Every table of the schema with what the user holds on it, by any route (PUBLIC,
        membership, ownership)."""
        privileges = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
        column_privileges = ("SELECT", "INSERT", "UPDATE", "REFERENCES")
        in_schema = (
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
        )
        held = _TablePrivileges(label, existing=set(), outbox_create_on_table=False)
        tables = conn.execute(
            text(
                "SELECT c.relname, pg_has_role(c.relowner, 'USAGE') AS owned, "
                + ", ".join(f"has_table_privilege(c.oid, '{p}') AS {p.lower()}" for p in privileges)
                + f" {in_schema}"
            ),
            {"schema": schema},
        )
        for row in tables:
            held.existing.add(row.relname)
            held.whole[row.relname] = {p for p in privileges if getattr(row, p.lower())}
            if row.owned:
                held.owned.add(row.relname)
        columns = conn.execute(
            text(
                "SELECT c.relname, a.attname, "
                + ", ".join(f"has_column_privilege(c.oid, a.attnum, '{p}') AS {p.lower()}" for p in column_privileges)
                + " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
                "AND a.attnum > 0 AND NOT a.attisdropped"
            ),
            {"schema": schema},
        )
        for row in columns:
            for privilege in column_privileges:
                if getattr(row, privilege.lower()):
                    held.columns[(row.relname, privilege)].add(row.attname)
        return held

    def check_trial_server(self, conn: Connection, needs: RoleNeeds, findings: Findings) -> None:
        if self._role(conn, findings):
            return
        rows = conn.execute(
            text(
                "SELECT d.datname, d.datallowconn, d.datname = current_database() AS own, "
                "has_database_privilege(d.oid, 'CONNECT') AS can_connect, "
                "pg_has_role(d.datdba, 'USAGE') AS owned, r.rolname AS owner, "
                "EXISTS (SELECT FROM aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) AS a "
                "WHERE a.grantee = 0 AND a.privilege_type = 'CONNECT') AS public_connect "
                "FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba"
            )
        ).all()
        pattern = re.compile(needs.name_pattern or "$^")
        own = next(row for row in rows if row.own)
        trials = [r for r in rows if not r.own and pattern.fullmatch(r.datname) and r.datname not in SYSTEM_DATABASES]
        others = [r for r in rows if not r.own and r not in trials and r.datallowconn]
        # Trial database names may hold a customer's name: they are counted, never listed.
        self._trials_missing(needs, findings, own, trials)
        self._others_excess(findings, own, others)

    @staticmethod
    def _trials_missing(needs: RoleNeeds, findings: Findings, own, trials: list) -> None:
        wanted = needs.wanted()
        rules = _rules_text(wanted.get(("SELECT", TRIAL_DATABASES, None, None), ()))
        if not own.can_connect:
            findings.missing.append(f"CONNECT on database {own.datname}, the server's own ({rules})")
        if not trials:
            findings.notes.append("no trial database on the server now: ownership of the trial databases not checked")
        not_owned = Counter(row.owner for row in trials if not row.owned)
        drop_rules = _rules_text(wanted.get(("DROP", TRIAL_DATABASES, None, None), ()))
        for owner, n in sorted(not_owned.items()):
            findings.missing.append(
                f"DROP on {n} trial database(s) owned by role {owner} (membership of {owner}; {drop_rules})"
            )
        unreachable = sum(1 for row in trials if not row.can_connect)
        if unreachable:
            findings.missing.append(f"CONNECT on {unreachable} trial database(s) ({rules})")

    @staticmethod
    def _others_excess(findings: Findings, own, others: list) -> None:
        owned = Counter(row.owner for row in others + [own] if row.owned)
        for owner, n in sorted(owned.items()):
            findings.excess.append(
                f"DROP on {n} database(s) outside the trial pattern (owned by role {owner}, the role or one "
                "it is a member of)"
            )
        reachable = [row for row in others if row.can_connect and not row.owned]
        granted = sum(1 for row in reachable if not row.public_connect)
        if granted:
            findings.excess.append(f"CONNECT on {granted} other database(s) of the server, granted to the role")
        public = len(reachable) - granted
        if public:
            findings.notes.append(
                f"{public} other database(s) accept connections from every role (CONNECT granted to PUBLIC, "
                "PostgreSQL's default); REVOKE CONNECT ON DATABASE <name> FROM PUBLIC closes one"
            )


@dataclass
class _TablePrivileges:
    """What a user holds on the tables of one database (PostgreSQL: one schema of it)."""

    label: str  # how the tables are named in a finding: database (and schema)
    whole: dict[str, set[str]] = field(default_factory=dict)  # table -> privileges on the whole table
    columns: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))  # (table, priv)
    owned: set[str] = field(default_factory=set)  # tables the user owns (every privilege)
    existing: set[str] | None = None  # the tables there are, when known (MariaDB grants name tables)
    outbox_create_on_table: bool = True  # MariaDB grants CREATE on the outbox's name; PostgreSQL on the schema


def _missing_on_tables(wanted: dict, held: _TablePrivileges) -> list[str]:
    """Each table or column privilege the rules need and the user lacks."""
    found = []
    for (privilege, on, table, column), rules in sorted(wanted.items(), key=lambda item: tuple(map(str, item[0]))):
        if on == OUTBOX:
            table = OUTBOX_TABLE
            if privilege == "CREATE" and not held.outbox_create_on_table:
                continue  # on the schema: checked with it
        elif on not in (TABLES, COLUMNS):
            continue
        if held.existing is not None and table not in held.existing:
            if on != OUTBOX:  # the outbox is created on the first enforcing run
                found.append(f"{privilege} on {held.label}.{table} ({_rules_text(rules)}; the table does not exist)")
            continue
        if table in held.owned or privilege in held.whole.get(table, set()):
            continue
        if on == COLUMNS:
            if column not in held.columns.get((table, privilege), set()):
                found.append(f"{privilege} on {held.label}.{table} column {column} ({_rules_text(rules)})")
            continue
        found.append(f"{privilege} on {held.label}.{table} ({_rules_text(rules)})")
    return found


def _excess_on_tables(needs: RoleNeeds, wanted: dict, held: _TablePrivileges) -> list[str]:
    """Each table or column privilege the user holds that no rule needs (the outbox Lethe made apart)."""
    found = []
    outbox = ("CREATE", OUTBOX, None, None) in wanted
    tables = set(held.whole) | {table for table, _ in held.columns} | held.owned
    for table in sorted(tables):
        allowed = set(OUTBOX_PRIVILEGES) if table == OUTBOX_TABLE and outbox else set()
        if table in held.owned:
            if not allowed:  # the outbox is Lethe's own: its role may own it
                found.append(f"owns {held.label}.{table} (every privilege on it, DROP TABLE included)")
            continue
        whole = held.whole.get(table, set())
        for privilege in sorted(whole | {p for t, p in held.columns if t == table}):
            if privilege in allowed or (privilege, TABLES, table, None) in wanted:
                continue
            if privilege in whole:
                found.append(_whole_table_excess(needs, wanted, f"{held.label}.{table}", table, privilege))
                continue
            written = {c for (p, on, t, c) in wanted if p == privilege and on == COLUMNS and t == table}
            extra = sorted(held.columns[(table, privilege)] - written)
            if extra:
                found.append(
                    f"{privilege} on {held.label}.{table} column(s) {', '.join(extra)} "
                    f"({_excess_why(needs, privilege, table)})"
                )
    return found


@register_backend
class MariaDB(Backend):
    """MariaDB (and MySQL's SQLAlchemy dialect name, ``mysql``): a script for the ``mariadb``
    client; user variables ``@db``, ``@role``, ``@password``, ``@host``, given with
    ``--init-command``.

    Statements are built with ``EXECUTE IMMEDIATE CONCAT(...)``: identifiers in backticks, strings
    through ``QUOTE()``. The account's privileges are revoked first, so the script converges on
    exactly the grants below. Trial databases: SELECT and DROP on the LIKE pattern of the
    inventory's name pattern, so the role lists and reaches only those. Read back from
    information_schema (USER_, SCHEMA_, TABLE_ and COLUMN_PRIVILEGES) for CURRENT_USER().
    """

    name = "mariadb"
    aliases = ("mysql",)
    title = "MariaDB"

    # ----------------------------------------------------------------- scripts

    def grant_lines(self, needs: RoleNeeds) -> list[str]:
        lines = []
        for grant in needs.grants:
            privileges = ", ".join(grant.privileges)
            if grant.on == TABLES:
                what = f"{privileges} on {', '.join(grant.tables)}"
            elif grant.on == COLUMNS:
                what = f"{privileges} ({', '.join(grant.columns)}) on {grant.tables[0]}"
            elif grant.on == OUTBOX:
                what = f"CREATE, SELECT, INSERT, DELETE on {OUTBOX_TABLE} (granted before it exists)"
            elif grant.on == TEMPORARY:
                what = "CREATE TEMPORARY TABLES on the database"
            else:
                what = f"{privileges} on the databases named {like_pattern(needs.name_pattern or '')} (no other one)"
            lines.append(f"{what}: {_rules_text(grant.rules)}: {grant.why}")
        return lines

    def how_to_run(self, needs: RoleNeeds) -> list[str]:
        db = "" if needs.kind == TRIAL_SERVER else f", @db='{needs.database}'"
        lines = [
            "Run it as an administrator with the mariadb client; it is idempotent (run it again after an",
            "inventory change):",
            f"  mariadb -uroot --init-command=\"SET @role='{needs.role}'{db}, @password='secret', @host='%'\" "
            f"< {self.path(needs.name)}",
            f"Variables: @role (default {needs.role})"
            + ("" if needs.kind == TRIAL_SERVER else f", @db (default {needs.database})")
            + ", @host (default '%'), @password (unset: the",
            "account has no password; set: it is set, again on every run). The account's earlier grants are",
            "revoked first: it ends with exactly these.",
        ]
        if needs.kind == AUDIT:
            lines.append("The chain's tables must exist first: `lethe audit init` (as an administrator) makes them.")
        if needs.kind == TRIAL_SERVER:
            lines.append("Its connection names no database (the role may use none but the trial databases).")
        lines.append(
            f"Check it: lethe policy check --strict, with AIRFLOW_CONN_{needs.connection_id.upper()} naming the role."
        )
        return lines

    @staticmethod
    def _literal(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"

    def _account_statements(self, needs: RoleNeeds) -> list[str]:
        lines = []
        if needs.kind != TRIAL_SERVER:
            lines.append(f"SET @db = COALESCE(@db, {self._literal(needs.database)});")
        lines += [
            f"SET @role = COALESCE(@role, {self._literal(needs.role)});",
            "SET @host = COALESCE(@host, '%');",
            "SET @lethe_account = CONCAT(QUOTE(@role), '@', QUOTE(@host));",
        ]
        if needs.kind != TRIAL_SERVER:
            lines.append("SET @lethe_db = CONCAT('`', REPLACE(@db, '`', '``'), '`');")
        lines += [
            "EXECUTE IMMEDIATE CONCAT('CREATE USER IF NOT EXISTS ', @lethe_account);",
            "EXECUTE IMMEDIATE IF(@password IS NULL, 'DO 0', "
            "CONCAT('ALTER USER ', @lethe_account, ' IDENTIFIED BY ', QUOTE(@password)));",
            "EXECUTE IMMEDIATE CONCAT('REVOKE ALL PRIVILEGES, GRANT OPTION FROM ', @lethe_account);",
        ]
        return lines

    def _grant(self, privileges: str, on: str) -> str:
        """``on`` is SQL text after the database (``.`table```), already quoted."""
        target = self._literal(f"{on} TO ")
        return f"EXECUTE IMMEDIATE CONCAT('GRANT {privileges} ON ', @lethe_db, {target}, @lethe_account);"

    def source_statements(self, needs: RoleNeeds) -> list[str]:
        lines = self._account_statements(needs)
        for grant in needs.grants:
            privileges = ", ".join(grant.privileges)
            if grant.on == TABLES:
                lines += [self._grant(privileges, f".{_quote_mariadb(table)}") for table in grant.tables]
            elif grant.on == COLUMNS:
                columns = ", ".join(_quote_mariadb(c) for c in grant.columns)
                lines.append(self._grant(f"{privileges} ({columns})", f".{_quote_mariadb(grant.tables[0])}"))
            elif grant.on == OUTBOX:
                lines.append(self._grant(", ".join(OUTBOX_PRIVILEGES), f".{_quote_mariadb(OUTBOX_TABLE)}"))
            elif grant.on == TEMPORARY:
                lines.append(self._grant("CREATE TEMPORARY TABLES", ".*"))
        return lines

    def audit_statements(self, needs: RoleNeeds) -> list[str]:
        return self.source_statements(needs)

    def trial_statements(self, needs: RoleNeeds) -> list[str]:
        pattern = like_pattern(needs.name_pattern or "")
        lines = self._account_statements(needs)
        # A backslash before _ stays itself in a string literal, whatever the sql_mode.
        on = f"{_quote_mariadb(pattern)}.*"
        for grant in needs.grants:
            lines.append(
                f"EXECUTE IMMEDIATE CONCAT('GRANT {', '.join(grant.privileges)} ON {on} TO ', @lethe_account);"
            )
        return lines

    # ----------------------------------------------------------------- reading back

    def _held(self, conn: Connection, findings: Findings) -> _Grants:
        """The user's privileges from information_schema, at every level."""
        current = conn.execute(text("SELECT CURRENT_USER(), DATABASE()")).one()
        user, _, host = current[0].rpartition("@")
        findings.user = current[0]
        grantee = {"grantee": f"'{user}'@'{host}'"}

        def rows(view: str, *columns: str) -> set[tuple]:
            """(columns..., privilege) of each row of an information_schema view for the user."""
            selected = ", ".join([*columns, "privilege_type"])
            query = f"SELECT {selected} FROM information_schema.{view} WHERE grantee = :grantee"
            return {tuple(row) for row in conn.execute(text(query), grantee)}

        return _Grants(
            database=current[1] or "",
            on_server={p for (p,) in rows("user_privileges") if p != "USAGE"},
            on_databases=rows("schema_privileges", "table_schema"),
            on_tables=rows("table_privileges", "table_schema", "table_name"),
            on_columns=rows("column_privileges", "table_schema", "table_name", "column_name"),
        )

    def check_tables(self, conn: Connection, needs: RoleNeeds, findings: Findings) -> None:
        held = self._held(conn, findings)
        wanted = needs.wanted()
        findings.excess += held.server_excess()
        in_database = {(s, p) for s, p in held.on_databases if _like_regex(s).fullmatch(held.database)}
        database_wide = held.on_server | {p for _, p in in_database}
        temporary = wanted.get(("CREATE", TEMPORARY, None, None))
        if temporary and "CREATE TEMPORARY TABLES" not in database_wide:
            findings.missing.append(f"CREATE TEMPORARY TABLES on database {held.database} ({_rules_text(temporary)})")
        named = {t for (_, on, t, _) in wanted if on in (TABLES, COLUMNS)} | {OUTBOX_TABLE}
        findings.missing += _missing_on_tables(wanted, held.tables(named, database_wide))
        for schema, privilege in sorted(held.on_databases):
            if (schema, privilege) in in_database and privilege == "CREATE TEMPORARY TABLES" and temporary:
                continue
            where = f"every table of database {schema}" if (schema, privilege) in in_database else f"databases {schema}"
            findings.excess.append(f"{privilege} on {where} (no rule needs it)")
        findings.excess += _excess_on_tables(needs, wanted, held.tables())
        findings.excess += held.elsewhere(held.database)

    def check_trial_server(self, conn: Connection, needs: RoleNeeds, findings: Findings) -> None:
        held = self._held(conn, findings)
        wanted = needs.wanted()
        findings.excess += held.server_excess()
        pattern = like_pattern(needs.name_pattern or "")
        for privilege in ("SELECT", "DROP"):
            rules = wanted.get((privilege, TRIAL_DATABASES, None, None))
            covered = privilege in held.on_server or any(
                p == privilege and _covers(s, pattern) for s, p in held.on_databases
            )
            if rules and not covered:
                findings.missing.append(f"{privilege} on the databases named {pattern} ({_rules_text(rules)})")
        for schema, privilege in sorted(held.on_databases):
            if schema == pattern and (privilege, TRIAL_DATABASES, None, None) in wanted:
                continue
            broader = " (broader than the trial pattern)" if _covers(schema, pattern) else ""
            findings.excess.append(f"{privilege} on databases named {schema}{broader} (no rule needs it)")
        findings.excess += held.elsewhere(None)
        trial = _like_regex(pattern)
        listed = conn.execute(text("SELECT schema_name FROM information_schema.schemata")).scalars().all()
        # Not named: a database outside the pattern may still be named after a customer.
        others = [n for n in listed if n.lower() != "information_schema" and not trial.fullmatch(n)]
        if others:
            findings.excess.append(f"{len(others)} database(s) outside the trial pattern are reachable (listed)")


@dataclass
class _Grants:
    """A MariaDB user's privileges, as information_schema lists them, and the current database."""

    database: str
    on_server: set[str]  # global privileges (USAGE apart)
    on_databases: set[tuple[str, str]]  # (database pattern, privilege)
    on_tables: set[tuple[str, str, str]]  # (database, table, privilege)
    on_columns: set[tuple[str, str, str, str]]  # (database, table, column, privilege)

    def tables(self, named: Iterable[str] = (), database_wide: set[str] = frozenset()) -> _TablePrivileges:
        """The current database's tables: privileges granted on each (plus ``database_wide``, for
        the ``named`` tables and those with grants), and on their columns."""
        held = _TablePrivileges(self.database)
        for table in named:
            held.whole[table] = set(database_wide)
        for database, table, privilege in self.on_tables:
            if database == self.database:
                held.whole.setdefault(table, set(database_wide)).add(privilege)
        for database, table, column, privilege in self.on_columns:
            if database == self.database:
                held.columns[(table, privilege)].add(column)
        return held

    def server_excess(self) -> list[str]:
        if not self.on_server:
            return []
        return [f"global privileges, on every database of the server: {', '.join(sorted(self.on_server))}"]

    def elsewhere(self, database: str | None) -> list[str]:
        """Table and column privileges in other databases than ``database`` (None: in every one)."""
        found = [f"{p} on {d}.{t} (no rule needs it)" for d, t, p in sorted(self.on_tables) if d != database]
        found += [
            f"{p} on {d}.{t} column {c} (no rule needs it)" for d, t, c, p in sorted(self.on_columns) if d != database
        ]
        return found


# --------------------------------------------------------------------------- the scripts and the check


def script(inventory: Inventory, name: str, dialect: str) -> str:
    """The script of role ``name`` (crm, marketing, trials, audit) for ``dialect``."""
    return backend(dialect).script(required(inventory, name))


def scripts(
    inventory: Inventory, dialect_names: Iterable[str] | None = None, names: Iterable[str] | None = None
) -> dict[Path, str]:
    """Every script, by its path under the repository (``deploy/roles/<dialect>/<name>.sql``)."""
    found = roles(inventory)
    wanted_names = list(names) if names else list(found)
    for name in wanted_names:
        if name not in found:
            required(inventory, name)  # raises, naming the roles there are
    out = {}
    for dialect in dialect_names or dialects():
        chosen = backend(dialect)
        for name in wanted_names:
            out[Path(chosen.path(name))] = chosen.script(found[name])
    return out


def check(inventory: Inventory, name: str, engine: Engine) -> Findings:
    """What the user of ``engine`` has, compared with what role ``name`` needs."""
    needs = required(inventory, name)
    with engine.connect() as conn:
        return backend(engine.dialect.name).check(conn, needs)
