"""`dunning simulate`: differences and totals, every affected customer and case in files beside the
report, charts with titles, which figures are mechanical and which assume customers behave as they
did; output that pipes well (no line broken inside a path) and reports that are the same bytes for
the same inputs."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import yaml
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.engine import run as run_mod
from pipeline.engine.simulate import Simulation, comparison, write_report
from world import World, policy, query

# the world of tests/integration/test_simulate.py
LIVE = [("due_date", 7, 7), ("previous_level", 0, 7, {"EUR": "5.00"})]
CANDIDATE = [
    {"name": "Reminder", "timing": {"after": "due_date", "days": 3}, "payment_term_days": 7},
    {"name": "Letter", "timing": {"after": "previous_level", "days": 0}, "payment_term_days": 7,
     "fee": {"EUR": "7.50"}, "channel": "registered_letter"},
    {"name": "End", "timing": {"after": "previous_level", "days": 0},
     "actions": [{"type": "end_contract", "when": "end_of_period"}]},
]


def _world(tmp_path) -> World:
    w = World(tmp_path, policy(LIVE))
    w.customer().contract(billed_until="2026-04-30")
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-15")
    w.customer("CU2").contract("CT2", "CU2").invoice("I2", "40.00", "2026-03-01", "2026-03-15", "CT2", "CU2")
    w.payment("P2", "40.00", "2026-03-27", "CT2")   # CU2 pays 5 days after a level-1 reminder of 22 March
    return w


STEM = "simulate-sim_candidate-2026-03-16-2026-04-20"


def test_simulate_reports_differences_totals_and_the_customers_affected(tmp_path):
    w = _world(tmp_path)
    settings = w.run("2026-03-16", "2026-04-20")
    config = w.write_config()
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(yaml.safe_dump(policy(CANDIDATE)))
    ledger_before = query(settings, "select * from action_ledger order by action_key")
    # a folder name longer than a terminal line: it must stay on one line when piped
    out = tmp_path / ("reports of the what-if simulation with a folder name longer than eighty columns " * 2).strip()
    result = CliRunner().invoke(app, ["simulate", "--policy", str(candidate), "--from", "2026-03-16",
                                      "--to", "2026-04-20", "--out", str(out), "--config", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    files = [f"{STEM}.md", f"{STEM}.html"] + [f"{STEM}.{t}.{e}" for t in ("levels", "customers", "cases", "actions")
                                               for e in ("csv", "parquet")]
    assert lines[-len(files):] == [f"report: {out / name}" for name in files]
    assert lines[-len(files) - 1].startswith("schema sim_candidate (")
    # the summary: a difference column; mechanical figures first, then payments, said to be observed
    assert lines[lines.index("| figure | actual | candidate | difference |"):][:8] == [
        "| figure | actual | candidate | difference |",
        "|---|---:|---:|---:|",
        "| documents, L1 | 2 | 2 | 0 |",
        "| documents, L2 | 1 | 2 | +1 |",
        "| letters (EUR) | 0 | 2 | +2 |",
        "| postage estimate (EUR) | 0.00 | 7.38 | +7.38 |",
        "| fees charged (EUR) | 5.00 | 15.00 | +10.00 |",
        "| contracts ended | 0 | 1 | +1 |"]
    assert lines.index("### What the candidate would do to the same data") < lines.index(
        "### Payments after a level: observed under the actual policy")
    paid = lines[lines.index("### Payments after a level: observed under the actual policy"):]
    assert paid[2].startswith("Not a prediction: these figures assume customers behave as they did. Both columns "
                              "count the payments customers really made, under the actual policy")
    assert paid[4:9] == [
        "| figure | actual | candidate | difference |",
        "|---|---:|---:|---:|",
        "| paid within 14 days after level 1 (EUR) | 40.00 | 0.00 | -40.00 |",
        "| paid within 14 days after level 2 (EUR) | 0.00 | 40.00 | +40.00 |",
        "| paid within 14 days after level 3 (EUR) | 0.00 | 0.00 | 0.00 |"]
    assert lines[lines.index("#### Per level and currency"):lines.index("#### Customers affected: 2")] == [
        "#### Per level and currency",
        "",
        "| policy | level | currency | figure | actual | candidate | difference |",
        "|---|---|---|---|---:|---:|---:|",
        '| default | L1 "Level 1" -> "Reminder" | EUR | documents | 2 | 2 | 0 |',
        '| default | L2 "Level 2" -> "Letter" | EUR | documents | 1 | 2 | +1 |',
        '| default | L2 "Level 2" -> "Letter" | EUR | letters | 0 | 2 | +2 |',
        '| default | L2 "Level 2" -> "Letter" | EUR | postage | 0.00 | 7.38 | +7.38 |',
        '| default | L2 "Level 2" -> "Letter" | EUR | fees | 5.00 | 15.00 | +10.00 |',
        '| default | L2 "Level 2" -> "Letter" | EUR | open cases on the last day | 1 | 0 | -1 |',
        '| default | L3 "End" | EUR | contracts ended | 0 | 1 | +1 |',
        '| default | L3 "End" | EUR | open cases on the last day | 0 | 1 | +1 |',
        "",
        "#### Totals per currency",
        "",
        "| currency | figure | actual | candidate | difference |",
        "|---|---|---:|---:|---:|",
        "| EUR | documents | 3 | 4 | +1 |",
        "| EUR | letters | 0 | 2 | +2 |",
        "| EUR | postage | 0.00 | 7.38 | +7.38 |",
        "| EUR | fees | 5.00 | 15.00 | +10.00 |",
        "| EUR | contracts ended | 0 | 1 | +1 |",
        "| EUR | open cases on the last day | 1 | 1 | 0 |",
        ""]
    # CU1: its registered letter (3.69) with 7.50 instead of 5.00, and its contract ended; CU2: a letter
    # it never got under the actual policy (it paid two days after the candidate's one)
    assert lines[lines.index("#### Customers affected: 2") + 4:][:2] == [
        "| CU1 | Customer CU1 | EUR | 1 | 2 | 0 -> 1 (+1) | 0.00 -> 3.69 (+3.69) | 5.00 -> 7.50 (+2.50) "
        "| 0 -> 1 (+1) |",
        "| CU2 | Customer CU2 | EUR | 1 | 1 -> 2 (+1) | 0 -> 1 (+1) | 0.00 -> 3.69 (+3.69) | 0.00 -> 7.50 (+7.50) "
        "| 0 |"]
    assert "| ct-CT2-20260316 | CU2 | EUR | L1 2026-03-22 | L1 2026-03-18, L2 2026-03-25 | closed on 2026-03-27 " \
           "(balance_cleared) | 1 -> 2 (+1) | 0.00 -> 7.50 (+7.50) | 0.00 -> 3.69 (+3.69) | 0 |" in lines
    assert (out / f"{STEM}.actions.csv").read_text() == (
        "kind,action_key,case_id,customer_id,contract_id,currency,level_no,action,channel_actual,channel_candidate,"
        "executed_on_actual,executed_on_candidate,fee_actual,fee_candidate,amount_demanded_actual,"
        "amount_demanded_candidate\n"
        "changed,ct-CT1-20260316/L1/reminder,ct-CT1-20260316,CU1,CT1,EUR,1,reminder,outbox,outbox,2026-03-22,"
        "2026-03-18,0.00,0.00,100.00,100.00\n"
        "changed,ct-CT1-20260316/L2/reminder,ct-CT1-20260316,CU1,CT1,EUR,2,reminder,outbox,registered_letter,"
        "2026-03-29,2026-03-25,5.00,7.50,105.00,107.50\n"
        "added,ct-CT1-20260316/L3/end_contract,ct-CT1-20260316,CU1,CT1,EUR,3,end_contract,,end_contract,,"
        "2026-04-01,,0.00,,107.50\n"
        "changed,ct-CT2-20260316/L1/reminder,ct-CT2-20260316,CU2,CT2,EUR,1,reminder,outbox,outbox,2026-03-22,"
        "2026-03-18,0.00,0.00,40.00,40.00\n"
        "added,ct-CT2-20260316/L2/reminder,ct-CT2-20260316,CU2,CT2,EUR,2,reminder,,registered_letter,,2026-03-25,"
        ",7.50,,47.50\n")
    assert [row.split(",")[0] for row in (out / f"{STEM}.customers.csv").read_text().splitlines()] == [
        "customer_id", "CU1", "CU2"]

    # charts carry visible titles; the page says which figures are mechanical
    html = (out / f"{STEM}.html").read_text()
    assert html.count("<svg") == 2
    assert '<text class="chart-title" x="0" y="15" font-size="13" font-weight="bold">Documents per level: ' \
           "actual and candidate</text>" in html
    assert ">Fees charged (EUR): actual and candidate</text>" in html
    assert "<h2>Payments after a level: observed under the actual policy</h2>" in html

    # the same ledgers give the same bytes: the report written again from the database
    with run_mod.connect(settings.database) as con:
        start, end = date(2026, 3, 16), date(2026, 4, 20)
        actual, candidate, impact = comparison(con, "sim_candidate", start, end, settings, 14)
        again = Simulation("sim_candidate", start, end, 14, actual, candidate, 0.0, impact)
    for a, b in zip(write_report(again, tmp_path / "again"), [out / name for name in files], strict=True):
        assert a.name == b.name and a.read_bytes() == b.read_bytes(), a.name
    # the Markdown report holds every case and action (the terminal's list is capped, the file's is not)
    md = (out / f"{STEM}.md").read_text()
    assert md.count("| added | ") == 2 and md.count("| changed | ") == 3
    assert query(settings, "select * from action_ledger order by action_key") == ledger_before


def test_a_long_list_is_capped_on_the_terminal_and_complete_in_the_file(tmp_path):
    from pipeline.engine.impact import ActionRow, Impact, markdown_sections

    rows = [ActionRow("added", f"ct-CT{i:02d}-20260316/L1/reminder", f"ct-CT{i:02d}-20260316", f"CU{i:02d}",
                      f"CT{i:02d}", "EUR", 1, "reminder", None, "outbox", None, date(2026, 3, 18), None,
                      None, None, None) for i in range(1, 36)]
    impact = Impact(date(2026, 3, 16), date(2026, 4, 20), "actual", "candidate", actions=rows)
    capped = markdown_sections(impact, limit=30, where=str(Path("/reports/x.md")))
    assert capped[-1] == "... 5 more: every one in /reports/x.md"
    assert sum(line.startswith("| added | ") for line in capped) == 30
    assert sum(line.startswith("| added | ") for line in markdown_sections(impact)) == 35


def test_a_postage_rate_finer_than_a_cent_is_refused_when_the_settings_load(tmp_path):
    """The reports' money is exact to the cent (DECIMAL(18,2)): a rate of 0.955 was shown as such, then
    refused by the report's Parquet columns after the Markdown was written, half-way through."""
    import pytest
    from pydantic import ValidationError

    w = _world(tmp_path)
    w.settings_overrides["postage"] = {"letter": {"EUR": "0.955"}, "registered_letter": {"EUR": "3.69"}}
    with pytest.raises(ValidationError, match=r"postage\.letter\.EUR: 0\.955 is not an amount in whole cents"):
        w.write()
    w.settings_overrides["postage"] = {"letter": {"EUR": "0.95"}, "registered_letter": {"EUR": "-1.00"}}
    with pytest.raises(ValidationError, match=r"postage\.registered_letter\.EUR: -1\.00 is not an amount"):
        w.write()
    w.settings_overrides["postage"] = {"letter": {"EUR": "0.9"}}
    assert w.write().postage == {"letter": {"EUR": Decimal("0.9")}}


