"""Scenario files: every shipped scenario passes against the real pipeline, and the runner
itself reports exactly what differs, rejects what it cannot read and names the file and key."""

from __future__ import annotations

import re
import textwrap
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import yaml

from pipeline.engine import run as run_mod
from pipeline.scenarios import runner as scn

SCENARIO_DIR = Path(__file__).parent
SCENARIOS = sorted(SCENARIO_DIR.glob("*.yaml"))


def test_the_shipped_scenarios_are_there():
    # a renamed folder must not turn the parametrized test below into zero tests
    assert len(SCENARIOS) >= 9


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_passes(path, tmp_path):
    result = scn.run_scenario(scn.load_scenario(path), tmp_path)
    assert result.passed, (f"{path.name}:\n  " + "\n  ".join(result.differences)
                           + "\nactual ledger:\n" + scn.actual_as_yaml(result))


# ---------------------------------------------------------------- the runner itself

# invoice scope: level 1 the day after the due date, then 2 days after each previous level
POLICY = """
policy:
  policies:
    - handle: default
      default: true
      versions:
        - effective_from: 2020-01-01
          scope: invoice
          levels:
            - {name: Reminder, timing: {after: due_date, days: 1}}
            - {name: Notice, timing: {after: previous_level, days: 2}, fee: {EUR: "5.00"}}
            - {name: Final, timing: {after: previous_level, days: 2}}
"""
INPUTS = """
inputs:
  customers: [{customer_id: CU1}]
  contracts: [{contract_id: CT1}]
  invoices: [{invoice_id: I1, amount: "100.00", invoice_date: 2026-03-01, due_date: 2026-03-10}]
"""


