"""Rules L1 (truncate IP addresses after 90 days) and L2 (delete log files after 12 months).

Real files in a temporary folder, the real audit store (SQLite; one test on every backend), the
rules driven through the runner as the DAG drives them (scan, items, enforce each, summarise).
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from lethe.audit import audit_table
from lethe.config import load_policy
from lethe.demo.weblogs import GZIP_AFTER_DAYS, seed_weblogs
from lethe.periods import Period, add_period
from lethe.report import write_run_report
from lethe.runner import combine_items, enforce_item, run_rule, scan_rule, summarise_rule, work_items
from lethe.sources.weblogs.actions import TEMP_SUFFIX, list_log_files, temp_name
from lethe.weblogs.anonymizer import IpMasker, anonymise_stream

from conftest import BACKENDS, TEST_KEY, require_server

REPO = Path(__file__).resolve().parents[1]
PATTERN = re.compile(r"^access\.log-(?P<date>\d{8})(?P<gz>\.gz)?$")
AS_OF = datetime(2026, 11, 26)
SECOND = timedelta(seconds=1)
IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])")


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def backend(request) -> str:
    """SQLite unless a test asks for the servers (indirect parametrisation)."""
    name = getattr(request, "param", "sqlite")
    require_server(name)
    return name


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "weblogs"
    path.mkdir()
    return path


def context(estate, folder: Path, as_of: datetime = AS_OF, *, dry_run: bool = False, run_id: str = "test-run"):
    def folder_for(conn_id: str) -> str:
        assert conn_id == "weblogs"
        return str(folder)

    return estate.context(as_of, dry_run=dry_run, run_id=run_id, folder_for=folder_for)


def run(estate, folder, rule_id, as_of=AS_OF, **kwargs) -> dict:
    return run_rule(context(estate, folder, as_of, **kwargs), rule_id)


def line(client: str, when: datetime, path: str = "/index.html") -> bytes:
    stamp = when.strftime("%d/%b/%Y:%H:%M:%S +0000")
    return (
        f'{client} - - [{stamp}] "GET {path} HTTP/1.1" 200 1234 "-" "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"\n'
    ).encode()


def write_log(folder: Path, day: date, data: bytes, *, gz: bool = False, mode: int = 0o640) -> Path:
    path = folder / (f"access.log-{day:%Y%m%d}" + (".gz" if gz else ""))
    if gz:
        with open(path, "wb") as raw, gzip.GzipFile(filename=path.name[:-3], mode="wb", fileobj=raw, mtime=0) as out:
            out.write(data)
    else:
        path.write_bytes(data)
    os.chmod(path, mode)
    return path


def day_log(day: date, clients: list[str]) -> bytes:
    start = datetime(day.year, day.month, day.day)
    return b"".join(line(c, start + timedelta(minutes=7 * i)) for i, c in enumerate(clients))


def read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expected_anonymised(data: bytes) -> bytes:
    """What the anonymiser makes of ``data`` (its own tests check it against anonip)."""
    import io

    out = io.BytesIO()
    anonymise_stream(io.BytesIO(data), out, IpMasker())
    return out.getvalue()


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry of the folder: bytes, mode and modification time (symlinks not followed)."""
    state = {}
    for entry in sorted(folder.iterdir()):
        st = entry.lstat()
        if entry.is_symlink():
            state[entry.name] = ("link", os.readlink(entry))
        elif entry.is_dir():
            state[entry.name] = ("dir", st.st_mode)
        else:
            state[entry.name] = (entry.read_bytes(), st.st_mode, st.st_mtime_ns)
    return state


def audit_rows(estate) -> list[dict]:
    with estate.engine("lethe_audit").connect() as conn:
        return [dict(r) for r in conn.execute(select(audit_table).order_by(audit_table.c.seq)).mappings()]


def file_records(estate, action: str, *, dry_run: bool = False) -> list[dict]:
    return [
        json.loads(r["details"]) for r in audit_rows(estate) if r["action"] == action and bool(r["dry_run"]) == dry_run
    ]


def clients_of(data: bytes) -> list[str]:
    return [ln.split(b" ", 1)[0].decode("utf-8", "replace") for ln in data.splitlines() if ln]


