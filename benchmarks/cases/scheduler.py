"""Scheduler-side cost: how long Airflow takes to parse each DAG file, and the nightly runs.

Everything runs on the embedded default as ``make run`` sets it up, in a work folder of its own
(never the developer's ``.lethe/`` or ``reports/``): an Airflow home with a SQLite metadata
database (``airflow db migrate`` and the pool ``lethe_trial_drops``, as the Makefile makes them),
the project's ``dags/`` as the dags folder, the connections of :func:`lethe.embedded.default_connections`
on a demo estate written by ``lethe seed-demo --as-of <as-of>``, its demo audit key, every source
armed (``AIRFLOW_VAR_LETHE_ARMED_SOURCES``) and the reports in the work folder. Inherited
``AIRFLOW*`` and ``LETHE_*`` variables are dropped, so that nothing points at another database.

**Parse time** (one row per file in ``dags/``; target: the median at or under 0.2 s). Airflow's
DAG processor parses each file in a fresh process forked from its manager and records the time
from starting that process to collecting its result (the file imported by the DagBag, its DAGs
serialised, the result sent back) as the file's ``last_duration``, stored as
``dag.last_parse_duration`` and shown in the UI (``airflow/dag_processing/manager.py`` and
``processor.py``). The case runs the processor itself, ``airflow dag-processor --num-runs 1``,
``--repeat`` times, each on the freshly migrated metadata database, and reads that column. It runs
one parsing process (Airflow's default is two): one file at a time, a file's time is its own and not
its neighbour's on a small machine. A second DAG bundle, ``lethe-bench``, holds the baseline: a
file the case writes with a DAG of one task that does nothing, parsed in the same processor runs,
i.e. what Airflow charges any file. The 0.2 s target is absolute: each row's target is set to
0.2 s / baseline s, so ``met`` means "Lethe s <= 0.2". The bundle also holds a probe that records
the modules the processor holds when it parses a file. A file that misses the target is profiled:
its parse as the processor's parsing child does it (``_parse_file``: DagBag, then serialisation),
forked from a process that first imports those modules, under pyinstrument; the text report is
saved as ``<results>/scheduler-parse-<file>.profile.txt``.

**Nightly runs** (one row per nightly DAG run, and one for the whole night when every nightly DAG
ran; informational, no target). Each run is ``airflow dags test <dag> <as-of> -c '{"as_of":
<as-of>, "dry_run": false}'``, as ``make run`` runs it, after a reset that is not timed: the estate
copied again from the one seeded at the start (the same estate a new ``lethe seed-demo`` writes:
seeding is deterministic but for the random demo key, kept here, and takes 10 s), the metadata
database as migrated, no reports: every run does the same work. The baseline is the run's own
start-up: from launching the command to the first task starting (the execution API's ``Task
started`` line in its log), which covers the CLI, parsing and syncing the dags folder, creating the
run and starting the in-process execution API. The ratio is the whole run over its start-up; work
= run - start-up (medians) is in the notes and ``extra``, with the task runs and the work per task
run. The whole night adds up the i-th run of every DAG (and their start-ups). A retried task would
make a run do other work, so the case lowers the retry delay to 1 s and stops when a run's log
shows a failed task. The logs are in the work folder.

``airflow dags test`` runs task instances one after another, about 0.5-1 s each here, so the DAGs
with mapped tasks (one per trial database or log file: 157 and 319 task runs on the demo estate)
take minutes per run. The default, ``--scheduler-dags unmapped``, runs the DAGs of the sources
whose kind has no mapped tasks, which keeps the case within its share of ``make bench``;
``--scheduler-dags all`` measures the whole night.

Options: ``--scheduler-parts`` (parse,run), ``--scheduler-dags`` (unmapped, all, or DAG ids),
``--scheduler-as-of`` (2026-03-01), ``--scheduler-profile`` (missed, always, never),
``--scheduler-workdir`` (a folder to work in and keep; default a temporary one, removed unless the
case failed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import time
import zlib
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from benchmarks import harness
from benchmarks.harness import CaseResult, ChildFailed, Measurement, run_child, write_results
from lethe.embedded import DEMO_KEY_FILE_NAME, default_connections

NAME = "scheduler"
PARSE_BUDGET_SECONDS = 0.2
DAGS_DIR = harness.REPO / "dags"
PLUGINS_DIR = harness.REPO / "plugins"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
LETHE = str(Path(sys.executable).with_name("lethe"))
ARMED_SOURCES = ["crm", "marketing", "trials", "weblogs"]  # every source of the demo estate
TRIAL_POOL = ("lethe_trial_drops", "2", "Lethe: concurrent trial database drops")  # as the Makefile sets it
RETRY_DELAY_SECONDS = "1"
PROJECT_BUNDLE = "dags-folder"  # Airflow's name for the bundle of [core] dags_folder
BENCH_BUNDLE = "lethe-bench"
FLOOR_DAG_ID = "lethe_bench_floor"
FLOOR_DAG_FILE = f"{FLOOR_DAG_ID}.py"
FLOOR_DAG = f'''"""One task that does nothing: what Airflow charges any DAG file."""

from airflow.sdk import dag, task


@dag(schedule=None)
def {FLOOR_DAG_ID}():
    @task
    def nothing() -> None:
        pass

    nothing()


{FLOOR_DAG_ID}()
'''
PROBE_FILE = "lethe_bench_probe.py"
PROBE_ENV = "LETHE_BENCH_PROCESSOR_MODULES"
PROBE = f'''"""No DAG: records the modules Airflow's DAG processor holds when it parses a file, for the profiles."""

