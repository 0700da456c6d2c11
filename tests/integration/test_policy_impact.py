"""`dunning policy diff OLD NEW`: level names and the impact of the change, computed by the real models
over past days in work schemas, with every affected customer and case in the files beside the report."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config.policy import load_policy_file
from world import World, policy, query

REMINDER = {"name": "Reminder", "timing": {"after": "due_date", "days": 7}, "payment_term_days": 7}
NOTICE = {"name": "First dunning notice", "timing": {"after": "previous_level", "days": 0}, "payment_term_days": 7}
OLD = [REMINDER, NOTICE]
# the change: a fee of 5.00 at L2, sent as a letter
NEW = [REMINDER, {**NOTICE, "fee": {"EUR": "5.00"}, "channel": "letter"}]


def _world(tmp_path: Path) -> World:
    w = World(tmp_path, policy(OLD))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-15")
    w.customer("CU2").contract("CT2", "CU2").invoice("I2", "40.00", "2026-03-01", "2026-03-15", "CT2", "CU2")
    w.customer("CU3").contract("CT3", "CU3").invoice("I3", "40.00", "2026-03-01", "2026-03-15", "CT3", "CU3")
    w.payment("P3", "40.00", "2026-03-24", "CT3")  # CU3 pays after L1 (22 March): never reaches L2
    return w


def _version_id(path: Path) -> str:
    p = load_policy_file(path).policies[0]
    return p.version_id(p.versions[0])


def test_policy_diff_reports_the_impact_of_a_fee_at_l2_over_the_last_30_days(tmp_path):
    w = _world(tmp_path)
    settings = w.run("2026-03-16", "2026-04-05")
    config = w.write_config()
    new = tmp_path / "new.yaml"
    new.write_text(yaml.safe_dump(policy(NEW)))
    live = "select * from action_ledger order by action_key"
    ledger_before, cases_before = query(settings, live), query(settings, "select * from case_register order by 1")

    result = CliRunner().invoke(app, ["policy", "diff", str(settings.policy_file), str(new), "--config", str(config)])
    assert result.exit_code == 0, result.output
    old_id, new_id = _version_id(settings.policy_file), _version_id(new)
    lines = result.output.splitlines()
    reports = settings.reports_dir
    stem = reports / "policy-diff-2026-03-07-2026-04-05"
    assert lines[:8] == [
        f"policy default: version from 2020-01-01 changed ({old_id} -> {new_id})",
        "  L2 \"First dunning notice\": channel: 'outbox' -> 'letter'",
        "  L2 \"First dunning notice\": fee.EUR: '(absent)' -> '5.00'",
        f"2 open case(s) keep {old_id} (e.g. ct-CT1-20260316); new cases use the new versions",
        "",
        # the last 30 days computed: the run log ends on 5 April
        "## Impact from 2026-03-07 to 2026-04-05 (30 days)",
        "",
        lines[7]]
    assert "work schemas policy_diff_old and policy_diff_new" in lines[7]
    assert "the live tables are not touched" in lines[7]
    impact = lines[lines.index("### Per level and currency"):lines.index(f"report: {stem}.md")]
    assert impact == [
        "### Per level and currency",
        "",
        "| policy | level | currency | figure | old | new | difference |",
        "|---|---|---|---|---:|---:|---:|",
        '| default | L1 "Reminder" | EUR | documents | 3 | 3 | 0 |',
        '| default | L2 "First dunning notice" | EUR | documents | 2 | 2 | 0 |',
        '| default | L2 "First dunning notice" | EUR | letters | 0 | 2 | +2 |',
        '| default | L2 "First dunning notice" | EUR | postage | 0.00 | 1.90 | +1.90 |',
        '| default | L2 "First dunning notice" | EUR | fees | 0.00 | 10.00 | +10.00 |',
        '| default | L2 "First dunning notice" | EUR | open cases on the last day | 2 | 2 | 0 |',
        "",
        "### Totals per currency",
        "",
        "| currency | figure | old | new | difference |",
        "|---|---|---:|---:|---:|",
        "| EUR | documents | 5 | 5 | 0 |",
        "| EUR | letters | 0 | 2 | +2 |",
        "| EUR | postage | 0.00 | 1.90 | +1.90 |",
        "| EUR | fees | 0.00 | 10.00 | +10.00 |",
        "| EUR | contracts ended | 0 | 0 | 0 |",
        "| EUR | open cases on the last day | 2 | 2 | 0 |",
        "",
        "### Customers affected: 2",
        "",
        "| customer | name | currency | cases | documents | letters | postage | fees | contracts ended |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
        "| CU1 | Customer CU1 | EUR | 1 | 2 | 0 -> 1 (+1) | 0.00 -> 0.95 (+0.95) | 0.00 -> 5.00 (+5.00) | 0 |",
        "| CU2 | Customer CU2 | EUR | 1 | 2 | 0 -> 1 (+1) | 0.00 -> 0.95 (+0.95) | 0.00 -> 5.00 (+5.00) | 0 |",
        "",
        "### Cases affected: 2",
        "",
        "| case | customer | currency | levels (old) | levels (new) | on the last day | documents | fees | postage "
        "| contracts ended |",
        "|---|---|---|---|---|---|---:|---:|---:|---:|",
        '| ct-CT1-20260316 | CU1 | EUR | L1 2026-03-22, L2 2026-03-29 | L1 2026-03-22, L2 2026-03-29 '
        '| open at L2 "First dunning notice" | 2 | 0.00 -> 5.00 (+5.00) | 0.00 -> 0.95 (+0.95) | 0 |',
        '| ct-CT2-20260316 | CU2 | EUR | L1 2026-03-22, L2 2026-03-29 | L1 2026-03-22, L2 2026-03-29 '
        '| open at L2 "First dunning notice" | 2 | 0.00 -> 5.00 (+5.00) | 0.00 -> 0.95 (+0.95) | 0 |',
        "",
        "### Actions that differ: 2",
        "",
        "| kind | action | on (old) | on (new) | channel | fee | amount demanded |",
        "|---|---|---|---|---|---:|---:|",
        "| changed | ct-CT1-20260316/L2/reminder | 2026-03-29 | 2026-03-29 | outbox -> letter | 0.00 -> 5.00 "
        "| 100.00 -> 105.00 |",
        "| changed | ct-CT2-20260316/L2/reminder | 2026-03-29 | 2026-03-29 | outbox -> letter | 0.00 -> 5.00 "
        "| 40.00 -> 45.00 |"]
    assert lines[lines.index(f"report: {stem}.md"):] == [
        f"report: {stem}.{table}.{ext}" if table else f"report: {stem}.md"
        for table, ext in [("", ""), *((t, e) for t in ("levels", "customers", "cases", "actions")
                                       for e in ("csv", "parquet"))]]

    # the files hold the same, exactly: the customers affected and their cases
    assert Path(f"{stem}.customers.csv").read_text() == (
        "customer_id,customer_name,currency,cases,documents_old,documents_new,documents_difference,letters_old,"
        "letters_new,letters_difference,postage_old,postage_new,postage_difference,fees_old,fees_new,"
        "fees_difference,terminations_old,terminations_new,terminations_difference,open_cases_old,open_cases_new,"
        "open_cases_difference\n"
        "CU1,Customer CU1,EUR,1,2,2,0,0,1,1,0.00,0.95,0.95,0.00,5.00,5.00,0,0,0,1,1,0\n"
        "CU2,Customer CU2,EUR,1,2,2,0,0,1,1,0.00,0.95,0.95,0.00,5.00,5.00,0,0,0,1,1,0\n")
    cases = Path(f"{stem}.cases.csv").read_text().splitlines()
    assert [row.split(",")[:5] for row in cases[1:]] == [["CU1", "Customer CU1", "CT1", "ct-CT1-20260316", "EUR"],
                                                         ["CU2", "Customer CU2", "CT2", "ct-CT2-20260316", "EUR"]]
    assert Path(f"{stem}.levels.csv").read_text().splitlines()[-1] == \
        "(total),,,,,EUR,5,5,0,0,2,2,0.00,1.90,1.90,0.00,10.00,10.00,0,0,0,2,2,0"
    md = Path(f"{stem}.md").read_text()
    assert md.startswith(f"# Policy diff: {settings.policy_file} -> {new}\n\n## Changes\n\n```text\n")
    assert "| CU2 | Customer CU2 | EUR | 1 | 2 | 0 -> 1 (+1) |" in md
    # typed copies for analysts
    assert duckdb.sql(f"select customer_id, fees_difference, typeof(fees_difference) "
                      f"from '{stem}.customers.parquet' order by 1").fetchall() == [
        ("CU1", Decimal("5.00"), "DECIMAL(18,2)"),
        ("CU2", Decimal("5.00"), "DECIMAL(18,2)")]
    # nothing live was touched: the old and new runs live in their own schemas
    assert query(settings, live) == ledger_before
    assert query(settings, "select * from case_register order by 1") == cases_before
    assert query(settings, "select count(*) from policy_diff_new.action_ledger where fee = 5.00") == [(2,)]


def test_policy_diff_impact_over_a_chosen_range_and_its_refusals(tmp_path):
    w = _world(tmp_path)
    settings = w.write()
    config = w.write_config()
    new = tmp_path / "new.yaml"
    new.write_text(yaml.safe_dump(policy(NEW)))
    runner = CliRunner()
    args = ["policy", "diff", str(settings.policy_file), str(new), "--config", str(config)]
    # no day computed yet: the changes, and why there is no impact (exit 2 only when asked for one)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == \
        f"impact: no day computed yet in {settings.database}; give --from and --to to choose the days"
    assert runner.invoke(app, [*args, "--days", "30"]).exit_code == 2
    bad = runner.invoke(app, [*args, "--from", "2026-03-16"])
    assert bad.exit_code == 2 and "give --from and --to together, or --days, not both" in bad.output
    # a chosen range on a database with no live day at all: computed from the inputs alone
    report = tmp_path / "out" / "impact of the fee.md"
    result = runner.invoke(app, [*args, "--from", "2026-03-16", "--to", "2026-03-29", "--report", str(report)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "## Impact from 2026-03-16 to 2026-03-29 (14 days)" in lines
    assert "| EUR | fees | 0.00 | 10.00 | +10.00 |" in lines
    assert f"report: {report}" in lines
    assert f"report: {tmp_path / 'out' / 'impact of the fee.customers.csv'}" in lines
    assert query(settings, "select count(*) from action_ledger") == [(0,)]
