"""Trial databases: rule T1 against a plain loop of ``DROP DATABASE``, on PostgreSQL and MariaDB.

On each server the case builds (names no test or other case uses; ``<tag>`` is ``--trials-tag``):

* ``lethe_bench_trials_<tag>crm``: the reference estate's CRM tables (companies, contacts,
  trial_signups, legal_holds, restrictions), one sign-up row and one contact per trial database.
  ``--trials-due`` of the rows are due: the trial ended more than 90 days before the as-of, no
  subscription, no hold in force (some had one, released before the as-of). The others are not
  yet due or converted, some of them under a hold: T1 keeps them all;
* ``trial_bench_<tag><n>``: ``--trials-databases`` trial databases, each with ``users``,
  ``resources`` and ``tasks`` and a few rows (on PostgreSQL copies of the template database
  ``lethe_bench_trials_<tag>template``, made in ``--trials-workers`` sessions at once);
* ``lethe_bench_trials_<tag>audit``: Lethe's audit store, emptied before each of Lethe's runs.

Then ``--repeat`` runs of each, in turns, each after a reset that is not timed: the databases the
last run dropped are made again, the audit store is emptied, and PostgreSQL writes a checkpoint
(every PostgreSQL ``DROP DATABASE`` waits for one: what the reset left unwritten would be charged
to the next drop). The two measured, as child processes:

* Lethe: ``lethe run T1 --as-of 2026-11-26 --json`` with the connections ``crm``, ``trials``
  (the server's own database) and ``lethe_audit`` in its environment and the source ``trials``
  armed: the runner of the nightly DAG, one database after the other;
* baseline: one ``psql`` (``mariadb``) session running a script of ``DROP DATABASE <name>;``, one
  statement per due name: what a DBA handed the list of due names would run. It checks nothing
  and records nothing.

After every run the server's databases are listed: the run must have dropped exactly the due ones,
else the case stops with the difference. Lethe also runs once, not counted, at an as-of when
nothing is due: what a run costs besides its drops, which a missed row's note puts in numbers.
Everything the case made is dropped at the end.

The slowest row that missed its target gets a profile: Lethe runs once more (after a reset) under
pyinstrument, and its text report is saved as ``<results>/trials-<backend>.profile.txt``.

Options: ``--trials-databases`` (500), ``--trials-due`` (300), ``--trials-backends``
(postgresql,mariadb), ``--trials-postgres-url`` and ``--trials-mariadb-url`` (a login that may
create and drop databases; default the local servers), ``--trials-tag`` (a name part, so that
runs on one server at the same time keep apart), ``--trials-workers`` (sessions making databases
at once; default 8 on PostgreSQL, 4 on MariaDB), ``--trials-profile`` (missed: the slowest row
that missed; always; never).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from sqlalchemy import insert
from sqlalchemy.engine import URL, Engine, make_url

from benchmarks import harness
from benchmarks.harness import CaseResult, Measurement, run_child, write_results
from lethe.audit import AuditTrail
from lethe.config import DEFAULT_POLICY, load_policy
from lethe.db import make_engine, normalise_url
from lethe.demo import schema
from lethe.demo.trials import resources, tasks, trial_metadata, users
from lethe.periods import Period

NAME = "trials"
TARGET = 1.3
AS_OF = datetime(2026, 11, 26)
AUDIT_KEY = "lethe-bench-trials-key-0123456789"
SEED = 1326
LETHE = Path(sys.executable).with_name("lethe")
SERVERS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/mysql",
}
BACKEND_TITLES = {"postgresql": "PostgreSQL", "mariadb": "MariaDB"}
# Sessions making databases at once: the fastest here. PostgreSQL's copies wait on checkpoints the
# sessions share; MariaDB's CREATE TABLEs queue for its data dictionary and slowed down past 4.
WORKERS = {"postgresql": 8, "mariadb": 4}
TAG = re.compile(r"^[a-z0-9_]{0,20}$")
PERIOD = timedelta(days=90)  # T1's period in the policy (run() checks it): what "due" means below

# The planning rows of every trial database (the same in each: only their number matters to T1).
USERS = [{"id": i, "name": f"Planner {i}", "email": f"planner{i}@trial.example"} for i in range(1, 4)]
RESOURCES = [{"id": 1, "name": "Meeting room"}, {"id": 2, "name": "Van 2"}]
TASKS = [
    {
        "id": i,
        "resource_id": 1 + i % 2,
        "title": f"Task {i}",
        "starts_at": AS_OF - timedelta(days=200 - i),
        "ends_at": AS_OF - timedelta(days=200 - i, hours=-2),
    }
    for i in range(1, 6)
]


class TrialsCaseFailed(RuntimeError):
    """A run did not drop exactly the due databases (or the estate is not as planned)."""


def add_arguments(group) -> None:
    # Defaults fit make bench's 15 minutes; the sizes: --trials-databases 500 --trials-due 300.
    group.add_argument("--trials-databases", type=int, default=150, help="trial databases on each server")
    group.add_argument("--trials-due", type=int, default=90, help="how many of them T1 drops")
    group.add_argument("--trials-backends", default="postgresql,mariadb", help="postgresql, mariadb or both")
    group.add_argument("--trials-postgres-url", default=SERVERS["postgresql"], help="PostgreSQL server (its own db)")
    group.add_argument("--trials-mariadb-url", default=SERVERS["mariadb"], help="MariaDB server (its own database)")
    group.add_argument("--trials-tag", default="", help="name part of every database made (a-z, 0-9, _)")
    group.add_argument(
        "--trials-workers", type=int, default=0, help="sessions making databases (default 8 PostgreSQL, 4 MariaDB)"
    )
    group.add_argument(
        "--trials-profile",
        choices=("missed", "always", "never"),
        default="missed",
        help="profile Lethe (pyinstrument) on the slowest row that missed its target, on every row, or never",
    )


# --------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    """Every name the case makes on one server, and what each sign-up row says."""

    tag: str
    databases: int
    due_count: int
    names: list[str] = field(default_factory=list)
    due: list[str] = field(default_factory=list)  # sorted

    def __post_init__(self):
        self.names = [f"trial_bench_{self.tag}{n:04d}" for n in range(self.databases)]
        self.due = sorted(random.Random(SEED).sample(self.names, self.due_count))

    def own(self, part: str) -> str:
        """One of the case's own databases: crm, audit, template."""
        return f"lethe_bench_trials_{self.tag}{part}"

    @property
    def every_name(self) -> list[str]:
        return [*self.names, self.own("crm"), self.own("audit"), self.own("template")]


