"""The benchmark cases: each module has ``NAME``, ``add_arguments(parser)`` and ``run(args)``.

``run`` builds its estate, measures Lethe and its baseline on the same data in the same run,
writes ``benchmarks/results/<case>.json`` and returns its rows (:class:`harness.CaseResult`).
"""

CASES = {
    "sql": "benchmarks.cases.sql_rules",
    "trials": "benchmarks.cases.trials",
    "logs": "benchmarks.cases.logs",
    "scheduler": "benchmarks.cases.scheduler",
    "validation": "benchmarks.cases.validation",
}
