"""Smoke test of the benchmark case ``validation`` (benchmarks/cases/validation.py) at a tiny size.

It runs as ``make bench`` runs it (``python -m benchmarks.run --only validation``), on PostgreSQL,
with its databases, results and README redirected (``LETHE_BENCH_DB_PREFIX``,
``LETHE_BENCH_RESULTS``, ``LETHE_BENCH_README``). What is checked is what it wrote, not how fast
anything was: for C1 and K1 a row of the checks before against the rule's scan, with its ratio,
and an informational row of the check after, taken once the rule ran (nothing eligible remains);
every time positive; the README table; and no bench database left on the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from lethe.db import make_engine

from conftest import SERVER_URLS, require_server

REPO = Path(__file__).resolve().parents[1]
PREFIX = "lethe_benchval"


@pytest.mark.bench
def test_the_case_writes_the_ratio_of_the_checks_to_the_scan(tmp_path):
    require_server("postgresql")
    results, readme = tmp_path / "results", tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n<!-- results:start -->\n<!-- results:end -->\n")
    env = {
        **os.environ,
        "LETHE_BENCH_RESULTS": str(results),
        "LETHE_BENCH_README": str(readme),
        "LETHE_BENCH_DB_PREFIX": PREFIX,
    }
    command = [sys.executable, "-m", "benchmarks.run", "--only", "validation", "--repeat", "1"]
    # No traced runs (--validation-profile never): the case stays well under 30 s here.
    command += ["--validation-contacts", "2000", "--validation-profile", "never"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: a ratio missed its target
    assert "import great_expectations" in done.stdout and "excluded" in done.stdout

    data = json.loads((results / "validation.json").read_text())
    rows = {row["case"]: row for row in data["rows"]}
    for rule in ("C1", "K1"):
        before, after = rows[f"checks before {rule} (postgresql)"], rows[f"check after {rule} (postgresql)"]
        assert before["baseline"] == f"{rule}'s own scan" and before["target"] == "<= 2.0x"
        assert before["lethe_seconds"] > 0 and before["baseline_seconds"] > 0 and before["ratio"] > 0
        assert before["ratio"] == pytest.approx(before["lethe_seconds"] / before["baseline_seconds"], rel=0.01)
        assert before["met"] == (before["ratio"] <= 2.0)
        assert before["extra"]["import_great_expectations_seconds"] > 0
        assert "before timing" in before["notes"]
        assert before["extra"]["tables"]["contacts"] == 2000
        assert after["lethe_seconds"] > 0 and after["baseline_seconds"] > 0 and after["met"]
        assert "traced" not in before["extra"]
        assert after["extra"]["remaining"] == 0 and "0 remaining" in after["notes"]  # the rule ran
    assert "checks before C1 (postgresql)" in readme.read_text()

    engine = make_engine(SERVER_URLS["postgresql"])
    try:
        with engine.connect() as conn:
            left = conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE :p"), {"p": f"{PREFIX}%"})
            assert not left.all()
    finally:
        engine.dispose()