# --------------------------------------------------------------------------- address forms, gzip


def test_ipv4_ipv6_and_port_forms_are_truncated(estate, folder):
    day = date(2026, 8, 1)
    start = datetime(2026, 8, 1, 10)
    forms = {  # client field -> the field after L1 (IPv4: last 8 bits; IPv6: last 80 bits)
        "83.149.9.216": "83.149.9.0",
        "83.149.9.216:443": "83.149.9.0:443",
        "2001:db8:85a3:8d3:1319:8a2e:370:7348": "2001:db8:85a3::",
        "2a02:1205:5050:3f00::1": "2a02:1205:5050::",
        "[2001:db8:85a3:8d3:1319:8a2e:370:7348]:8443": "[2001:db8:85a3::]:8443",
        "::ffff:83.149.9.216": "::",
        "fe80::1ff:fe23:4567:890a": "fe80::",
        "10.1.2.3": "10.1.2.0",
    }
    data = b"".join(line(client, start + timedelta(seconds=i)) for i, client in enumerate(forms))
    path = write_log(folder, day, data)
    result = run(estate, folder, "L1")
    assert result["anonymised"] == 1
    assert result["extra"]["addresses_truncated"] == len(forms)
    assert result["extra"]["lines"] == len(forms)
    assert result["extra"]["unparseable_lines"] == 0
    out = path.read_bytes()
    assert clients_of(out) == list(forms.values())
    # Only the client field changed.
    for before, after in zip(data.splitlines(), out.splitlines(), strict=False):
        assert before.split(b" ", 1)[1] == after.split(b" ", 1)[1]


def test_gzip_round_trip_keeps_compression_and_mode(estate, folder):
    clients = ["83.149.9.216", "2001:db8::7334", "66.249.73.135"] * 50
    gz_path = write_log(folder, date(2026, 7, 1), day_log(date(2026, 7, 1), clients), gz=True, mode=0o640)
    plain_path = write_log(folder, date(2026, 7, 2), day_log(date(2026, 7, 2), clients), mode=0o604)
    originals = {p: read(p) for p in (gz_path, plain_path)}
    result = run(estate, folder, "L1")
    assert result["anonymised"] == 2 and result["remaining_after"] == 0
    raw = gz_path.read_bytes()
    assert raw[:2] == b"\x1f\x8b", "still gzip-compressed"
    with gzip.open(gz_path, "rb") as handle:
        assert handle.read() == expected_anonymised(originals[gz_path])
    assert plain_path.read_bytes()[:2] != b"\x1f\x8b", "a plain file stays plain"
    assert plain_path.read_bytes() == expected_anonymised(originals[plain_path])
    assert gz_path.stat().st_mode & 0o7777 == 0o640
    assert plain_path.stat().st_mode & 0o7777 == 0o604
    assert set(clients_of(read(gz_path))) == {"83.149.9.0", "2001:db8::", "66.249.73.0"}
    # The record: name, lines, counts and both hashes, the after-hash that of the file now.
    done = {d["file"]: d for d in file_records(estate, "ip_truncated")}
    assert done[gz_path.name]["lines"] == len(clients)
    assert done[gz_path.name]["addresses_truncated"] == len(clients)
    assert done[gz_path.name]["unparseable_lines"] == 0
    assert done[gz_path.name]["sha256_after"] == sha(gz_path)
    assert done[gz_path.name]["sha256_before"] != done[gz_path.name]["sha256_after"]
    assert not list(folder.glob(f"*{TEMP_SUFFIX}"))


