"""Run by test_reference_estate.py in a subprocess: the nightly DAGs in turn, one DagBag import.

``reference_dag_runner.py LOGICAL_DATE CONF DAG_ID [DAG_ID ...]``: ``dag.test()`` each DAG in the
order given with the same logical date and run conf, then print one line
``RESULT {"errors": {...}, "runs": {dag_id: {"state": ..., "tasks": {...}}}}``.
AIRFLOW_HOME, the connections and Lethe's settings come from the environment.
"""

import json
import os
import sys
import time
import traceback
from datetime import datetime, timezone

from airflow.dag_processing.dagbag import DagBag


def main() -> None:
    logical_date = datetime.fromisoformat(sys.argv[1])
    if logical_date.tzinfo is None:
        logical_date = logical_date.replace(tzinfo=timezone.utc)
    conf = json.loads(sys.argv[2])
    started = time.monotonic()
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    found = {
        "errors": {path: str(err) for path, err in bag.import_errors.items()},
        "runs": {},
        "import_seconds": round(time.monotonic() - started, 1),
    }
    for dag_id in sys.argv[3:]:
        dag = bag.get_dag(dag_id)
        if dag is None:
            found["runs"][dag_id] = {"state": "not imported", "tasks": {}}
            continue
        started = time.monotonic()
        try:
            run = dag.test(logical_date=logical_date, run_conf=conf)
        except Exception as exc:  # reported, and the next DAG still runs
            traceback.print_exc()
            found["runs"][dag_id] = {"state": f"raised {type(exc).__name__}: {exc}", "tasks": {}}
            continue
        tasks = {}
        for ti in run.get_task_instances():
            name = ti.task_id if ti.map_index is None or ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
            tasks[name] = str(ti.state)
        found["runs"][dag_id] = {
            "state": str(run.state),
            "tasks": tasks,
            "seconds": round(time.monotonic() - started, 1),
        }
    print("RESULT " + json.dumps(found))


if __name__ == "__main__":
    main()