def write(tmp_path: Path, body: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_a_correct_small_scenario_passes_and_main_returns_0(tmp_path, capsys):
    path = write(tmp_path, POLICY + INPUTS + """
run: {from: 2026-03-11, to: 2026-03-16}
expect:
  actions:
    - {on: 2026-03-11, case: in-I1-20260311, level: 1, action: reminder, amount_demanded: "100.00"}
    - {on: 2026-03-13, case: in-I1-20260311, level: 2, action: reminder, fee: "5.00", amount_demanded: "105.00"}
    - {on: 2026-03-15, case: in-I1-20260311, level: 3, action: reminder, fees_total: "5.00", policy: default}
""")
    assert scn.main([path]) == 0
    assert capsys.readouterr().out == (
        f"PASS  {path}  scenario\n"
        "1 scenario(s): 1 passed, 0 failed\n")


def test_a_wrong_expectation_gives_exactly_these_differences(tmp_path, capsys):
    path = write(tmp_path, POLICY + INPUTS + """
name: deliberately wrong
run: {from: 2026-03-11, to: 2026-03-16}
expect:
  actions:
    - {on: 2026-03-11, case: in-I1-20260311, level: 1, action: reminder, amount_demanded: "100.00"}
    - {on: 2026-03-13, case: in-I1-20260311, level: 2, action: reminder, fee: "5.00", amount_demanded: "100.00"}
    - {on: 2026-03-14, case: in-I1-20260311, level: 3, action: reminder}
  balances:
    - {on: 2026-03-12, contract: CT1, balance: "90.00", overdue_amount: "100.00"}
  cases:
    - {case: in-I1-20260311, opened_on: 2026-03-11, closed_on: 2026-03-15}
    - {case: in-I9-20260311}
""")
    assert scn.main([path]) == 1
    expected = [
        "2026-03-13 in-I1-20260311 level 2: expected amount_demanded 100.00, got 105.00",
        "missing: 2026-03-14 in-I1-20260311 level 3 reminder",
        "unexpected: 2026-03-15 in-I1-20260311 level 3 reminder",
        "2026-03-12 CT1: expected balance 90.00, got 100.00",
        "case in-I1-20260311: expected closed_on 2026-03-15, got null",
        "missing case: in-I9-20260311",
    ]
    assert capsys.readouterr().out == "\n".join(
        [f"FAIL  {path}  deliberately wrong", *[f"      {line}" for line in expected],
         "1 scenario(s): 0 passed, 1 failed"]) + "\n"


def _row(on, case, level, action="reminder", **more):
    return {"on": date.fromisoformat(on), "case": case, "level": level, "action": action, **more}


def test_matching_by_identity_keys_and_otherwise_in_order():
    actual = [_row("2026-03-11", "A", 1, amount_demanded=Decimal("100.00")),
              _row("2026-03-11", "B", 1, amount_demanded=Decimal("50.00")),
              _row("2026-03-13", "A", 2, amount_demanded=Decimal("105.00"))]
    expected = [
        scn.ActionExpectation(amount_demanded="100.00"),   # no identity key: the next row in order
        scn.ActionExpectation(case="A", level=2, amount_demanded="106.00"),
        scn.ActionExpectation(amount_demanded="50.00"),
        scn.ActionExpectation(amount_demanded="1.00"),     # nothing left to match
    ]
    assert scn.compare_actions(expected, actual, {}) == [
        "2026-03-13 A level 2: expected amount_demanded 106.00, got 105.00",
        "missing: expected action #4",
    ]


def test_policy_expectations_by_handle_effective_date_or_version_id():
    versions = {"default@abc": ("default", date(2026, 3, 20))}
    actual = [_row("2026-03-11", "A", 1, policy="default@abc")]
    for ok in ("default", "default@2026-03-20", "default@abc"):
        assert scn.compare_actions([scn.ActionExpectation(level=1, policy=ok)], actual, versions) == []
    assert scn.compare_actions([scn.ActionExpectation(level=1, policy="default@2020-01-01")], actual, versions) == [
        "2026-03-11 A level 1: expected policy default@2020-01-01, got default@2026-03-20"]


def test_action_details_compare_given_keys_with_exact_amounts():
    actual = [_row("2026-04-01", "A", 3, "end_contract",
                   details={"when": "immediately", "effective_on": "2026-04-01", "credit_note_amount": Decimal("12.3")})]
    good = scn.ActionExpectation.model_validate(
        {"action": "end_contract", "details": {"effective_on": date(2026, 4, 1), "credit_note_amount": "12.30"}})
    bad = scn.ActionExpectation.model_validate({"action": "end_contract", "details": {"when": "end_of_period"}})
    assert scn.compare_actions([good], actual, {}) == []
    assert scn.compare_actions([bad], actual, {}) == [
        "2026-04-01 A level 3: expected details.when end_of_period, got immediately"]


def test_float_money_is_rejected_naming_file_and_key(tmp_path):
    path = write(tmp_path, POLICY + """
inputs:
  customers: [{customer_id: CU1}]
  contracts: [{contract_id: CT1}]
  invoices: [{invoice_id: I1, amount: 100.00, invoice_date: 2026-03-01, due_date: 2026-03-10}]
run: {from: 2026-03-11, to: 2026-03-16}
expect:
  actions: [{on: 2026-03-11, amount_demanded: 100.5}]
""")
    with pytest.raises(scn.ScenarioError) as exc:
        scn.load_scenario(path)
    assert str(exc.value).splitlines() == [
        f'{path}: inputs.invoices[0].amount: money must be a quoted string such as "100.00", not the number '
        "100.0 (YAML reads an unquoted amount with a decimal point as a binary float)",
        f'{path}: expect.actions[0].amount_demanded: money must be a quoted string such as "100.50", not the '
        "number 100.5 (YAML reads an unquoted amount with a decimal point as a binary float)",
    ]
    # the command line reports it as a failed scenario instead of stopping the others
    [result] = scn.run_scenarios([path])
    assert not result.passed and result.differences == str(exc.value).splitlines()


def test_float_money_in_an_inline_policy_is_rejected(tmp_path):
    path = write(tmp_path, POLICY.replace('"5.00"', "5.00") + INPUTS + """
run: {from: 2026-03-11, to: 2026-03-16}
expect: {actions: []}
""")
    with pytest.raises(scn.ScenarioError, match=r"policy\.policies\[0\]\.versions\[0\]\.levels\[1\]\.fee\.EUR: "
                                                r"write this number as a quoted string such as \"5.00\""):
        scn.load_scenario(path)


def test_validation_errors_name_each_key(tmp_path):
    path = write(tmp_path, POLICY + INPUTS + """
policy_file: other.yaml
run: {from: 2026-03-11, to: 2026-03-16}
expect:
  actions:
    - {on: 11.03.2026, level: 1, action: sent, amount: "1.00"}
  balances:
    - {on: 2026-03-12, contract: CT1}
""")
    with pytest.raises(scn.ScenarioError) as exc:
        scn.load_scenario(path)
    kinds = [repr(k) for k in scn.ACTION_KINDS]  # every action a level can run, and level_skipped
    allowed = ", ".join(kinds[:-1]) + " or " + kinds[-1]
    assert str(exc.value).splitlines() == [
        f"{path}: expect.actions[0].on: expected a date YYYY-MM-DD, got '11.03.2026'",
        f"{path}: expect.actions[0].action: got 'sent'; allowed: {allowed}",
        f"{path}: expect.actions[0].amount: unknown key",
        f"{path}: expect.balances[0]: give at least one of balance, open_amount, overdue_amount, "
        "unapplied_credit, oldest_invoice",
    ]


def test_both_policy_and_policy_file_and_impossible_expectations(tmp_path):
    path = write(tmp_path, POLICY + INPUTS + """
policy_file: other.yaml
run: {from: 2026-03-11, to: 2026-03-16}
expect: {actions: []}
""")
    with pytest.raises(scn.ScenarioError, match="give exactly one of `policy` .inline. or `policy_file`"):
        scn.load_scenario(path)
    path = write(tmp_path, POLICY + INPUTS + """
run: {from: 2026-03-11, to: 2026-03-16}
expect:
  actions: [{on: 2026-03-20, policy: default@2026-01-01}]
  balances: [{on: 2026-03-12, contract: CT9, balance: "0.00"}]
""")
    with pytest.raises(scn.ScenarioError) as exc:
        scn.load_scenario(path)
    assert str(exc.value).splitlines() == [
        f"{path}: expect.actions[0].on: 2026-03-20 is outside the run (2026-03-11 to 2026-03-16)",
        f"{path}: expect.actions[0].policy: policy default has no version effective from 2026-01-01 "
        "(versions: 2020-01-01)",
        f"{path}: expect.balances[0].contract: no contract 'CT9' in the inputs",
    ]


def test_on_is_a_key_not_a_yaml_1_1_boolean():
    assert yaml.load("{on: 2026-03-11, off: no, flag: true}", Loader=scn._ScenarioLoader) == {
        "on": date(2026, 3, 11), "off": "no", "flag": True}


def test_inputs_dir_with_partial_csv_columns_and_a_policy_file(tmp_path):
    data = tmp_path / "world"
    data.mkdir()
    # only the columns that matter; the rest take the same defaults as inline rows
    (data / "customers.csv").write_text("customer_id,apply_fees\nCU1,false\n", encoding="utf-8")
    (data / "contracts.csv").write_text("contract_id\nCT1\n", encoding="utf-8")
    (data / "invoices.csv").write_text(
        "invoice_id,amount,invoice_date,due_date,segment\nI1,100.00,2026-03-01,2026-03-10,smb\n", encoding="utf-8")
    policy_doc = yaml.load(POLICY, Loader=scn._ScenarioLoader)["policy"]
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "candidate.yaml").write_text(yaml.safe_dump(policy_doc), encoding="utf-8")
    path = write(tmp_path, """
policy_file: policies/candidate.yaml
inputs_dir: world
run: {from: 2026-03-11, to: 2026-03-14}
expect:
  actions:
    - {on: 2026-03-11, case: in-I1-20260311, level: 1, action: reminder}
    # apply_fees false from the CSV: no fee
    - {on: 2026-03-13, case: in-I1-20260311, level: 2, action: reminder, fee: "0.00", amount_demanded: "100.00"}
""")
    workdir = tmp_path / "work"
    result = scn.run_scenario(scn.load_scenario(path), workdir)
    assert result.passed, result.differences
    # an extra column flows through to the staged input like in any input file
    con = duckdb.connect(str(workdir / "scenario.duckdb"), read_only=True)
    try:
        assert con.execute("select invoice_id, customer_id, currency, segment from stg_invoices").fetchall() == [
            ("I1", "CU1", "EUR", "smb")]
    finally:
        con.close()