def test_garbage_long_lines_and_invalid_utf8_are_kept_without_loss(estate, folder):
    long_tail = b"x" * (3 << 20)  # longer than a read chunk
    lines = [
        line("83.149.9.216", datetime(2026, 8, 1, 1)),
        b"\x00\x01\x02 binary garbage \xff\xfe\xfd\n",
        b'83.149.9.216 - - [01/Aug/2026:01:00:00 +0000] "GET /' + long_tail + b' HTTP/1.1" 200 1\n',
        b"not-an-address " + long_tail + b"\n",
        b'2001:db8::1 - - [01/Aug/2026:02:00:00 +0000] "GET /caf\xe9 HTTP/1.1" 200 1 "-" "\xc3\x28"\r\n',
        b"\xe9\xe9\xe9 - - invalid UTF-8 where the address should be\n",
        b"\n",
        b"   \n",
        b'- - - [01/Aug/2026:03:00:00 +0000] "GET / HTTP/1.1" 400 0 "-" "-"\n',
        b'66.249.73.135 - - [01/Aug/2026:04:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "no line end"',
    ]
    data = b"".join(lines)
    for gz, day in ((False, date(2026, 8, 1)), (True, date(2026, 8, 2))):
        write_log(folder, day, data, gz=gz)
    result = run(estate, folder, "L1")
    assert result["anonymised"] == 2
    assert result["extra"]["lines"] == 2 * len(lines)
    assert result["extra"]["addresses_truncated"] == 2 * 4
    assert result["extra"]["unparseable_lines"] == 2 * 4  # garbage, long garbage, invalid UTF-8, "-"
    for path in list_log_files(folder, PATTERN):
        out = read(path.path)
        assert len(out) == len(data) - 2 - 2 - 1 - 2  # ".216"->".0" twice, "::1"->"::", ".135"->".0"
        out_lines = out.splitlines(keepends=True)
        assert len(out_lines) == len(lines)
        for before, after in zip(lines, out_lines, strict=False):
            if before.split(b" ", 1)[0] in (b"83.149.9.216", b"2001:db8::1", b"66.249.73.135"):
                assert before.split(b" ", 1)[1] == after.split(b" ", 1)[1]
            else:
                assert after == before, "a line without an address is kept byte for byte"


# --------------------------------------------------------------------------- deadlines


@pytest.mark.parametrize(
    "rule_id, day, period",
    [
        ("L1", date(2026, 8, 28), Period(days=90)),
        ("L1", date(2024, 2, 29), Period(days=90)),  # leap day
        ("L1", date(2025, 12, 31), Period(days=90)),  # year end
        ("L2", date(2025, 11, 26), Period(months=12)),
        ("L2", date(2024, 2, 29), Period(months=12)),  # leap day: due on 2025-02-28
        ("L2", date(2025, 1, 31), Period(months=12)),  # month end
        ("L2", date(2023, 2, 28), Period(months=12)),  # 2024-02-28, not the 29th
    ],
)
def test_due_exactly_at_the_deadline_not_one_second_before(estate, folder, rule_id, day, period):
    path = write_log(folder, day, day_log(day, ["83.149.9.216", "2001:db8::1"]), gz=True)
    deadline = add_period(datetime(day.year, day.month, day.day), period)
    if (rule_id, day) == ("L2", date(2024, 2, 29)):
        assert deadline == datetime(2025, 2, 28)
    if (rule_id, day) == ("L2", date(2023, 2, 28)):
        assert deadline == datetime(2024, 2, 28)
    before = snapshot(folder)

    early = run(estate, folder, rule_id, deadline - SECOND)
    assert early["eligible"] == 0 and early["deleted"] == 0 and early["anonymised"] == 0
    assert snapshot(folder) == before

    on_time = run(estate, folder, rule_id, deadline)
    assert on_time["eligible"] == 1 and on_time["overdue_before"] == 0
    if rule_id == "L1":
        assert on_time["anonymised"] == 1
        assert set(clients_of(read(path))) == {"83.149.9.0", "2001:db8::"}
    else:
        assert on_time["deleted"] == 1
        assert not path.exists()
    assert on_time["remaining_after"] == 0


def test_overdue_counts_files_past_the_deadline_at_the_start_of_the_run(estate, folder):
    # L1: due today (on time), due yesterday (overdue by the nightly run it missed), overdue long.
    for back in (90, 91, 120):
        write_log(folder, (AS_OF - timedelta(days=back)).date(), line("83.149.9.216", AS_OF), gz=True)
    # L2: due today, and overdue.
    for day in (date(2025, 11, 26), date(2025, 11, 25)):
        write_log(folder, day, line("83.149.9.216", AS_OF), gz=True)
    l1 = run(estate, folder, "L1")
    assert (l1["eligible"], l1["anonymised"], l1["overdue_before"]) == (3, 3, 2 + 2)
    assert l1["extra"]["files_left_for_deletion"] == 2
    l2 = run(estate, folder, "L2")
    assert (l2["eligible"], l2["deleted"], l2["overdue_before"]) == (2, 2, 1)
    again = run(estate, folder, "L1")
    assert again["overdue_before"] == 0 and again["eligible"] == 0


