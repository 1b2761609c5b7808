# Lethe: `make demo` sets up and runs the nightly job on the embedded default; `make test` runs the tests.
SHELL := /bin/bash
ROOT := $(abspath .)
PYTHON ?= python3.11
VENV := $(ROOT)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ESTATE := $(ROOT)/.lethe/estate
AS_OF ?= $(shell date -u +%F)
DRY_RUN ?= 0
# make demo runs this many nights, ending on AS_OF, so the report's trends have points.
NIGHTS ?= 3
# Every nightly retention DAG: one file each, dags/lethe_<source>_retention.py.
DAGS ?= $(basename $(notdir $(wildcard dags/lethe_*_retention.py)))

# The embedded default: Airflow on SQLite under .lethe/airflow, the estate under .lethe/estate.
# Connections already set in the environment win over these defaults.
export AIRFLOW_HOME ?= $(ROOT)/.lethe/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(ROOT)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(ROOT)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export AIRFLOW_CONN_CRM ?= sqlite:///$(ESTATE)/crm.sqlite
export AIRFLOW_CONN_MARKETING ?= sqlite:///$(ESTATE)/marketing.sqlite
export AIRFLOW_CONN_LETHE_AUDIT ?= sqlite:///$(ESTATE)/audit.sqlite
export AIRFLOW_CONN_TRIALS ?= sqlite:///$(ESTATE)/trials
export AIRFLOW_CONN_WEBLOGS ?= {"conn_type": "fs", "extra": {"path": "$(ESTATE)/weblogs"}}
export LETHE_REPORTS_DIR ?= $(ROOT)/reports
export LETHE_DEMO_KEY_FILE := $(ESTATE)/demo-audit-key
# `airflow dags test` (what make run uses) cannot end a run of a DAG with a deadline alert, and
# evaluates none: the alert is for the scheduler (make airflow, make cluster).
DAGS_TEST_ENV := LETHE_DEADLINE_ALERTS=off

.PHONY: help install seed arm run nights report demo lint test bench browser airflow airflow-stop cluster cluster-stop clean
help:
	@echo "make demo   - install, seed the demo estate and run every nightly DAG once (AS_OF=YYYY-MM-DD)"
	@echo "make test   - run the test suite (SQLite, PostgreSQL, MariaDB)"
	@echo "make lint   - ruff: lint, import order, complexity (configured in pyproject.toml)"
	@echo "make bench  - every benchmark case against its baseline (not part of make test) [BENCH_ARGS=...]"
	@echo "make seed   - (re)write the demo estate [AS_OF=...]"
	@echo "make run    - run every nightly retention DAG once [AS_OF=...] [DRY_RUN=1]"
	@echo "make nights - make run for NIGHTS nights ending on AS_OF [NIGHTS=3]"
	@echo "make report - the consolidated report of AS_OF (lethe_report): reports/latest/consolidated.html"
	@echo "make airflow - start airflow standalone on the embedded default (Ctrl-C or make airflow-stop ends it)"
	@echo "make cluster - Airflow as separate processes on PostgreSQL, sources on PostgreSQL and MariaDB [EXECUTOR=celery]"
	@echo "make cluster-stop - stop exactly the processes make cluster started"
	@echo "make arm    - arm enforcement for every source of the embedded default (make demo does)"

install: $(STAMP)
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(AIRFLOW_HOME)/airflow.db: $(STAMP)
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate >/dev/null
	$(BIN)/airflow pools set lethe_trial_drops 2 "Lethe: concurrent trial database drops" >/dev/null

seed: $(STAMP)
	$(BIN)/lethe seed-demo --as-of $(AS_OF) --estate $(ESTATE)

run: $(STAMP) $(AIRFLOW_HOME)/airflow.db
	@set -e; export LETHE_AUDIT_KEY="$${LETHE_AUDIT_KEY:-$$(cat $(LETHE_DEMO_KEY_FILE) 2>/dev/null)}"; \
	conf='{"as_of": "$(AS_OF)", "dry_run": $(if $(filter 1 true yes,$(DRY_RUN)),true,false)}'; \
	status=0; for dag in $(DAGS); do \
	  echo "== $$dag (as-of $(AS_OF)$(if $(filter 1 true yes,$(DRY_RUN)),; dry run,))"; \
	  started=$$(date -u +%FT%T); \
	  $(DAGS_TEST_ENV) $(BIN)/airflow dags test $$dag $(AS_OF) -c "$$conf" > $(ROOT)/.lethe/$$dag.log 2>&1 \
	    && echo "   ok (log: .lethe/$$dag.log)" || { status=1; echo "   FAILED (log: .lethe/$$dag.log)"; \
	      $(BIN)/lethe report failures $$dag --since "$$started" \
	      || grep -m1 -oE "AirflowFailException: .*" $(ROOT)/.lethe/$$dag.log | sed 's/^AirflowFailException: /   /'; }; \
	done; \
	$(BIN)/lethe report summary; exit $$status

