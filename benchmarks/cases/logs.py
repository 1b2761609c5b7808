"""Benchmark case ``logs``: Lethe's log anonymiser against anonip 1.1.0 and ``sed -E``.

The logs, each built in a temporary folder (under ``--logs-workdir``) just before it is measured
and removed just after:

* **sample N, plain** for each N of ``--logs-lines`` (default 1M and 10M lines) and **sample N,
  gzip** for each N of ``--logs-gzip-lines`` (default 1M): the shared Apache sample
  (``$LETHE_SHARED_DIR/data/apache_access_sample.log``, by default ``../shared``; 10,000 lines)
  repeated, the last copy cut to size. The gzip log is the sample compressed once (level 6)
  and that member repeated: a multi-member file, as ``cat`` of ``.gz`` files gives, which every
  tool here reads as one stream (deflate looks back 32 KiB at most, so compressing each 2.4 MB
  copy on its own changes nothing for the reader).
* **distinct M, plain**, M = ``--logs-distinct`` (default 1M; 0 for none): the sample's lines in
  turn, each with a client address of its own, IPv4 and IPv6 alternately, so that no cache of
  addresses flatters the result. IPv4: ``k * 2654435761 + 2654435769 mod 2**32`` (a bijection,
  so all distinct). IPv6: in 2000::/3, every /48 (what the default mask keeps) distinct too,
  written as servers log them (lower case, compressed): three in four with all eight hextets,
  one in four with "::" for three zero hextets.

Each tool runs as a child process (:func:`harness.run_child`: wall time and peak RSS), the two
tools of a row taking turns, ``--repeat`` times (default 3); the medians are compared. The masks
are anonip's defaults (8 and 80). The tools:

* **Lethe**: ``python -m lethe.weblogs.anonymizer -q -4 8 -6 80 --input LOG``, the command behind
  ``lethe anonymise-log`` without the start-up of the ``lethe`` command itself (its Typer app
  imports the whole CLI: about 0.3 s that have nothing to do with anonymising). It runs the
  masking code of rule L1 (``IpMasker``, ``anonymise_stream``); L1 also hashes what it reads and
  writes for its audit record, which is not measured here. A plain log goes to standard output.
  A gzip log is read and written by Lethe itself, as L1 does: ``--output OUT.gz``, level 6,
  with the fsync and rename of the output that L1 does too.
* **anonip 1.1.0**: ``python -m anonip -4 8 -6 80 --input LOG``; for a gzip log,
  ``gzip -dc LOG | python -m anonip -4 8 -6 80 | gzip -6``.
* **sed**: ``LC_ALL=C sed -E`` with one expression for IPv4 (the last octet of a leading dotted
  quad becomes 0) and one for IPv6 (a leading address keeps its first three hextets, then
  "::"); for a gzip log, ``gzip -dc LOG | sed ... | gzip -6``. The three processes of a pipeline
  run at once, on both cores. sed validates nothing and knows no other form: it is the floor
  for a line-oriented tool, not an equivalent.

The rows, targets as in the issue (ratio = Lethe's median time / the baseline's):

* against sed (at most 1.0), one per log, on the whole log;
* against anonip (at most 0.1), one per kind of log (sample plain, sample gzip, distinct), with
  both tools on the first ``--logs-anonip-lines`` lines (default 100,000) of that kind of log.
  anonip needs about 20 to 40 us of CPU a line here (the IPv6 lines are the slow ones): three
  runs on the 1M and 10M logs would take longer than the whole of ``make bench`` may. Both
  tools run on the same input, three times each, and Lethe's start-up, a larger share of a
  short run, counts against Lethe; anonip has no cache and nothing that grows with the input,
  so its time per line does not depend on the length of the log.

The 10M gzip log is not measured by default: its runs take ten times as long as the 1M gzip
log's (gzip(1) alone compresses 2.4 GB at level 6 in each sed run), several minutes on this
machine, which the budget of the case does not have. ``--logs-gzip-lines 1000000,10000000``
adds it.

On gzip logs the target against anonip is out of reach on this 2-core machine. Lethe must write
the gzip itself at level 6, as L1 does, and zlib needs about 3 us of CPU a line for that alone,
about a tenth of anonip's time a line once Lethe's start-up (about 0.1 s) is added on the first
100,000 lines, before reading or masking anything; in anonip's pipeline, gzip(1) does the same
work beside anonip on the other core. A missed row's note gives that run's numbers.

Checks besides time, which make a row miss when they fail:

* Lethe's output is byte-identical to anonip's on the anonip rows' input (gzip: decompressed).
  On the whole logs it is compared with sed's and the result recorded: these logs hold only
  addresses in the forms sed knows, where sed and anonip agree.
* Peak memory is flat: Lethe's peak RSS on the largest sample log of a kind (plain, gzip) is at
  most 20 % above the one on the smallest; the sed row of the largest log carries the check.

A row that misses gets a note with what made it miss, in the run's numbers. The row furthest
past its target gets a profile: Lethe runs once more on that log under pyinstrument, and the
text report is saved as ``<results>/logs-<log>.profile.txt`` (``--logs-profile``: missed, always,
never).
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import harness
from benchmarks.harness import CaseResult, Measurement, run_child

NAME = "logs"
MEMORY_GROWTH_LIMIT = 0.20  # Lethe's peak RSS on the largest log over the smallest, minus 1
GZIP_LEVEL = 6  # what L1 writes, and gzip(1)'s default
DEFAULT_SHARED = harness.REPO.parent / "shared"
MASKS = ["-4", "8", "-6", "80"]
# No anchor after the address: the quickest sed gets, and the same result on these logs.
SED_IPV4 = r"s/^([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})\.[0-9]{1,3}/\1.0/"
SED_IPV6 = r"s/^([0-9a-fA-F]{1,4}:[0-9a-fA-F]{1,4}:[0-9a-fA-F]{1,4}):[0-9a-fA-F:]*/\1::/"
BLOCK = 1 << 20


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--logs-lines",
        default="1000000,10000000",
        help="sizes of the plain logs built from the sample, in lines, comma-separated (default: %(default)s)",
    )
    group.add_argument(
        "--logs-gzip-lines",
        default="1000000",
        help="sizes of the gzip logs built from the sample; empty for none (default: %(default)s)",
    )
    group.add_argument(
        "--logs-distinct",
        type=int,
        default=1_000_000,
        help="lines of the log where each line has a new client address; 0 for none (default: %(default)s)",
    )
    group.add_argument(
        "--logs-anonip-lines",
        type=int,
        default=100_000,
        help="first lines of each kind of log that the anonip rows run on (default: %(default)s)",
    )
    group.add_argument("--logs-sample", type=Path, help="the log to repeat (default: the shared Apache sample)")
    group.add_argument("--logs-workdir", type=Path, help="where to build the logs (default: the system temp folder)")
    group.add_argument(
        "--logs-profile",
        choices=["missed", "always", "never"],
        default="missed",
        help="profile Lethe (pyinstrument) on the row furthest past its target, on every row, or never",
    )


# -- the logs ------------------------------------------------------------------------------------


def short(lines: int) -> str:
    """1000000 -> "1M", 100000 -> "100k"."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if lines >= size and lines % size == 0:
            return f"{lines // size}{unit}"
    return f"{lines:,}"


