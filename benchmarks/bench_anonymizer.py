"""Benchmark: Lethe's log anonymiser against anonip 1.1.0 and a ``sed -E`` one-liner.

Builds a log of ``--lines`` lines by repeating the shared sample access log, then runs each tool
as a child process that reads the file and writes its result to a file on standard output:

* ours: ``python -m lethe.weblogs.anonymizer --input LOG`` (masks 8 and 80);
* anonip 1.1.0: ``python -m anonip --input LOG -4 8 -6 80`` (its command line);
* sed: ``sed -E`` replacing the last octet of a leading IPv4 address with 0 (``LC_ALL=C``), the
  floor for a line-oriented tool; it knows nothing of IPv6, ports or validation.

It prints lines per second for each and the ratios, checks that our output is byte-identical to
anonip's, and reports each child's peak RSS (``ru_maxrss`` of ``os.wait4``, i.e. getrusage of
the child); ours is also run on a tenth of the input to show that memory does not grow with the
size of the log.

Usage::

    python benchmarks/bench_anonymizer.py [--lines N] [--sample PATH] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO.parent / "shared"
SED_SCRIPT = r"s/^([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})\.[0-9]{1,3}/\1.0/"


# Children are started from this small launcher, not from the benchmark process: Linux charges
# a child's peak RSS with the RSS of the process it was spawned from (the memory it shares up to
# exec), so a lean spawner keeps that floor low. The launcher reports the child's rusage from
# os.wait4 and its own RSS (the floor below which a child's figure means nothing).
LAUNCHER = """
import os, resource, sys, time
result, argv = sys.argv[1], sys.argv[2:]
try:  # VmHWM: this process's own peak since exec, which is what a spawned child inherits
    with open("/proc/self/status") as status:
        floor = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:"))
except (OSError, StopIteration):
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_pid, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(result, "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {seconds} {usage.ru_maxrss} {floor}")
"""


@dataclass
class Run:
    """One child process: wall time, peak resident set size (KiB), output digest."""

    name: str
    seconds: float
    max_rss_kib: int
    floor_kib: int
    sha256: str


def build_log(sample: Path, lines: int, target: Path) -> None:
    """Write ``lines`` lines to ``target`` by repeating ``sample`` (whole copies, then a part)."""
    data = sample.read_bytes()
    if not data.endswith(b"\n"):
        data += b"\n"
    sample_lines = data.count(b"\n")
    copies, rest = divmod(lines, sample_lines)
    with target.open("wb") as out:
        for _ in range(copies):
            out.write(data)
        if rest:
            cut = 0
            for _ in range(rest):
                cut = data.index(b"\n", cut) + 1
            out.write(data[:cut])


def run_child(name: str, cmd: list[str], output: Path, env: dict[str, str] | None = None) -> Run:
    """Run ``cmd`` with standard output into ``output``; time it and read its own rusage."""
    result = output.with_suffix(".rusage")
    launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, str(result), *cmd]
    with output.open("wb") as out, tempfile.TemporaryFile() as err:
        subprocess.run(launcher, stdout=out, stderr=err, env=env, check=True)
        code, seconds, max_rss, floor = result.read_text().split()
        if int(code) != 0:
            err.seek(0)
            sys.exit(f"{name} failed ({code}): {err.read().decode(errors='replace')}")
    digest = hashlib.sha256()
    with output.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    # ru_maxrss is in KiB on Linux.
    return Run(name, float(seconds), int(max_rss), int(floor), digest.hexdigest())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines in the test log")
    parser.add_argument(
        "--sample",
        type=Path,
        default=Path(os.environ.get("LETHE_SHARED_DIR", DEFAULT_SHARED)) / "data" / "apache_access_sample.log",
        help="log to repeat (default: the shared Apache sample)",
    )
    parser.add_argument("--workdir", type=Path, help="directory for the files (default: the system temp dir)")
    args = parser.parse_args(argv)
    if args.lines < 10:
        parser.error("--lines must be at least 10")
    if not args.sample.is_file():
        parser.error(f"sample log not found: {args.sample}")
    if shutil.which("sed") is None:
        parser.error("sed is not installed")

    workdir = Path(tempfile.mkdtemp(prefix="lethe-bench-", dir=args.workdir))
    try:
        log = workdir / "access.log"
        small = workdir / "access-small.log"
        build_log(args.sample, args.lines, log)
        build_log(args.sample, args.lines // 10, small)
        size_mb = log.stat().st_size / 1e6
        print(f"log: {args.lines:,} lines, {size_mb:,.1f} MB (from {args.sample.name})")
        print(f"python {sys.version.split()[0]}, {sys.executable}")

        py_env = dict(os.environ, PYTHONPATH=str(REPO / "include"), PYTHONIOENCODING="utf-8")
        ours_cmd = [sys.executable, "-m", "lethe.weblogs.anonymizer", "-q", "-4", "8", "-6", "80"]
        runs = [
            run_child("ours", [*ours_cmd, "--input", str(log)], workdir / "ours.out", py_env),
            run_child(
                "anonip 1.1.0",
                [sys.executable, "-m", "anonip", "-4", "8", "-6", "80", "--input", str(log)],
                workdir / "anonip.out",
                py_env,
            ),
            run_child(
                "sed -E",
                ["sed", "-E", SED_SCRIPT, str(log)],
                workdir / "sed.out",
                dict(os.environ, LC_ALL="C"),
            ),
        ]
        ours_small = run_child("ours", [*ours_cmd, "--input", str(small)], workdir / "ours-small.out", py_env)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(f"{'tool':<14}{'seconds':>9}{'lines/s':>14}{'peak RSS':>12}")
    for run in runs:
        rate = args.lines / run.seconds
        rss = f"{run.max_rss_kib / 1024:.1f} MiB"
        if run.max_rss_kib <= run.floor_kib + 1024:
            rss = f"<= {rss}"  # at the launcher's floor: the tool itself used less
        print(f"{run.name:<14}{run.seconds:>9.2f}{rate:>14,.0f}{rss:>14}")
    floor = max(run.floor_kib for run in runs) / 1024
    print(f"(peak RSS cannot read below the launcher's own {floor:.1f} MiB)")
    ours, anon, sed = runs
    print()
    print(f"ours / anonip: {anon.seconds / ours.seconds:.1f}x the lines per second")
    print(f"ours / sed:    {sed.seconds / ours.seconds:.2f}x the lines per second")
    print(f"output identical to anonip's: {ours.sha256 == anon.sha256}")
    print(
        f"ours peak RSS: {ours_small.max_rss_kib / 1024:.1f} MiB at {args.lines // 10:,} lines, "
        f"{ours.max_rss_kib / 1024:.1f} MiB at {args.lines:,} lines"
    )
    return 0 if ours.sha256 == anon.sha256 else 1


if __name__ == "__main__":
    sys.exit(main())
