"""Policy and inventory files: a bad file names the file, the rule and the field."""

import shutil
from pathlib import Path

import pytest
import yaml

from lethe.config import DEFAULT_INVENTORY, DEFAULT_POLICY, ConfigError, load_inventory, load_policy


def test_shipped_policy_has_every_rule_of_the_rules_table():
    policy = load_policy()
    assert policy.rule_ids == ["N1", "W1", "W2", "T1", "C1", "L1", "L2", "K1"]
    assert [r.id for r in policy.rules if r.is_default] == ["L1", "L2", "K1"]
    assert str(policy.rule("N1").overdue_period) == "7 days"
    assert str(policy.rule("C1").overdue_period) == "3 years 1 day"
    for rule in policy.rules:
        assert rule.policy_section.startswith("§")


def test_shipped_inventory_loads():
    inventory = load_inventory(policy=load_policy())
    assert inventory.rules_of("crm") == ["C1", "K1"]
    assert inventory.rules_of("marketing") == ["N1", "W1", "W2"]


def _policy_copy(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(DEFAULT_POLICY.read_text())
    edit(data)
    path = tmp_path / "retention.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def test_bad_period_names_file_rule_and_field(tmp_path):
    path = _policy_copy(tmp_path, lambda d: d["rules"][2].update(period="13 moons"))
    with pytest.raises(ConfigError) as err:
        load_policy(path)
    message = str(err.value)
    assert str(path) in message and "rule W2" in message and "field period" in message


def test_unknown_key_is_an_error(tmp_path):
    path = _policy_copy(tmp_path, lambda d: d["rules"][0].update(perod="1 day"))
    with pytest.raises(ConfigError, match=r"rule N1, field perod: Extra inputs are not permitted"):
        load_policy(path)


def test_unknown_action_and_duplicate_rule(tmp_path):
    with pytest.raises(ConfigError, match=r"rule C1, field action"):
        load_policy(_policy_copy(tmp_path, lambda d: d["rules"][4].update(action="shred")))
    with pytest.raises(ConfigError, match=r"defined twice"):
        load_policy(_policy_copy(tmp_path, lambda d: d["rules"].append(dict(d["rules"][0]))))


def test_not_yaml_names_the_file(tmp_path):
    path = tmp_path / "retention.yaml"
    path.write_text("rules: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_policy(path)


def inventory_copy(tmp_path: Path, name: str, edit) -> Path:
    folder = tmp_path / "inventory"
    shutil.copytree(DEFAULT_INVENTORY, folder)
    data = yaml.safe_load((folder / name).read_text())
    edit(data)
    (folder / name).write_text(yaml.safe_dump(data, allow_unicode=True))
    return folder


def test_inventory_rule_not_in_policy(tmp_path):
    folder = inventory_copy(tmp_path, "crm.yaml", lambda d: d["rules"][0].update(rule="C9"))
    with pytest.raises(ConfigError, match=r"crm.yaml: rule C9: not in the policy"):
        load_inventory(folder, load_policy())


def test_inventory_action_must_match_policy(tmp_path):
    folder = inventory_copy(tmp_path, "crm.yaml", lambda d: d["rules"][1].update(action="delete"))
    with pytest.raises(ConfigError, match=r"rule K1, field action: 'delete' but the policy says 'anonymise'"):
        load_inventory(folder, load_policy())


@pytest.mark.parametrize("bad", ["contacts; DROP TABLE x", "con tacts", 'con"tacts', "contacts`"])
def test_identifiers_with_odd_characters_are_refused(tmp_path, bad):
    def edit(d):
        d["tables"][bad] = d["tables"].pop("interactions")

    folder = inventory_copy(tmp_path, "crm.yaml", edit)
    with pytest.raises(ConfigError, match="not a plain SQL identifier|not under tables"):
        load_inventory(folder, load_policy())


def test_inventory_reference_to_unknown_table(tmp_path):
    folder = inventory_copy(
        tmp_path,
        "crm.yaml",
        lambda d: d["tables"]["contacts"]["dependents"].append({"table": "notes", "foreign_key": "contact_id"}),
    )
    with pytest.raises(ConfigError, match=r"dependents names table 'notes'"):
        load_inventory(folder, load_policy())
