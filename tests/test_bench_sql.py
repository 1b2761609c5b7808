"""Smoke test of the benchmark case ``sql`` (benchmarks/cases/sql_rules.py) at a tiny size.

It runs as ``make bench`` runs it, on both servers, with its databases, results and README
redirected (``LETHE_BENCH_DB_PREFIX``, ``LETHE_BENCH_RESULTS``, ``LETHE_BENCH_README``). What is
checked is what it wrote, not how fast anything was: a row per rule and back end, each saying
Lethe and the hand-written SQL left the same rows (the case stops otherwise), the memory rows of
the larger estate, and the README table. The baselines' keyed hashes are Lethe's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # pytest's path has include/ (pyproject), the benchmarks live beside it
    sys.path.insert(0, str(REPO))

from benchmarks.cases.sql_baselines import hmac_pads  # noqa: E402
from lethe.subjects import email_key  # noqa: E402


def test_the_baselines_hmac_is_lethes_keyed_hash():
    """The baseline computes HMAC-SHA256 in the database from the key's pads: the same function."""
    import hashlib

    key = "lethe-bench-audit-key-0123456789"
    ipad, opad = hmac_pads(key)
    message = b"email:ann.lee@example.com"
    inner = hashlib.sha256(bytes.fromhex(ipad) + message).digest()
    assert hashlib.sha256(bytes.fromhex(opad) + inner).hexdigest() == email_key(key, " Ann.Lee@Example.com")


@pytest.mark.bench
def test_the_case_writes_a_row_per_rule_and_server_with_the_same_rows_left(tmp_path):
    results, readme = tmp_path / "results", tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n<!-- results:start -->\n<!-- results:end -->\n")
    env = {
        **os.environ,
        "LETHE_BENCH_RESULTS": str(results),
        "LETHE_BENCH_README": str(readme),
        "LETHE_BENCH_DB_PREFIX": "lethe_benchtest",
    }
    command = [sys.executable, "-m", "benchmarks.run", "--only", "sql", "--repeat", "1"]
    command += ["--sql-contacts", "1500", "--sql-memory-contacts", "4500"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert "left different rows" not in done.stderr, done.stderr[-3000:]
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: a ratio missed its target (tiny sizes)
    rows = json.loads((results / "sql.json").read_text())["rows"]
    cases = [row["case"] for row in rows]
    for backend in ("postgresql", "mariadb"):
        for rule in ("C1", "K1", "N1", "W1"):
            assert f"SQL {rule} ({backend})" in cases
    assert {"memory C1 (postgresql)", "memory K1 (postgresql)"} <= set(cases)
    for row in rows:
        assert row["lethe_seconds"] > 0 and row["baseline_seconds"] > 0
        if row["case"].startswith("SQL "):
            assert row["notes"].startswith("both left: ")
            assert row["peak_rss_mib"] > 0
    table = readme.read_text()
    assert "SQL C1 (mariadb)" in table and "| case |" in table