def test_a_collection_step_s_documents_are_not_a_dunning_level_s(tmp_path):
    """A candidate adds a failed-collection step (S1) and no dunning level runs in the range: the summary
    said "documents, L1", merging the step into level 1, where the impact table says S1."""
    from pipeline.engine.simulate import markdown, simulate

    level = [("due_date", 30, 0)]
    w = World(tmp_path, policy(level, grace_days=10))
    w.customer().contract(payment_method="direct_debit")
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-01")
    w.payment("P1", "100.00", "2026-03-03", invoice_id="I1", status="failed", reason_code="MS02", mandate_id="M1")
    s = w.run("2026-03-01", "2026-03-10")
    candidate = tmp_path / "candidate.yaml"
    steps = [{"type": "payment_alternative", "name": "Transfer", "method": "transfer", "grace_days": 5}]
    collections = {"collections": {"steps": {"hard": steps}}}
    candidate.write_text(yaml.safe_dump(policy(level, grace_days=10, extra=collections)))
    with run_mod.connect(s.database) as con:
        run_mod.load_inputs(con, s)
        sim = simulate(con, s, candidate, date(2026, 3, 1), date(2026, 3, 10), name="candidate")
    assert (sim.actual.documents, sim.candidate.documents) == ({}, {"S1": 1})
    assert [(r.level, r.after.documents) for r in sim.impact.levels] == [("S1", 1)]
    assert [line for line in markdown(sim).splitlines() if line.startswith("| documents")] == [
        "| documents, S1 | 0 | 1 | +1 |"]