@dataclass(frozen=True)
class Log:
    """One input of the case: the repeated sample or the distinct-address log, plain or gzip."""

    kind: str  # "sample" or "distinct"
    lines: int
    gz: bool

    @property
    def name(self) -> str:
        return f"{self.kind}-{short(self.lines)}" + ("-gz" if self.gz else "")

    @property
    def label(self) -> str:
        return f"{self.kind} {short(self.lines)}, {'gzip' if self.gz else 'plain'}"

    def path(self, workdir: Path) -> Path:
        return workdir / (self.name + (".log.gz" if self.gz else ".log"))

    def build(self, sample: bytes, workdir: Path) -> Path:
        path = self.path(workdir)
        if self.kind == "distinct":
            write_distinct(sample, self.lines, path)
        else:
            write_repeated(sample, self.lines, path, self.gz)
        return path


def sample_path(args: argparse.Namespace) -> Path:
    if args.logs_sample:
        return args.logs_sample
    shared = Path(os.environ.get("LETHE_SHARED_DIR") or DEFAULT_SHARED)
    return shared / "data" / "apache_access_sample.log"


def first_lines(data: bytes, count: int) -> bytes:
    """The first ``count`` lines of ``data`` (which ends with a line end)."""
    cut = 0
    for _ in range(count):
        cut = data.index(b"\n", cut) + 1
    return data[:cut]


