"""A real deployment (``make cluster``), driven through the REST API v2 as an operator would.

``scripts/cluster.py`` starts Airflow 3.3 as separate processes (api-server, scheduler,
dag-processor, triggerer, and with Celery a worker on the local Redis) on a PostgreSQL metadata
database; the sources are on the local PostgreSQL (CRM, marketing, the audit store) and MariaDB
(trial databases), seeded with a small demo estate and reached only through Lethe's
least-privilege roles, created by the scripts in ``deploy/roles``.

Each test unpauses and triggers every nightly DAG with a token from ``/auth/token``, waits for
success, reads a rule's task log through the API, and checks the estate ended exactly as the rules
say (the oracle) and the audit trail verifies. With Celery, a worker is killed (SIGKILL, its whole
process group, as when a machine is lost) while C1 is enforcing: the test holds a lock on C1's last
due row so the task stops mid-way with earlier batches committed; after the kill a new worker
takes the retried task over, and every deletion is in the audit trail exactly once.
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select, text

from lethe.audit import OUTBOX_TABLE, AuditTrail, audit_table
from lethe.db import make_engine
from lethe.periods import Period

from conftest import REPO, wait_for
from oracle import CRM_TABLES, MARKETING_TABLES, due, exempt_addresses, expected, snapshot

pytestmark = [pytest.mark.airflow, pytest.mark.live]
sys.path.insert(0, str(REPO / "scripts"))
import cluster  # noqa: E402  (scripts/cluster.py: the same code make cluster runs)

DAGS = ["lethe_crm_retention", "lethe_marketing_retention", "lethe_trials_retention", "lethe_weblogs_retention"]
PG = "postgresql://root@127.0.0.1:5432"
MARIADB = "mysql://root@127.0.0.1:3306"
BATCH = 5


_wait = functools.partial(wait_for, timeout=600)  # generous: the suite runs beside it on two cores


class Api:
    """The REST API v2 with a bearer token from /auth/token."""

    def __init__(self, port: int, home: Path):
        self.base = f"http://127.0.0.1:{port}"
        self.session = requests.Session()
        passwords = home / "airflow" / "simple_auth_manager_passwords.json.generated"
        token = self.session.post(
            f"{self.base}/auth/token",
            json={"username": "admin", "password": json.loads(passwords.read_text())["admin"]},
            timeout=10,
        )
        token.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def get(self, path: str, **params):
        response = self.session.get(f"{self.base}/api/v2{path}", params=params, timeout=20)
        response.raise_for_status()
        return response.json()

    def runs(self, dag_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns", order_by="run_after")["dag_runs"]

    def unpause(self, dag_id: str) -> None:
        response = self.session.patch(f"{self.base}/api/v2/dags/{dag_id}", json={"is_paused": False}, timeout=20)
        response.raise_for_status()

    def trigger(self, dag_id: str, conf: dict) -> str:
        response = self.session.post(
            f"{self.base}/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf}, timeout=20
        )
        response.raise_for_status()
        return response.json()["dag_run_id"]

    def failures(self, dag_id: str, run_id: str) -> str:
        """The failed task instances of a run and the end of each one's log (for a failing test)."""
        out = []
        for ti in self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=500)["task_instances"]:
            if ti["state"] in ("failed", "upstream_failed"):
                path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{max(ti['try_number'], 1)}"
                try:
                    content = self.get(path, map_index=ti["map_index"])["content"]
                    wanted = [line for line in content if line.get("level") in ("warning", "error", "critical")]
                    log = "\n".join(f"{line.get('event')} {line.get('error_detail', '')}" for line in wanted)[-6000:]
                except requests.RequestException as exc:
                    log = repr(exc)
                out.append(f"{ti['task_id']}[{ti['map_index']}] {ti['state']}: {log}")
        return "\n".join(out)

    def task(self, dag_id: str, run_id: str, task_id: str) -> dict:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")


def _latest_night(now: datetime) -> datetime:
    """The data interval end of the newest scheduled night (02:00 UTC) at ``now``."""
    night = now.replace(hour=2, minute=0, second=0, microsecond=0)
    return night if night <= now else night - timedelta(days=1)