def test_l1_leaves_a_file_due_for_deletion_to_l2(estate, folder):
    old = write_log(folder, date(2025, 11, 1), day_log(date(2025, 11, 1), ["83.149.9.216"]), gz=True)
    content = old.read_bytes()
    l1 = run(estate, folder, "L1")
    assert l1["eligible"] == 0 and l1["anonymised"] == 0
    assert l1["extra"]["files_left_for_deletion"] == 1
    assert old.read_bytes() == content
    l2 = run(estate, folder, "L2")
    assert l2["deleted"] == 1 and not old.exists()
    (deleted,) = file_records(estate, "file_deleted")
    assert deleted["file"] == old.name and deleted["was_anonymised"] is False
    assert deleted["sha256"] == hashlib.sha256(content).hexdigest()


# --------------------------------------------------------------------------- dry run, idempotence


def test_dry_run_changes_nothing(estate, folder):
    for back in (10, 100, 200, 400):
        day = (AS_OF - timedelta(days=back)).date()
        write_log(folder, day, day_log(day, ["83.149.9.216", "2001:db8::1"]), gz=back > GZIP_AFTER_DAYS)
    before = snapshot(folder)
    l1 = run(estate, folder, "L1", dry_run=True)
    l2 = run(estate, folder, "L2", dry_run=True)
    assert snapshot(folder) == before
    assert (l1["anonymised"], l1["remaining_after"], l1["extra"]["addresses_truncated"]) == (2, 2, 4)
    assert (l2["deleted"], l2["remaining_after"]) == (1, 1)
    rows = audit_rows(estate)
    assert rows and all(r["dry_run"] for r in rows)
    assert {r["action"] for r in rows} == {"would_ip_truncated", "would_file_deleted", "rule_summary"}
    # A dry run marks nothing as done: the real run does all of it.
    assert run(estate, folder, "L1")["anonymised"] == 2
    assert run(estate, folder, "L2")["deleted"] == 1


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_second_run_changes_nothing(estate, folder, backend):
    for back in (30, 95, 96, 300, 370):
        day = (AS_OF - timedelta(days=back)).date()
        write_log(
            folder, day, day_log(day, ["83.149.9.216", "2001:db8::1", "66.249.73.135"]), gz=back > GZIP_AFTER_DAYS
        )
    first = {rule: run(estate, folder, rule, run_id="first") for rule in ("L1", "L2")}
    assert first["L1"]["anonymised"] == 3 and first["L2"]["deleted"] == 1
    after_first = snapshot(folder)
    entries = len(audit_rows(estate))

    second = {rule: run(estate, folder, rule, run_id="second") for rule in ("L1", "L2")}
    assert snapshot(folder) == after_first
    assert (second["L1"]["eligible"], second["L1"]["anonymised"]) == (0, 0)
    assert second["L1"]["extra"]["files_skipped_done"] == 3
    assert second["L1"]["extra"]["changed_since_anonymised"] == 0
    assert (second["L2"]["eligible"], second["L2"]["deleted"]) == (0, 0)
    new = audit_rows(estate)[entries:]
    assert [r["action"] for r in new] == ["rule_summary", "rule_summary"]
    assert context(estate, folder).audit.verify().ok


