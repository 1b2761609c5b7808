"""Smoke test of the benchmark case ``scheduler`` (benchmarks/cases/scheduler.py), one run of each part.

The case runs as ``make bench`` runs it (``python -m benchmarks.run --only scheduler``), with its
results and README redirected into the test's folder (``LETHE_BENCH_RESULTS``,
``LETHE_BENCH_README``). What is checked is what it wrote, not how fast anything was: one parse
row per file in ``dags/``, ``met`` meaning the 0.2 s budget, a profile for each row that missed it,
and a nightly run that enforced on its own estate and reported in its own folder, not in the
developer's ``.lethe/`` and ``reports/``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DAG_FILES = sorted(path.name for path in (REPO / "dags").glob("*.py"))
pytestmark = pytest.mark.airflow


def run_case(tmp_path: Path, *options: str) -> tuple[dict, Path]:
    """Run the case once; its results JSON and results folder. Exit 1 only says a row missed its target."""
    results = tmp_path / "results"
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:start -->\n<!-- results:end -->\n")
    env = {**os.environ, "LETHE_BENCH_RESULTS": str(results), "LETHE_BENCH_README": str(readme)}
    cmd = [sys.executable, "-m", "benchmarks.run", "--only", "scheduler", "--repeat", "1", "--no-readme", *options]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((results / "scheduler.json").read_text())
    assert (done.returncode == 1) == any(not row["met"] for row in data["rows"])
    return data, results


def test_parse_rows_one_per_dag_file(tmp_path):
    data, results = run_case(tmp_path, "--scheduler-parts", "parse", "--scheduler-workdir", str(tmp_path / "work"))

    rows = data["rows"]
    assert [row["case"] for row in rows] == [f"parse {name}" for name in DAG_FILES]
    for row, name in zip(rows, DAG_FILES, strict=True):
        (seconds,) = [m["seconds"] for m in row["runs"]["lethe"]]
        (floor,) = [m["seconds"] for m in row["runs"]["baseline"]]
        assert seconds > 0 and floor > 0
        assert row["baseline"] == "1-task DAG file"
        assert row["target"] == "Lethe s <= 0.2"
        assert row["met"] == (seconds <= 0.2), "met is the absolute budget, whatever the baseline"
        assert int(row["size"].split()[0]) > 0, row["size"]
        profile = row.get("extra", {}).get("profile")
        if row["met"]:
            assert profile is None
        else:
            assert profile == f"scheduler-parse-{Path(name).stem}.profile.txt"
            text = (results / profile).read_text()
            assert text.startswith(f"dags/{name}:") and "_parse_file" in text
    assert set(data["parse"]["tasks"]) == set(DAG_FILES)
    # The processor ran on the case's own Airflow home, with the bench bundle beside the dags folder.
    assert (tmp_path / "work" / "airflow" / "airflow.db").is_file()
    assert (tmp_path / "work" / "processor-modules.json").is_file()


def test_one_nightly_run_against_its_start_up(tmp_path):
    work = tmp_path / "work"

    data, _ = run_case(
        tmp_path,
        "--scheduler-parts",
        "run",
        "--scheduler-dags",
        "lethe_crm_retention",
        "--scheduler-workdir",
        str(work),
    )

    (row,) = data["rows"]
    assert row["case"] == "nightly lethe_crm_retention"
    assert row["baseline"] == "its start-up (to 1st task)"
    assert row["target"] == "—" and row["met"] is True
    (whole,) = [m["seconds"] for m in row["runs"]["lethe"]]
    (startup,) = [m["seconds"] for m in row["runs"]["baseline"]]
    assert 0 < startup < whole, "the start-up is a part of the same run"
    assert row["extra"]["work_seconds"] == pytest.approx(whole - startup, abs=0.002)
    assert row["extra"]["task_runs"] == int(row["size"].split()[0]) > 1, row["size"]
    # The run enforced on the case's estate and wrote its report there, not in the developer's folders.
    assert "enforcing" in (work / "logs" / "lethe_crm_retention.1.log").read_text()
    audit = "audit.sqlite"
    assert (work / "estate" / audit).read_bytes() != (work / "estate-seeded" / audit).read_bytes()
    run_ids = [p.name for p in (work / "reports" / "lethe_crm_retention").iterdir()]
    assert run_ids
    assert not [r for r in run_ids if (REPO / "reports" / "lethe_crm_retention" / r).exists()]
