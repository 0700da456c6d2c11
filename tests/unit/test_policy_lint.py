"""The policy linter: each mistake a loadable policy can hold is one line naming file, key and level."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from pipeline.config.policy import load_policy_file
from pipeline.config.policy_lint import lint
from pipeline.config.settings import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "templates"


def _policy(tmp_path, levels, **version):
    doc = {"policies": [{"handle": "default", "default": True, "versions": [
        {"effective_from": "2026-01-01", "levels": levels, **version}]}]}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path, load_policy_file(path)


def _lines(path, policies, templates=TEMPLATES, con=None):
    return [str(f) for f in lint(path, policies, templates, con)]


def test_the_shipped_policies_have_no_errors():
    for path in sorted((PROJECT_ROOT / "policies").rglob("*.yaml")):
        findings = lint(path, load_policy_file(path), TEMPLATES)
        assert [str(f) for f in findings if f.severity == "error"] == [], path


def test_delays_after_the_previous_level(tmp_path):
    path, policies = _policy(tmp_path, [
        {"name": "Reminder", "timing": {"after": "due_date", "days": 7}, "payment_term_days": 7},
        {"name": "Notice", "timing": {"after": "previous_level", "days": -3}},
        {"name": "Final", "timing": {"after": "previous_level", "days": 0}},
    ])
    assert _lines(path, policies) == [
        f"{path}: policies[0].versions[0].levels[1] (L2 \"Notice\"): error: timed -3 days after the previous level's own "
        "due date: it would run before the customer's deadline for the previous level",
        f"{path}: policies[0].versions[0].levels[2] (L3 \"Final\"): warning: timed 0 days after the previous level's own "
        "due date: it runs on the customer's last day to pay the previous level",
    ]


def test_a_first_level_after_the_previous_level_is_the_due_date_and_fine(tmp_path):
    path, policies = _policy(tmp_path, [{"name": "On the due date", "timing": {"after": "previous_level", "days": 0}}])
    assert _lines(path, policies) == []


def test_missing_templates_per_channel_and_language(tmp_path):
    root = tmp_path / "templates"
    for lang in ("en", "de"):
        (root / "mine" / lang).mkdir(parents=True)
        for kind in ("subject.txt", "txt", "html", "letter.html"):
            (root / "mine" / lang / f"reminder.{kind}").write_text("x")
    (root / "mine" / "en" / "notice.letter.html").write_text("x")  # English only
    path, policies = _policy(tmp_path, [
        {"name": "Reminder", "timing": {"after": "due_date", "days": 7}},
        {"name": "Notice", "timing": {"after": "due_date", "days": 14}, "channel": "letter", "template": "notice"},
        {"name": "Text", "timing": {"after": "due_date", "days": 21}, "channel": "sms"},
        {"name": "Typo", "timing": {"after": "due_date", "days": 28}, "template": "remindr"},
    ], template_set="mine")
    assert _lines(path, policies, root) == [
        f"{path}: policies[0].versions[0].levels[2] (L3 \"Text\").template: error: template 'reminder' (sms) has no "
        "sms.txt in template set 'mine': nobody would get this document",
        f"{path}: policies[0].versions[0].levels[3] (L4 \"Typo\").template: error: template 'remindr' (outbox) has no "
        "subject.txt, txt, html, letter.html in template set 'mine': nobody would get this document",
        f"{path}: policies[0].versions[0].levels[1] (L2 \"Notice\").template: warning: template 'notice' (letter) has no "
        "letter.html in mine/de: those customers get the English text",
    ]
    path, policies = _policy(tmp_path, [{"name": "R", "timing": {"after": "due_date", "days": 7}}],
                             template_set="nope")
    assert _lines(path, policies, root) == [
        f"{path}: policies[0].versions[0].template_set: error: no template set 'nope' in {root}"]


def test_fees_without_a_threshold_and_criteria_that_never_hold(tmp_path):
    doc = {"policies": [
        {"handle": "default", "default": True, "versions": [{
            "effective_from": "2026-01-01", "thresholds": {"EUR": "10.00"},
            "levels": [{"name": "R", "timing": {"after": "due_date", "days": 7}, "fee": {"EUR": "5.00", "GBP": "4.00"}}]}]},
        {"handle": "never", "versions": [{
            "effective_from": "2026-01-01",
            "routing": {"priority": 1, "criteria": [
                {"field": "contract.payment_method", "op": "in", "values": ["card", "ach"]},
                {"field": "contract.payment_method", "op": "is_not", "value": "card"},
                {"field": "contract.payment_method", "op": "not_in", "values": ["ach"]}]},
            "levels": [{"name": "R", "timing": {"after": "due_date", "days": 7}}]}]},
        {"handle": "by_hand", "versions": [{
            "effective_from": "2026-01-01", "levels": [{"name": "R", "timing": {"after": "due_date", "days": 7}}]}]},
    ]}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    assert _lines(path, load_policy_file(path)) == [
        f"{path}: policies[0].versions[0].levels[0] (L1 \"R\").fee.GBP: warning: a fee in GBP, but the thresholds name "
        "only EUR: GBP cases are dunned from the first cent",
        f"{path}: policies[1].versions[0].routing.criteria: warning: the criteria on contract.payment_method can "
        "never all hold: this rule routes nothing",
        f"{path}: policies[2] (by_hand): warning: no routing rule, no move_to_policy and no experiment leads here: "
        "only contracts whose policy column names by_hand use it",
    ]


def test_a_retroactive_version_names_the_open_cases_it_concerns(tmp_path):
    from world import World, policy, query

    w = World(tmp_path, policy([("due_date", 7, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    w.contract("CT2").invoice("I2", "50.00", "2026-03-01", "2026-03-20", contract_id="CT2")
    settings = w.run("2026-03-15", "2026-04-01")
    doc = yaml.safe_load(Path(settings.policy_file).read_text())
    doc["policies"][0]["versions"].append({"effective_from": "2026-03-16", "levels": [
        {"name": "Sooner", "timing": {"after": "due_date", "days": 3}}]})
    doc["policies"][0]["versions"].append({"effective_from": "2026-06-01", "levels": [
        {"name": "Later", "timing": {"after": "due_date", "days": 3}}]})
    path = tmp_path / "candidate.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    import duckdb

    con = duckdb.connect(str(settings.database), read_only=True)
    try:
        assert [str(f) for f in lint(path, load_policy_file(path), TEMPLATES, con)] == [
            f"{path}: policies[0].versions[1].effective_from: warning: 2026-03-16 is before the last day computed "
            "(2026-04-01): days already computed keep the versions they ran under, and 1 open case(s) of default "
            "opened since 2026-03-16 keep theirs; to apply it to them, run "
            "`dunning backfill --from 2026-03-16 --to 2026-04-01`"]
    finally:
        con.close()
    # the one case opened since 16 March; CT1's opened on 15 March
    assert query(settings, "select case_id, opened_on from case_register order by 1") == [
        ("ct-CT1-20260315", date(2026, 3, 15)), ("ct-CT2-20260321", date(2026, 3, 21))]


@pytest.mark.parametrize("days, exit_code", [(-3, 1), (0, 0)])
def test_cli_validate_prints_findings_and_fails_on_errors(tmp_path, days, exit_code):
    from typer.testing import CliRunner

    from pipeline.cli import app

    path, _ = _policy(tmp_path, [
        {"name": "Reminder", "timing": {"after": "due_date", "days": 7}},
        {"name": "Notice", "timing": {"after": "previous_level", "days": days}}])
    result = CliRunner().invoke(app, ["policy", "validate", str(path)])
    assert result.exit_code == exit_code
    assert f"{path}: policies[0].versions[0].levels[1] (L2 \"Notice\"): " in result.output
    assert ("valid (" in result.output) == (exit_code == 0)


def test_an_impossible_date_and_an_unquoted_amount_name_their_keys(tmp_path):
    from pipeline.config.policy import PolicyError

    path = tmp_path / "p.yaml"
    path.write_text("policies:\n  - handle: default\n    default: true\n    versions:\n"
                    "      - effective_from: 2020-13-01\n        levels:\n"
                    "          - {name: R, timing: {after: due_date, days: 7}, fee: {EUR: 5.10}}\n")
    with pytest.raises(PolicyError) as err:
        load_policy_file(path)
    assert str(err.value) == (f"{path}: policies[0].versions[0].levels[0].fee.EUR: write this number as a quoted "
                              "string such as \"5.00\": money and rates are exact decimals, and YAML reads an "
                              "unquoted number with a decimal point as a binary float")
    path.write_text(path.read_text().replace("5.10", '"5.10"'))
    with pytest.raises(PolicyError) as err:
        load_policy_file(path)
    assert str(err.value) == (f"{path}: policies[0].versions[0].effective_from: Input should be a valid date or "
                              "datetime, month value is outside expected range of 1-12")


def test_dunning_run_lints_before_it_plans(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app
    from world import World, policy

    w = World(tmp_path, policy([("due_date", 7, 7), ("previous_level", -3, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    config = w.write_config()
    result = CliRunner().invoke(app, ["run", "--as-of", "2026-03-20", "--config", str(config)])
    assert result.exit_code == 2
    assert result.output.splitlines()[-2:] == [
        f"{w.root / 'policy.yaml'}: policies[0].versions[0].levels[1] (L2 \"Level 2\"): error: timed -3 days after the "
        "previous level's own due date: it would run before the customer's deadline for the previous level",
        "nothing planned or sent: fix the policy file first"]
    assert not (w.root / "dunning.duckdb").exists()  # nothing ingested, planned or sent