def test_a_file_changed_since_anonymised_is_noticed_and_anonymised_again(estate, folder):
    day = date(2026, 8, 1)
    path = write_log(folder, day, day_log(day, ["83.149.9.216"] * 3), gz=True)
    assert run(estate, folder, "L1")["anonymised"] == 1
    # Someone writes clear addresses back into it (a restore from backup, a late append).
    write_log(folder, day, read(path) + line("66.249.73.135", datetime(2026, 8, 1, 23)), gz=True)
    scanned = scan_rule(context(estate, folder), "L1")
    assert scanned["eligible"] == 1 and scanned["extra"]["changed_since_anonymised"] == 1
    assert work_items(context(estate, folder), "L1") == [
        {"name": path.name, "date": "2026-08-01", "changed_since_anonymised": True}
    ]
    again = run(estate, folder, "L1")
    assert again["anonymised"] == 1 and again["extra"]["changed_since_anonymised"] == 1
    assert again["extra"]["addresses_truncated"] == 4
    assert set(clients_of(read(path))) == {"83.149.9.0", "66.249.73.0"}
    assert [d["changed_since_anonymised"] for d in file_records(estate, "ip_truncated")] == [False, True]
    # Touching a file (same bytes, new time stamps) is not a change.
    os.utime(path, (time.time() + 60, time.time() + 60))
    third = run(estate, folder, "L1")
    assert third["anonymised"] == 0 and third["extra"]["files_skipped_done"] == 1


# --------------------------------------------------------------------------- crashes


