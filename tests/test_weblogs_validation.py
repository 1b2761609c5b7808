"""The checks around L1 (truncate IP addresses) and L2 (delete log files), and their quarantine.

A folder holding a gzip file cut short, a name with no real date, a file dated in the future and
clean files: the checks before each rule count exactly those (through the runner, with Great
Expectations), the rules leave them byte for byte and act on the rest, and the check after
passes. Too many bad files stop the rule before anything changes; a clean folder passes both.
"""

from __future__ import annotations

import gzip
import json
import os
import re
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from lethe.audit import audit_table
from lethe.errors import QuarantineTooLarge
from lethe.runner import enforce_item, run_rule, scan_rule, validate_rule, work_items
from lethe.sources.weblogs import validation

AS_OF = datetime(2026, 11, 26)
IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")
CLIENTS = ["83.149.9.216", "2001:db8::1", "66.249.73.135"]


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def backend() -> str:
    """The audit store on SQLite: the checks read files, not databases (tests/test_logs.py runs
    the rules on every backend)."""
    return "sqlite"


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "weblogs"
    path.mkdir()
    return path


def context(estate, folder: Path, *, dry_run: bool = False):
    return estate.context(AS_OF, dry_run=dry_run, folder_for=lambda conn_id: str(folder))


def lines(day: date) -> bytes:
    start = datetime(day.year, day.month, day.day, 9)
    return b"".join(
        f'{client} - - [{start + timedelta(minutes=i):%d/%b/%Y:%H:%M:%S} +0000] "GET / HTTP/1.1" 200 1 "-" "-"\n'.encode()
        for i, client in enumerate(CLIENTS * 20)
    )


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    if name.endswith(".gz"):
        with open(path, "wb") as raw, gzip.GzipFile(filename=name[:-3], mode="wb", fileobj=raw, mtime=0) as out:
            out.write(data)
    else:
        path.write_bytes(data)
    os.chmod(path, 0o640)
    return path


def daily(folder: Path, back: int, *, gz: bool, cut: bool = False) -> Path:
    """The log of the day ``back`` days before the as-of; ``cut``: the gzip file cut short."""
    day = (AS_OF - timedelta(days=back)).date()
    path = write(folder, f"access.log-{day:%Y%m%d}" + (".gz" if gz else ""), lines(day))
    if cut:
        path.write_bytes(path.read_bytes()[:-40])
    return path


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def audit_rows(estate) -> list[dict]:
    with estate.engine("lethe_audit").connect() as conn:
        return [dict(r) for r in conn.execute(select(audit_table).order_by(audit_table.c.seq)).mappings()]


def audit_actions(estate) -> list[str]:
    return [r["action"] for r in audit_rows(estate)]


def clients(path: Path) -> set[str]:
    data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    return {ln.split(b" ", 1)[0].decode() for ln in data.splitlines()}


@pytest.fixture
def estate_folder(folder):
    """A realistic folder: 79 recent files (not due), clean files due for L1 and L2, and
    the bad ones: few enough (under 5% of the files) for the rules to go on without them."""
    for back in range(1, 80):
        daily(folder, back, gz=back > 7, cut=back == 20)  # cut short but not due: never read
    files = {
        "l1_due": [daily(folder, 100, gz=True), daily(folder, 101, gz=True), daily(folder, 102, gz=False)],
        "l2_due": [daily(folder, 400, gz=True), daily(folder, 401, gz=False)],
        "l2_due_cut": daily(folder, 420, gz=True, cut=True),  # L2 deletes it: it never reads it
        "cut": daily(folder, 110, gz=True, cut=True),  # due for L1: quarantined
        "no_date": write(folder, "access.log-20261399", lines(date(2026, 12, 1))),
        "future": write(folder, "access.log-20261130.gz", lines(date(2026, 11, 30))),
        "tomorrow": write(folder, "access.log-20261127", lines(date(2026, 11, 27))),  # within a day: fine
        "not_due_cut": folder / f"access.log-{(AS_OF - timedelta(days=20)):%Y%m%d}.gz",
    }
    (folder / "access.log").write_bytes(lines(AS_OF.date()))  # the live log: never listed
    return files


# --------------------------------------------------------------------------- quarantine


