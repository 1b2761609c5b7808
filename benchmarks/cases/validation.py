"""The checks before a rule (Great Expectations) against the rule's own scan, on PostgreSQL.

The issue: "validation of a rule on a table of 1M rows on PostgreSQL costs at most 2x the rule's
own scan". The case builds the CRM of :mod:`benchmarks.cases.sql_estate` in the server
(``--validation-contacts`` N, default 1M: N contacts, 2N interactions, N/10 companies), then, for
each rule of ``--validation-rules`` (C1, K1) and each of ``--repeat`` runs, alternately, in this
process (each call on a fresh run context, made untimed as ``lethe run`` makes it):

* the baseline: ``lethe.runner.scan_rule`` - the rule's live check of its names and its one-pass
  count (due, eligible, exempt, waiting);
* Lethe: ``lethe.runner.validate_rule`` - the rule's before-suite (row count, columns, one
  aggregate query per quarantine reason, orphans of a delete's dependents) run by GX on a SQL data
  source over the source's own database, the verdict and its audit entry.

``import great_expectations`` (seconds, once per process) is done before any timing and reported
apart. Then the rule is enforced once (``scan_rule``, ``enforce_rule``: untimed) and, as
information, ``check_after`` (GX's unexpected-rows check with the rule's eligibility query)
alternates with the scan on what it left; the rule's rows are put back (:func:`sql_estate.reset`)
before the next rule.

Where the checks miss their target (``--validation-profile always``: every rule), the checks, the
scan and the check after run once more with every SQL statement timed through SQLAlchemy's cursor
events: the results keep the time by kind of statement, the slowest statements and the time spent
outside the database (GX and Lethe in Python), so that the slow query types are named.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

from benchmarks.cases import sql_estate
from benchmarks.harness import CaseResult, Measurement, write_results

NAME = "validation"
TARGET = 2.0
AUDIT_KEY = "lethe-bench-audit-key-0123456789"
BACKEND = "postgresql"


def add_arguments(group) -> None:
    group.add_argument(
        "--validation-contacts", type=int, default=1_000_000, help="contacts of the CRM (interactions 2x)"
    )
    group.add_argument("--validation-rules", default="C1,K1", help="rules whose checks are measured")
    group.add_argument("--validation-keep", action="store_true", help="keep the bench databases afterwards")
    group.add_argument(
        "--validation-pg-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a server setting for every session on the bench CRM (ALTER DATABASE ... SET), e.g. "
        "max_parallel_workers_per_gather=0; repeatable; shown in the results",
    )
    group.add_argument(
        "--validation-statement-timeout",
        type=int,
        default=300,
        help="seconds any one statement on the bench CRM may take before the case stops (0: no limit)",
    )
    group.add_argument(
        "--validation-no-after",
        dest="validation_after",
        action="store_false",
        help="skip the rule's enforcement and the check after (informational rows)",
    )
    group.add_argument(
        "--validation-profile",
        choices=("missed", "always", "never"),
        default="missed",
        help="run the steps once more with every SQL statement timed (rules that miss the target, or every rule)",
    )


def size_text(contacts: int) -> str:
    def short(n: int) -> str:
        return f"{n / 1_000_000:g}M" if n >= 1_000_000 else f"{n / 1000:g}k"

    return f"{short(contacts)} contacts, {short(2 * contacts)} interactions"


class Contexts:
    """Fresh run contexts on the bench databases (what ``lethe run`` makes for each rule)."""

    def __init__(self, trials_folder: Path) -> None:
        from lethe.config import load_inventory, load_policy
        from lethe.db import normalise_url

        self.policy = load_policy()
        self.inventory = load_inventory(policy=self.policy)
        urls = {
            "crm": sql_estate.url(BACKEND, "crm"),
            "marketing": sql_estate.url(BACKEND, "marketing"),
            "lethe_audit": sql_estate.url(BACKEND, "audit"),
            # C1 waits for T1's open sign-ups; the bench CRM has none, and the trial server is empty.
            "trials": normalise_url(f"sqlite:///{trials_folder}"),
        }
        self.urls = urls
        self.trials_folder = trials_folder
        self.created = False

    def make(self, rule: str, *, dry_run: bool = True):
        from lethe.runner import Engines, make_context

        engines = Engines(resolve=lambda conn_id: self.urls[conn_id])
        ctx = make_context(
            run_id="bench-validation",
            dag_id="lethe_bench",
            task_id=rule,
            as_of=datetime.fromisoformat(sql_estate.AS_OF),
            dry_run=dry_run,
            key=AUDIT_KEY,
            engines=engines,
            policy=self.policy,
            inventory=self.inventory,
            folder_for=lambda _conn_id: str(self.trials_folder),
            create_audit=not self.created,
        )
        self.created = True
        return ctx, engines


def timed_call(contexts: Contexts, rule: str, step, *, dry_run: bool = True) -> tuple[Measurement, dict]:
    """``step(ctx, rule)`` on a fresh context (made and disposed of untimed)."""
    ctx, engines = contexts.make(rule, dry_run=dry_run)
    try:
        start = time.perf_counter()
        found = step(ctx, rule)
        seconds = time.perf_counter() - start
    finally:
        engines.dispose()
    return Measurement(seconds), found


# What a statement is, from its text (the first that matches).
KINDS = (
    ("unexpected_row_count", "GX ExpectNoRowsOfQuery/UnexpectedRows count (Lethe's reason and orphan queries)"),
    ("unexpected_rows_query", "GX unexpected rows fetched"),
    ("column_values_count_per_value", "GX ExpectColumnValuesToBeUnique (GROUP BY the column)"),
    ("unexpected_count", "GX column map count (not null etc.)"),
    ("table.row_count", "GX table row count"),
    ("pg_catalog", "catalog (reflection: Lethe's check, GX's columns)"),
    ("information_schema", "catalog (reflection: Lethe's check, GX's columns)"),
    ("audit", "audit store and outbox"),
    ("sum(case when", "the rule's one-pass count (scan)"),
)


def statement_kind(sql: str) -> str:
    lowered = sql.lower()
    for needle, kind in KINDS:
        if needle in lowered:
            return kind
    return "other: " + " ".join(sql.split()[:4])[:60]


def traced_queries(contexts: Contexts, rule: str, step) -> dict:
    """``step`` once more with every SQL statement it sends timed (SQLAlchemy's cursor events, on
    every engine of this process): where the time goes, by statement, and what is not SQL."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    statements: list[dict] = []
    started: dict[int, float] = {}

    def before(conn, cursor, statement, parameters, context, executemany):
        started[id(cursor)] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        seconds = time.perf_counter() - started.pop(id(cursor), time.perf_counter())
        statements.append({"seconds": seconds, "sql": " ".join(statement.split())})

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    try:
        total, _found = timed_call(contexts, rule, step)
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        event.remove(Engine, "after_cursor_execute", after)
    in_sql = sum(s["seconds"] for s in statements)
    slowest = sorted(statements, key=lambda s: -s["seconds"])
    kinds: dict[str, dict] = {}
    for item in statements:
        kind = kinds.setdefault(statement_kind(item["sql"]), {"statements": 0, "seconds": 0.0})
        kind["statements"] += 1
        kind["seconds"] += item["seconds"]
    return {
        "seconds": round(total.seconds, 3),
        "sql_seconds": round(in_sql, 3),
        "outside_sql_seconds": round(total.seconds - in_sql, 3),
        "statements": len(statements),
        "by_kind": {
            k: {"statements": v["statements"], "seconds": round(v["seconds"], 3)}
            for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]["seconds"])
        },
        "slowest": [{"seconds": round(s["seconds"], 3), "sql": s["sql"][:600]} for s in slowest[:12]],
    }


