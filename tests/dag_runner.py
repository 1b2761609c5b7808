"""Run in a subprocess by test_dags.py, with AIRFLOW_HOME and the connections in its environment.

``inspect``: import every DAG file and print the DAGs' settings and import errors as JSON.
``test DAG_ID LOGICAL_DATE CONF``: ``dag.test()`` one run and print its final state.
"""

import json
import os
import sys
from datetime import datetime, timezone

from airflow.dag_processing.dagbag import DagBag


def main() -> None:
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if sys.argv[1] == "inspect":
        print(
            "RESULT "
            + json.dumps(
                {
                    "errors": {path: str(err) for path, err in bag.import_errors.items()},
                    "dags": {
                        dag_id: {
                            "tags": sorted(dag.tags),
                            "catchup": dag.catchup,
                            "max_active_runs": dag.max_active_runs,
                            "schedule": str(dag.schedule),
                            "doc_md": dag.doc_md or "",
                            "params": sorted(dag.params.keys()),
                            "tasks": {t.task_id: {"owner": t.owner, "retries": t.retries} for t in dag.tasks},
                        }
                        for dag_id, dag in bag.dags.items()
                    },
                }
            )
        )
        return
    dag = bag.get_dag(sys.argv[2])
    logical_date = datetime.fromisoformat(sys.argv[3]).replace(tzinfo=timezone.utc)
    run = dag.test(logical_date=logical_date, run_conf=json.loads(sys.argv[4]))
    tis = run.get_task_instances()
    states = {ti.task_id: str(ti.state) for ti in tis}
    tries = {ti.task_id: ti.try_number for ti in tis}
    print("RESULT " + json.dumps({"state": str(run.state), "tasks": states, "tries": tries}))


if __name__ == "__main__":
    main()
