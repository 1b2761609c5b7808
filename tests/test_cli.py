"""The ``lethe`` command on a demo estate: seed-demo, policy check, report summary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import yaml

from lethe.config import DEFAULT_INVENTORY


def lethe(env, *args):
    return subprocess.run(
        [sys.executable, "-m", "lethe.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_seed_demo_then_policy_check(tmp_path):
    estate = tmp_path / "estate"
    env = {
        **os.environ,
        "AIRFLOW_CONN_CRM": f"sqlite:///{estate / 'crm.sqlite'}",
        "AIRFLOW_CONN_MARKETING": f"sqlite:///{estate / 'marketing.sqlite'}",
        "AIRFLOW_CONN_TRIALS": f"sqlite:///{estate / 'trials'}",
        "AIRFLOW_CONN_WEBLOGS": json.dumps({"conn_type": "fs", "extra": {"path": str(estate / "weblogs")}}),
    }
    seeded = lethe(env, "seed-demo", "--as-of", "2026-11-26", "--estate", str(estate))
    assert seeded.returncode == 0, seeded.stderr
    assert (estate / "demo-audit-key").read_text().startswith("lethe-demo-key-")

    ok = lethe(env, "policy", "check")
    assert ok.returncode == 0, ok.stderr
    for rule, source in (
        ("C1", "crm"),
        ("K1", "crm"),
        ("N1", "marketing"),
        ("W1", "marketing"),
        ("W2", "marketing"),
        ("T1", "trials"),
        ("L1", "weblogs"),
        ("L2", "weblogs"),
    ):
        assert f"rule {rule} (source {source}): ok: " in ok.stdout

    inventory = tmp_path / "inventory"
    shutil.copytree(DEFAULT_INVENTORY, inventory)
    data = yaml.safe_load((inventory / "marketing.yaml").read_text())
    data["rules"][1]["trigger"]["latest_of"][0]["column"] = "cookie_stored_at"
    (inventory / "marketing.yaml").write_text(yaml.safe_dump(data))
    bad = lethe(
        {
            **env,
            "LETHE_INVENTORY_DIR": str(inventory),
            "AIRFLOW_CONN_WEBLOGS": json.dumps({"conn_type": "fs", "extra": {"path": str(tmp_path / "none")}}),
        },
        "policy",
        "check",
    )
    assert bad.returncode == 1
    assert "rule W1 (source marketing): rule W1: inventory source 'marketing' does not match" in bad.stderr
    assert "column web_events.cookie_stored_at does not exist" in bad.stderr
    assert "rule L1 (source weblogs): " in bad.stderr and "is not a directory" in bad.stderr
    # Only the rules that use the missing names fail; the others are still checked and pass.
    assert "rule W2 (source marketing): ok: " in bad.stdout and "rule C1 (source crm): ok: " in bad.stdout


def test_report_summary_without_reports(tmp_path):
    out = lethe({**os.environ, "LETHE_REPORTS_DIR": str(tmp_path)}, "report", "summary")
    assert out.returncode == 0 and "no report yet" in out.stdout


def test_seed_demo_is_deterministic(tmp_path):
    """The same seed and as-of write the same estate, bad rows included (compared as SQL dumps:
    the bad rows hold text where the schema says timestamp)."""
    import hashlib
    import sqlite3
    from contextlib import closing

    def dump(path):
        with closing(sqlite3.connect(path)) as db:
            return "\n".join(db.iterdump()), db.execute("SELECT COUNT(*) FROM contacts").fetchone()[
                0
            ] if "crm" in path.name else 0

    def seed(folder):
        out = lethe(dict(os.environ), "seed-demo", "--as-of", "2028-02-29", "--estate", str(folder))
        assert out.returncode == 0, out.stderr
        assert "bad rows for the checks to quarantine" in out.stdout
        logs = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((folder / "weblogs").iterdir())}
        trials = sorted(p.name for p in (folder / "trials").iterdir())
        return dump(folder / "crm.sqlite"), dump(folder / "marketing.sqlite"), logs, trials

    first, second = seed(tmp_path / "a"), seed(tmp_path / "b")
    assert first == second
    assert first[0][1] > 1000 and len(first[2]) > 365 and len(first[3]) > 200


def test_every_command_works_outside_make_on_the_embedded_default(tmp_path):
    """From the venv after `make demo`: no AIRFLOW_CONN_*, no key in the environment."""
    estate = tmp_path / "estate"
    bare = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW_CONN_", "LETHE_AUDIT_KEY", "LETHE_DEMO_KEY_FILE"))
    }
    env = {**bare, "LETHE_ESTATE_DIR": str(estate), "LETHE_REPORTS_DIR": str(tmp_path / "reports")}
    assert lethe(env, "seed-demo", "--as-of", "2026-11-26", "--estate", str(estate)).returncode == 0

    verify = lethe(env, "audit", "verify")
    assert verify.returncode == 0 and "audit trail intact" in verify.stdout, verify.stderr
    assert f"using connection(s) lethe_audit of the embedded default in {estate}" in verify.stderr
    assert f"the demo audit key in {estate / 'demo-audit-key'}" in verify.stderr
    check = lethe(env, "policy", "check")
    assert check.returncode == 0, check.stderr
    assert "connection(s) crm, marketing, trials, weblogs of the embedded default" in check.stderr
    assert lethe(env, "audit", "find", "--email", "nobody@example.com").returncode == 0

    # Pointed at other systems, the environment wins, as for the DAGs.
    other = {
        **env,
        "AIRFLOW_CONN_LETHE_AUDIT": f"sqlite:///{tmp_path / 'other-audit.sqlite'}",
        "LETHE_AUDIT_KEY": "another-key-0123456789abcdef",
    }
    elsewhere = lethe(other, "audit", "verify")
    assert elsewhere.returncode == 0 and "intact: 0 entries" in elsewhere.stdout
    assert "embedded default" not in elsewhere.stderr
    # No embedded default and nothing set: a clear error, not a guess.
    none = lethe({**bare, "LETHE_ESTATE_DIR": str(tmp_path / "none")}, "audit", "verify")
    assert none.returncode == 2 and "no audit key" in none.stderr
