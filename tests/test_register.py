"""The register of retention: one entry per policy rule from the real policy and inventory, what
each rule covers, the gaps, and the three files (self-contained HTML, JSON, CSV)."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import pytest
import yaml

from lethe.config import DEFAULT_INVENTORY, Inventory, load_inventory, load_policy
from lethe.evidence.register import build_register, write_register
from lethe.strict import SourceModel, coverage_item

GENERATED_AT = datetime(2026, 11, 26, 7, 0, 3, tzinfo=timezone.utc)
DEFAULT_FLAG = "period {}: configured default: the policy states no period; a decision for the data protection officer"
LOG_PATTERN = r"^access\.log-(?P<date>\d{8})(?P<gz>\.gz)?$"


@pytest.fixture(scope="module")
def policy():
    return load_policy()


@pytest.fixture(scope="module")
def register(policy):
    return build_register(policy, load_inventory(policy=policy), generated_at=GENERATED_AT)


def entry(register, rule_id):
    (found,) = [e for e in register["entries"] if e["rule"] == rule_id]
    return found


def item(role, source, text, table=None, columns=(), subject=None, pattern=None):
    return coverage_item(role, source, text, table=table, columns=columns, subject=subject, pattern=pattern)


def test_one_entry_per_policy_rule(register, policy):
    assert len(register["entries"]) == 8
    assert [e["rule"] for e in register["entries"]] == policy.rule_ids
    assert register["kind"] == "lethe_register_of_retention"
    assert register["generated_at"] == "2026-11-26T07:00:03Z"
    assert register["headline"] == "8 categories of data, one per policy rule; no gaps; 3 default periods to confirm."
    # Every rule of the shipped policy states its purpose.
    assert all(e["purpose_stated"] for e in register["entries"])


def test_c1_covers_contacts_and_the_dependents_it_deletes(register):
    assert entry(register, "C1") == {
        "rule": "C1",
        "data_category": "prospect contact persons (identity, contact data, interaction history)",
        "description": "Contact persons at prospects and their interactions are deleted 3 years after the last contact.",
        "purpose": "Managing the customer-prospect relationship, e.g. answering questions (§5).",
        "purpose_stated": True,
        "legal_basis": "legitimate interest (prospecting)",
        "period": "3 years",
        "period_source": "policy",
        "overdue_after": "3 years 1 day",
        "trigger": "last contact (no contact recorded, the creation date)",
        "action": "delete",
        "policy_section": "§6.2",
        "source": "crm",
        "kind": "sql",
        "connection_id": "crm",
        "hosting": "EU (policy §8)",
        "in_eu": "EU",
        "covers": [
            item(
                "acts_on",
                "crm",
                "table contacts: rows deleted (personal data: first_name, last_name, email, phone, job_title); "
                "subject column email (an e-mail address)",
                table="contacts",
                columns=["first_name", "last_name", "email", "phone", "job_title"],
                subject="email",
            ),
            item(
                "deleted_with",
                "crm",
                "table interactions: deleted with it (personal data: notes)",
                table="interactions",
                columns=["notes"],
            ),
            item(
                "deleted_with",
                "crm",
                "table trial_signups: deleted with it (no personal data listed)",
                table="trial_signups",
            ),
        ],
        "flags": [],
    }


def test_k1_anonymises_contacts_and_the_dependents_holding_personal_data(register):
    k1 = entry(register, "K1")
    assert [(i["role"], i["table"], i["columns"]) for i in k1["covers"]] == [
        ("acts_on", "contacts", ["first_name", "last_name", "email", "phone", "job_title"]),
        ("anonymised_with", "interactions", ["notes"]),
    ]
    assert k1["flags"] == [DEFAULT_FLAG.format("5 years")]


def test_t1_covers_the_catalog_and_the_database_name_pattern(register):
    t1 = entry(register, "T1")
    assert (t1["source"], t1["kind"], t1["connection_id"], t1["in_eu"]) == ("trials", "trial_databases", "trials", "EU")
    assert (t1["period"], t1["period_source"], t1["overdue_after"], t1["action"]) == (
        "90 days",
        "policy",
        "91 days",
        "drop_database",
    )
    assert t1["covers"] == [
        item(
            "catalog",
            "crm",
            "catalog table trial_signups of crm names each trial database (column database_name); read, not changed",
            table="trial_signups",
        ),
        item(
            "databases",
            "trials",
            "trial databases on the server of connection trials whose name matches ^trial_[a-z0-9_]{1,56}$ "
            "and that the catalog names: dropped whole",
            pattern="^trial_[a-z0-9_]{1,56}$",
        ),
    ]
    assert t1["flags"] == []


def test_l1_covers_the_log_file_pattern_and_flags_its_default_period(register):
    l1 = entry(register, "L1")
    assert (l1["source"], l1["kind"], l1["connection_id"], l1["hosting"], l1["in_eu"]) == (
        "weblogs",
        "log_folder",
        "weblogs",
        "EU (policy §8)",
        "EU",
    )
    assert (l1["period"], l1["period_source"], l1["overdue_after"], l1["action"]) == (
        "90 days",
        "default",
        "91 days",
        "truncate_ip",
    )
    assert l1["covers"] == [
        item(
            "files",
            "weblogs",
            f"log files in the folder of connection weblogs whose name matches {LOG_PATTERN}: "
            "client IP addresses truncated",
            pattern=LOG_PATTERN,
        )
    ]
    assert l1["flags"] == [DEFAULT_FLAG.format("90 days")]
    assert [d["rule"] for d in register["decisions"]] == ["L1", "L2", "K1"]


def test_hosting_in_the_eu(register):
    assert {e["rule"]: e["in_eu"] for e in register["entries"]} == {
        "N1": "EU, with transfers outside the EU",
        "W1": "EU, with transfers outside the EU",
        "W2": "EU, with transfers outside the EU",
        "T1": "EU",
        "C1": "EU",
        "L1": "EU",
        "L2": "EU",
        "K1": "EU",
    }


@pytest.mark.parametrize(
    "hosting, in_eu",
    [
        ("", "not stated"),
        ("Frankfurt data centre", "not stated"),
        ("servers in the US, outside the EU", "outside the EU"),
        ("European Union", "EU"),
        ("EU; backups outside the European Union", "EU, with transfers outside the EU"),
    ],
)
def test_hosting_text_decides_in_eu(policy, hosting, in_eu):
    inventory = load_inventory(policy=policy)
    sources = dict(inventory.sources)
    sources["weblogs"] = sources["weblogs"].model_copy(update={"hosting": hosting})
    register = build_register(policy, Inventory(sources=sources))
    assert {entry(register, "L1")["in_eu"], entry(register, "L2")["in_eu"]} == {in_eu}


def test_no_gaps_in_the_shipped_inventory_and_hold_tables_kept(register):
    # Every table the shipped inventory lists with personal data is covered by a rule; the hold
    # and restriction tables keep their e-mail column while a hold or restriction is in force.
    assert register["gaps"] == []
    assert register["held"] == [
        {
            "kind": "legal_hold",
            "source": "crm",
            "table": "legal_holds",
            "columns": ["email"],
            "policy_section": "§6.2, §7.2",
            "text": "kept while a legal hold is in force",
        },
        {
            "kind": "restriction",
            "source": "crm",
            "table": "restrictions",
            "columns": ["email"],
            "policy_section": "§9.1",
            "text": "kept while a restriction is in force",
        },
    ]


def _edited_inventory(tmp_path: Path, edits: dict) -> Path:
    folder = tmp_path / "inventory"
    shutil.copytree(DEFAULT_INVENTORY, folder)
    for name, edit in edits.items():
        path = folder / name
        data = yaml.safe_load(path.read_text())
        edit(data)
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return folder


def test_gaps_name_the_uncovered_table_and_the_unenforced_rule(tmp_path, policy):
    def add_table(data):
        data["tables"]["webinar_attendees"] = {
            "primary_key": "id",
            "personal_data": {"email": {"anonymise": "null"}, "company_name": {"anonymise": "null"}},
        }

    def drop_l2(data):
        data["rules"] = [r for r in data["rules"] if r["rule"] != "L2"]

    def hold_notes(data):  # a hold table with personal data besides the e-mail it is kept for
        data["tables"]["legal_holds"]["personal_data"] = {"case_notes": {"anonymise": "null"}}

    folder = _edited_inventory(tmp_path, {"marketing.yaml": add_table, "weblogs.yaml": drop_l2, "crm.yaml": hold_notes})
    register = build_register(policy, load_inventory(folder, policy=policy))
    assert register["gaps"] == [
        {
            "kind": "table_not_covered",
            "rule": None,
            "source": "crm",
            "table": "legal_holds",
            "columns": ["case_notes"],
            "text": "table legal_holds of crm holds personal data (case_notes) that no rule covers",
        },
        {
            "kind": "table_not_covered",
            "rule": None,
            "source": "marketing",
            "table": "webinar_attendees",
            "columns": ["email", "company_name"],
            "text": "table webinar_attendees of marketing holds personal data (email, company_name) that no rule covers",
        },
        {
            "kind": "rule_not_enforced",
            "rule": "L2",
            "source": None,
            "table": None,
            "columns": [],
            "text": "rule L2 (connection logs) is in the policy but no source in the inventory enforces it",
        },
    ]
    l2 = entry(register, "L2")
    assert (l2["source"], l2["in_eu"], l2["covers"]) == (None, "not stated", [])
    assert "no source in the inventory enforces this rule" in l2["flags"]
    assert register["headline"] == "8 categories of data, one per policy rule; 3 gaps; 3 default periods to confirm."


def test_dropping_a_rule_uncovers_its_table(tmp_path, policy):
    def drop_w2(data):
        data["rules"] = [r for r in data["rules"] if r["rule"] != "W2"]

    folder = _edited_inventory(tmp_path, {"marketing.yaml": drop_w2})
    register = build_register(policy, load_inventory(folder, policy=policy))
    assert [(g["kind"], g["rule"], g["source"], g["table"], g["columns"]) for g in register["gaps"]] == [
        ("table_not_covered", None, "marketing", "cookie_consents", ["ip_address", "cookie_id"]),
        ("rule_not_enforced", "W2", None, None, []),
    ]


def test_a_rule_without_purpose_is_flagged(tmp_path, policy):
    rules = [r.model_copy(update={"purpose": None}) if r.id == "W1" else r for r in policy.rules]
    register = build_register(policy.model_copy(update={"rules": rules}), load_inventory(policy=policy))
    w1 = entry(register, "W1")
    assert (w1["purpose"], w1["purpose_stated"]) == ("not stated in the policy file", False)
    assert w1["flags"] == ["purpose not stated in the policy file"]


def test_a_kind_that_does_not_describe_itself_covers_the_whole_source():
    class ExportFolder(SourceModel):
        kind: Literal["export_folder"]
        rules: list = []

    source = ExportFolder(source="exports", kind="export_folder", connection_id="exports")
    assert source.register_coverage("X1") == [item("whole_source", "exports", "the whole source exports")]
    assert source.personal_tables() == {}


def test_files_html_self_contained_csv_one_row_per_entry_json_round_trips(tmp_path, register):
    paths = write_register(register, tmp_path / "register")
    assert {name: path.name for name, path in paths.items()} == {
        "html": "register.html",
        "json": "register.json",
        "csv": "register.csv",
    }

    page = paths["html"].read_text(encoding="utf-8").lower()
    for external in ("<script", "http:", "https:", "src=", "href=", "url(", "@import", "<link", "//"):
        assert external not in page, external
    assert "<style>" in page and "@media print" in page
    for rule_id in ("n1", "w1", "w2", "t1", "c1", "l1", "l2", "k1"):
        assert f'id="rule-{rule_id}"' in page
    assert "not stated in the policy file" not in page
    assert "a decision for the data protection officer" in page
    assert "kept while a legal hold is in force" in page

    with paths["csv"].open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["rule"] for row in rows] == [e["rule"] for e in register["entries"]]
    c1 = rows[[e["rule"] for e in register["entries"]].index("C1")]
    assert (c1["source"], c1["period"], c1["in_eu"], c1["purpose_stated"]) == ("crm", "3 years", "EU", "yes")
    assert "table interactions: deleted with it" in c1["covers"]

    text = paths["json"].read_text(encoding="utf-8")
    assert json.loads(text) == register
    assert text == json.dumps(register, sort_keys=True, indent=2) + "\n"


def test_html_escapes_names_from_the_inventory(tmp_path, policy):
    inventory = load_inventory(policy=policy)
    sources = dict(inventory.sources)
    sources["weblogs"] = sources["weblogs"].model_copy(update={"hosting": "EU <b onclick=x>"})
    paths = write_register(build_register(policy, Inventory(sources=sources)), tmp_path)
    page = paths["html"].read_text(encoding="utf-8")
    assert "<b onclick" not in page and "&lt;b onclick=x&gt;" in page