def test_inputs_dir_errors_name_file_row_and_column(tmp_path):
    data = tmp_path / "world"
    data.mkdir()
    (data / "customers.csv").write_text("customer_id\nCU1\n", encoding="utf-8")
    (data / "contracts.csv").write_text("contract_id\nCT1\n", encoding="utf-8")
    (data / "invoices.csv").write_text(
        "invoice_id,amount,invoice_date,due_date\nI1,100.00,2026-03-01,2026-03-10\nI2,1.234,2026-03-01,10.03.2026\n",
        encoding="utf-8")
    path = write(tmp_path, POLICY + "inputs_dir: world\nrun: {from: 2026-03-11, to: 2026-03-14}\nexpect: {actions: []}\n")
    with pytest.raises(scn.ScenarioError) as exc:
        scn.load_scenario(path)
    csv_path = (data / "invoices.csv").resolve()
    assert str(exc.value).splitlines() == [
        f"{csv_path} row 2: due_date: expected a date YYYY-MM-DD, got '10.03.2026'",
        f"{csv_path} row 2: amount: '1.234' is not an amount like \"100.00\" (point as separator, at most 2 decimals)",
    ]
    (data / "invoices.csv").unlink()
    (data / "invoice.csv").write_text("invoice_id\n", encoding="utf-8")
    with pytest.raises(scn.ScenarioError, match=r"unexpected file\(s\) invoice.csv"):
        scn.load_scenario(path)


