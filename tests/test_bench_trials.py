"""Smoke test of the benchmark case ``trials`` (benchmarks/cases/trials.py) at a tiny size, on both servers.

The case runs as ``make bench`` runs it (``python -m benchmarks.run --only trials``), with its results and
README redirected into the test's folder (``LETHE_BENCH_RESULTS``, ``LETHE_BENCH_README``) and a tag of its own in
every database name, so that a ``make bench`` on the same servers is not disturbed. What is checked is what it
wrote and what it left, not how fast anything was: a row per server, Lethe and the baseline each dropped exactly
the planned due databases in every run, the slowest row that missed has its profile, the README table has the
rows, and nothing the case made is left on the servers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from lethe.db import make_engine

from conftest import SERVER_URLS, require_server

# T1 lists every trial-like database on a server: tests that make them share one xdist worker.
pytestmark = pytest.mark.xdist_group("trial_servers")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # pytest's path has include/ (pyproject), the benchmarks live beside it
    sys.path.insert(0, str(REPO))

from benchmarks.cases.trials import Plan, digest  # noqa: E402

DATABASES, DUE = 8, 5
LIST_QUERY = {
    "postgresql": "SELECT datname FROM pg_database",
    "mariadb": "SELECT schema_name FROM information_schema.schemata",
}


def databases_named(backend: str, part: str) -> list[str]:
    engine = make_engine(SERVER_URLS[backend])
    try:
        with engine.connect() as conn:
            return sorted(row[0] for row in conn.execute(text(LIST_QUERY[backend])) if part in row[0])
    finally:
        engine.dispose()


def test_both_drop_exactly_the_due_databases_and_nothing_is_left(tmp_path):
    for backend in ("postgresql", "mariadb"):
        require_server(backend)
    tag = f"t{uuid.uuid4().hex[:8]}_"
    results = tmp_path / "results"
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n<!-- results:start -->\n<!-- results:end -->\n")
    env = {**os.environ, "LETHE_BENCH_RESULTS": str(results), "LETHE_BENCH_README": str(readme)}
    cmd = [sys.executable, "-m", "benchmarks.run", "--only", "trials", "--repeat", "1"]
    cmd += ["--trials-databases", str(DATABASES), "--trials-due", str(DUE), "--trials-tag", tag]
    cmd += ["--trials-postgres-url", SERVER_URLS["postgresql"], "--trials-mariadb-url", SERVER_URLS["mariadb"]]

    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)

    # Exit status 1 only says a row missed its target.
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((results / "trials.json").read_text())
    rows = data["rows"]
    assert (done.returncode == 1) == any(not row["met"] for row in rows)
    assert [row["extra"]["backend"] for row in rows] == ["postgresql", "mariadb"]
    plan = Plan(tag, DATABASES, DUE)
    assert len(plan.due) == DUE and all(name.startswith(f"trial_bench_{tag}") for name in plan.due)
    for row, client in zip(rows, ("psql", "mariadb"), strict=True):
        extra = row["extra"]
        assert row["case"] == "trials" and row["size"].startswith(f"{DATABASES} dbs, {DUE} due, ")
        assert row["baseline"] == f"{client} DROP DATABASE loop" and row["target"] == "<= 1.3x"
        assert len(row["runs"]["lethe"]) == len(row["runs"]["baseline"]) == 1
        assert row["lethe_seconds"] > 0 and row["baseline_seconds"] > 0 and row["peak_rss_mib"] > 0
        # The case found exactly the planned due databases gone after each tool's run.
        assert extra["due_names_sha256"] == digest(plan.due)
        assert extra["dropped_names_sha256"] == {"lethe": [digest(plan.due)], "baseline": [digest(plan.due)]}
        (summary,) = extra["lethe_summaries"]
        assert summary["deleted"] == summary["eligible"] == DUE and summary["status"] == "ok"
        assert summary["kept_converted"] + summary["not_yet_due"] == DATABASES - DUE
        assert 0 < extra["lethe_nothing_due_seconds"]
        assert f"exactly the {DUE} due databases" in row["notes"]
        assert ("Missed:" in row["notes"]) == (not row["met"])
    missed = sorted((row for row in rows if not row["met"]), key=lambda row: row["ratio"])
    profiled = [row["extra"]["backend"] for row in rows if "profile" in row["extra"]]
    assert profiled == ([missed[-1]["extra"]["backend"]] if missed else [])
    for row in rows:
        if "profile" in row["extra"]:
            assert "TrialDrop.enforce_item" in (results / row["extra"]["profile"]).read_text()
    assert readme.read_text().count("| trials |") == 2
    # Nothing of the case is left: no trial database and none of its own (CRM, audit store, template).
    for backend in ("postgresql", "mariadb"):
        assert databases_named(backend, tag) == []
