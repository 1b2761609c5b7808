"""Kinds of source as plugins: the registry, and a new kind added from this test alone.

The kind is the worked example of ``lethe.sources``'s docstring (a folder of CSV exports with a
date column), written out as a throwaway package, registered at run time and run through the
runner the DAGs use.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from datetime import datetime

import pytest
import yaml
from sqlalchemy import select

import lethe.sources
from lethe.audit import audit_table
from lethe.config import DEFAULT_POLICY, ConfigError, load_inventory, load_policy
from lethe.errors import DuplicateRegistration, SchemaMismatch
from lethe.runner import Engines, make_context, run_rule, scan_rule
from lethe.sources import registry

from conftest import TEST_KEY

AS_OF = datetime(2026, 11, 26)


def example_files() -> dict[str, str]:
    """The files of the docstring's example package, by name (``# csv_exports/<name>`` blocks)."""
    doc = lethe.sources.__doc__
    found = {}
    for match in re.finditer(r"::\n\n    # csv_exports/(\S+)\n(.*?)(?=\n\S)", doc, re.S):
        found[match.group(1)] = textwrap.dedent(match.group(2))
    return found


@pytest.fixture
def csv_kind(tmp_path):
    package = tmp_path / "plugins" / "csv_exports"
    package.mkdir(parents=True)
    files = example_files()
    assert set(files) == {"__init__.py", "actions.py"}
    for name, code in files.items():
        (package / name).write_text(code)
    sys.path.insert(0, str(package.parent))
    try:
        __import__("csv_exports")
        yield registry.kind("csv_folder")
    finally:
        registry.unregister_kind("csv_folder")
        sys.path.remove(str(package.parent))
        for name in [m for m in sys.modules if m == "csv_exports" or m.startswith("csv_exports.")]:
            del sys.modules[name]


@pytest.fixture
def csv_estate(tmp_path, csv_kind, monkeypatch):
    policy = yaml.safe_load(DEFAULT_POLICY.read_text())
    policy["rules"].append(
        {
            "id": "X1",
            "description": "CSV export rows are deleted 30 days after export.",
            "policy_section": "§6.2",
            "legal_basis": "storage limitation",
            "data_category": "exports",
            "trigger": "export date",
            "period": "30 days",
            "period_source": "default",
            "action": "delete_rows",
        }
    )
    (tmp_path / "retention.yaml").write_text(yaml.safe_dump(policy, allow_unicode=True))
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "exports.yaml").write_text(
        yaml.safe_dump(
            {
                "source": "exports",
                "kind": "csv_folder",
                "connection_id": "exports",
                "date_column": "exported_at",
                "rules": [{"rule": "X1", "action": "delete_rows"}],
            }
        )
    )
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "leads.csv").write_text(
        "email,exported_at\n"
        "old@example.com,2026-09-01T10:00:00\n"
        "edge@example.com,2026-10-27T00:00:00\n"
        "new@example.com,2026-11-20T08:00:00\n"
    )
    monkeypatch.setenv("LETHE_POLICY_FILE", str(tmp_path / "retention.yaml"))
    monkeypatch.setenv("LETHE_INVENTORY_DIR", str(inventory))
    audit_url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    engines = Engines(resolve=lambda conn_id: audit_url)
    yield folder, engines
    engines.dispose()


def context(engines, folder, *, dry_run=False):
    return make_context(
        run_id="csv-run",
        dag_id="test_dag",
        task_id="test_task",
        as_of=AS_OF,
        dry_run=dry_run,
        key=TEST_KEY,
        engines=engines,
        folder_for=lambda conn_id: str(folder),
    )


def test_the_registry_derives_the_inventory_union_actions_and_mapped_kinds():
    assert [k.name for k in registry.kinds()] == ["sql", "trial_databases", "log_folder"]
    assert registry.action_names() == ["delete", "anonymise", "drop_database", "truncate_ip", "delete_file"]
    assert registry.mapped_kinds() == {"trial_databases": "lethe_trial_drops", "log_folder": None}


def test_an_unknown_kind_or_action_names_the_valid_ones(tmp_path):
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "x.yaml").write_text("source: x\nkind: nosql\nconnection_id: x\n")
    with pytest.raises(ConfigError, match="'sql', 'trial_databases', 'log_folder'"):
        load_inventory(inventory)
    (inventory / "x.yaml").write_text(
        "source: x\nkind: log_folder\nconnection_id: x\nrules: [{rule: L1, action: shred}]\n"
    )
    with pytest.raises(ConfigError, match="'truncate_ip' or 'delete_file'"):
        load_inventory(inventory)
    policy = yaml.safe_load(DEFAULT_POLICY.read_text())
    policy["rules"][0]["action"] = "shred"
    (tmp_path / "retention.yaml").write_text(yaml.safe_dump(policy, allow_unicode=True))
    with pytest.raises(ConfigError, match="known: delete, anonymise, drop_database, truncate_ip, delete_file"):
        load_policy(tmp_path / "retention.yaml")


def test_a_duplicate_registration_is_an_error():
    sql = registry.kind("sql")
    with pytest.raises(DuplicateRegistration, match="'sql' is already registered"):
        registry.register_kind(sql)
    from lethe.sources.sql.actions import SqlDelete

    with pytest.raises(DuplicateRegistration, match="'delete' of sql sources is already registered"):
        registry.register_action(SqlDelete)


def test_a_kind_added_from_a_test_runs_through_the_runner(csv_estate):
    folder, engines = csv_estate
    assert "delete_rows" in registry.action_names()
    inventory = load_inventory()
    assert inventory.sources["exports"].kind == "csv_folder" and inventory.rules_of("exports") == ["X1"]

    dry = run_rule(context(engines, folder, dry_run=True), "X1")
    assert dry["eligible"] == 2 and dry["deleted"] == 2 and (folder / "leads.csv").read_text().count("\n") == 4

    result = run_rule(context(engines, folder), "X1")
    assert (result["rule_id"], result["source"], result["action"]) == ("X1", "exports", "delete_rows")
    assert result["eligible"] == 2 and result["deleted"] == 2 and result["remaining_after"] == 0
    assert (folder / "leads.csv").read_text() == "email,exported_at\nnew@example.com,2026-11-20T08:00:00\n"
    with engines("lethe_audit").connect() as conn:
        summaries = conn.execute(
            select(audit_table.c.details).where(audit_table.c.rule_id == "X1", audit_table.c.dry_run.is_(False))
        ).all()
    assert [json.loads(d)["deleted"] for (d,) in summaries] == [2]

    (folder / "bad.csv").write_text("email,when\n")
    with pytest.raises(SchemaMismatch, match="bad.csv has no column exported_at"):
        scan_rule(context(engines, folder), "X1")
