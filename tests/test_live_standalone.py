"""The README's first contact, on a live ``airflow standalone`` driven through the REST API v2.

Unpause the marketing DAG: the scheduler starts the latest night's run at once, and since the
source is not armed it is a dry run that changes nothing. Arm it with ``lethe arm``: the next
(manual) run enforces, after the switch was recorded with who armed it. Meanwhile a run of another
nightly DAG, created late (its logical date's 06:00 deadline long past), is reported: the scheduler
finds the missed deadline and the triggerer e-mails "deadline missed" through the SMTP connection, to
a local server. Then Ctrl-C (SIGINT to ``scripts/airflow-standalone``, what ``make airflow`` runs)
stops every Airflow process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from lethe.audit import audit_table
from lethe.db import make_engine
from lethe.demo.seed import DemoSizes, seed_crm, seed_marketing

from conftest import REPO, TEST_KEY, airflow_environment, wait_for
from oracle import MARKETING_TABLES, snapshot

pytestmark = [pytest.mark.airflow, pytest.mark.live]
DAG = "lethe_marketing_retention"
# The late run's DAG stays paused: its run is never started, yet its deadline is checked (the
# scheduler looks at every unhandled deadline whose time has passed, paused DAG or not).
LATE_DAG = "lethe_crm_retention"
LATE_LOGICAL_DATE = "2026-01-05T02:00:00Z"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Api:
    def __init__(self, base: str, home: Path):
        self.base = base
        self.home = home
        self.session = requests.Session()

    def login(self) -> None:
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        token = self.session.post(
            f"{self.base}/auth/token", json={"username": "admin", "password": passwords["admin"]}, timeout=10
        )
        token.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def get(self, path: str, **kw):
        return self.session.get(f"{self.base}/api/v2{path}", timeout=10, **kw)

    def runs(self) -> list[dict]:
        response = self.get(f"/dags/{DAG}/dagRuns", params={"order_by": "run_after"})
        response.raise_for_status()
        return response.json()["dag_runs"]

    def finished(self, run_id: str) -> dict | None:
        run = self.get(f"/dags/{DAG}/dagRuns/{run_id}").json()
        return run if run["state"] in ("success", "failed") else None


@pytest.fixture
def standalone(tmp_path, smtp_server):
    as_of = datetime.now(timezone.utc).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    estate = tmp_path / "estate"
    (estate / "trials").mkdir(parents=True)
    sizes = DemoSizes(companies=40, contacts=200, subscribers=200, consents=200, web_events=300)
    crm = seed_crm(make_engine(f"sqlite:///{estate / 'crm.sqlite'}"), as_of, sizes=sizes)
    seed_marketing(make_engine(f"sqlite:///{estate / 'marketing.sqlite'}"), as_of, crm["emails"], sizes=sizes)
    home = tmp_path / "airflow"
    port = _free_port()
    env = {
        **airflow_environment(home),
        "LETHE_DEADLINE_ALERTS": "on",  # a scheduler evaluates them here
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW_CONN_CRM": f"sqlite:///{estate / 'crm.sqlite'}",
        "AIRFLOW_CONN_MARKETING": f"sqlite:///{estate / 'marketing.sqlite'}",
        "AIRFLOW_CONN_LETHE_AUDIT": f"sqlite:///{estate / 'audit.sqlite'}",
        "AIRFLOW_CONN_TRIALS": f"sqlite:///{estate / 'trials'}",
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": smtp_server.port,
                "extra": {
                    "disable_tls": True,
                    "disable_ssl": True,
                    "from_email": "lethe@example.test",
                    "to": "dpo@example.test",
                },
            }
        ),
        "LETHE_AUDIT_KEY": TEST_KEY,
        "LETHE_REPORTS_DIR": str(tmp_path / "reports"),
        "AIRFLOW_BIN": str(Path(sys.executable).with_name("airflow")),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    # As a new user: nothing is armed (the Variable lives in Airflow's metadata database).
    env.pop("AIRFLOW_VAR_LETHE_ARMED_SOURCES")
    log = open(tmp_path / "standalone.log", "w")
    proc = subprocess.Popen(
        [str(REPO / "scripts" / "airflow-standalone"), "start"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield {
            "env": env,
            "home": home,
            "estate": estate,
            "proc": proc,
            "port": port,
            "tmp": tmp_path,
            "log": tmp_path / "standalone.log",
            "smtp": smtp_server,
        }
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                subprocess.run([str(REPO / "scripts" / "airflow-standalone"), "stop"], env=env, timeout=60)
        log.close()


def test_unpause_dry_run_arm_enforce_and_ctrl_c(standalone):
    env, home = standalone["env"], standalone["home"]
    api = Api(f"http://127.0.0.1:{standalone['port']}", home)
    wait_for("the API server", lambda: requests.get(f"{api.base}/api/v2/monitor/health", timeout=5).ok)
    wait_for("the admin password", lambda: (home / "simple_auth_manager_passwords.json.generated").exists())
    api.login()
    wait_for(f"{DAG} to be parsed", lambda: api.get(f"/dags/{DAG}").ok)
    wait_for(f"{LATE_DAG} to be parsed", lambda: api.get(f"/dags/{LATE_DAG}").ok)

    # A run created after its deadline (06:00 UTC of its logical date): alerted while the rest runs.
    late = api.session.post(
        f"{api.base}/api/v2/dags/{LATE_DAG}/dagRuns", json={"logical_date": LATE_LOGICAL_DATE, "conf": {}}, timeout=10
    )
    late.raise_for_status()
    late_run_id = late.json()["dag_run_id"]
    marketing = make_engine(env["AIRFLOW_CONN_MARKETING"])
    before = snapshot(marketing, MARKETING_TABLES)

    # Unpausing starts the latest night's run at once: a dry run, since nothing is armed.
    api.session.patch(f"{api.base}/api/v2/dags/{DAG}", json={"is_paused": False}, timeout=10).raise_for_status()
    first = wait_for("the scheduled run", lambda: api.runs())[0]
    assert first["run_type"] == "scheduled"
    done = wait_for("the scheduled run to finish", lambda: api.finished(first["dag_run_id"]), timeout=300)
    assert done["state"] == "success", standalone["log"].read_text()[-3000:]
    assert snapshot(marketing, MARKETING_TABLES) == before
    report = json.loads(next((standalone["tmp"] / "reports" / DAG).glob("*/report.json")).read_text())
    assert report["dry_run"] is True and report["dry_run_reason"] == "not_armed"
    would = sum(r["deleted"] for r in report["rules"])
    assert would > 0
    # The task log says so too, read through the API.
    logs = api.get(f"/dags/{DAG}/dagRuns/{first['dag_run_id']}/taskInstances/resolve_run/logs/1")
    assert logs.ok and "DRY RUN: enforcement is not armed for source marketing" in json.dumps(logs.json())

    # A person arms the source; the next run enforces.
    armed = subprocess.run(
        [sys.executable, "-m", "lethe.cli", "arm", "marketing", "--by", "Dana (DPO)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert armed.returncode == 0, armed.stderr
    trigger = api.session.post(
        f"{api.base}/api/v2/dags/{DAG}/dagRuns", json={"logical_date": None, "conf": {}}, timeout=10
    )
    trigger.raise_for_status()
    run_id = trigger.json()["dag_run_id"]
    done = wait_for("the armed run to finish", lambda: api.finished(run_id), timeout=300)
    assert done["state"] == "success", standalone["log"].read_text()[-3000:]
    after = snapshot(marketing, MARKETING_TABLES)
    removed = sum(len(before[t]) - len(after[t]) for t in ("newsletter_subscribers", "cookie_consents", "web_events"))
    reports = [json.loads(p.read_text()) for p in (standalone["tmp"] / "reports" / DAG).glob("*/report.json")]
    enforced = next(r for r in reports if r["run_id"] == run_id)
    assert enforced["dry_run"] is False and enforced["armed"] is True and enforced["first_armed_run"] is True
    # Its as-of is the trigger's (later than the scheduled night's), so at least as much is due.
    assert removed == sum(r["deleted"] for r in enforced["rules"]) >= would
    with make_engine(env["AIRFLOW_CONN_LETHE_AUDIT"]).connect() as conn:
        rows = conn.execute(
            select(audit_table.c.action, audit_table.c.details, audit_table.c.dry_run)
            .where(audit_table.c.source == "marketing")
            .order_by(audit_table.c.seq)
        ).all()
    actions = [r.action for r in rows]
    armed_at = actions.index("armed")
    assert json.loads(rows[armed_at].details)["by"] == "Dana (DPO)"
    assert all(r.dry_run for r in rows[:armed_at])  # nothing real before the source was armed
    assert "deleted" in actions[armed_at:]

    # The late run's missed deadline reached the notifier: one mail, and the log line. (The
    # marketing DAG's scheduled run may have its own: unpaused after 06:00 UTC, that night's run
    # had not finished by its deadline either.)
    late_subject = f"[Lethe] deadline missed: {LATE_DAG} had not finished by 2026-01-05 06:00"

    def late_mails():
        return [m for m in standalone["smtp"].messages if m["Subject"].startswith(late_subject)]

    [mail] = wait_for("the deadline-missed mail", late_mails, timeout=120)
    assert mail["To"] == "dpo@example.test"
    html = mail.get_body(("html",)).get_content()
    assert f"DAG {LATE_DAG}, run {late_run_id}" in html and "state queued" in html
    assert api.get(f"/dags/{LATE_DAG}/dagRuns/{late_run_id}").json()["state"] == "queued"  # paused: never started
    logged = standalone["log"].read_text()
    assert f"LETHE ALERT [deadline_missed] {LATE_DAG} had not finished by 2026-01-05 06:00" in logged

    # Ctrl-C stops every process it started.
    pgid = int((home / "standalone.pid").read_text())
    standalone["proc"].send_signal(signal.SIGINT)
    assert standalone["proc"].wait(timeout=90) == 0
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    assert not (home / "standalone.pid").exists()
