"""``make bench``: every case against its baseline, one table, results JSON and the README table.

Usage::

    python -m benchmarks.run [--only sql,trials,logs,scheduler,validation] [--repeat 3] [case options]

Sizes are options of their cases (``--help`` lists them); the defaults are the sizes the README
states and finish in under 15 minutes on 2 cores. Exit status 1 when a ratio misses its target.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from benchmarks.cases import CASES
from benchmarks.harness import format_table, refresh_readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(CASES), help=f"cases to run, comma-separated ({', '.join(CASES)})")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the table in benchmarks/README.md")
    chosen, _rest = parser.parse_known_args(argv)
    selected = [name.strip() for name in chosen.only.split(",") if name.strip()]
    unknown = sorted(set(selected) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    # Every case's options are listed (--help), but only the chosen cases need to import.
    modules = {name: importlib.import_module(CASES[name]) for name in selected}
    for module in modules.values():
        module.add_arguments(parser.add_argument_group(module.NAME))
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    rows = []
    started = time.perf_counter()
    for name in selected:
        print(f"== {name}", flush=True)
        case_started = time.perf_counter()
        found = modules[name].run(args)
        rows += found
        print(format_table([row.to_dict() for row in found]), flush=True)
        print(f"   ({time.perf_counter() - case_started:.0f} s)", flush=True)
    print()
    print(format_table([row.to_dict() for row in rows]))
    print(f"\n{len(rows)} measurement(s) in {time.perf_counter() - started:.0f} s; results in benchmarks/results/")
    if not args.no_readme:
        refresh_readme("make bench" + (f" (--only {args.only})" if args.only != ",".join(CASES) else ""))
    missed = [row for row in rows if not row.met]
    for row in missed:
        print(f"MISSED: {row.case} ({row.size}) against {row.baseline_name}: {row.ratio:.2f} > {row.target_text}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
