"""Smoke test of the benchmark case ``logs`` (benchmarks/cases/logs.py) at a tiny size.

The case runs as ``make bench`` runs it (``python -m benchmarks.run --only logs``), with its results and README
redirected into the test's folder (``LETHE_BENCH_RESULTS``, ``LETHE_BENCH_README``). What is checked is what it
wrote, not how fast anything was: a row per log and baseline, Lethe's output identical to anonip's and to sed's,
the flat-memory check on the largest plain log, a note for every miss and a profile for the worst one, and the
README table. The logs it builds are checked apart: the distinct log has one address per line, never repeated.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # pytest's path has include/ (pyproject), the benchmarks live beside it
    sys.path.insert(0, str(REPO))

from benchmarks.cases.logs import distinct_address, write_distinct, write_repeated  # noqa: E402


def sample_log() -> Path:
    shared = Path(os.environ.get("LETHE_SHARED_DIR") or REPO.parent / "shared")
    path = shared / "data" / "apache_access_sample.log"
    if not path.is_file():
        pytest.skip(f"sample access log not found at {path} (set LETHE_SHARED_DIR)")
    return path


def test_the_case_writes_every_row_with_outputs_identical_to_the_baselines(tmp_path):
    sample_log()
    results = tmp_path / "results"
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n<!-- results:start -->\n<!-- results:end -->\n")
    env = {**os.environ, "LETHE_BENCH_RESULTS": str(results), "LETHE_BENCH_README": str(readme)}
    cmd = [sys.executable, "-m", "benchmarks.run", "--only", "logs", "--repeat", "1"]
    cmd += ["--logs-lines", "2000,20000", "--logs-gzip-lines", "2000", "--logs-distinct", "2000"]
    cmd += ["--logs-anonip-lines", "1000", "--logs-workdir", str(tmp_path)]

    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)

    # Exit status 1 only says a row missed its target (at this size, start-up is most of Lethe's time).
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads((results / "logs.json").read_text())["rows"]
    assert (done.returncode == 1) == any(not row["met"] for row in rows)
    assert [(row["size"], row["baseline"]) for row in rows] == [
        ("sample 2k, plain", "sed -E"),
        ("sample 20k, plain", "sed -E"),
        ("sample 2k, gzip", "sed -E"),
        ("distinct 2k, plain", "sed -E"),
        ("sample 1k, plain", "anonip 1.1.0"),
        ("sample 1k, gzip", "anonip 1.1.0"),
        ("distinct 1k, plain", "anonip 1.1.0"),
    ]
    for row in rows:
        assert row["case"] == "logs"
        assert len(row["runs"]["lethe"]) == len(row["runs"]["baseline"]) == 1
        assert row["lethe_seconds"] > 0 and row["baseline_seconds"] > 0 and row["peak_rss_mib"] > 0
        # The sample's and the distinct log's addresses are all in forms sed knows: all three agree.
        assert row["extra"]["output_identical"] is True
        assert row["target"] == ("<= 1" if row["baseline"] == "sed -E" else "<= 0.1")
        assert ("Missed:" in row["notes"]) == (not row["met"])
        if row["baseline"] == "anonip 1.1.0":
            assert row["checks"] == {"output identical to anonip's": True}
    memory = rows[1]["checks"]
    assert list(memory) == ["peak RSS at most 20% above sample 2k, plain's"]
    assert rows[1]["extra"]["memory_growth"] == pytest.approx(
        rows[1]["peak_rss_mib"] / rows[0]["peak_rss_mib"] - 1, abs=0.01
    )
    assert all("checks" not in row for row in rows[2:4])  # a single size of a kind: nothing to compare
    missed = [row for row in rows if not row["met"]]
    profiled = [row for row in rows if "profile" in row["extra"]]
    assert len(profiled) == (1 if missed else 0)
    if profiled:
        (row,) = profiled

        def shortfall(found: dict) -> float:
            return found["ratio"] / float(found["target"].split()[-1])

        assert shortfall(row) >= max(map(shortfall, missed)) - 0.01  # the one furthest past its target
        assert "anonymise_stream" in (results / row["extra"]["profile"]).read_text()
    assert readme.read_text().count("| logs |") == len(rows)
    assert not list(tmp_path.glob("lethe-bench-logs-*"))  # the logs and outputs are gone


def test_the_logs_are_what_the_docstring_says(tmp_path):
    sample = sample_log().read_bytes()
    sample_lines = sample.splitlines(keepends=True)
    plain, gz = tmp_path / "sample.log", tmp_path / "sample.log.gz"
    write_repeated(sample, len(sample_lines) + 5, plain, gz=False)
    write_repeated(sample, len(sample_lines) + 5, gz, gz=True)
    assert plain.read_bytes() == sample + b"".join(sample_lines[:5])
    assert subprocess.run(["gzip", "-dc", str(gz)], capture_output=True, check=True).stdout == plain.read_bytes()

    distinct = tmp_path / "distinct.log"
    write_distinct(sample, 30_000, distinct)
    lines = distinct.read_bytes().splitlines(keepends=True)
    assert len(lines) == 30_000
    heads = [line.partition(b" ")[0].decode() for line in lines]
    assert len(set(heads)) == len(heads) == len({ipaddress.ip_address(h) for h in heads})
    versions = [ipaddress.ip_address(h).version for h in heads]
    assert versions[:4] == [4, 6, 4, 6] and versions.count(6) == 15_000
    # As servers write them (canonical), and every /48 (what the default mask keeps) is new too.
    assert all(str(ipaddress.ip_address(h)) == h for h in heads)
    prefixes = {ipaddress.ip_network(f"{h}/48", strict=False) for h in heads if ":" in h}
    assert len(prefixes) == 15_000
    assert any("::" in h for h in heads) and any(h.count(":") == 7 for h in heads)
    # The rest of each line is the sample's line in turn.
    for i in (0, 1, 9_999, 10_000, 29_999):
        assert lines[i].partition(b" ")[2] == sample_lines[i % len(sample_lines)].partition(b" ")[2]
    assert distinct_address(0) == heads[0] and distinct_address(29_999) == heads[29_999]