def test_contracts_ended_count_each_contract_once_in_the_summary_and_the_impact(tmp_path):
    """Invoice scope: the cases of I1 and I2 both reach a level that ends CT1 on the same day. The summary
    counted one contract ended, the impact table two ends (each with a credit note)."""
    from pipeline.engine.simulate import simulate

    w = World(tmp_path, policy([("due_date", 30, 0)]))
    w.customer().contract(billed_until="2026-03-31")
    w.invoice("I1", "31.00", "2026-03-01", "2026-03-15").invoice("I2", "10.00", "2026-03-02", "2026-03-15")
    s = w.run("2026-03-16", "2026-03-25")
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(yaml.safe_dump(policy([{"name": "End", "timing": {"after": "due_date", "days": 5},
                                                 "actions": [{"type": "end_contract", "when": "end_of_period"}]}],
                                               scope="invoice")))
    with run_mod.connect(s.database) as con:
        run_mod.load_inputs(con, s)
        sim = simulate(con, s, candidate, date(2026, 3, 16), date(2026, 3, 25), name="candidate")
        ends = con.execute("select count(*) from sim_candidate.action_ledger where action = 'end_contract'"
                           ).fetchall()
    assert ends == [(2,)]  # both levels ran
    assert (sim.actual.contracts_ended, sim.candidate.contracts_ended) == (0, 1)
    assert [(r.level, r.after.terminations) for r in sim.impact.levels] == [("L0", 0), ("L1", 1)]
    assert {ccy: (before.terminations, after.terminations) for ccy, (before, after) in sim.impact.totals().items()
            } == {"EUR": (0, 1)}