def write_repeated(sample: bytes, lines: int, target: Path, gz: bool) -> None:
    """``lines`` lines of ``sample`` over and over; gzip: the sample compressed once, that member repeated."""
    copies, rest = divmod(lines, sample.count(b"\n"))
    whole, tail = sample, first_lines(sample, rest)
    if gz:
        whole = gzip.compress(whole, GZIP_LEVEL, mtime=0)
        tail = gzip.compress(tail, GZIP_LEVEL, mtime=0) if rest else b""
    with target.open("wb") as out:
        for _ in range(copies):
            out.write(whole)
        out.write(tail)


def distinct_address(k: int) -> str:
    """The client address of line ``k`` of the distinct log: IPv4 on even lines, IPv6 on odd ones."""
    n = k >> 1
    if not k & 1:
        v = (n * 2654435761 + 2654435769) & 0xFFFFFFFF
        return f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}"
    # Hextets 1 and 2 count n (distinct /48 prefixes); every hextet is non-zero, the last five mixed.
    mixed = ((n + 1) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    g0, g1, g2 = 0x2001 + n % 0xDFF, 1 + n // 0xFFFF, 1 + n % 0xFFFF
    g3, g4, g5, g6 = (1 + (mixed >> shift) % 0xFFFF for shift in (0, 16, 32, 48))
    if n % 4 == 3:
        return f"{g0:x}:{g1:x}:{g2:x}:{g3:x}::{g6:x}"
    return f"{g0:x}:{g1:x}:{g2:x}:{g3:x}:{g4:x}:{g5:x}:{g6:x}:{(g3 ^ g5) or 1:x}"


def write_distinct(sample: bytes, lines: int, target: Path) -> None:
    """``lines`` lines: the sample's lines in turn, each with a client address never used before."""
    rests = [b"".join(line.partition(b" ")[1:]) for line in sample.splitlines(keepends=True)]
    with target.open("wb") as out:
        for start in range(0, lines, len(rests)):
            count = min(len(rests), lines - start)
            addresses = [distinct_address(k).encode() for k in range(start, start + count)]
            out.write(b"".join(map(bytes.__add__, addresses, rests[:count])))


# -- the tools -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    """A tool and how it runs on a log: ``argv(log, input, output)`` gives its command and the file
    its standard output goes to (None when the command writes ``output`` itself)."""

    name: str
    argv: Callable[[Log, Path, Path], tuple[list[str], Path | None]]
    env: dict[str, str]


def python_env() -> dict[str, str]:
    include = str(harness.REPO / "include")
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=include + (os.pathsep + path if path else ""), PYTHONIOENCODING="utf-8")


def piped(source: Path, tool: list[str]) -> list[str]:
    """``tool`` (reading standard input) between ``gzip -dc source`` and ``gzip -6``."""
    script = f'log=$1; shift; gzip -dc "$log" | "$@" | gzip -{GZIP_LEVEL}'
    return ["sh", "-c", script, "sh", str(source), *tool]


def lethe_argv(log: Log, source: Path, output: Path) -> tuple[list[str], Path | None]:
    cmd = [sys.executable, "-m", "lethe.weblogs.anonymizer", "-q", *MASKS, "--input", str(source)]
    return ([*cmd, "--output", str(output)], None) if log.gz else (cmd, output)


def anonip_argv(log: Log, source: Path, output: Path) -> tuple[list[str], Path | None]:
    cmd = [sys.executable, "-m", "anonip", *MASKS]
    return (piped(source, cmd) if log.gz else [*cmd, "--input", str(source)]), output


def sed_argv(log: Log, source: Path, output: Path) -> tuple[list[str], Path | None]:
    cmd = ["sed", "-E", "-e", SED_IPV4, "-e", SED_IPV6]
    return (piped(source, cmd) if log.gz else [*cmd, str(source)]), output


LETHE = Tool("Lethe", lethe_argv, python_env())
ANONIP = Tool("anonip 1.1.0", anonip_argv, python_env())
SED = Tool("sed -E", sed_argv, dict(os.environ, LC_ALL="C"))


def output_of(tool: Tool, log: Log, workdir: Path) -> Path:
    return workdir / (f"{log.name}.{harness.slug(tool.name)}.out" + (".gz" if log.gz else ""))


def run_tool(tool: Tool, log: Log, source: Path, workdir: Path) -> Measurement:
    output = output_of(tool, log, workdir)
    output.unlink(missing_ok=True)
    cmd, stdout = tool.argv(log, source, output)
    return run_child(cmd, env=tool.env, stdout=stdout)


def same_content(a: Path, b: Path, gz: bool) -> bool:
    """Whether two outputs hold the same bytes (gzip: once decompressed)."""
    opener = gzip.open if gz else open
    with opener(a, "rb") as fa, opener(b, "rb") as fb:  # type: ignore[operator]
        while True:
            block_a, block_b = fa.read(BLOCK), fb.read(BLOCK)
            if block_a != block_b:
                return False
            if not block_a:
                return True


# -- rows ----------------------------------------------------------------------------------------


@dataclass
class LogResult(CaseResult):
    """A row of this case: the ratio and every check in ``checks`` must hold for the row to be met."""

    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def met(self) -> bool:
        return super().met and all(self.checks.values())

    def to_dict(self) -> dict:
        return {**super().to_dict(), **({"checks": self.checks} if self.checks else {})}


@dataclass(eq=False)  # rows are told apart by identity
class Row:
    """A measured row, with what it ran on (to profile it and to explain a miss)."""

    log: Log
    baseline: Tool
    result: LogResult

    @property
    def shortfall(self) -> float:
        """How far the row is from its target (over 1: missed)."""
        return self.result.ratio / self.result.target


def measure(log: Log, source: Path, baseline: Tool, workdir: Path, repeat: int) -> Row:
    """Lethe and ``baseline`` on ``source``, taking turns; their outputs compared."""
    lethe_runs, baseline_runs = [], []
    for _ in range(repeat):
        lethe_runs.append(run_tool(LETHE, log, source, workdir))
        baseline_runs.append(run_tool(baseline, log, source, workdir))
    ours, theirs = output_of(LETHE, log, workdir), output_of(baseline, log, workdir)
    identical = same_content(ours, theirs, log.gz)
    ours.unlink()
    theirs.unlink()
    lethe_s, baseline_s = harness.median_seconds(lethe_runs), harness.median_seconds(baseline_runs)
    runs = f"{repeat} run{'s' if repeat > 1 else ''} each"
    if baseline is SED:
        target, checks = 1.0, {}
        notes = f"whole log, {runs}; output {'identical to' if identical else 'differs from'} sed's"
    else:
        target, checks = 0.1, {"output identical to anonip's": identical}
        notes = (
            f"both on the first {short(log.lines)} lines of the {log.kind} logs, {runs} (anonip is too slow for more)"
        )
    result = LogResult(
        case=NAME,
        size=log.label,
        lethe=lethe_runs,
        baseline_name=baseline.name,
        baseline=baseline_runs,
        target=target,
        target_text=f"<= {target:g}",
        notes=notes,
        extra={
            "lines": log.lines,
            "gzip": log.gz,
            "lines_per_second": {"lethe": round(log.lines / lethe_s), "baseline": round(log.lines / baseline_s)},
            "output_identical": identical,
        },
        checks=checks,
    )
    print(
        f"   {log.label:<19} Lethe {lethe_s:6.2f} s  {baseline.name} {baseline_s:6.2f} s  "
        f"ratio {result.ratio:.3f}  output {'identical' if identical else 'DIFFERENT'}",
        flush=True,
    )
    return Row(log, baseline, result)


def check_memory(rows: list[Row]) -> None:
    """Put the flat-memory check on the sed row of the largest sample log of each kind (plain, gzip)."""
    for gz in (False, True):
        found = sorted(
            (r for r in rows if r.baseline is SED and r.log.kind == "sample" and r.log.gz == gz),
            key=lambda r: r.log.lines,
        )
        if len(found) < 2:
            continue
        smallest, largest = found[0], found[-1].result
        low, high = smallest.result.peak_rss_mib, largest.peak_rss_mib
        growth = high / low - 1
        largest.checks[f"peak RSS at most {MEMORY_GROWTH_LIMIT:.0%} above {smallest.log.label}'s"] = (
            growth <= MEMORY_GROWTH_LIMIT
        )
        largest.extra["peak_rss_mib"] = {smallest.log.label: round(low, 1), largest.size: round(high, 1)}
        largest.extra["memory_growth"] = round(growth, 3)
        largest.notes += f"; Lethe's peak RSS {low:.1f} MiB on {smallest.log.label}, {high:.1f} MiB here"


def level6_seconds(source: Path) -> float:
    """How long zlib takes to compress the content of ``source`` (gzip) at level 6, on one core."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    spent = 0.0
    with gzip.open(source, "rb") as data:
        while block := data.read(BLOCK):
            started = time.perf_counter()
            compressor.compress(block)
            spent += time.perf_counter() - started
    started = time.perf_counter()
    compressor.flush()
    return spent + time.perf_counter() - started


def empty_log_seconds(workdir: Path, repeat: int) -> float:
    """Median time of a Lethe run on an empty log: start-up and shut-down, no work."""
    empty = workdir / "empty.log"
    empty.touch()
    cmd = [sys.executable, "-m", "lethe.weblogs.anonymizer", "-q", *MASKS, "--input", str(empty)]
    return harness.median_seconds([run_child(cmd, env=LETHE.env) for _ in range(repeat)])


def explain_miss(row: Row, source: Path, empty_log: Callable[[], float]) -> None:
    """Add to a missed row's notes what made it miss, in this run's numbers."""
    result = row.result
    reasons = [f"check failed: {name}" for name, held in result.checks.items() if not held]
    if result.ratio > result.target:
        fixed = empty_log()
        result.extra["lethe_empty_log_seconds"] = round(fixed, 3)
        reason = f"a Lethe run on an empty log (start-up) takes {fixed:.2f} s"
        spent = fixed
        if row.log.gz:
            compress = level6_seconds(source)
            result.extra["zlib_level6_seconds"] = round(compress, 3)
            spent += compress
            reason += (
                f" and zlib compressing the output at level {GZIP_LEVEL} (which L1 must do) {compress:.2f} s on one "
                f"core ({compress / row.log.lines * 1e6:.1f} us a line)"
            )
        together = "together " if row.log.gz else ""
        reason += f": {together}{spent / result.baseline_seconds:.3f} of {row.baseline.name}'s time"
        if row.log.gz:
            reason += f", whose pipeline has gzip -{GZIP_LEVEL} work beside it on another core"
        if spent > result.target * result.baseline_seconds:
            reason += f"; over the target of {result.target:g} before any other work"
        reasons.append(reason)
    result.notes += "; Missed: " + "; ".join(reasons)


def profile(log: Log, source: Path, workdir: Path) -> Path:
    """Lethe on ``log`` once more, under pyinstrument; the text report goes next to the results."""
    harness.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    report = harness.RESULTS_DIR / f"logs-{log.name}.profile.txt"
    output = output_of(LETHE, log, workdir)
    cmd, stdout = lethe_argv(log, source, output)
    cmd = [sys.executable, "-m", "pyinstrument", "--renderer", "text", "--outfile", str(report), *cmd[1:]]
    try:
        run_child(cmd, env=LETHE.env, stdout=stdout)
    finally:
        output.unlink(missing_ok=True)
    print(f"   profile of Lethe on {log.label}: {report}", flush=True)
    return report


# -- the case ------------------------------------------------------------------------------------


def sizes(text: str, option: str) -> list[int]:
    try:
        found = sorted({int(n) for n in text.split(",") if n.strip()})
    except ValueError:
        raise SystemExit(f"{option}: comma-separated numbers of lines expected, got {text!r}") from None
    if any(n < 1 for n in found):
        raise SystemExit(f"{option}: sizes must be positive")
    return found


def plan(args: argparse.Namespace) -> list[tuple[Log, Tool]]:
    """Every log with the baseline of its row: the whole logs against sed, then anonip's inputs."""
    logs = [Log("sample", n, False) for n in sizes(args.logs_lines, "--logs-lines")]
    logs += [Log("sample", n, True) for n in sizes(args.logs_gzip_lines, "--logs-gzip-lines")]
    if args.logs_distinct > 0:
        logs.append(Log("distinct", args.logs_distinct, False))
    if args.logs_anonip_lines < 1:
        raise SystemExit("--logs-anonip-lines must be positive")
    # anonip's input: the first lines of each kind of log, no more than the smallest of that kind has.
    anonip_logs = []
    for kind, gz in (("sample", False), ("sample", True), ("distinct", False)):
        of_kind = [log.lines for log in logs if (log.kind, log.gz) == (kind, gz)]
        if of_kind:
            anonip_logs.append(Log(kind, min([args.logs_anonip_lines, *of_kind]), gz))
    return [(log, SED) for log in logs] + [(log, ANONIP) for log in anonip_logs]


def read_sample(args: argparse.Namespace) -> tuple[Path, bytes]:
    path = sample_path(args)
    if not path.is_file():
        raise SystemExit(f"logs: sample log not found: {path} (set LETHE_SHARED_DIR or --logs-sample)")
    for program in ("sed", "gzip", "sh"):
        if shutil.which(program) is None:
            raise SystemExit(f"logs: {program} is not installed")
    sample = path.read_bytes()
    return path, sample if sample.endswith(b"\n") else sample + b"\n"


def explain_and_profile(rows: list[Row], args: argparse.Namespace, sample: bytes, workdir: Path) -> None:
    """Notes for the rows that missed; a profile of the one furthest past its target (``--logs-profile``)."""
    missed = sorted((row for row in rows if not row.result.met), key=lambda row: row.shortfall)
    chosen = {"always": rows, "never": [], "missed": missed[-1:]}[args.logs_profile]
    if args.logs_profile == "missed":  # one left from an earlier run would describe other code
        for stale in harness.RESULTS_DIR.glob("logs-*.profile.txt"):
            stale.unlink()
    fixed: list[float] = []  # a Lethe run on an empty log, measured once if a miss needs it

    def empty_log() -> float:
        if not fixed:
            fixed.append(empty_log_seconds(workdir, args.repeat))
        return fixed[0]

    for row in rows:
        if row not in missed and row not in chosen:
            continue
        source = row.log.build(sample, workdir)
        if row in missed:
            explain_miss(row, source, empty_log)
        if row in chosen:
            report = profile(row.log, source, workdir)
            row.result.extra["profile"] = report.name
            row.result.notes += f"; profile: {report.name}"
        source.unlink()


def run(args: argparse.Namespace) -> list[CaseResult]:
    sample_file, sample = read_sample(args)
    todo = plan(args)
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="lethe-bench-logs-", dir=args.logs_workdir) as tmp:
        workdir = Path(tmp)
        for log, baseline in todo:
            source = log.build(sample, workdir)
            rows.append(measure(log, source, baseline, workdir, args.repeat))
            source.unlink()  # the 10M log is 2.4 GB: one at a time
        check_memory(rows)
        explain_and_profile(rows, args, sample, workdir)
    results = [row.result for row in rows]
    harness.write_results(
        NAME,
        results,
        {
            "settings": {
                "sample": str(sample_file),
                "plain_lines": sizes(args.logs_lines, "--logs-lines"),
                "gzip_lines": sizes(args.logs_gzip_lines, "--logs-gzip-lines"),
                "distinct_lines": args.logs_distinct,
                "anonip_lines": args.logs_anonip_lines,
                "repeat": args.repeat,
                "masks": {"ipv4": 8, "ipv6": 80},
                "gzip_level": GZIP_LEVEL,
                "sed_expressions": [SED_IPV4, SED_IPV6],
            },
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    return results