def test_rejected_input_rows_are_differences(tmp_path):
    path = write(tmp_path, POLICY + """
inputs:
  customers: [{customer_id: CU1}]
  contracts: [{contract_id: CT1}]
  invoices: [{invoice_id: I1, amount: "100.00", currency: GBP, invoice_date: 2026-03-01, due_date: 2026-03-10}]
run: {from: 2026-03-11, to: 2026-03-11}
expect: {actions: []}
""")
    result = scn.run_scenario(scn.load_scenario(path), tmp_path / "work")
    assert result.differences == [
        "input rejected: inputs.invoices[0] column currency 'GBP': currency_mismatch: the contract is billed in EUR"]


def test_main_fails_when_there_is_nothing_to_run(tmp_path, capsys):
    assert scn.main([tmp_path]) == 1
    assert capsys.readouterr().out == f"no scenario files found in: {tmp_path}\n"


def test_a_crashing_scenario_fails_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    # issue 12: a crash inside the pipeline used to abort `dunning test-policy` with a traceback
    # that hid every other scenario's result
    crashing = write(tmp_path, POLICY + INPUTS + """
name: crashes on its first day
run: {from: 2026-03-11, to: 2026-03-11}
expect: {actions: []}
""", "a_crash.yaml")
    passing = write(tmp_path, POLICY + INPUTS + """
name: passes
run: {from: 2026-03-12, to: 2026-03-12}
expect:
  actions:
    - {on: 2026-03-12, case: in-I1-20260312, level: 1, action: reminder, amount_demanded: "100.00"}
""", "b_pass.yaml")
    real_apply_day = run_mod.apply_day

    def apply_day(con, as_of, *args, **kwargs):
        if as_of == date(2026, 3, 11):
            raise RuntimeError("disk on fire\nsecond line of the message")
        return real_apply_day(con, as_of, *args, **kwargs)

    monkeypatch.setattr(run_mod, "apply_day", apply_day)
    assert scn.main([crashing, passing]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"FAIL  {crashing}  crashes on its first day"
    assert re.fullmatch(r"      crashed: RuntimeError: disk on fire \(at run\.py:\d+ in plan_day\)", out[1])
    assert out[2:] == ["      second line of the message",
                       f"PASS  {passing}  passes",
                       "2 scenario(s): 1 passed, 1 failed"]
