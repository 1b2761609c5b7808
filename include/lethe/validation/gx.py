"""Run a :class:`~lethe.validation.Suite` with Great Expectations core, and build Data Docs.

Imported only inside tasks (``import great_expectations`` takes seconds): never at DAG parse.

* SQL data is validated in the source's own database through :class:`LetheSqlDatasource`, a GX
  SQL data source on Lethe's engine for the source (its sessions work in UTC; on SQLite it has
  Lethe's date functions), so the checks read the dates exactly as the rules do. Every
  expectation is an aggregate query there; no table is loaded into pandas.
* Results use GX's ``BASIC`` format with no partial list: counts only, never a row's values.
  :class:`~great_expectations.expectations.UnexpectedRowsExpectation` reports its count alone,
  and Lethe's queries select primary keys only.
* :func:`build_data_docs` renders a run's results (JSON, as the tasks returned them) as Data Docs
  in a folder of the run's report.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no usage statistics: this host has no network

import great_expectations as gx  # noqa: E402
from great_expectations.core.expectation_validation_result import (  # noqa: E402
    ExpectationSuiteValidationResultSchema,
)
from great_expectations.core.run_identifier import RunIdentifier  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.data_context.types.resource_identifiers import (  # noqa: E402
    ExpectationSuiteIdentifier,
    ValidationResultIdentifier,
)
from great_expectations.datasource.fluent import SQLDatasource  # noqa: E402
from great_expectations.execution_engine import SqlAlchemyExecutionEngine  # noqa: E402
from great_expectations.expectations import UnexpectedRowsExpectation  # noqa: E402

from lethe.validation import CheckOutcome, FrameData, SqlData, Suite, SuiteOutcome  # noqa: E402

log = logging.getLogger("lethe")

# Counts only: GX's partial list of unexpected values would copy values into the results.
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}

QUERY_EXPECTATIONS = ("UnexpectedRowsExpectation", "ExpectNoRowsOfQuery")

# The engines the data sources of this process validate through, by data source name.
_ENGINES: dict[str, Any] = {}


class LetheSqlDatasource(SQLDatasource):
    """A GX SQL data source (PostgreSQL, MariaDB, SQLite) on the engine Lethe uses for the source.

    The connection string is a placeholder: the engine (with its session settings) comes from
    the rule's run, so GX reads the source exactly as the rule does.
    """

    type: Literal["lethe_sql"] = "lethe_sql"

    def get_engine(self):
        return _ENGINES[self.name]

    def get_execution_engine(self) -> SqlAlchemyExecutionEngine:
        engine = getattr(self, "_lethe_execution_engine", None)
        if engine is None:
            engine = SqlAlchemyExecutionEngine(engine=_ENGINES[self.name], create_temp_table=False)
            object.__setattr__(self, "_lethe_execution_engine", engine)
        return engine


class ExpectNoRowsOfQuery(UnexpectedRowsExpectation):
    """GX's ``UnexpectedRowsExpectation``, counting only: the rows are counted in the database and
    never fetched (the query runs once, not once to count and again to fetch a sample)."""

    metric_dependencies: ClassVar[tuple[str, ...]] = ("unexpected_rows_query.row_count",)

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None, execution_engine=None):
        count = metrics["unexpected_rows_query.row_count"]
        return {"success": count == 0, "result": {"observed_value": count}}


# Lethe's own expectation classes, by the name a suite gives them.
OWN_EXPECTATIONS = {"ExpectNoRowsOfQuery": ExpectNoRowsOfQuery}


def _context():
    # In memory, with no Data Docs site of its own (GX would make a temporary folder for one).
    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False))
    context = gx.get_context(mode="ephemeral", project_config=config)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _expectation(spec) -> Any:
    cls = OWN_EXPECTATIONS.get(spec.type) or getattr(gx.expectations, spec.type)
    return cls(**spec.kwargs)


def _batch(context, suite: Suite):
    data = suite.data
    name = suite.name.replace(".", "_")
    if isinstance(data, SqlData):
        _ENGINES[name] = data.engine
        source = context.data_sources.add_lethe_sql(name=name, connection_string="sqlite://")
        asset = source.add_table_asset(name=data.table, table_name=data.table, schema_name=data.schema)
        return asset.add_batch_definition_whole_table("whole table"), {}
    if isinstance(data, FrameData):
        import pandas

        frame = pandas.DataFrame(data.rows, columns=list(data.columns) or None)
        source = context.data_sources.add_pandas(name=name)
        asset = source.add_dataframe_asset(name=data.name)
        return asset.add_batch_definition_whole_dataframe("listing"), {"dataframe": frame}
    raise TypeError(f"cannot validate {type(data).__name__}")


def run_suite(suite: Suite) -> SuiteOutcome:
    """Validate ``suite`` now; the outcome in counts, with GX's result as JSON."""
    context = _context()
    batch_definition, parameters = _batch(context, suite)
    # Added whole: adding one expectation at a time saves the growing suite each time.
    gx_suite = context.suites.add(
        gx.ExpectationSuite(name=suite.name, expectations=[_expectation(spec) for spec in suite.expectations])
    )
    specs = {expectation.id: spec for expectation, spec in zip(gx_suite.expectations, suite.expectations, strict=True)}
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite.name, data=batch_definition, suite=gx_suite)
    )
    try:
        result = definition.run(batch_parameters=parameters or None, result_format=RESULT_FORMAT)
    finally:
        _ENGINES.pop(suite.name.replace(".", "_"), None)
    as_json = result.to_json_dict()
    checks = []
    row_count = None
    # GX orders results its own way: each is matched to its expectation by id.
    for item in as_json["results"]:
        spec = specs[item["expectation_config"]["id"]]
        outcome = item.get("result") or {}
        error = (item.get("exception_info") or {}).get("exception_message")
        if error is None:
            # A metric that raised is listed per metric; keep its message's first line.
            infos = [v for v in (item.get("exception_info") or {}).values() if isinstance(v, dict)]
            error = next(
                (str(v.get("exception_message")).splitlines()[0] for v in infos if v.get("exception_message")), None
            )
        unexpected = outcome.get("unexpected_count")
        if unexpected is None and isinstance(outcome.get("observed_value"), int):
            counted = spec.type in QUERY_EXPECTATIONS or spec.kwargs == {"value": 0}  # a count expected to be 0
            unexpected = outcome["observed_value"] if counted else None
        if spec.type == "ExpectTableRowCountToBeBetween" and isinstance(outcome.get("observed_value"), int):
            row_count = outcome["observed_value"]
        checks.append(
            CheckOutcome(
                expectation=spec.type,
                column=spec.kwargs.get("column"),
                success=bool(item.get("success")),
                unexpected=unexpected,
                reason=spec.reason,
                table=spec.table,
                fix=spec.fix,
                error=error,
            )
        )
    return SuiteOutcome(
        suite=suite.name, success=bool(as_json.get("success")), checks=checks, result=as_json, row_count=row_count
    )


def build_data_docs(results: list[tuple[str, dict[str, Any]]], folder: Path, run_name: str) -> Path | None:
    """Render validation results (``(suite name, GX result JSON)``) as Data Docs in ``folder``."""
    if not results:
        return None
    context = _context()
    context.add_data_docs_site(
        site_name="run",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    schema = ExpectationSuiteValidationResultSchema()
    for suite_name, as_json in results:
        run_time = (as_json.get("meta") or {}).get("validation_time")
        # The pages name the Airflow run the checks belong to.
        as_json = {
            **as_json,
            "meta": {**(as_json.get("meta") or {}), "run_id": {"run_name": run_name, "run_time": run_time}},
        }
        result = schema.load(as_json)
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
            run_id=RunIdentifier(run_name=run_name, run_time=run_time),
            batch_identifier=suite_name.replace(".", "_"),
        )
        context.validation_results_store.set(key, result)
    context.build_data_docs(site_names=["run"])
    return folder / "index.html"