def digest(names: list[str]) -> str:
    """A short fingerprint of a sorted list of names (the results compare runs by it)."""
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()[:16]


def signup_rows(plan: Plan) -> dict[str, list[dict]]:
    """The CRM's rows: one contact and one sign-up per database, holds that keep nothing due."""
    rng = random.Random(SEED + 1)
    due = set(plan.due)
    deadline = AS_OF - PERIOD  # a trial that ended before this is due
    contacts, signups, holds, restrictions = [], [], [], []
    for n, name in enumerate(plan.names, start=1):
        email = f"trial.person{n}@bench.example"
        contacts.append(
            {
                "id": n,
                "company_id": 1,
                "first_name": "Trial",
                "last_name": f"Person {n}",
                "email": email,
                "created_at": AS_OF - timedelta(days=600),
            }
        )
        subscribed = None
        if name in due:
            ends = deadline - timedelta(days=1 + rng.randrange(400), hours=rng.randrange(24))
            if n % 10 == 0:  # a hold released before the as-of keeps nothing
                holds.append((email, ends, AS_OF - timedelta(days=5)))
            elif n % 15 == 0:
                restrictions.append((email, ends, AS_OF - timedelta(days=1)))
        elif n % 2:
            ends = deadline + timedelta(days=1 + rng.randrange(89))  # not yet due
            if n % 7 == 0:
                holds.append((email, AS_OF - timedelta(days=30), None))
        else:
            ends = deadline - timedelta(days=1 + rng.randrange(400))  # converted long ago
            subscribed = ends - timedelta(days=3)
            if n % 9 == 0:
                restrictions.append((email, AS_OF - timedelta(days=30), None))
        signups.append(
            {
                "id": n,
                "contact_id": n,
                "database_name": name,
                "trial_started_at": ends - timedelta(days=30),
                "trial_ends_at": ends,
                "subscribed_at": subscribed,
            }
        )
    return {
        "contacts": contacts,
        "trial_signups": signups,
        "legal_holds": [
            {"id": i, "email": e, "reason": "dispute", "placed_at": start, "released_at": end}
            for i, (e, start, end) in enumerate(holds, start=1)
        ],
        "restrictions": [
            {"id": i, "email": e, "requested_at": start, "lifted_at": end}
            for i, (e, start, end) in enumerate(restrictions, start=1)
        ],
    }