# The embedded demo arms itself; on real systems a person arms each source (lethe arm SOURCE).
SOURCES ?= crm marketing trials weblogs
arm: $(STAMP) $(AIRFLOW_HOME)/airflow.db
	@$(BIN)/lethe arm $(SOURCES) --by "make demo (embedded default)"

# One night after the other, oldest first (each night is an as-of; nothing waits for a clock).
nights: $(STAMP) $(AIRFLOW_HOME)/airflow.db
	@set -e; for n in $$(seq $$(( $(NIGHTS) - 1 )) -1 0); do \
	  night=$$(date -u -d "$(AS_OF) -$$n day" +%F); echo "=== night of $$night"; \
	  $(MAKE) --no-print-directory run AS_OF=$$night; \
	done

# The consolidated report of AS_OF, as lethe_report builds it (after the nights, at 07:00 UTC).
report: $(STAMP) $(AIRFLOW_HOME)/airflow.db
	@set -e; export LETHE_AUDIT_KEY="$${LETHE_AUDIT_KEY:-$$(cat $(LETHE_DEMO_KEY_FILE) 2>/dev/null)}"; \
	echo "== lethe_report (day $(AS_OF))"; \
	$(DAGS_TEST_ENV) $(BIN)/airflow dags test lethe_report $(AS_OF)T07:00:00+00:00 -c '{"date": "$(AS_OF)"}' > $(ROOT)/.lethe/lethe_report.log 2>&1 \
	  || { echo "   FAILED (log: .lethe/lethe_report.log)"; exit 1; }; \
	echo "   ok (log: .lethe/lethe_report.log)"; \
	$(BIN)/python -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["verdict"]["headline"]); print("chain head: entry %s, %s" % (r["chain"]["head_seq"], r["chain"]["head_hash"]))' $(LETHE_REPORTS_DIR)/latest/consolidated.json; \
	echo "Consolidated report: $(LETHE_REPORTS_DIR)/latest/consolidated.html (register: register.html)"

demo: seed arm nights report

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Three workers on two cores: the suite spends more than half its time waiting on Airflow
# start-ups, live deployments and the database servers (CPU about 45% busy with two). Tests that
# share a trial database server run in one worker (xdist_group "trial_servers"), the live
# deployments in one each ("live_cluster_local", "live_cluster_celery").
TEST_WORKERS ?= 3
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup --durations=25

# Benchmarks against their baselines on this machine's PostgreSQL and MariaDB (benchmarks/README.md).
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Headless Chromium from Debian for tests/test_report_browser.py (installed once; needs root).
browser:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver)

airflow: $(STAMP) $(AIRFLOW_HOME)/airflow.db
	@export LETHE_AUDIT_KEY="$${LETHE_AUDIT_KEY:-$$(cat $(LETHE_DEMO_KEY_FILE) 2>/dev/null)}"; \
	echo "Airflow UI: http://localhost:8080  user: admin  password: see $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated"; \
	echo "Ctrl-C (or make airflow-stop from another terminal) stops it."; \
	PATH="$(BIN):$$PATH" AIRFLOW_BIN=$(BIN)/airflow $(ROOT)/scripts/airflow-standalone start

airflow-stop:
	@$(ROOT)/scripts/airflow-standalone stop

# A deployment on this machine's PostgreSQL, MariaDB and Redis (scripts/cluster.py): api-server,
# scheduler, dag-processor, triggerer (and a Celery worker with EXECUTOR=celery), sources seeded
# with the demo estate and reached through Lethe's least-privilege roles (deploy/roles).
EXECUTOR ?= local
cluster: $(STAMP)
	@$(BIN)/python scripts/cluster.py start --executor $(EXECUTOR) --as-of $(AS_OF)

cluster-stop:
	@$(BIN)/python scripts/cluster.py stop

clean:
	rm -rf .lethe reports