import json
import os
import sys

# In the order they were imported, so that importing them again in that order meets no half-made module.
with open(os.environ["{PROBE_ENV}"], "w") as out:
    json.dump([name for name in sys.modules if not name.startswith("unusual_prefix_")], out)
'''
TASK_STARTED = "[DAG TEST] starting task_id="  # dags test, before each task instance
FIRST_TASK_STARTED = "] Task started "  # the execution API, when a task instance starts running
TASK_FAILED = "Task failed with exception"

# The parsing child's work, as DagFileProcessorProcess does it, under pyinstrument. The parent first
# imports the modules the DAG processor held when the probe file was parsed (JSON list, argument 1),
# then, per DAG file and report (argument pairs), imports the Airflow modules the file names (as the
# processor's manager does) and forks; the child runs _parse_file: import with the DagBag, serialise.
PROFILE_SCRIPT = """
import faulthandler, importlib, json, os, sys, warnings
from pathlib import Path

import structlog
from airflow.dag_processing.processor import DagFileParseRequest, _parse_file, _pre_import_airflow_modules
from pyinstrument import Profiler

held, pairs = sys.argv[1], sys.argv[2:]
faulthandler.dump_traceback_later(120, exit=True)  # a stuck import ends the case, with where it stuck
warnings.simplefilter("ignore")
for name in json.loads(Path(held).read_text()):
    if "__main__" not in name:
        try:
            importlib.import_module(name)
        except Exception:
            pass  # a module the processor had but that does not import on its own changes no parse
log = structlog.get_logger()
for file, report in zip(pairs[::2], pairs[1::2]):
    _pre_import_airflow_modules(file, log)
    pid = os.fork()
    if pid == 0:
        profiler = Profiler(interval=0.001)
        profiler.start()
        request = DagFileParseRequest(file=file, bundle_path=Path(file).parent, bundle_name="dags-folder")
        result = _parse_file(request, log)
        profiler.stop()
        # Library frames are folded, except Airflow's serialisation and Params: DAGs pay them per task.
        options = {"show_regex": ".*/airflow/(serialization/|sdk/definitions/param)", "filter_threshold": 0.02}
        Path(report).write_text(profiler.output_text(processor_options=options))
        os._exit(0 if result is not None and result.serialized_dags and not result.import_errors else 1)
    if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]):
        sys.exit(f"{file} did not parse")
"""


def add_arguments(group) -> None:
    group.add_argument("--scheduler-parts", default="parse,run", help="parse (parse times), run (nightly runs) or both")
    group.add_argument(
        "--scheduler-dags",
        default="unmapped",
        help="nightly DAGs to run: all, unmapped (those without mapped tasks: minutes per run otherwise) or ids",
    )
    group.add_argument("--scheduler-as-of", default="2026-03-01", help="as-of of the demo estate and the runs")
    group.add_argument(
        "--scheduler-profile",
        choices=["missed", "always", "never"],
        default="missed",
        help="profile the parse of every DAG file that missed 0.2 s, of every file, or never",
    )
    group.add_argument("--scheduler-workdir", type=Path, help="work here and keep it (default: a temporary folder)")


@dataclass
class Setup:
    """The work folder: a seeded estate and a migrated metadata database to copy before each run."""

    root: Path
    as_of: str

    @property
    def home(self) -> Path:
        return self.root / "airflow"

    @property
    def database(self) -> Path:
        return self.home / "airflow.db"

    @property
    def fresh_database(self) -> Path:
        return self.root / "airflow-migrated.db"

    @property
    def estate(self) -> Path:
        return self.root / "estate"

    @property
    def seeded_estate(self) -> Path:
        return self.root / "estate-seeded"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def bench_dags(self) -> Path:
        return self.root / "bench-dags"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def processor_modules(self) -> Path:
        return self.root / "processor-modules.json"

    def env(self, *, bench_bundle: bool = False, **extra: str) -> dict[str, str]:
        """The embedded default's environment (the Makefile's), on this folder; ``bench_bundle`` adds ours."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LETHE_"))}
        if bench_bundle:
            local = "airflow.dag_processing.bundles.local.LocalDagBundle"
            bundles = [
                {"name": PROJECT_BUNDLE, "classpath": local, "kwargs": {}},  # Airflow's default: the dags folder
                {"name": BENCH_BUNDLE, "classpath": local, "kwargs": {"path": str(self.bench_dags)}},
            ]
            env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(bundles)
            env[PROBE_ENV] = str(self.processor_modules)
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_DIR),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW_VAR_LETHE_ARMED_SOURCES": json.dumps(ARMED_SOURCES),
                "LETHE_ESTATE_DIR": str(self.estate),
                "LETHE_REPORTS_DIR": str(self.reports),
                "LETHE_DEMO_KEY_FILE": str(self.estate / DEMO_KEY_FILE_NAME),
                "LETHE_RETRY_DELAY_SECONDS": RETRY_DELAY_SECONDS,
                # `airflow dags test` cannot end a run of a DAG with a deadline alert (Airflow 3.3.2).
                "LETHE_DEADLINE_ALERTS": "off",
                **{f"AIRFLOW_CONN_{conn.upper()}": value for conn, value in default_connections(self.estate).items()},
            }
        )
        key_file = self.seeded_estate / DEMO_KEY_FILE_NAME
        if key_file.is_file():
            env["LETHE_AUDIT_KEY"] = key_file.read_text().strip()
        env.update(extra)
        return env

    def make_airflow(self) -> None:
        """Write the bench bundle and migrate the metadata database once (not timed)."""
        self.bench_dags.mkdir(parents=True, exist_ok=True)
        (self.bench_dags / FLOOR_DAG_FILE).write_text(FLOOR_DAG)
        (self.bench_dags / PROBE_FILE).write_text(PROBE)
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        run_child([AIRFLOW, "db", "migrate"], env=self.env(), stdout=self.logs / "db-migrate.log")
        run_child([AIRFLOW, "pools", "set", *TRIAL_POOL], env=self.env(), stdout=self.logs / "pools-set.log")
        shutil.copyfile(self.database, self.fresh_database)

    def seed(self) -> None:
        """Seed the demo estate once (not timed); :meth:`reset` copies it before each run."""
        cmd = [LETHE, "seed-demo", "--as-of", self.as_of, "--estate", str(self.seeded_estate)]
        run_child(cmd, env=self.env(), stdout=self.logs / "seed-demo.log")

    def reset_database(self) -> None:
        shutil.copyfile(self.fresh_database, self.database)

    def reset(self) -> None:
        """The state right after seeding and migrating: same estate, no runs, no reports."""
        self.reset_database()
        shutil.rmtree(self.estate, ignore_errors=True)
        shutil.copytree(self.seeded_estate, self.estate)
        shutil.rmtree(self.reports, ignore_errors=True)


# --------------------------------------------------------------------------- parse time


def dag_files() -> list[str]:
    return sorted(path.name for path in DAGS_DIR.glob("*.py"))


def read_parse_results(database: Path) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], int]]:
    """Each parsed file's ``last_parse_duration`` and task count, by (bundle, file); fails on import errors."""
    with closing(sqlite3.connect(database)) as db:
        errors = db.execute("SELECT bundle_name, filename, stacktrace FROM import_error").fetchall()
        if errors:
            failed = [f"{bundle}/{file} did not parse: {trace[-500:]}" for bundle, file, trace in errors]
            raise RuntimeError("; ".join(failed))
        durations = {
            (bundle, file): seconds
            for bundle, file, seconds in db.execute(
                "SELECT bundle_name, relative_fileloc, MAX(last_parse_duration) FROM dag "
                "GROUP BY bundle_name, relative_fileloc"
            )
        }
        tasks: dict[tuple[str, str], int] = {}
        rows = db.execute(
            "SELECT d.bundle_name, d.relative_fileloc, s.data, s.data_compressed "
            "FROM dag d JOIN serialized_dag s ON s.dag_id = d.dag_id"
        )
        for bundle, file, data, compressed in rows:
            serialized = json.loads(data if data is not None else zlib.decompress(compressed))
            tasks[(bundle, file)] = tasks.get((bundle, file), 0) + len(serialized["dag"]["tasks"])
    return durations, tasks


def measure_parse(setup: Setup, repeat: int) -> tuple[dict[str, list[Measurement]], list[Measurement], dict]:
    """``--repeat`` runs of the DAG processor over both bundles: per file, its parse durations."""
    files = dag_files()
    parsed: dict[str, list[Measurement]] = {name: [] for name in files}
    floor: list[Measurement] = []
    processor: list[Measurement] = []
    tasks: dict[tuple[str, str], int] = {}
    env = setup.env(bench_bundle=True, AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="1")
    for number in range(1, repeat + 1):
        setup.reset_database()  # every file is new to the processor, as on a first start
        log = setup.logs / f"dag-processor.{number}.log"
        processor.append(run_child([AIRFLOW, "dag-processor", "--num-runs", "1"], env=env, stdout=log))
        durations, tasks = read_parse_results(setup.database)
        missing = [name for name in files if (PROJECT_BUNDLE, name) not in durations]
        if missing or (BENCH_BUNDLE, FLOOR_DAG_FILE) not in durations:
            raise RuntimeError(f"the DAG processor did not parse {missing or FLOOR_DAG_FILE} (log: {log})")
        for name in files:
            parsed[name].append(Measurement(durations[(PROJECT_BUNDLE, name)]))
        floor.append(Measurement(durations[(BENCH_BUNDLE, FLOOR_DAG_FILE)]))
    extra = {
        "processor_runs": [m.seconds for m in processor],
        "processor_peak_rss_mib": max(m.peak_rss_mib for m in processor),
        "tasks": {name: tasks.get((PROJECT_BUNDLE, name), 0) for name in files},
    }
    return parsed, floor, extra


def parse_rows(parsed: dict[str, list[Measurement]], floor: list[Measurement], tasks: dict[str, int]):
    rows = []
    for name, runs in parsed.items():
        row = CaseResult(
            case=f"parse {name}",
            size=f"{tasks[name]} tasks",
            lethe=runs,
            baseline_name="1-task DAG file",
            baseline=floor,
            target=0.0,
            target_text=f"Lethe s <= {PARSE_BUDGET_SECONDS}",
            notes=(
                "Airflow's own parse duration (dag.last_parse_duration: the DAG processor's parsing child "
                "from start to result, one parsing process); baseline: a one-task DAG file in the same runs"
            ),
        )
        # An absolute budget in the table's terms: ratio <= budget / baseline holds when Lethe s <= budget.
        row.target = PARSE_BUDGET_SECONDS / row.baseline_seconds if row.baseline_seconds else float("inf")
        rows.append(row)
    return rows


def profile_rows(setup: Setup, rows: list[CaseResult], mode: str) -> None:
    """Profile the files whose rows missed (or all of them); remove reports a file no longer needs."""
    chosen = {
        row.case.removeprefix("parse "): row for row in rows if mode == "always" or (mode == "missed" and not row.met)
    }
    for stale in harness.RESULTS_DIR.glob("scheduler-parse-*.profile.txt"):
        stale.unlink()
    if chosen:
        for name, report in profile_parses(setup, chosen).items():
            chosen[name].extra["profile"] = report.name


def profile_parses(setup: Setup, rows: dict[str, CaseResult]) -> dict[str, Path]:
    """pyinstrument text reports of these files' parses, each in a fresh child forked as the processor does."""
    reports = {name: harness.RESULTS_DIR / f"scheduler-parse-{Path(name).stem}.profile.txt" for name in rows}
    harness.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    pairs = [str(part) for name in rows for part in (DAGS_DIR / name, reports[name])]
    if not setup.processor_modules.is_file():
        raise RuntimeError(f"the probe in the bench bundle did not run: no {setup.processor_modules}")
    cmd = [sys.executable, "-c", PROFILE_SCRIPT, str(setup.processor_modules), *pairs]
    run_child(cmd, env=setup.env(), stdout=setup.logs / "profile.log")
    for name, row in rows.items():
        header = (
            f"dags/{name}: the parse as the DAG processor's parsing child does it (_parse_file: import with the "
            f"DagBag, then serialisation), forked from a process holding the modules the processor held. "
            f"Profiling slows it down; measured without: {row.lethe_seconds:.3f} s (median of "
            f"{len(row.lethe)}), a one-task DAG file {row.baseline_seconds:.3f} s.\n"
        )
        reports[name].write_text(header + reports[name].read_text())
    return reports


# --------------------------------------------------------------------------- nightly run


def nightly_dags() -> list[str]:
    return sorted(path.stem for path in DAGS_DIR.glob("lethe_*_retention.py"))


def source_of(dag_id: str) -> str:
    return dag_id.removeprefix("lethe_").removesuffix("_retention")  # dags/lethe_<source>_retention.py


def select_dags(choice: str) -> list[str]:
    """``all``, ``unmapped`` (the DAGs of sources whose kind has no mapped tasks) or DAG ids."""
    every = nightly_dags()
    if choice == "all":
        return every
    if choice == "unmapped":
        from lethe.config import DEFAULT_INVENTORY, DEFAULT_POLICY, load_inventory, load_policy
        from lethe.sources.registry import mapped_kinds

        sources = load_inventory(DEFAULT_INVENTORY, policy=load_policy(DEFAULT_POLICY)).sources
        return [dag_id for dag_id in every if sources[source_of(dag_id)].kind not in mapped_kinds()]
    chosen = [d.strip() for d in choice.split(",") if d.strip()]
    unknown = sorted(set(chosen) - set(every))
    if unknown or not chosen:
        raise SystemExit(f"--scheduler-dags: all, unmapped or some of {', '.join(every)}; not {choice!r}")
    return chosen


@dataclass
class NightlyRun:
    """One ``airflow dags test``: its measurement, its start-up and how many task instances it ran."""

    run: Measurement
    startup_seconds: float
    task_runs: int


def read_run_log(dag_id: str, log: Path, launched: float) -> tuple[float, int]:
    """Seconds from launch to the first task's start, and the task runs; refuses a run with a failed task."""
    text = log.read_text(errors="replace")
    if TASK_FAILED in text:
        raise RuntimeError(f"{dag_id}: a task failed (and was retried), so the run did other work; log: {log}")
    started = next((line.split()[0] for line in text.splitlines() if FIRST_TASK_STARTED in line), None)
    if started is None:
        raise RuntimeError(f"{dag_id}: no {FIRST_TASK_STARTED.strip()!r} line in {log}")
    return datetime.fromisoformat(started).timestamp() - launched, text.count(TASK_STARTED)


def first_error(log: Path) -> str:
    """The first exception a run's log names (its type and message), or that there is none."""
    found = re.search(r"^[\w.]*(?:Error|Exception): .*$", log.read_text(errors="replace"), re.MULTILINE)
    return found.group(0)[:300] if found else "no exception in its log"


def measure_runs(setup: Setup, dag_ids: list[str], repeat: int) -> dict[str, list[NightlyRun]]:
    """``--repeat`` rounds of every DAG in ``dag_ids``, each run after a reset."""
    conf = json.dumps({"as_of": setup.as_of, "dry_run": False})
    runs: dict[str, list[NightlyRun]] = {dag_id: [] for dag_id in dag_ids}
    for number in range(1, repeat + 1):
        for dag_id in dag_ids:
            setup.reset()
            log = setup.logs / f"{dag_id}.{number}.log"
            cmd = [AIRFLOW, "dags", "test", dag_id, setup.as_of, "-c", conf]
            # Wall clock, as the log's timestamps; read before the launcher starts, so the start-up also
            # holds the launcher's own start (some 20 ms), which the whole run's time does not.
            launched = time.time()
            try:
                measured = run_child(cmd, env=setup.env(), stdout=log)
            except ChildFailed as exc:
                raise ChildFailed(f"{dag_id} failed ({first_error(log)}); log: {log}") from exc
            runs[dag_id].append(NightlyRun(measured, *read_run_log(dag_id, log, launched)))
    return runs


def run_rows(runs: dict[str, list[NightlyRun]], as_of: str) -> list[CaseResult]:
    for dag_id, found in runs.items():
        if len({r.task_runs for r in found}) > 1:
            raise RuntimeError(f"{dag_id}: the runs ran {sorted(r.task_runs for r in found)} tasks: not the same work")
    rows = [
        run_row(f"nightly {dag_id}", f"{found[0].task_runs} task runs, demo estate {as_of}", found)
        for dag_id, found in runs.items()
    ]
    if sorted(runs) == nightly_dags() and len(runs) > 1:
        rounds = zip(*runs.values(), strict=True)  # the i-th run of every DAG: one night
        night = [
            NightlyRun(
                Measurement(sum(r.run.seconds for r in one), max(r.run.peak_rss_mib for r in one)),
                sum(r.startup_seconds for r in one),
                sum(r.task_runs for r in one),
            )
            for one in rounds
        ]
        rows.append(run_row("nightly run (every DAG)", f"{len(runs)} DAGs, {night[0].task_runs} task runs", night))
    return rows


def run_row(case: str, size: str, runs: list[NightlyRun]) -> CaseResult:
    row = CaseResult(
        case=case,
        size=size,
        lethe=[r.run for r in runs],
        baseline_name="its start-up (to 1st task)",
        baseline=[Measurement(r.startup_seconds) for r in runs],
        target=float("inf"),
        target_text="—",
    )
    work = row.lethe_seconds - row.baseline_seconds
    task_runs = runs[0].task_runs
    row.notes = (
        f"airflow dags test, medians: start-up {row.baseline_seconds:.1f} s (launch to the first task's start) "
        f"+ work {work:.1f} s ({task_runs} task runs, {work / task_runs:.2f} s each)"
    )
    row.extra = {
        "startup_seconds": round(row.baseline_seconds, 3),
        "work_seconds": round(work, 3),
        "task_runs": task_runs,
        "work_seconds_per_task_run": round(work / task_runs, 3),
    }
    return row


# --------------------------------------------------------------------------- the case


def run(args) -> list[CaseResult]:
    parts = {part.strip() for part in args.scheduler_parts.split(",") if part.strip()}
    if not parts or parts - {"parse", "run"}:
        raise SystemExit(f"--scheduler-parts: parse, run or both, not {args.scheduler_parts!r}")
    dag_ids = select_dags(args.scheduler_dags) if "run" in parts else []
    keep = args.scheduler_workdir is not None
    root = args.scheduler_workdir or Path(tempfile.mkdtemp(prefix="lethe-bench-scheduler-"))
    setup = Setup(root.resolve(), args.scheduler_as_of)
    rows: list[CaseResult] = []
    extra: dict = {}
    try:
        setup.make_airflow()
        if "parse" in parts:
            parsed, floor, parse_extra = measure_parse(setup, args.repeat)
            rows += parse_rows(parsed, floor, parse_extra["tasks"])
            extra["parse"] = parse_extra
            profile_rows(setup, rows, args.scheduler_profile)
        if dag_ids:
            setup.seed()
            rows += run_rows(measure_runs(setup, dag_ids, args.repeat), setup.as_of)
    except BaseException:
        print(f"   scheduler: the work folder is kept: {root}", file=sys.stderr, flush=True)
        raise
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    write_results(NAME, rows, extra=extra)
    return rows
