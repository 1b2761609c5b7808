"""What every benchmark case shares: timing a child process, medians, results and the table.

* :func:`run_child` runs one command as a child of a small launcher and returns its wall time and
  peak resident set size (``ru_maxrss`` of ``os.wait4``);
* :func:`median_of` repeats a measurement (with a reset before each) and keeps every run;
* :class:`CaseResult` is one row of the table: a case, its size, Lethe's time, one baseline's
  time, the ratio Lethe / baseline and the target it must meet;
* :func:`write_results` writes ``benchmarks/results/<case>.json``; :func:`refresh_readme`
  rewrites the results table in ``benchmarks/README.md`` between its two markers.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
# The tests point this elsewhere (a smoke run must not overwrite the measured results).
RESULTS_DIR = Path(os.environ.get("LETHE_BENCH_RESULTS") or BENCH_DIR / "results")
README = Path(os.environ.get("LETHE_BENCH_README") or BENCH_DIR / "README.md")
TABLE_START = "<!-- results:start -->"
TABLE_END = "<!-- results:end -->"

# Children are started from this small launcher, not from the benchmark process: Linux charges
# a child's peak RSS with the RSS of the process it was spawned from (the memory it shares up to
# exec), so a lean spawner keeps that floor low. The launcher reports the child's rusage.
LAUNCHER = """
import os, sys, time
result, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_pid, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(result, "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {seconds} {usage.ru_maxrss}")
"""


@dataclass
class Measurement:
    """One run: wall seconds and the peak RSS of the measured process (MiB; 0 when not a child)."""

    seconds: float
    peak_rss_mib: float = 0.0


class ChildFailed(RuntimeError):
    pass


def run_child(
    cmd: list[str], *, env: dict[str, str] | None = None, stdout: Path | None = None, cwd: Path | None = None
) -> Measurement:
    """Run ``cmd`` (standard output into ``stdout`` or discarded); its wall time and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="lethe-bench-") as tmp:
        result = Path(tmp) / "rusage"
        launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, str(result), *cmd]
        with (
            open(stdout, "wb") if stdout else open(os.devnull, "wb") as out,
            tempfile.TemporaryFile() as err,
        ):
            subprocess.run(launcher, stdout=out, stderr=err, env=env, cwd=cwd, check=True)
            code, seconds, max_rss = result.read_text().split()
            if int(code) != 0:
                err.seek(0)
                raise ChildFailed(
                    f"{' '.join(cmd[:3])}... exited {code}: {err.read().decode(errors='replace')[-3000:]}"
                )
    return Measurement(float(seconds), int(max_rss) / 1024)  # ru_maxrss is KiB on Linux


def timed(fn: Callable[[], object]) -> Measurement:
    """Time an in-process call (a baseline run through a database client library)."""
    start = time.perf_counter()
    fn()
    return Measurement(time.perf_counter() - start)


def median_of(
    runs: int, measure: Callable[[], Measurement], reset: Callable[[], None] | None = None
) -> list[Measurement]:
    """``runs`` measurements, each after ``reset`` (which is not timed)."""
    found = []
    for _ in range(runs):
        if reset:
            reset()
        found.append(measure())
    return found


def median_seconds(runs: list[Measurement]) -> float:
    return statistics.median(m.seconds for m in runs)


@dataclass
class CaseResult:
    """One row of the table. ``ratio`` is Lethe's median time over the baseline's."""

    case: str
    size: str
    lethe: list[Measurement]
    baseline_name: str
    baseline: list[Measurement]
    target: float  # the ratio must be at or under this
    target_text: str
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def lethe_seconds(self) -> float:
        return median_seconds(self.lethe)

    @property
    def baseline_seconds(self) -> float:
        return median_seconds(self.baseline)

    @property
    def ratio(self) -> float:
        return self.lethe_seconds / self.baseline_seconds if self.baseline_seconds else float("inf")

    @property
    def met(self) -> bool:
        return self.ratio <= self.target

    @property
    def peak_rss_mib(self) -> float:
        return max((m.peak_rss_mib for m in self.lethe), default=0.0)

    def to_dict(self) -> dict:
        return {
            "case": self.case,
            "size": self.size,
            "lethe_seconds": round(self.lethe_seconds, 3),
            "baseline": self.baseline_name,
            "baseline_seconds": round(self.baseline_seconds, 3),
            "ratio": round(self.ratio, 3),
            "target": self.target_text,
            "met": self.met,
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "runs": {"lethe": [asdict(m) for m in self.lethe], "baseline": [asdict(m) for m in self.baseline]},
            "notes": self.notes,
            **({"extra": self.extra} if self.extra else {}),
        }


def machine() -> dict:
    """What the numbers were measured on."""
    memory = ""
    try:
        with open("/proc/meminfo") as f:
            memory = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory": memory,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
    }


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-").replace("--", "-")


def write_results(case: str, rows: list[CaseResult], extra: dict | None = None) -> Path:
    """``benchmarks/results/<case>.json``: every row, every run, the machine and when."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{slug(case)}.json"
    data = {
        "case": case,
        "measured_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "machine": machine(),
        "rows": [row.to_dict() for row in rows],
        **(extra or {}),
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def format_table(rows: list[dict], markdown: bool = False) -> str:
    """The table of result rows (as :meth:`CaseResult.to_dict` writes them)."""
    header = ["case", "size", "Lethe s", "baseline", "baseline s", "ratio", "target", "peak MiB", "met"]
    lines = [
        [
            row["case"],
            row["size"],
            f"{row['lethe_seconds']:.2f}",
            row["baseline"],
            f"{row['baseline_seconds']:.2f}",
            f"{row['ratio']:.2f}",
            row["target"],
            f"{row['peak_rss_mib']:.0f}" if row["peak_rss_mib"] else "-",
            "yes" if row["met"] else "NO",
        ]
        for row in rows
    ]
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(cells) + " |" for cells in lines]
        return "\n".join(out)
    widths = [max([len(h)] + [len(c[i]) for c in lines]) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out += ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) for cells in lines]
    return "\n".join(out)


def stored_rows() -> list[dict]:
    """Every row of every results file, in file-name order."""
    rows = []
    for path in sorted(RESULTS_DIR.glob("*.json")):
        rows += json.loads(path.read_text())["rows"]
    return rows


def refresh_readme(command: str) -> None:
    """Replace the table between the README's markers with the stored results (and the machine)."""
    text = README.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        raise SystemExit(f"{README}: the markers {TABLE_START} and {TABLE_END} are missing")
    m = machine()
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"{TABLE_START}\n"
        f"Measured {when} by `{command}` on {m['cpus']} CPU(s) ({m['cpu']}), {m['memory']}, "
        f"Python {m['python']}, {m['system']}. Times are medians; ratio = Lethe / baseline.\n\n"
        f"{format_table(stored_rows(), markdown=True)}\n"
        f"{TABLE_END}"
    )
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    README.write_text(head + block + tail)
