"""What-if simulation: a candidate policy over past days in its own schema, compared with what happened."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import yaml

from pipeline.engine import run as run_mod
from pipeline.engine.simulate import Figures, markdown, simulate, write_html
from world import World, policy, query

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


def _simulate(s, tmp_path, levels, name="candidate"):
    candidate = tmp_path / f"{name}.yaml"
    candidate.write_text(yaml.safe_dump(policy(levels) if levels else yaml.safe_load(s.policy_file.read_text())))
    with run_mod.connect(s.database) as con:
        run_mod.load_inputs(con, s)
        return simulate(con, s, candidate, date(2026, 3, 16), date(2026, 4, 20), name=name)


def test_a_candidate_is_compared_side_by_side_and_the_live_tables_stay_untouched(tmp_path):
    s = _world(tmp_path).run("2026-03-16", "2026-04-20")
    live_before = query(s, "select * from action_ledger order by action_key")
    sim = _simulate(s, tmp_path, CANDIDATE)
    assert sim.schema == "sim_candidate"
    assert query(s, "select * from action_ledger order by action_key") == live_before
    assert sim.actual == Figures(
        documents={"L1": 2, "L2": 1}, letters={"EUR": 0}, registered={"EUR": 0},
        postage={"EUR": Decimal("0.00")}, fees={"EUR": Decimal("5.00")},
        paid_after_level={"L1": {"EUR": Decimal("40.00")}, "L2": {"EUR": Decimal("0.00")}}, contracts_ended=0)
    # candidate: reminders on 18 March; both registered letters on 25 March (7.50 each), two
    # days before CU2 pays (the payment is level 2's, the last level before it: it counts once);
    # CT1's end_contract on 1 April (level 3, nothing paid after it) is exported in the
    # simulation's own schema, as a live day would (its contract_terminations view): one ends
    assert sim.candidate == Figures(
        documents={"L1": 2, "L2": 2}, letters={"EUR": 2}, registered={"EUR": 2},
        postage={"EUR": Decimal("7.38")}, fees={"EUR": Decimal("15.00")},
        paid_after_level={"L1": {"EUR": Decimal("0.00")}, "L2": {"EUR": Decimal("40.00")},
                          "L3": {"EUR": Decimal("0.00")}},
        contracts_ended=1)
    assert query(s, "select contract_id, effective_on::varchar from sim_candidate.contract_terminations") == [
        ("CT1", "2026-04-30")]
    assert query(s, "select action_key, executed_on::varchar, channel, fee from sim_candidate.action_ledger "
                    "where status <> 'skipped' order by executed_on, action_key") == [
        ("ct-CT1-20260316/L1/reminder", "2026-03-18", "outbox", Decimal("0.00")),
        ("ct-CT2-20260316/L1/reminder", "2026-03-18", "outbox", Decimal("0.00")),
        ("ct-CT1-20260316/L2/reminder", "2026-03-25", "registered_letter", Decimal("7.50")),
        ("ct-CT2-20260316/L2/reminder", "2026-03-25", "registered_letter", Decimal("7.50")),
        ("ct-CT1-20260316/L3/end_contract", "2026-04-01", "end_contract", Decimal("0.00"))]
    # the summary's letters and postage are the impact's (postage is computed once, in SQL)
    totals = sim.impact.totals()
    assert {ccy: (x.postage, y.postage) for ccy, (x, y) in totals.items()} == {
        "EUR": (Decimal("0.00"), Decimal("7.38"))}
    assert {ccy: (x.letters, y.letters) for ccy, (x, y) in totals.items()} == {"EUR": (0, 2)}
    md = markdown(sim)
    assert "| postage estimate (EUR) | 0.00 | 7.38 |" in md
    assert "| fees charged (EUR) | 5.00 | 15.00 |" in md
    assert "| contracts ended | 0 | 1 |" in md
    assert "| paid within 14 days after level 2 (EUR) | 0.00 | 40.00 |" in md
    # with the difference, and the totals per currency of the same figures
    assert "| fees charged (EUR) | 5.00 | 15.00 | +10.00 |" in md
    assert "| EUR | fees | 5.00 | 15.00 | +10.00 |" in md
    assert "| EUR | postage | 0.00 | 7.38 | +7.38 |" in md
    html = write_html(sim, tmp_path / "reports").read_text()
    assert html.count("<svg") == 2
    assert 'data-label="L2 actual" data-series="actual" data-value="1"' in html
    assert 'data-label="L2 candidate" data-series="candidate" data-value="2"' in html
    assert 'data-label="EUR candidate" data-series="candidate" data-value="15.00"' in html


def test_the_same_policy_simulated_gives_the_live_ledger(tmp_path):
    s = _world(tmp_path).run("2026-03-16", "2026-04-20")
    _simulate(s, tmp_path, None, name="same")
    columns = "action_key, executed_on, level_no, action, status, principal, fee, fees_total, amount_demanded"
    assert query(s, f"select {columns} from sim_same.action_ledger order by 1") == \
        query(s, f"select {columns} from action_ledger order by 1") != []
