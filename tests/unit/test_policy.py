"""Policy file validation: messages name the file, the key and what is allowed."""

from __future__ import annotations

import pytest

from pipeline.config.policy import PolicyError, load_policy_file


def _write(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


GOOD = """
policies:
  - handle: default
    default: true
    versions:
      - effective_from: 2026-01-01
        thresholds: {EUR: "5.00"}
        levels:
          - name: First
            timing: {after: due_date, days: 7}
"""


def test_the_shipped_default_policy_is_valid():
    from pipeline.config.settings import PROJECT_ROOT

    policies = load_policy_file(PROJECT_ROOT / "policies" / "default.yaml")
    assert policies.default_handle == "default"
    assert [lv.name for lv in policies.policies[0].versions[0].levels] == [
        "Payment reminder", "First dunning notice", "Final notice"]


def test_version_id_is_a_stable_content_hash(tmp_path):
    a = load_policy_file(_write(tmp_path, GOOD))
    b = load_policy_file(_write(tmp_path, GOOD.replace("days: 7", "days: 8")))
    pa, pb = a.policies[0], b.policies[0]
    assert pa.version_id(pa.versions[0]) == load_policy_file(_write(tmp_path, GOOD)).policies[0].version_id(pa.versions[0])
    assert pa.version_id(pa.versions[0]).startswith("default@") and len(pa.version_id(pa.versions[0])) == 20
    assert pa.version_id(pa.versions[0]) != pb.version_id(pb.versions[0])


@pytest.mark.parametrize("text,message", [
    (GOOD.replace("after: due_date", "after: yesterday"),
     "policies[0].versions[0].levels[0].timing.after: got 'yesterday'; allowed: 'due_date', 'invoice_date', "
     "'scheduled_payment_date' or 'previous_level'"),
    (GOOD.replace("default: true", "default: false"),
     "(top level): Value error, exactly one policy must have `default: true` (found 0: none)"),
    (GOOD.replace("EUR: \"5.00\"", "EUR: \"5.001\""),
     "policies[0].versions[0].thresholds.EUR: Decimal input should have no more than 2 decimal places"),
    (GOOD.replace("        levels:", "        colour: red\n        levels:"),
     "policies[0].versions[0].colour: unknown key"),
    (GOOD.replace("        levels:", "        routing: {priority: 1, criteria: [{field: customer.country, op: is}]}\n"
                                     "        levels:"),
     "policies[0].versions[0].routing.criteria[0]: Value error, op is takes `value` (one value), not `values`"),
    (GOOD.replace("        levels:", "        routing: {priority: 1, criteria: [{field: customer.country, op: is, "
                                     "value: DE}]}\n        levels:"),
     "(top level): Value error, policy default is the default: it takes whatever no rule routes, so it has no "
     "routing rules"),
])
def test_errors_name_file_key_and_allowed_values(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(PolicyError) as err:
        load_policy_file(path)
    assert str(err.value) == f"{path}: {message}"


def test_invalid_yaml_names_the_file(tmp_path):
    path = _write(tmp_path, "policies: [")
    with pytest.raises(PolicyError, match=f"^{path}: not valid YAML"):
        load_policy_file(path)


def test_cli_policy_validate_names_versions_or_errors(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace("after: due_date", "after: yesterday"))
    version = load_policy_file(good).policies[0]
    vid = version.version_id(version.versions[0])
    result = CliRunner().invoke(app, ["policy", "validate", str(good)])
    assert result.exit_code == 0 and result.output == f"{good}: valid ({vid})\n"
    result = CliRunner().invoke(app, ["policy", "validate", str(good), str(bad)])
    assert result.exit_code == 1
    assert f"{bad}: policies[0].versions[0].levels[0].timing.after: got 'yesterday'" in result.output


def test_policy_diff_lists_changes_and_the_open_cases_keeping_a_dropped_version(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app
    from world import World, policy

    w = World(tmp_path, policy([("due_date", 5, 0), ("previous_level", 10, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    settings = w.run("2026-03-11", "2026-03-20")
    config = w.write_config()
    old = settings.policy_file
    new = tmp_path / "new.yaml"
    new.write_text(old.read_text().replace("days: 10", "days: 14"))
    old_id = load_policy_file(old).policies[0].version_id(load_policy_file(old).policies[0].versions[0])
    new_id = load_policy_file(new).policies[0].version_id(load_policy_file(new).policies[0].versions[0])
    result = CliRunner().invoke(app, ["policy", "diff", str(old), str(new), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"policy default: version from 2020-01-01 changed ({old_id} -> {new_id})",
        "  levels[1].timing.days: 10 -> 14",
        f"1 open case(s) keep {old_id} (e.g. ct-CT1-20260311); new cases use the new versions"]