def alternate(contexts: Contexts, rule: str, runs: int, step) -> tuple[list[Measurement], list[Measurement], dict]:
    """The rule's scan and ``step``, one after the other, ``runs`` times; ``step``'s last result."""
    from lethe.runner import scan_rule

    scans, steps, found = [], [], {}
    for _ in range(runs):
        scans.append(timed_call(contexts, rule, scan_rule)[0])
        measured, found = timed_call(contexts, rule, step)
        steps.append(measured)
    return scans, steps, found


def trace(contexts: Contexts, rule: str, steps, into: dict) -> None:
    """Each of ``steps`` (label, function) once more, traced; printed and kept in ``into``."""
    for label, step in steps:
        traced = traced_queries(contexts, rule, step)
        into[label] = traced
        print(
            f"      {rule} {label}: {traced['seconds']:.2f} s, {traced['statements']} statements "
            f"taking {traced['sql_seconds']:.2f} s in the database ({traced['outside_sql_seconds']:.2f} s outside "
            "it: GX and Lethe in Python, connecting, the audit entry's COPY); by kind:",
            flush=True,
        )
        for kind, item in traced["by_kind"].items():
            print(f"      {item['seconds']:8.3f} s  {item['statements']:3d} x {kind}", flush=True)
        for item in traced["slowest"][:5]:
            print(f"      {item['seconds']:8.3f} s  {item['sql'][:240]}", flush=True)