def test_bad_files_are_counted_exactly_left_alone_and_the_rest_is_done(estate, folder, estate_folder):
    files = estate_folder
    total = len([n for n in os.listdir(folder) if n.startswith("access.log-")])
    bad = {files["cut"].name, files["no_date"].name, files["future"].name}
    ctx = context(estate, folder)

    l1 = validate_rule(ctx, "L1")
    assert l1["verdict"] == "quarantined"
    assert l1["reasons"] == {"gzip_corrupt": 1, "date_unparseable": 1, "date_in_future": 1}
    assert l1["tables"] == {"files": total}
    assert l1["samples"] == {}  # a file has no data subject
    l2 = validate_rule(ctx, "L2")
    assert l2["reasons"] == {"date_unparseable": 1, "date_in_future": 1}, "L2 never reads a file"

    # The same rows, the same test: the scan's count, the work items and the checks agree.
    scanned = scan_rule(ctx, "L1")
    assert scanned["quarantined"] == 3 and scanned["quarantine"] == l1["reasons"]
    assert scanned["extra"]["quarantined_files"] == {
        "gzip_corrupt": [files["cut"].name],
        "date_unparseable": [files["no_date"].name],
        "date_in_future": [files["future"].name],
    }
    assert scanned["eligible"] == 3
    assert sorted(i["name"] for i in work_items(ctx, "L1")) == sorted(p.name for p in files["l1_due"])
    # Forced through anyway, the damaged file still fails loudly and is left as it is.
    with pytest.raises((OSError, EOFError)):
        enforce_item(ctx, "L1", {"name": files["cut"].name})

    before = contents(folder)
    result = run_rule(ctx, "L1")
    assert (result["anonymised"], result["quarantined"], result["remaining_after"]) == (3, 3, 0)
    assert result["quarantine"] == l1["reasons"]
    assert (result["before"], result["after"], result["status"]) == ("quarantined", "passed", "ok")
    for path in files["l1_due"]:
        assert clients(path) == {"83.149.9.0", "2001:db8::", "66.249.73.0"}
    unchanged = set(before) - {p.name for p in files["l1_due"]}
    assert {n: contents(folder)[n] for n in unchanged} == {n: before[n] for n in unchanged}

    result = run_rule(ctx, "L2")
    assert (result["deleted"], result["quarantined"], result["remaining_after"]) == (3, 2, 0)
    assert (result["before"], result["after"], result["status"]) == ("quarantined", "passed", "ok")
    deleted = {p.name for p in files["l2_due"]} | {files["l2_due_cut"].name}
    assert set(before) - set(contents(folder)) == deleted
    for name in bad | {files["tomorrow"].name, files["not_due_cut"].name}:
        assert (folder / name).read_bytes() == before[name]

    # Counts and names only: no address in the checks' results or the audit trail.
    for text in (json.dumps(l1), json.dumps(l2), json.dumps(audit_rows(estate), default=str)):
        assert not IPV4.search(text)


def test_only_the_gzip_files_l1_rewrites_tonight_are_read_by_the_check(estate, folder, estate_folder, monkeypatch):
    read = []
    real = validation.gzip_opens
    monkeypatch.setattr(validation, "gzip_opens", lambda path: read.append(path.name) or real(path))
    ctx = context(estate, folder)
    validate_rule(ctx, "L1")
    due_gz = {p.name for p in estate_folder["l1_due"] if p.name.endswith(".gz")} | {estate_folder["cut"].name}
    assert set(read) == due_gz and len(read) == len(due_gz)
    read.clear()
    validate_rule(ctx, "L2")
    assert read == []
    run_rule(ctx, "L1")
    read.clear()
    validate_rule(ctx, "L1")  # done files are known by their record: only the quarantined one is read
    assert read == [estate_folder["cut"].name]


def test_dry_run_leaves_the_after_check_failing_without_stopping(estate, folder, estate_folder):
    before = contents(folder)
    result = run_rule(context(estate, folder, dry_run=True), "L1")
    assert (result["anonymised"], result["quarantined"], result["remaining_after"]) == (3, 3, 3)
    assert (result["after"], result["status"]) == ("failed", "ok")
    assert contents(folder) == before


@pytest.mark.parametrize("rule_id", ["L1", "L2"])
def test_too_many_bad_files_stop_the_rule_with_nothing_changed(estate, folder, rule_id):
    daily(folder, 100, gz=True)
    daily(folder, 400, gz=True)
    daily(folder, 101, gz=True, cut=True)  # gzip_corrupt for L1
    write(folder, "access.log-20270101", lines(date(2027, 1, 1)))  # date_in_future for both
    before = contents(folder)
    with pytest.raises(QuarantineTooLarge, match="more than the 5% allowed") as stopped:
        run_rule(context(estate, folder), rule_id)
    expected = {"date_in_future": 1} | ({"gzip_corrupt": 1} if rule_id == "L1" else {})
    assert stopped.value.validation["reasons"] == expected
    assert contents(folder) == before
    assert audit_actions(estate) == ["validation_stopped"]


def test_a_clean_folder_passes_both_checks(estate, folder):
    for back in (5, 95, 96, 380):
        daily(folder, back, gz=back > 7)
    ctx = context(estate, folder)
    checked = validate_rule(ctx, "L1")
    assert (checked["verdict"], checked["reasons"], checked["tables"]) == ("passed", {}, {"files": 4})
    for rule_id, done in (("L1", "anonymised"), ("L2", "deleted")):
        result = run_rule(ctx, rule_id)
        assert (result[done], result["quarantined"], result["remaining_after"]) == (2 if rule_id == "L1" else 1, 0, 0)
        assert (result["before"], result["after"], result["status"]) == ("passed", "passed", "ok")
        assert "quarantined_files" not in result["extra"]


def test_an_empty_folder_passes_both_checks(estate, folder):
    result = run_rule(context(estate, folder), "L1")
    assert (result["before"], result["after"], result["remaining_after"]) == ("passed", "passed", 0)
