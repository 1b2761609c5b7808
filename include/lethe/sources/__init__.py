"""Kinds of source as plugins: one package per kind, found through :mod:`lethe.sources.registry`.

A kind of source (``sql``, ``trial_databases``, ``log_folder``) is one package here holding all
of it: its pydantic models (a source, one of its rules), its actions (:class:`RuleAction`
subclasses in its ``actions`` module, registered with :func:`register_action`), their live
check (``check()``: what ``lethe policy check`` and every task run before any change), whether
its work is mapped (one Airflow task per item) and in which pool, and how its connection
resolves. Everything else is derived from the registry: the inventory's union of source models
(an unknown ``kind:`` names the known ones), the action names the policy accepts, the kinds the
DAGs map, the checks the CLI runs. Registering a kind or an action twice is an error.

Adding a kind of source
-----------------------

Say the company keeps a folder of CSV exports whose rows carry a date column, and the policy
deletes a row some period after that date. The kind is one package (anywhere on the path), here
``csv_exports``; its ``__init__`` holds the models and the registration::

    # csv_exports/__init__.py
    from pathlib import Path
    from typing import Literal

    from lethe.sources.registry import SourceKind, register_kind
    from lethe.strict import Strict


    class CsvRule(Strict):
        rule: str
        action: Literal["delete_rows"]  # the kind's actions


    class CsvFolderSource(Strict):
        source: str
        kind: Literal["csv_folder"]
        connection_id: str
        date_column: str
        description: str = ""
        rules: list[CsvRule] = []


    def connect(ctx, connection_id):
        return Path(ctx.folder_for(connection_id))  # an ``fs`` connection: its folder


    KIND = register_kind(SourceKind(name="csv_folder", model=CsvFolderSource, rule_model=CsvRule,
                                    actions="csv_exports.actions", connect=connect))

and its ``actions`` module the action, on the shared plumbing of :class:`RuleAction` (its source
and rule, ``new_result()``, ``summary_entry()``, the holds) and :mod:`lethe.files`, with the
checks before and after it (:mod:`lethe.validation`: what a row that cannot be judged is
quarantined for, and that nothing due remains)::

    # csv_exports/actions.py
    import csv
    import io

    from lethe.errors import FolderMissing, SchemaMismatch
    from lethe.files import atomic_rewrite
    from lethe.periods import add_period, to_utc_naive
    from lethe.sources.base import RuleAction, register
    from lethe.validation import Expect, FrameData, Suite


    @register
    class DeleteRows(RuleAction):
        name = "delete_rows"
        source_kind = "csv_folder"

        def files(self):
            return sorted(self.connection.glob("*.csv"))

        def read(self, path):
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                return reader.fieldnames or [], list(reader)

        def date_of(self, row):
            try:
                return to_utc_naive(row[self.source.date_column])
            except (TypeError, ValueError):
                return None  # not a date: quarantined by the checks, never due

        def due(self, row):
            when = self.date_of(row)
            return when is not None and add_period(when, self.policy_rule.period) <= self.ctx.as_of

        def check(self):
            if not self.connection.is_dir():
                raise FolderMissing(f"{self.user}: {self.connection} is not a directory")
            for path in self.files():
                if self.source.date_column not in self.read(path)[0]:
                    raise SchemaMismatch(f"{self.user}: {path.name} has no column {self.source.date_column}")

        def scan(self):
            result = self.new_result()
            result.due = result.eligible = sum(map(self.due, (r for p in self.files() for r in self.read(p)[1])))
            return result

        def enforce(self, scanned=None):
            result = scanned or self.scan()
            for path in self.files() if not self.ctx.dry_run else []:
                fields, rows = self.read(path)
                text = io.StringIO()
                writer = csv.DictWriter(text, fields, lineterminator="\\n")
                writer.writeheader()
                writer.writerows(row for row in rows if not self.due(row))
                with atomic_rewrite(path) as new:
                    new.raw.write(text.getvalue().encode())
                    new.close(path.stat().st_mode & 0o7777)
                    new.replace()
            result.deleted = result.eligible
            self.ctx.audit.append([self.summary_entry(result)])
            return result

        def verify(self):
            return self.scan().eligible

        def before_suite(self):  # a row whose date is not a date is kept and reported
            rows = [{"file": p.name, "date": self.date_of(r)} for p in self.files() for r in self.read(p)[1]]
            dates = Expect("ExpectColumnValuesToNotBeNull", {"column": "date"}, reason="date_unparseable", table="rows")
            return Suite(f"{self.policy_rule.id}.before", FrameData("rows", rows, ("file", "date")), [dates],
                         tables={"rows": len(rows)})

        def after_suite(self):  # nothing due remains
            remaining = [{"row": n} for n in range(self.verify())]
            return Suite(f"{self.policy_rule.id}.after", FrameData("remaining", remaining, ("row",)),
                         [Expect("ExpectTableRowCountToEqual", {"value": 0})])

Then one inventory file names a source of the kind (``kind: csv_folder``, its connection, its
``date_column``, ``rules: [{rule: X1, action: delete_rows}]``), the policy has rule ``X1`` with
``action: delete_rows``, and a DAG file like the others wires it (``retention_tasks``). A kind
whose work list is data subclasses :class:`MappedAction` instead and registers with
``mapped=True`` (and a ``pool``). ``tests/test_sources.py`` builds exactly this package from this
docstring, registers it at run time and runs ``X1`` through the runner the DAGs use.
"""

from lethe.sources import sql, trials, weblogs  # noqa: F401  (registers the built-in kinds)
from lethe.sources.registry import (
    SourceKind,
    action_class,
    action_names,
    kind,
    kinds,
    mapped_kinds,
    register_action,
    register_kind,
)

__all__ = [
    "SourceKind",
    "action_class",
    "action_names",
    "kind",
    "kinds",
    "mapped_kinds",
    "register_action",
    "register_kind",
]