def enforce(ctx, rule: str) -> dict:
    """The rule's scan and enforcement (``lethe run`` without its checks): what the check after follows."""
    from lethe.runner import enforce_rule, scan_rule

    return enforce_rule(ctx, rule, scan_rule(ctx, rule), checked=True)


class Rule:
    """One rule's measurement: its rows, what stopped it, the settings and sizes of the run."""

    def __init__(self, contexts: Contexts, estate: sql_estate.Estate, rule: str, args, settings: dict[str, str]):
        self.contexts, self.estate, self.rule, self.args = contexts, estate, rule, args
        self.size = size_text(estate.contacts) + (f"; {settings_text(settings)}" if settings else "")
        self.settings = settings
        self.rows: list[CaseResult] = []
        self.stopped: list[dict] = []
        self.scan_seconds = 0.0

    def traced(self, row: CaseResult) -> bool:
        return self.args.validation_profile == "always" or (self.args.validation_profile == "missed" and not row.met)

    def phase(self, name: str, measure) -> bool:
        """``measure()``; a statement past the timeout stops this phase (a row says so), not the case."""
        try:
            measure()
            return True
        except Exception as exc:  # the driver's, or GX's (a check that could not run), naming the timeout
            if "statement timeout" not in str(exc):
                raise
            statement = " ".join(str(getattr(exc, "statement", None) or exc).split())
        timeout = self.args.validation_statement_timeout
        self.stopped.append(
            {"rule": self.rule, "phase": name, "timeout_seconds": timeout, "statement": statement[:3000]}
        )
        print(f"   {self.rule} {name}: STOPPED, a statement ran past {timeout} s: {statement[:300]}", flush=True)
        self.rows.append(
            CaseResult(
                case=f"{name} {self.rule} ({BACKEND})",
                size=self.size,
                lethe=[Measurement(float(timeout))],
                baseline_name="did not finish (statement timeout)",
                baseline=[Measurement(self.scan_seconds or float(timeout))],
                target=0.0,
                target_text=f"finishes in {timeout} s",
                notes=f"stopped: a statement ran past --validation-statement-timeout ({timeout} s): {statement[:500]}",
                extra={"stopped": self.stopped[-1], "server_settings": self.settings},
            )
        )
        return False

    def before(self, import_seconds: float) -> None:
        """The checks before against the scan, alternately, on the estate as built."""
        from lethe.runner import scan_rule, validate_rule

        scans, checks, verdict = alternate(self.contexts, self.rule, self.args.repeat, validate_rule)
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted((verdict.get("reasons") or {}).items()))
        row = CaseResult(
            case=f"checks before {self.rule} ({BACKEND})",
            size=self.size,
            lethe=checks,
            baseline_name=f"{self.rule}'s own scan",
            baseline=scans,
            target=TARGET,
            target_text=f"<= {TARGET}x",
            notes=(
                f"import great_expectations ({import_seconds:.1f} s, once per process) done before timing; "
                f"{len(verdict.get('checks', []))} expectations, verdict {verdict.get('verdict')}"
                + (f" ({reasons})" if reasons else "")
            ),
            extra={
                "import_great_expectations_seconds": round(import_seconds, 3),
                "tables": verdict.get("tables"),
                "server_settings": self.settings,
            },
        )
        self.rows.append(row)
        self.scan_seconds = row.baseline_seconds
        print(
            f"   {self.rule}: checks before {row.lethe_seconds:.2f} s, scan {row.baseline_seconds:.2f} s: "
            f"{row.ratio:.2f}x",
            flush=True,
        )
        if self.traced(row):
            steps = (("checks before", validate_rule), ("scan", scan_rule))
            trace(self.contexts, self.rule, steps, row.extra.setdefault("traced", {}))

    def after(self) -> None:
        """The rule enforced (untimed), then the check after against the scan on what it left."""
        from lethe.runner import check_after

        enforced = timed_call(self.contexts, self.rule, enforce, dry_run=False)[1]
        scans, afters, checked = alternate(self.contexts, self.rule, self.args.repeat, check_after)
        row = CaseResult(
            case=f"check after {self.rule} ({BACKEND})",
            size=self.size,
            lethe=afters,
            baseline_name=f"{self.rule}'s own scan",
            baseline=scans,
            target=float("inf"),
            target_text="—",
            notes=(
                f"informational; after the rule ran (untimed: {enforced.get('deleted', 0)} deleted, "
                f"{enforced.get('anonymised', 0)} anonymised), both on what it left; check after: "
                f"{checked.get('verdict')}, {checked.get('remaining')} remaining"
            ),
            extra={"remaining": checked.get("remaining"), "server_settings": self.settings},
        )
        self.rows.append(row)
        print(
            f"   {self.rule}: check after {row.lethe_seconds:.2f} s, scan {row.baseline_seconds:.2f} s: "
            f"{row.ratio:.2f}x (after the rule ran)",
            flush=True,
        )
        if self.traced(self.rows[0]) or self.args.validation_profile == "always":
            trace(self.contexts, self.rule, (("check after", check_after),), row.extra.setdefault("traced", {}))