# --------------------------------------------------------------------------- one server


@dataclass
class Server:
    """A PostgreSQL or MariaDB server and the case's databases on it."""

    backend: str
    url: URL  # the server's own database: the connection ``trials``
    plan: Plan
    workers: int
    _admin: Engine | None = None

    @property
    def postgres(self) -> bool:
        return self.backend == "postgresql"

    def database_url(self, name: str) -> URL:
        return self.url.set(database=name)

    def uri(self, name: str) -> str:
        return self.database_url(name).render_as_string(hide_password=False)

    @property
    def admin(self) -> Engine:
        if self._admin is None:
            self._admin = make_engine(self.url).execution_options(isolation_level="AUTOCOMMIT")
        return self._admin

    def quote(self, name: str) -> str:
        return self.admin.dialect.identifier_preparer.quote(name)

    def version(self) -> str:
        with self.admin.connect() as conn:
            full = conn.exec_driver_sql("SELECT version()").scalar_one()
        return f"{BACKEND_TITLES[self.backend]} {full.split()[1 if self.postgres else 0].split('-')[0]}"

    def list_databases(self) -> set[str]:
        query = (
            "SELECT datname FROM pg_database"
            if self.postgres
            else "SELECT schema_name FROM information_schema.schemata"
        )
        with self.admin.connect() as conn:
            return {row[0] for row in conn.exec_driver_sql(query)}

    def in_sessions(self, names: list[str], work) -> None:
        """``work(conn, name)`` for every name, spread over ``workers`` sessions of their own."""
        chunks = [names[i :: self.workers] for i in range(self.workers)]

        def session(chunk: list[str]) -> None:
            with self.admin.connect() as conn:
                for name in chunk:
                    work(conn, name)

        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(session, [c for c in chunks if c]))

    def drop(self, names: list[str]) -> None:
        force = " WITH (FORCE)" if self.postgres else ""
        self.in_sessions(
            names, lambda conn, name: conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.quote(name)}{force}")
        )

    def create_empty(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {self.quote(name)}")

    # -- the estate

    def build(self) -> None:
        """The CRM, the template (PostgreSQL) and every trial database, after any leftovers."""
        leftovers = sorted(set(self.plan.every_name) & self.list_databases())
        if leftovers:
            self.drop(leftovers)
        crm = self.plan.own("crm")
        self.create_empty(crm)
        engine = make_engine(self.database_url(crm))
        try:
            schema.crm.create_all(engine)
            rows = signup_rows(self.plan)
            with engine.begin() as conn:
                conn.execute(insert(schema.companies), {"id": 1, "name": "Trial sign-ups BV", "country": "NL"})
                for table in ("contacts", "trial_signups", "legal_holds", "restrictions"):
                    if rows[table]:
                        conn.execute(insert(schema.crm.tables[table]), rows[table])
        finally:
            engine.dispose()
        if self.postgres:
            template = self.plan.own("template")
            self.create_empty(template)
            engine = make_engine(self.database_url(template))
            try:
                trial_metadata.create_all(engine)
                with engine.begin() as conn:
                    self.fill(conn)
            finally:
                engine.dispose()  # CREATE DATABASE ... TEMPLATE needs it without sessions
        self.create_trials(self.plan.names)

    @staticmethod
    def fill(conn) -> None:
        conn.execute(insert(users), USERS)
        conn.execute(insert(resources), RESOURCES)
        conn.execute(insert(tasks), TASKS)

    def create_trials(self, names: list[str]) -> None:
        """Trial databases, in parallel sessions (PostgreSQL: copies of the template)."""
        if self.postgres:
            # FILE_COPY: WAL_LOG (the default) writes each copy twice, to the WAL and at the next
            # checkpoint, which took twice as long here; the checkpoints FILE_COPY asks for are
            # shared by the sessions creating at the same time.
            template = self.quote(self.plan.own("template"))

            def create(conn, name: str) -> None:
                conn.exec_driver_sql(f"CREATE DATABASE {self.quote(name)} TEMPLATE {template} STRATEGY FILE_COPY")
        else:

            def create(conn, name: str) -> None:
                conn.exec_driver_sql(f"CREATE DATABASE {self.quote(name)}")
                inside = conn.execution_options(schema_translate_map={None: name})
                trial_metadata.create_all(inside, checkfirst=False)
                self.fill(inside)

        self.in_sessions(names, create)

    def reset(self, audit: bool) -> None:
        """Make the dropped trial databases again; ``audit``: an empty audit store (its tables made)."""
        missing = sorted(set(self.plan.names) - self.list_databases())
        if missing:
            self.create_trials(missing)
        if audit:
            name = self.plan.own("audit")
            self.drop([name])
            self.create_empty(name)
            engine = make_engine(self.database_url(name))
            try:
                AuditTrail(engine, AUDIT_KEY).create()  # as a run before this one would have left it
            finally:
                engine.dispose()
        if self.postgres:
            with self.admin.connect() as conn:
                conn.exec_driver_sql("CHECKPOINT")
        if set(self.plan.names) - self.list_databases():
            raise TrialsCaseFailed(f"trials ({self.backend}): the reset did not make every trial database")

    def check_dropped(self, who: str, run: int) -> list[str]:
        """The trial databases the run dropped: exactly the due ones, or the case stops."""
        present = self.list_databases()
        dropped = sorted(n for n in self.plan.names if n not in present)
        if dropped != self.plan.due:
            extra = sorted(set(dropped) - set(self.plan.due))
            kept = sorted(set(self.plan.due) - set(dropped))
            raise TrialsCaseFailed(
                f"trials ({self.backend}): {who}'s run {run} dropped {len(dropped)} trial database(s), "
                f"not the {len(self.plan.due)} due: {len(extra)} not due dropped {extra[:10]}, "
                f"{len(kept)} due kept {kept[:10]}"
            )
        return dropped

    def clean_up(self) -> None:
        try:
            present = self.list_databases()
            self.drop(sorted(set(self.plan.every_name) & present))
        finally:
            if self._admin is not None:
                self._admin.dispose()

    # -- the two measured commands

    def lethe_env(self, workdir: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_", "LETHE_"))}
        env.update(
            AIRFLOW_CONN_CRM=self.uri(self.plan.own("crm")),
            AIRFLOW_CONN_TRIALS=self.url.render_as_string(hide_password=False),
            AIRFLOW_CONN_LETHE_AUDIT=self.uri(self.plan.own("audit")),
            AIRFLOW_VAR_LETHE_ARMED_SOURCES='["trials"]',  # T1's source (include/inventory/trials.yaml)
            LETHE_AUDIT_KEY=AUDIT_KEY,
            LETHE_ESTATE_DIR=str(workdir / "no-embedded-estate"),  # no demo defaults behind the bench's back
        )
        return env

    def baseline_command(self, script: Path) -> tuple[list[str], dict[str, str]]:
        """The server's own client running ``script`` in one session, and its environment."""
        env = dict(os.environ)
        url = self.url
        if self.postgres:
            if url.password:
                env["PGPASSWORD"] = url.password
            cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", url.host or "127.0.0.1"]
            cmd += ["-p", str(url.port or 5432), "-U", url.username or "postgres", "-d", url.database or "postgres"]
            return [*cmd, "-f", str(script)], env
        if url.password:
            env["MYSQL_PWD"] = url.password
        cmd = ["mariadb", "--batch", "-h", url.host or "127.0.0.1", "-P", str(url.port or 3306)]
        return [*cmd, "-u", url.username or "root", "-e", f"source {script}"], env


# --------------------------------------------------------------------------- measuring


def lethe_command(as_of: datetime = AS_OF) -> list[str]:
    return [str(LETHE), "run", "T1", "--as-of", as_of.date().isoformat(), "--json"]


def read_summary(path: Path, server: Server, run: int, due: int) -> dict:
    """T1's summary line from ``lethe run --json``: it must say it dropped the ``due`` databases."""
    lines = [line for line in path.read_text().splitlines() if line.startswith("{")]
    if len(lines) != 1:
        raise TrialsCaseFailed(f"trials ({server.backend}): Lethe's run {run} printed {len(lines)} summaries")
    summary = json.loads(lines[0])
    if summary["deleted"] != due or summary["status"] != "ok" or summary["remaining_after"]:
        raise TrialsCaseFailed(f"trials ({server.backend}): Lethe's run {run} says {summary}")
    keep = ("eligible", "deleted", "exempt_hold", "exempt_restriction", "remaining_after", "status")
    return {**{k: summary[k] for k in keep}, **{k: summary["extra"][k] for k in ("kept_converted", "not_yet_due")}}


def measure_nothing_due(server: Server, workdir: Path) -> Measurement:
    """Lethe on the same estate at an as-of when nothing is due yet: what a run costs besides its drops
    (start, check, scan, summary). The earliest trial is due 402 days before ``AS_OF``."""
    server.reset(audit=True)
    out = workdir / f"lethe-{server.backend}-nothing-due.json"
    # So early an as-of sees most trials start after it: the checks before T1 quarantine those
    # (a date in the future) and, past the share, would stop the rule. Here that share is lifted.
    policy = yaml.safe_load(DEFAULT_POLICY.read_text())
    policy["validation"] = {**policy.get("validation", {}), "max_quarantine_share": 1.0}
    policy_file = workdir / "policy-any-share.yaml"
    policy_file.write_text(yaml.safe_dump(policy, sort_keys=False))
    env = {**server.lethe_env(workdir), "LETHE_POLICY_FILE": str(policy_file)}
    found = run_child(lethe_command(AS_OF - timedelta(days=500)), env=env, stdout=out)
    read_summary(out, server, 0, due=0)
    if set(server.plan.names) - server.list_databases():
        raise TrialsCaseFailed(f"trials ({server.backend}): Lethe dropped a database when nothing was due")
    return found


def measure(server: Server, runs: int, workdir: Path) -> CaseResult:
    plan = server.plan
    nothing_due = measure_nothing_due(server, workdir)
    script = workdir / f"drop-{server.backend}.sql"
    script.write_text("".join(f"DROP DATABASE {name};\n" for name in plan.due))
    baseline_cmd, baseline_env = server.baseline_command(script)
    lethe_env = server.lethe_env(workdir)
    lethe: list[Measurement] = []
    baseline: list[Measurement] = []
    dropped: dict[str, list[str]] = {"lethe": [], "baseline": []}
    summaries, resets = [], []
    for run in range(1, runs + 1):
        # In turns, so that load from elsewhere on the machine falls on both alike.
        started = time.perf_counter()
        server.reset(audit=False)
        resets.append(round(time.perf_counter() - started, 1))
        baseline.append(run_child(baseline_cmd, env=baseline_env))
        dropped["baseline"].append(digest(server.check_dropped("the baseline", run)))

        started = time.perf_counter()
        server.reset(audit=True)
        resets.append(round(time.perf_counter() - started, 1))
        out = workdir / f"lethe-{server.backend}-{run}.json"
        lethe.append(run_child(lethe_command(), env=lethe_env, stdout=out))
        dropped["lethe"].append(digest(server.check_dropped("Lethe", run)))
        summaries.append(read_summary(out, server, run, due=plan.due_count))
    client = "psql" if server.postgres else "mariadb"
    row = CaseResult(
        case="trials",
        size=f"{plan.databases} dbs, {plan.due_count} due, {server.version()}",
        lethe=lethe,
        baseline_name=f"{client} DROP DATABASE loop",
        baseline=baseline,
        target=TARGET,
        target_text=f"<= {TARGET}x",
        extra={
            "backend": server.backend,
            "databases": plan.databases,
            "due": plan.due_count,
            "due_names_sha256": digest(plan.due),
            "dropped_names_sha256": dropped,
            "lethe_summaries": summaries,
            "lethe_nothing_due_seconds": round(nothing_due.seconds, 3),
            "reset_seconds": resets,
            "baseline_command": " ".join(baseline_cmd).replace(str(script), "<script of DROP DATABASE>"),
        },
    )
    row.notes = notes(row, client)
    return row


def notes(row: CaseResult, client: str) -> str:
    """What was compared, and for a miss where Lethe's time goes (from this run's numbers)."""
    due = row.extra["due"]

    def spread(runs: list[Measurement]) -> str:
        return f"{min(m.seconds for m in runs):.1f}-{max(m.seconds for m in runs):.1f} s"

    text = (
        f"Lethe: lethe run T1: check, scan, then per database decide again (catalog, holds, its audit record, "
        f"on the server?), count its rows, chain the intent entry, end other sessions, drop, chain the done "
        f"entry; then the summary. Baseline: one {client} session running DROP DATABASE for each due name, "
        f"nothing else. Both dropped exactly the {due} due databases in every run (the server's list after "
        f"each run). Runs: Lethe {spread(row.lethe)}, baseline {spread(row.baseline)}."
    )
    if row.met:
        return text
    fixed = row.extra["lethe_nothing_due_seconds"]
    per_drop = (row.lethe_seconds - fixed) / due * 1000
    baseline_per_drop = row.baseline_seconds / due * 1000
    return (
        f"{text} Missed: a run with nothing due (process start, check, scan, summary) already takes {fixed:.2f} s, "
        f"{fixed / row.baseline_seconds:.0%} of the baseline's whole run; each drop then costs Lethe "
        f"{per_drop:.1f} ms against the baseline's {baseline_per_drop:.1f} ms for DROP DATABASE alone. The "
        f"difference is T1's per-database safety work above, including two committed transactions in the "
        f"audit store (the intent before the drop, the done entry after it): with that work kept, "
        f"{TARGET}x would need the fixed part and the safety work together to cost under "
        f"{(TARGET - 1) * baseline_per_drop:.1f} ms per drop."
    )


def profile_lethe(server: Server, workdir: Path) -> Path:
    """One more run of Lethe under pyinstrument (after a reset); the text report next to the results."""
    harness.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = harness.RESULTS_DIR / f"trials-{server.backend}.profile.txt"
    server.reset(audit=True)
    cmd = [sys.executable, "-m", "pyinstrument", "--renderer", "text", "--outfile", str(path), *lethe_command()]
    run_child(cmd, env=server.lethe_env(workdir), stdout=workdir / "profiled.json")
    server.check_dropped("Lethe (profiled)", 1)
    return path


def run(args) -> list[CaseResult]:
    backends = [b.strip() for b in args.trials_backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(SERVERS))
    if unknown:
        raise SystemExit(f"--trials-backends: unknown {', '.join(unknown)} (known: {', '.join(SERVERS)})")
    if not TAG.fullmatch(args.trials_tag):
        raise SystemExit("--trials-tag: up to 20 of a-z, 0-9 and _")
    if args.trials_workers < 0:
        raise SystemExit("--trials-workers: 0 (the default for each server) or more")
    if not 0 < args.trials_due <= args.trials_databases <= 9999:
        raise SystemExit("--trials-due and --trials-databases: 0 < due <= databases <= 9999")
    if load_policy().rule("T1").period != Period(days=PERIOD.days):
        raise SystemExit(f"trials: the estate is laid out for T1's period of {PERIOD.days} days; the policy changed it")
    plan = Plan(args.trials_tag, args.trials_databases, args.trials_due)
    urls = {"postgresql": args.trials_postgres_url, "mariadb": args.trials_mariadb_url}
    servers = {
        backend: Server(backend, normalise_url(make_url(urls[backend])), plan, args.trials_workers or WORKERS[backend])
        for backend in backends
    }
    rows: dict[str, CaseResult] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="lethe-bench-trials-") as tmp:
            workdir = Path(tmp)
            for backend, server in servers.items():
                started = time.perf_counter()
                server.build()
                built = round(time.perf_counter() - started, 1)
                rows[backend] = measure(server, args.repeat, workdir)
                rows[backend].extra["build_seconds"] = built
            # The estates stay until here: the slowest row that missed is profiled on its own.
            missed = sorted((row for row in rows.values() if not row.met), key=lambda row: row.ratio)
            profiled = {"always": list(rows), "never": [], "missed": [missed[-1].extra["backend"]] if missed else []}
            for backend in backends:
                if backend in profiled[args.trials_profile]:
                    rows[backend].extra["profile"] = profile_lethe(servers[backend], workdir).name
                elif args.trials_profile == "missed":  # one from an earlier run would describe other code
                    (harness.RESULTS_DIR / f"trials-{backend}.profile.txt").unlink(missing_ok=True)
    finally:
        for server in servers.values():
            server.clean_up()
    found = list(rows.values())
    write_results("trials", found)
    return found