CRASH_SCRIPT = r"""
import json, sys, time
from datetime import datetime

import lethe.sources.weblogs.actions as logs
from lethe.runner import Engines, enforce_item, make_context

args = json.loads(sys.argv[1])
real_stream = logs.anonymise_stream


class SlowReader:
    # Small, slow reads, so that the parent can kill this process while it writes.
    def __init__(self, src):
        self.src = src

    def read(self, size=-1):
        time.sleep(0.002)
        return self.src.read(size)


def slow_stream(src, dst, masker, chunk_size=None):
    return real_stream(SlowReader(src), dst, masker, chunk_size=1 << 16)


logs.anonymise_stream = slow_stream
ctx = make_context(run_id="killed", dag_id="test_dag", task_id="test_task",
                   as_of=datetime.fromisoformat(args["as_of"]), dry_run=False, key=args["key"],
                   engines=Engines(resolve=lambda conn_id: args["audit_url"]),
                   folder_for=lambda conn_id: args["folder"])
enforce_item(ctx, "L1", {"name": args["name"]})
print("finished", flush=True)
"""


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def big_log(day: date, megabytes: int) -> bytes:
    rng = random.Random(7)
    clients = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(500)]
    clients += [str(ipaddress.IPv6Address(rng.getrandbits(128))) for _ in range(100)]
    start = datetime(day.year, day.month, day.day)
    one = []
    size = 0
    i = 0
    while size < megabytes << 20:
        piece = line(rng.choice(clients), start + timedelta(seconds=i % 86_400), f"/page/{i}")
        one.append(piece)
        size += len(piece)
        i += 1
    return b"".join(one)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_killed_mid_rewrite_leaves_the_whole_file(estate, folder, gz):
    day = date(2026, 8, 1)
    data = big_log(day, 12)
    path = write_log(folder, day, data, gz=gz, mode=0o640)
    original = path.read_bytes()
    tmp = folder / temp_name(path.name)
    args = {
        "as_of": AS_OF.isoformat(),
        "key": TEST_KEY,
        "audit_url": estate.urls["lethe_audit"],
        "folder": str(folder),
        "name": path.name,
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, json.dumps(args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while size_of(tmp) <= (64 << 10):
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the rewrite never started writing"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    # The whole old file (the rename never happened), a half-written temporary file beside it.
    assert path.read_bytes() == original
    assert tmp.exists()
    assert [f.name for f in list_log_files(folder, PATTERN)] == [path.name]
    assert [i["name"] for i in work_items(context(estate, folder), "L1")] == [path.name]
    assert work_items(context(estate, folder), "L2") == []
    assert file_records(estate, "ip_truncate_intent") == []

    # A normal run completes it and clears the temporary file.
    result = run(estate, folder, "L1")
    assert result["anonymised"] == 1 and result["remaining_after"] == 0
    assert read(path) == expected_anonymised(data)
    assert path.stat().st_mode & 0o7777 == 0o640
    assert not tmp.exists()
    assert run(estate, folder, "L1")["anonymised"] == 0


def test_crash_between_rename_and_record_is_recovered(estate, folder, monkeypatch):
    import lethe.files as logs

    day = date(2026, 8, 1)
    path = write_log(folder, day, day_log(day, ["83.149.9.216"] * 5), gz=True)

    def crash(_folder):
        raise OSError("power cut")

    monkeypatch.setattr(logs, "fsync_folder", crash)
    with pytest.raises(OSError, match="power cut"):
        enforce_item(context(estate, folder), "L1", {"name": path.name})
    monkeypatch.undo()
    # Renamed, but only the intent is recorded.
    assert set(clients_of(read(path))) == {"83.149.9.0"}
    assert len(file_records(estate, "ip_truncate_intent")) == 1
    assert file_records(estate, "ip_truncated") == []

    result = run(estate, folder, "L1")
    assert result["eligible"] == 0 and result["anonymised"] == 0
    assert result["extra"]["files_skipped_done"] == 1 and result["extra"]["records_recovered"] == 1
    (done,) = file_records(estate, "ip_truncated")
    assert done["recovered"] is True and done["sha256_after"] == sha(path)
    assert "records_recovered" not in run(estate, folder, "L1")["extra"]


def test_crash_before_rename_leaves_the_old_file_and_is_redone(estate, folder, monkeypatch):
    import lethe.files as logs

    day = date(2026, 8, 1)
    path = write_log(folder, day, day_log(day, ["83.149.9.216"] * 5))
    original = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(logs.os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        enforce_item(context(estate, folder), "L1", {"name": path.name})
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert not (folder / temp_name(path.name)).exists()
    result = run(estate, folder, "L1")
    assert result["anonymised"] == 1 and "records_recovered" not in result["extra"]
    assert set(clients_of(read(path))) == {"83.149.9.0"}


def test_crash_after_delete_before_record_is_recovered(estate, folder, monkeypatch):
    import lethe.files as logs

    path = write_log(folder, date(2025, 1, 10), line("83.149.9.216", AS_OF), gz=True)
    monkeypatch.setattr(logs, "fsync_folder", lambda _folder: (_ for _ in ()).throw(OSError("power cut")))
    with pytest.raises(OSError):
        enforce_item(context(estate, folder), "L2", {"name": path.name})
    monkeypatch.undo()
    assert not path.exists()
    assert file_records(estate, "file_deleted") == []
    result = run(estate, folder, "L2")
    assert result["eligible"] == 0 and result["extra"]["records_recovered"] == 1
    (done,) = file_records(estate, "file_deleted")
    assert done["file"] == path.name and done["recovered"] is True


@pytest.mark.parametrize("damage", ["not gzip", "cut short"])
def test_a_damaged_gzip_file_is_quarantined_and_fails_loudly_if_forced(estate, folder, damage):
    day = date(2026, 8, 1)
    bad = write_log(folder, day, day_log(day, ["83.149.9.216"] * 200), gz=True)
    bad.write_bytes(b"83.149.9.216 plain text\n" if damage == "not gzip" else bad.read_bytes()[:-40])
    content = bad.read_bytes()
    good = write_log(folder, date(2026, 8, 2), day_log(date(2026, 8, 2), ["83.149.9.216"]), gz=True)
    ctx = context(estate, folder)
    scanned = scan_rule(ctx, "L1")
    # The checks before L1 quarantine it (tests/test_weblogs_validation.py): not a work item.
    assert scanned["quarantined"] == 1 and scanned["quarantine"] == {"gzip_corrupt": 1}
    assert [i["name"] for i in work_items(ctx, "L1")] == [good.name]
    with pytest.raises((OSError, EOFError)):
        enforce_item(ctx, "L1", {"name": bad.name})
    assert bad.read_bytes() == content
    assert not list(folder.glob(f"*{TEMP_SUFFIX}"))
    assert file_records(estate, "ip_truncate_intent") == []
    # The other files go on; the quarantined one is reported, not counted as remaining.
    done = enforce_item(ctx, "L1", {"name": good.name})
    assert done["outcome"] == "anonymised"
    summary = summarise_rule(ctx, "L1", combine_items(ctx, "L1", scanned, [done]))
    assert summary["anonymised"] == 1 and summary["remaining_after"] == 0 and summary["quarantined"] == 1
    assert summary["status"] == "ok"


def test_left_over_temporary_files_are_removed_after_a_real_run(estate, folder):
    write_log(folder, date(2026, 11, 20), line("83.149.9.216", AS_OF))  # not due
    stale = folder / temp_name("access.log-20260801.gz")
    stale.write_bytes(b"half a file")
    other = folder / ".notes.lethe-tmp"  # not a temporary file of a log file: not Lethe's
    other.write_bytes(b"x")
    assert "stale_temp_files_removed" not in run(estate, folder, "L1", dry_run=True)["extra"]
    assert stale.exists()
    assert run(estate, folder, "L1")["extra"]["stale_temp_files_removed"] == 1
    assert not stale.exists() and other.exists()


# --------------------------------------------------------------------------- what is never touched


def test_names_not_matching_the_pattern_are_never_touched(estate, folder, tmp_path):
    old = datetime(2024, 1, 1)
    outside = tmp_path / "elsewhere.log"
    outside.write_bytes(line("83.149.9.216", old))
    (folder / "access.log").write_bytes(line("83.149.9.216", old))
    (folder / "error.log-20240101").write_bytes(line("83.149.9.216", old))
    (folder / "access.log-20240101.bak").write_bytes(line("83.149.9.216", old))
    (folder / "access.log-20241301").write_bytes(line("83.149.9.216", old))  # no such date
    (folder / "xaccess.log-20240101").write_bytes(line("83.149.9.216", old))
    (folder / "access.log-20240102").symlink_to(outside)
    (folder / "access.log-20240103").mkdir()
    before = snapshot(folder)
    outside_before = outside.read_bytes()
    # The name without a real date is quarantined by the checks: here 1 of 1 file, let through.
    policy = load_policy()
    lenient = policy.model_copy(
        update={"validation": policy.validation.model_copy(update={"max_quarantine_share": 1.0})}
    )
    for dry_run in (True, False):
        ctx = estate.context(AS_OF, dry_run=dry_run, policy=lenient, folder_for=lambda conn_id: str(folder))
        l1, l2 = run_rule(ctx, "L1"), run_rule(ctx, "L2")
        assert l1["eligible"] == l2["eligible"] == 0
        assert l1["quarantine"] == l2["quarantine"] == {"date_unparseable": 1}
    assert snapshot(folder) == before
    assert outside.read_bytes() == outside_before
    with pytest.raises(ValueError):
        enforce_item(context(estate, folder), "L2", {"name": "access.log"})
    with pytest.raises(ValueError):
        enforce_item(context(estate, folder), "L1", {"name": "../elsewhere.log"})
    assert snapshot(folder) == before


def test_missing_folder_fails_before_anything_changes(estate, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        scan_rule(context(estate, tmp_path / "nowhere"), "L1")


# --------------------------------------------------------------------------- the demo estate


def test_demo_estate_ends_with_the_right_files_truncated_and_deleted(estate, folder, tmp_path, caplog):
    caplog.set_level("INFO", logger="lethe")
    info = seed_weblogs(folder, AS_OF)
    days = [datetime.strptime(PATTERN.match(n).group("date"), "%Y%m%d").date() for n in info["files"]]
    assert days[-1] == date(2026, 11, 25) and days[0] <= date(2025, 11, 1), "a year and some weeks"
    assert len(days) == len(set(days)) == (days[-1] - days[0]).days + 1, "one file a day"
    for name, day in zip(info["files"], days, strict=False):
        assert name.endswith(".gz") == ((AS_OF.date() - day).days > GZIP_AFTER_DAYS)
    sizes = [len(read(folder / n).splitlines()) for n in info["files"]]
    assert 100 <= min(sizes) and max(sizes) <= 1000, "a few hundred lines each"
    every_client = {c for n in info["files"] for c in clients_of(read(folder / n))}
    versions = {
        ipaddress.ip_address(c).version
        for c in every_client
        if not c.endswith(".net") and not c.endswith(".org") and not c.endswith(".com")
    }
    assert versions == {4, 6}
    before = snapshot(folder)

    # As of 2026-11-26: L2 deletes files dated up to 2025-11-26 (12 months); L1 truncates the
    # addresses of files dated 2025-11-27 .. 2026-08-28 (90 days); newer files stay as they are.
    results = {rule: run(estate, folder, rule, run_id="demo") for rule in ("L1", "L2")}
    last_deleted, last_truncated = date(2025, 11, 26), date(2026, 8, 28)
    deleted = {n for n, d in zip(info["files"], days, strict=False) if d <= last_deleted}
    truncated = {n for n, d in zip(info["files"], days, strict=False) if last_deleted < d <= last_truncated}
    kept = {n for n, d in zip(info["files"], days, strict=False) if d > last_truncated}
    assert deleted and truncated and kept
    assert results["L2"]["deleted"] == len(deleted) and results["L2"]["remaining_after"] == 0
    assert results["L1"]["anonymised"] == len(truncated) and results["L1"]["remaining_after"] == 0
    assert results["L1"]["extra"]["files_left_for_deletion"] == len(deleted)
    assert results["L1"]["extra"]["unparseable_lines"] > 0  # host names, kept as they are
    assert sorted(p.name for p in folder.iterdir()) == sorted(truncated | kept | {"access.log", "error.log"})
    for name in kept | {"access.log", "error.log"}:
        assert (folder / name).read_bytes() == before[name][0]
    for name in truncated:
        for client in clients_of(read(folder / name)):
            if client.endswith((".net", ".org", ".com")):
                continue
            address = ipaddress.ip_address(client)
            assert int(address) & ((1 << (8 if address.version == 4 else 80)) - 1) == 0
        assert (folder / name).stat().st_mode & 0o7777 == before[name][1] & 0o7777
    assert {d["file"] for d in file_records(estate, "ip_truncated")} == truncated
    assert {d["file"] for d in file_records(estate, "file_deleted")} == deleted
    assert context(estate, folder).audit.verify().ok

    # No address of the input is in the audit trail, the report or the log.
    report_path, failed = write_run_report(
        dag_id="lethe_weblogs_retention",
        root=tmp_path / "reports",
        results=results,
        run={"run_id": "demo", "as_of": AS_OF.isoformat(), "dry_run": False, "rules": ["L1", "L2"]},
    )
    assert not failed
    html = (report_path.parent / "report.html").read_text()
    assert "addresses truncated" in html and "files skipped done" in html
    texts = {
        "audit": json.dumps(audit_rows(estate), default=str),
        "report": report_path.read_text() + html,
        "log": caplog.text,
    }
    ipv6 = {c for c in every_client if ":" in c}
    for where, text in texts.items():
        assert not IPV4.search(text), f"an IPv4 address in the {where}"
        lowered = text.lower()
        for address in ipv6:
            assert address not in lowered and ipaddress.ip_address(address).exploded not in lowered, where

    # Nothing left to do as of the same day.
    again = {rule: run(estate, folder, rule, run_id="demo-2") for rule in ("L1", "L2")}
    assert again["L1"]["anonymised"] == again["L2"]["deleted"] == 0
    assert again["L1"]["extra"]["files_skipped_done"] == len(truncated)


# --------------------------------------------------------------------------- the DAG


@pytest.mark.airflow
def test_weblogs_dag_maps_one_enforce_task_per_file(tmp_path):
    script = (
        "from airflow.dag_processing.dagbag import DagBag\n"
        "import json, sys\n"
        "bag = DagBag(dag_folder=sys.argv[1])\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "dag = bag.dags['lethe_weblogs_retention']\n"
        "print(json.dumps({t.task_id: [type(t).__name__, getattr(t, 'map_index_template', None)]"
        " for t in dag.tasks}))\n"
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    out = subprocess.run(
        [sys.executable, "-c", script, str(REPO / "dags" / "lethe_weblogs_retention.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    tasks = json.loads(out.stdout.strip().splitlines()[-1])
    for rule in ("L1", "L2"):
        assert {f"{rule}.scan", f"{rule}.items", f"{rule}.enforce", f"{rule}.summarise"} <= set(tasks)
        kind, template = tasks[f"{rule}.enforce"]
        assert kind.endswith("MappedOperator") and template == "{{ lethe_item }}"
    assert "report" in tasks and "resolve_run" in tasks