def server_settings(args) -> dict[str, str]:
    """``--validation-pg-setting`` NAME=VALUE pairs, checked for shape (they go into SQL)."""
    found = {}
    for item in args.validation_pg_setting:
        name, _, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not re.fullmatch(r"[a-z_][a-z0-9_.]*", name) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", value):
            raise SystemExit(f"--validation-pg-setting {item!r}: expected NAME=VALUE (letters, digits, _ . -)")
        found[name] = value
    return found


def configure(estate: sql_estate.Estate, settings: dict[str, str], timeout: int) -> None:
    """Settings for every later session on the bench CRM (the contexts' engines are all new)."""
    name = sql_estate.database_name("crm")
    statements = [f"ALTER DATABASE \"{name}\" SET {key} = '{value}'" for key, value in settings.items()]
    if timeout:
        statements.append(f"ALTER DATABASE \"{name}\" SET statement_timeout = '{timeout}s'")
    if statements:
        estate.run("crm", statements)


def run(args) -> list[CaseResult]:
    rules = [r.strip() for r in args.validation_rules.split(",") if r.strip()]
    estate = sql_estate.Estate(BACKEND, args.validation_contacts)
    settings = server_settings(args)
    rows: list[CaseResult] = []
    stopped: list[dict] = []
    workdir = Path(tempfile.mkdtemp(prefix="lethe-bench-validation-"))
    (workdir / "trials").mkdir()
    try:
        print(f"   building the {BACKEND} CRM ({size_text(estate.contacts)})", flush=True)
        sql_estate.build(estate, rules, parts=("crm",))
        configure(estate, settings, args.validation_statement_timeout)
        if settings:
            print(f"   server settings on the bench CRM: {settings_text(settings)}", flush=True)
        start = time.perf_counter()
        import lethe.validation.gx  # noqa: F401  (imports great_expectations: not part of any timing)

        import_seconds = time.perf_counter() - start
        print(f"   import great_expectations: {import_seconds:.1f} s (once per process, excluded)", flush=True)
        contexts = Contexts(workdir / "trials")
        # The rules' warnings (records overdue: the bench estate has them) would repeat every run.
        logging.getLogger("lethe").setLevel(logging.ERROR)
        for index, rule in enumerate(rules):
            measured = Rule(contexts, estate, rule, args, settings)
            if measured.phase("checks before", lambda m=measured: m.before(import_seconds)) and args.validation_after:
                measured.phase("check after", measured.after)
            rows += measured.rows
            stopped += measured.stopped
            if index < len(rules) - 1 or args.validation_keep:
                sql_estate.reset(estate, rule)  # the rule's rows put back for the next
                contexts.created = False  # the reset makes the audit store anew
    finally:
        if not args.validation_keep:
            sql_estate.drop(BACKEND)
        shutil.rmtree(workdir, ignore_errors=True)
    write_results(NAME, rows, {"server_settings": settings, **({"stopped": stopped} if stopped else {})})
    return rows


def settings_text(settings: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in settings.items())
