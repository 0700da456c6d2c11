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



@pytest.mark.parametrize("second,message", [
    # issue 12, item 6: a courtesy level after a later one from the same anchor can never run on its day
    ("{after: due_date, days: -2}",
     'levels[1] (L2 "Second") at due - 2 day(s) does not come after levels[0] (L1 "First") at due + 7 day(s)'),
    # the same day is no later either (a case runs one level a day, each once)
    ("{after: due_date, days: 7}",
     'levels[1] (L2 "Second") at due + 7 day(s) does not come after levels[0] (L1 "First") at due + 7 day(s)'),
])
def test_levels_out_of_order_on_one_anchor_are_rejected(tmp_path, second, message):
    path = _write(tmp_path, GOOD + f"          - name: Second\n            timing: {second}\n")
    with pytest.raises(PolicyError) as err:
        load_policy_file(path)
    assert str(err.value) == (f"{path}: policies[0].versions[0]: Value error, {message}: levels run in order, "
                              "so a later level timed from the same anchor needs more days")


@pytest.mark.parametrize("levels", [
    # a first level "after the previous level" counts from the due date: due + 5, then due + 6 is later
    [("previous_level", 5), ("due_date", 6)],
    # different anchors are not compared; a disabled level does not count
    [("invoice_date", 20), ("due_date", -2)],
    [("due_date", 10, False), ("due_date", -2)],
    # relative levels always come after the one before them
    [("due_date", 10), ("previous_level", 0), ("due_date", 11)],
])
def test_levels_in_order_are_accepted(tmp_path, levels):
    text = GOOD.split("        levels:")[0] + "        levels:\n" + "".join(
        f"          - {{name: L{i}, enabled: {str(lv[2] if len(lv) > 2 else True).lower()}, "
        f"timing: {{after: {lv[0]}, days: {lv[1]}}}}}\n" for i, lv in enumerate(levels, 1))
    assert len(load_policy_file(_write(tmp_path, text)).policies[0].versions[0].levels) == len(levels)