# One deployment per worker: each variant is a long serial unit of its own (the two run side by
# side, and before the rest of the suite: conftest.LONG_GROUPS).
@pytest.fixture(
    params=[
        pytest.param("local", marks=pytest.mark.xdist_group("live_cluster_local")),
        pytest.param("celery", marks=pytest.mark.xdist_group("live_cluster_celery")),
    ]
)
def deployment(request, tmp_path):
    executor = request.param
    name = f"lethe_t{random.randrange(10**6):06d}"
    tag = f"{name.removeprefix('lethe_')}_"
    as_of = _latest_night(datetime.now(timezone.utc).replace(tzinfo=None))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LETHE_"))},
        # A lost worker's task is noticed after 30 s, and retried 3 s later.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "LETHE_RETRY_DELAY_SECONDS": "3",
        "LETHE_BATCH_SIZE": str(BATCH),
    }
    script = [sys.executable, str(REPO / "scripts" / "cluster.py")]
    common = ["--name", name, "--trial-tag", tag]
    start = subprocess.run(
        [*script, "start", *common, "--executor", executor, "--as-of", as_of.date().isoformat(), "--small"]
        + ["--redis-db", str(random.randrange(2, 16))],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    home = cluster.home_of(name)
    try:
        assert start.returncode == 0, start.stdout[-3000:] + start.stderr[-3000:]
        assert "user: admin  password: " in start.stdout
        yield {
            "name": name,
            "executor": executor,
            "home": home,
            "tag": tag,
            "as_of": as_of,
            "env": cluster._saved_environment(home),
            "script": script,
            "common": common,
        }
    finally:
        pids = cluster.read_pids(home)
        stopped = subprocess.run([*script, "stop", *common], env=env, capture_output=True, text=True, timeout=300)
        assert stopped.returncode == 0, stopped.stderr
        for pid in pids.values():
            with pytest.raises(ProcessLookupError):
                os.killpg(pid, 0)
        subprocess.run([*script, "remove", *common], env=env, capture_output=True, text=True, timeout=300)


def _trial_databases(tag: str) -> set[str]:
    with make_engine(MARIADB).connect() as conn:
        return {name for name in conn.exec_driver_sql("SHOW DATABASES").scalars() if f"_{tag}" in name}


def _expected_drops(crm: dict, as_of: datetime) -> set[str]:
    """T1 read row by row: unconverted trials ended 90 days ago, of contacts with no hold or restriction."""
    held, restricted = exempt_addresses(crm, as_of)
    emails = {cid: (row["email"] or "").strip().lower() for cid, row in crm["contacts"].items()}
    signups = list(crm["trial_signups"].values())
    converted = {row["database_name"] for row in signups if row["subscribed_at"] is not None}
    return {
        row["database_name"]
        for row in signups
        if re.fullmatch(r"trial_[a-z0-9_]{1,56}", row["database_name"])
        and row["database_name"] not in converted
        and due(row["trial_ends_at"], Period(days=90), as_of)
        and emails.get(row["contact_id"]) not in held | restricted
    }


def _audit_rows(engine, rule_id: str, action: str) -> list:
    with engine.connect() as conn:
        return conn.execute(
            select(audit_table.c.subject_key, audit_table.c.run_id)
            .where(audit_table.c.rule_id == rule_id, audit_table.c.action == action)
            .order_by(audit_table.c.seq)
        ).all()


def _session(sid: int) -> list[int]:
    """The live processes of a session: a worker, its pool and the task processes it started (each
    task runs in a process group of its own, but stays in the worker's session)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, _pgrp, session = stat.read_text().rsplit(")", 1)[1].split()[:4]
        except (OSError, ValueError):
            continue
        if int(session) == sid and state != "Z":
            members.append(int(stat.parent.name))
    return members


class RowLock:
    """An administrator's open transaction holding one contact row FOR UPDATE."""

    def __init__(self, url: str, contact_id: int):
        self.engine = make_engine(url)
        self.conn = self.engine.connect()
        self.transaction = self.conn.begin()
        self.conn.execute(text("SELECT id FROM contacts WHERE id = :id FOR UPDATE"), {"id": contact_id})

    def release(self) -> None:
        if self.transaction.is_active:
            self.transaction.rollback()
        self.conn.close()
        self.engine.dispose()


def test_nightly_dags_on_a_deployment(deployment):
    name, home, env = deployment["name"], deployment["home"], deployment["env"]
    celery = deployment["executor"] == "celery"
    admin = {db: f"{PG}/{name}_{db}" for db in ("crm", "marketing", "audit")}
    key = env["LETHE_AUDIT_KEY"]
    # The DAGs connect as Lethe's roles, not as the administrator.
    assert env["AIRFLOW_CONN_CRM"].startswith(f"postgresql://{name}_crm@")
    assert env["AIRFLOW_CONN_TRIALS"].startswith(f"mysql://{name}_trials@")

    api = Api(int(env["AIRFLOW__API__PORT"]), home)
    _wait("the nightly DAGs to be parsed", lambda: {d["dag_id"] for d in api.get("/dags")["dags"]} >= set(DAGS))
    crm_before = snapshot(make_engine(admin["crm"]), CRM_TABLES)
    marketing_before = snapshot(make_engine(admin["marketing"]), MARKETING_TABLES)
    trials_before = _trial_databases(deployment["tag"])
    weblogs = Path(json.loads(env["AIRFLOW_CONN_WEBLOGS"])["extra"]["path"])
    logs_before = sorted(p.name for p in weblogs.iterdir())
    as_of = deployment["as_of"]
    crm_expected, marketing_expected = expected(crm_before, marketing_before, as_of, key)
    c1_due = sorted(set(crm_before["contacts"]) - set(crm_expected["contacts"]))
    assert len(c1_due) > 2 * BATCH  # C1 takes several batches

    lock = None
    committed, killed_run = 0, None  # C1 deletions committed before the worker was killed, in this run
    if celery:
        # C1's last batch waits on this lock: the task is mid-enforce, earlier batches committed.
        lock = RowLock(admin["crm"], c1_due[-1])
    try:

        def finished(dag_id: str, run_id: str):
            run = api.get(f"/dags/{dag_id}/dagRuns/{run_id}")
            return run if run["state"] in ("success", "failed") else None

        def wait_for_runs(dag_id: str) -> None:
            for run_id in runs[dag_id]:
                done = _wait(f"{dag_id} {run_id}", lambda r=run_id: finished(dag_id, r), timeout=900, every=5)
                if done["state"] != "success":
                    pytest.fail(f"{dag_id} {run_id}: {done['state']}\n{api.failures(dag_id, run_id)}")

        runs = {}
        # The trials DAG first: C1 waits for T1's drops, and a drop landing between C1's enforce
        # and its check after is a known race (the record counts as remaining), kept out of here.
        for dag_id in ["lethe_trials_retention"] + [d for d in DAGS if d != "lethe_trials_retention"]:
            api.unpause(dag_id)  # the scheduler starts the latest night's run at once
            scheduled = _wait(f"{dag_id}'s scheduled run", lambda d=dag_id: api.runs(d))[0]
            assert scheduled["run_type"] == "scheduled"
            assert datetime.fromisoformat(scheduled["data_interval_end"]).replace(tzinfo=None) == as_of
            # A manual run at the same as-of: it finds nothing left to do.
            manual = api.trigger(dag_id, {"as_of": as_of.isoformat()})
            runs[dag_id] = [scheduled["dag_run_id"], manual]
            if dag_id == "lethe_trials_retention":
                wait_for_runs(dag_id)

        if celery:
            role = f"{name}_crm"
            activity = make_engine(f"{PG}/postgres")
            blocked = text("SELECT count(*) FROM pg_stat_activity WHERE usename = :role AND wait_event_type = 'Lock'")

            def waiting() -> int:  # a transaction of its own each time: the view is a per-transaction snapshot
                with activity.connect() as conn:
                    return conn.execute(blocked, {"role": role}).scalar()

            _wait("C1 to block on the held row", waiting, every=1)
            # Whichever of the two runs got to C1 first is the one waiting.
            killed_run = next(
                run
                for run in runs["lethe_crm_retention"]
                if api.task("lethe_crm_retention", run, "C1.enforce")["state"] == "running"
            )
            with make_engine(admin["crm"]).connect() as conn:
                left = set(conn.execute(text("SELECT id FROM contacts")).scalars())
            committed = len(set(c1_due) - left)
            assert BATCH <= committed < len(c1_due)  # batches committed before the kill, one waiting
            # The machine is lost: the worker and everything it started (the task too) die at once.
            worker = cluster.read_pids(home)["worker"]
            members = _session(worker)
            assert len(members) >= 3  # the worker, a pool process, the task's supervisor and process
            for pid in members:
                os.kill(pid, signal.SIGKILL)
            _wait("the worker's processes to die", lambda: not _session(worker), timeout=30, every=0.5)
            lock.release()
            started = subprocess.run(
                [*deployment["script"], "worker", *deployment["common"]], capture_output=True, text=True, timeout=60
            )
            assert started.returncode == 0, started.stderr

        for dag_id in runs:
            wait_for_runs(dag_id)
    finally:
        if lock is not None:
            lock.release()

    # C1's deletions by run. A contact whose trial database T1 had not dropped yet waits for the
    # next run (C1 waits for T1), so the two runs may share them; each is recorded once.
    audit = make_engine(admin["audit"])
    deleted = _audit_rows(audit, "C1", "deleted")
    per_run = {run: sum(row.run_id == run for row in deleted) for run in runs["lethe_crm_retention"]}
    assert sum(per_run.values()) == len(c1_due), per_run

    def log_of(run_id: str, task_id: str, try_number: int) -> str:
        path = f"/dags/lethe_crm_retention/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        return "\n".join(str(line.get("event")) for line in api.get(path)["content"])

    # The rule's compliance lines, read through the API from each run's task logs.
    for run_id, count in per_run.items():
        enforce = api.task("lethe_crm_retention", run_id, "C1.enforce")
        # The killed try failed (its heartbeat stopped); the retry on the new worker finished the rule.
        killed = run_id == killed_run
        assert enforce["state"] == "success" and enforce["try_number"] == (2 if killed else 1), enforce
        enforced = log_of(run_id, "C1.enforce", enforce["try_number"])
        done = count - (committed if killed else 0)
        assert f"C1 enforced: {done} deleted, 0 anonymised" in enforced, enforced[-3000:]
        # The check after may fail a first try while T1 is dropping a database a C1 record waits
        # for (the record is neither waiting nor deleted for that moment); the run stands or falls
        # by the last try.
        summarise = api.task("lethe_crm_retention", run_id, "C1.summarise")
        assert summarise["state"] == "success", summarise
        summary = log_of(run_id, "C1.summarise", summarise["try_number"])
        assert "C1 summary: eligible" in summary and "remaining after 0" in summary, summary[-3000:]

    # The estate ended exactly as the rules say.
    assert snapshot(make_engine(admin["crm"]), CRM_TABLES) == crm_expected
    assert snapshot(make_engine(admin["marketing"]), MARKETING_TABLES) == marketing_expected
    dropped = _expected_drops(crm_before, as_of)
    assert dropped and dropped <= trials_before
    assert _trial_databases(deployment["tag"]) == trials_before - dropped
    reports = [json.loads(p.read_text()) for p in (home / "reports").glob("lethe_*/*/report.json")]
    assert len(reports) == 2 * len(DAGS)
    by_rule = {}
    for report in reports:
        assert report["dry_run"] is False and report["as_of"].startswith(as_of.isoformat()[:16])
        for rule in report["rules"]:
            assert rule["remaining_after"] == 0 and rule["status"] == "ok", rule
            by_rule.setdefault(rule["rule"], []).append(rule)
    logs_after = {p.name for p in weblogs.iterdir()}
    assert sum(r["deleted"] for r in by_rule["L2"]) == len(set(logs_before) - logs_after) > 0

    # Every change is in the audit trail exactly once, and the chain verifies.
    assert len(deleted) == len({row.subject_key for row in deleted}) == len(c1_due)
    assert len(_audit_rows(audit, "T1", "database_dropped")) == len(dropped)
    with make_engine(admin["crm"]).connect() as conn:
        assert conn.execute(select(func.count()).select_from(text(OUTBOX_TABLE))).scalar() == 0
    assert AuditTrail(audit, key).verify().ok
    as_deployed = {**{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LETHE_"))}, **env}
    lethe = str(Path(sys.executable).with_name("lethe"))
    verify = subprocess.run([lethe, "audit", "verify"], env=as_deployed, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0 and "audit trail intact" in verify.stdout, verify.stderr
    # The roles the DAGs ran as are exactly what the rules need: nothing missing, nothing more.
    check = subprocess.run(
        [lethe, "policy", "check", "--strict"], env=as_deployed, capture_output=True, text=True, timeout=300
    )
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    assert "missing:" not in check.stdout + check.stderr and "excess:" not in check.stdout + check.stderr
