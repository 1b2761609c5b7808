"""SQL rules at scale: C1, K1, N1 and W1 on PostgreSQL and MariaDB against hand-written SQL.

For each back end it builds the estate of :mod:`benchmarks.cases.sql_estate` (``--sql-contacts``
N: N contacts, 2N interactions, N/10 companies, N newsletter subscribers, 5N web events; about 10%
of each rule's table due). The default N is 150k, so that ``make bench`` stays near its 15
minutes; the issue's scale is ``--sql-contacts 1000000 --sql-memory-contacts 3000000``. Then, for
each rule and each of ``--repeat`` runs, on the same data (reset before every run, untimed):

* the baseline: the rule's script of :mod:`benchmarks.cases.sql_baselines`, run by the server's
  own client (``psql`` or ``mariadb``): decide once, one HMAC'd audit row per subject, set-based
  deletes and updates, one transaction;
* Lethe: ``lethe run RULE --as-of 2026-11-26`` as a child process, against the bench databases,
  with its audit store in a database of its own on the same server: the same runner as the
  nightly DAGs (check, scan, enforce in batches each committing with its audit entries, chained
  in the audit store, and the after-count).

After each run the rule's tables are fingerprinted (row counts and key sums): Lethe and the
baseline must leave the same rows, or the case stops. Lethe's peak memory is its process's peak
RSS; with ``--sql-memory-contacts`` (default 3N, PostgreSQL) C1 and K1 run once more on a CRM that
size, and their peak RSS must stay within 20% of the first estate's.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks import harness
from benchmarks.cases import sql_baselines, sql_estate
from benchmarks.harness import CaseResult, Measurement, median_of, run_child, write_results

NAME = "sql"
# The memory check grows the contacts (the CRM only): the rules on them.
CONTACT_RULES = ("C1", "K1")
AUDIT_KEY = "lethe-bench-audit-key-0123456789"
TARGET = 1.5
MEMORY_TARGET = 1.2


def add_arguments(group) -> None:
    # Defaults fit make bench's 15 minutes; the sizes: --sql-contacts 1000000 --sql-memory-contacts 3000000.
    group.add_argument("--sql-contacts", type=int, default=150_000, help="contacts (other tables scale with it)")
    group.add_argument("--sql-backends", default="postgresql,mariadb", help="postgresql, mariadb or both")
    group.add_argument("--sql-rules", default="C1,K1,N1,W1", help="rules to measure")
    group.add_argument(
        "--sql-memory-contacts",
        type=int,
        default=450_000,
        help="contacts of the second estate for the peak-memory check on PostgreSQL (0: skip)",
    )
    group.add_argument("--sql-keep", action="store_true", help="keep the bench databases afterwards")
    group.add_argument(
        "--sql-profile",
        choices=("missed", "never"),
        default="missed",
        help="profile Lethe (pyinstrument) once more on each back end's row furthest past its target",
    )


def size_text(contacts: int) -> str:
    def short(n: int) -> str:
        return f"{n / 1_000_000:g}M" if n >= 1_000_000 else f"{n / 1000:g}k"

    return f"{short(contacts)} contacts, {short(2 * contacts)} interactions, {short(5 * contacts)} events"


def lethe_env(backend: str, trials_folder: Path) -> dict[str, str]:
    def uri(part: str) -> str:
        return sql_estate.url(backend, part).render_as_string(hide_password=False)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_", "LETHE_"))}
    env.update(
        AIRFLOW_CONN_CRM=uri("crm"),
        AIRFLOW_CONN_MARKETING=uri("marketing"),
        AIRFLOW_CONN_LETHE_AUDIT=uri("audit"),
        # C1 waits for T1's open sign-ups; the bench CRM has none, and the trial server is empty.
        AIRFLOW_CONN_TRIALS=f"sqlite:///{trials_folder}",
        AIRFLOW_VAR_LETHE_ARMED_SOURCES='["crm", "marketing"]',
        LETHE_AUDIT_KEY=AUDIT_KEY,
        LETHE_ESTATE_DIR=str(trials_folder.parent / "no-embedded-estate"),
    )
    return env


def client_command(backend: str, part: str, script: Path) -> list[str]:
    name = sql_estate.database_name(part)
    if backend == "postgresql":
        psql = shutil.which("psql") or "psql"
        return [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "postgres", "-d", name] + [
            "-f",
            str(script),
        ]
    mariadb = shutil.which("mariadb") or shutil.which("mysql") or "mariadb"
    return [mariadb, "-h", "127.0.0.1", "-u", "root", "-D", name, "-e", f"source {script}"]


class Mismatch(RuntimeError):
    pass


def measure_rule(estate: sql_estate.Estate, rule: str, runs: int, workdir: Path) -> CaseResult:
    part, text = sql_baselines.script(rule, estate.backend, AUDIT_KEY)
    script = workdir / f"{rule}-{estate.backend}.sql"
    script.write_text(text)
    env = lethe_env(estate.backend, workdir / "trials")
    lethe = [str(Path(sys.executable).parent / "lethe"), "run", rule, "--as-of", sql_estate.AS_OF[:10]]
    baseline_runs, lethe_runs, prints = [], [], set()

    def reset() -> None:
        sql_estate.reset(estate, rule)

    for _ in range(runs):
        baseline_runs += median_of(1, lambda: run_child(client_command(estate.backend, part, script)), reset)
        prints.add(("baseline", tuple(sql_estate.fingerprint(estate, rule))))
        lethe_runs += median_of(1, lambda: run_child(lethe, env=env, stdout=workdir / f"{rule}.out"), reset)
        prints.add(("lethe", tuple(sql_estate.fingerprint(estate, rule))))
    if len({fp for _who, fp in prints}) != 1:
        raise Mismatch(f"{rule} on {estate.backend}: Lethe and the baseline left different rows: {sorted(prints)}")
    return CaseResult(
        case=f"SQL {rule} ({estate.backend})",
        size=size_text(estate.contacts),
        lethe=lethe_runs,
        baseline_name="hand-written SQL",
        baseline=baseline_runs,
        target=TARGET,
        target_text=f"<= {TARGET}x",
        notes=f"both left: {'; '.join(next(iter(prints))[1])}",
    )


def profile(estate: sql_estate.Estate, rule: str, workdir: Path) -> Path:
    """Lethe on ``rule`` once more, under pyinstrument; the text report goes next to the results."""
    harness.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    report = harness.RESULTS_DIR / f"sql-{rule}-{estate.backend}.profile.txt"
    sql_estate.reset(estate, rule)
    lethe = [str(Path(sys.executable).parent / "lethe"), "run", rule, "--as-of", sql_estate.AS_OF[:10]]
    command = [sys.executable, "-m", "pyinstrument", "--renderer", "text", "--outfile", str(report), *lethe]
    run_child(command, env=lethe_env(estate.backend, workdir / "trials"), stdout=workdir / f"{rule}-profile.out")
    print(f"   profile of Lethe {rule} on {estate.backend}: {report}", flush=True)
    return report


def memory_row(rule: str, small: CaseResult, large: Measurement, contacts: int) -> CaseResult:
    """Peak RSS at the larger estate over the smaller: the ratio is of memory, not time."""
    small_peak = max(m.peak_rss_mib for m in small.lethe)
    return CaseResult(
        case=f"memory {rule} (postgresql)",
        size=f"{contacts:,} vs {small.size.split(',')[0].split()[0]} contacts (CRM)",
        lethe=[Measurement(large.peak_rss_mib, large.peak_rss_mib)],
        baseline_name="peak MiB at the smaller estate",
        baseline=[Measurement(small_peak, small_peak)],
        target=MEMORY_TARGET,
        target_text=f"<= {MEMORY_TARGET}x (MiB)",
        notes=f"peak RSS {large.peak_rss_mib:.0f} MiB vs {small_peak:.0f} MiB; time {large.seconds:.1f} s",
    )


def run(args) -> list[CaseResult]:
    rules = [r.strip() for r in args.sql_rules.split(",") if r.strip()]
    backends = [b.strip() for b in args.sql_backends.split(",") if b.strip()]
    rows: list[CaseResult] = []
    workdir = Path(tempfile.mkdtemp(prefix="lethe-bench-sql-"))
    (workdir / "trials").mkdir()
    try:
        for backend in backends:
            estate = sql_estate.Estate(backend, args.sql_contacts)
            print(f"   building the {backend} estate ({size_text(estate.contacts)})", flush=True)
            sql_estate.build(estate, rules)
            measured = []
            for rule in rules:
                measured.append(measure_rule(estate, rule, args.repeat, workdir))
                print(f"   {measured[-1].case}: {measured[-1].ratio:.2f}x", flush=True)
            worst = max(measured, key=lambda row: row.ratio / row.target)
            if args.sql_profile == "missed" and not worst.met:
                worst.notes += f"; profile: {profile(estate, worst.case.split()[1], workdir).name}"
            rows += measured
        if args.sql_memory_contacts and "postgresql" in backends:
            estate = sql_estate.Estate("postgresql", args.sql_memory_contacts)
            print(f"   building the postgresql estate ({size_text(estate.contacts)}) for the memory check", flush=True)
            memory_rules = [r for r in rules if r in CONTACT_RULES]
            sql_estate.build(estate, memory_rules, parts=("crm",))
            env = lethe_env("postgresql", workdir / "trials")
            for small in [row for row in rows if row.case.endswith("(postgresql)")]:
                rule = small.case.split()[1]
                if rule not in memory_rules:
                    continue
                sql_estate.reset(estate, rule)
                lethe = [str(Path(sys.executable).parent / "lethe"), "run", rule, "--as-of", sql_estate.AS_OF[:10]]
                large = run_child(lethe, env=env, stdout=workdir / f"{rule}-large.out")
                rows.append(memory_row(rule, small, large, estate.contacts))
    finally:
        if not args.sql_keep:
            for backend in backends:
                sql_estate.drop(backend)
        shutil.rmtree(workdir, ignore_errors=True)
    write_results("sql", rows)
    return rows