def test_a_first_level_after_the_previous_level_is_compared_as_due_date(tmp_path):
    text = GOOD.split("        levels:")[0] + ("        levels:\n"
                                               "          - {name: L1, timing: {after: previous_level, days: 5}}\n"
                                               "          - {name: L2, timing: {after: due_date, days: 5}}\n")
    with pytest.raises(PolicyError, match=r"levels\[1\] \(L2 \"L2\"\) at due \+ 5 day\(s\) does not come after "
                                          r"levels\[0\] \(L1 \"L1\"\) at due \+ 5 day\(s\)"):
        load_policy_file(_write(tmp_path, text))

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
    # the changes only (the impact over past days: tests/integration/test_policy_impact.py)
    result = CliRunner().invoke(app, ["policy", "diff", str(old), str(new), "--config", str(config), "--no-impact"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"policy default: version from 2020-01-01 changed ({old_id} -> {new_id})",
        '  L2 "Level 2": timing.days: 10 -> 14',
        f"1 open case(s) keep {old_id} (e.g. ct-CT1-20260311); new cases use the new versions"]


DIFF_OLD = """
policies:
  - handle: default
    default: true
    versions:
      - effective_from: 2026-01-01
        levels:
          - {name: Payment reminder, timing: {after: due_date, days: 7}}
          - {name: First dunning notice, timing: {after: previous_level, days: 7}}
          - {name: Final notice, timing: {after: previous_level, days: 7}}
"""


def _diff_lines(tmp_path, old_text, new_text):
    from pipeline.config.policy_diff import diff_files

    (tmp_path / "old").mkdir(exist_ok=True)
    (tmp_path / "new").mkdir(exist_ok=True)
    return diff_files(load_policy_file(_write(tmp_path / "old", old_text)),
                      load_policy_file(_write(tmp_path / "new", new_text)))[0]


def test_policy_diff_names_levels_from_one_with_their_names(tmp_path):
    new = DIFF_OLD.replace("{name: First dunning notice, timing: {after: previous_level, days: 7}}",
                           '{name: First dunning notice, timing: {after: previous_level, days: 10}, '
                           'fee: {EUR: "5.00"}, actions: [{type: reminder, channel: letter}]}')
    new = new.replace("name: Final notice", "name: Last notice")
    new += "          - {name: Collection agency, timing: {after: previous_level, days: 14}}\n"
    lines = _diff_lines(tmp_path, DIFF_OLD, new)
    assert lines[1:] == [
        '  L2 "First dunning notice": actions#1.channel: None -> \'letter\'',
        '  L2 "First dunning notice": fee.EUR: \'(absent)\' -> \'5.00\'',
        '  L2 "First dunning notice": timing.days: 7 -> 10',
        '  L3 "Final notice" -> "Last notice": name: \'Final notice\' -> \'Last notice\'',
        '  L4 "Collection agency": added (previous_level + 14 day(s))']
    assert lines[0].startswith("policy default: version from 2026-01-01 changed (default@")
    removed = _diff_lines(tmp_path, DIFF_OLD, DIFF_OLD.replace(
        "          - {name: Final notice, timing: {after: previous_level, days: 7}}\n", ""))
    assert removed[1:] == ['  L3 "Final notice": removed']


def test_policy_diff_compares_a_new_version_with_the_one_before_it(tmp_path):
    new = DIFF_OLD + """      - effective_from: 2026-09-01
        thresholds: {EUR: "10.00"}
        levels:
          - {name: Payment reminder, timing: {after: due_date, days: 5}}
          - {name: First dunning notice, timing: {after: previous_level, days: 7}}
          - {name: Final notice, timing: {after: previous_level, days: 7}}
"""
    lines = _diff_lines(tmp_path, DIFF_OLD, new)
    assert lines[0].startswith("policy default: version from 2026-09-01 added (default@")
    assert lines[1:] == [
        "  against the version before it (from 2026-01-01):",
        "    effective_from: '2026-01-01' -> '2026-09-01'",
        "    thresholds.EUR: '(absent)' -> '10.00'",
        '    L1 "Payment reminder": timing.days: 7 -> 5']


def test_the_impact_range_says_what_it_cannot_show(tmp_path):
    from datetime import date

    from pipeline.config.policy_diff import diff, last_days, range_notes

    new = DIFF_OLD + """      - effective_from: 2026-09-01
        levels:
          - {name: Payment reminder, timing: {after: due_date, days: 5}}
"""
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    d = diff(load_policy_file(_write(tmp_path / "old", DIFF_OLD)), load_policy_file(_write(tmp_path / "new", new)))
    assert last_days(date(2026, 4, 30), 30) == (date(2026, 4, 1), date(2026, 4, 30))
    assert range_notes(d, date(2026, 4, 1), date(2026, 4, 30))[1:] == [
        "policy default: the version from 2026-09-01 takes effect after the range; the impact cannot show it "
        "(choose a range from that day with --from/--to)"]
    assert range_notes(d, date(2026, 8, 20), date(2026, 9, 18))[1:] == [
        "policy default: the version from 2026-09-01 acts from that day only"]
    with pytest.raises(ValueError, match="--days must be at least 1, not 0"):
        last_days(date(2026, 4, 30), 0)


def test_policy_diff_reports_the_default_moving_and_a_policy_renamed(tmp_path):
    """No version changes, yet new cases route elsewhere: the diff says so instead of "no change"."""
    def two(default: str, name_b: str) -> str:
        level = "[{name: Reminder, timing: {after: due_date, days: 3}}]"
        return "policies:\n" + "".join(
            f"  - handle: {h}\n    name: {n}\n    default: {str(h == default).lower()}\n"
            f"    versions:\n      - effective_from: 2020-01-01\n        levels: {level}\n"
            for h, n in (("a", "Standard"), ("b", name_b)))

    assert _diff_lines(tmp_path, two("a", "Soft"), two("a", "Soft")) == ["no change"]
    assert _diff_lines(tmp_path, two("a", "Soft"), two("b", "Gentle")) == [
        "default policy: a -> b (new cases of contracts that name no policy route to it)",
        "policy b: name 'Soft' -> 'Gentle'"]
