"""Recovery figures have one definition (sql/analytics/recovered_after_level.sql): cash booked after a level.

Every world has one level, seven days after the due date, so a case with an invoice due on
1 March receives it on 8 March demanding the invoice's amount. Exact dates and amounts to the
cent, per currency; level_outcomes and `dunning simulate` must show the same figure.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D


from pipeline.engine import run as run_mod
from pipeline.engine.backfill import backfill
from pipeline.engine.simulate import simulate
from world import World, policy, query

ONE_LEVEL = [("due_date", 7, 30)]
FIRST_DAY, LAST_DAY = "2026-03-02", "2026-04-10"


def _world(tmp_path, levels=ONE_LEVEL, **policy_kw) -> World:
    return World(tmp_path, policy(levels, **policy_kw))


def _simulate(s, tmp_path, paid_within_days: int):
    """The live policy simulated over the days run (the candidate is the live policy itself)."""
    candidate = tmp_path / "same.yaml"
    candidate.write_text(s.policy_file.read_text())
    with run_mod.connect(s.database) as con:
        run_mod.load_inputs(con, s)
        return simulate(con, s, candidate, date.fromisoformat(FIRST_DAY), date.fromisoformat(LAST_DAY),
                        name="same", paid_within_days=paid_within_days)


def _recovered(s, as_of: str, days: int) -> list[tuple]:
    return query(s, "select case_id, level_no, currency, executed_on::varchar, payments, amount_recovered "
                    "from recovered_after_level(?, ?) order by case_id, level_no", [as_of, days])


def _outcomes(s, sql="from level_outcomes") -> list[tuple]:
    return query(s, "select level_no, currency, amount_recovered_7_days, amount_recovered_14_days, amount_recovered "
                    f"{sql} order by level_no, currency")


def _demanded_300(tmp_path) -> World:
    """300.00 due 1 March, level 1 on 8 March; 30.00 paid 5 days later, 100.00 paid 20 days later."""
    w = _world(tmp_path)
    w.customer().contract().invoice("I1", "300.00", "2026-02-15", "2026-03-01")
    w.payment("P1", "30.00", "2026-03-13")
    w.payment("P2", "100.00", "2026-03-28")
    return w


def test_cash_booked_within_n_days_after_the_level_not_the_amount_demanded(tmp_path):
    s = _demanded_300(tmp_path).run(FIRST_DAY, LAST_DAY)
    assert query(s, "select executed_on::varchar, amount_demanded from action_ledger") == [
        ("2026-03-08", D("300.00"))]
    assert query(s, "select amount_recovered from level_outcomes") == [(D("130.00"),)]  # cash within 30 days
    assert _recovered(s, LAST_DAY, 14) == [("ct-CT1-20260302", 1, "EUR", "2026-03-08", 1, D("30.00"))]
    assert _recovered(s, LAST_DAY, 30) == [("ct-CT1-20260302", 1, "EUR", "2026-03-08", 2, D("130.00"))]
    # 7 days: P1 only; 14: P1; 30 (amount_recovered): P1 + P2. Never the 300.00 demanded.
    assert _outcomes(s) == [(1, "EUR", D("30.00"), D("30.00"), D("130.00"))]
    # as of a day, payments booked later are invisible: on 27 March P2 was not booked yet
    assert _outcomes(s, "from level_outcomes_as_of('2026-03-27')") == [(1, "EUR", D("30.00"), D("30.00"), D("30.00"))]
    assert _recovered(s, "2026-03-12", 30) == [("ct-CT1-20260302", 1, "EUR", "2026-03-08", 0, D("0.00"))]


def test_simulate_shows_the_figure_level_outcomes_shows(tmp_path):
    s = _demanded_300(tmp_path).run(FIRST_DAY, LAST_DAY)
    within_30 = _simulate(s, tmp_path, 30)
    assert query(s, "select amount_recovered from level_outcomes") == [(within_30.actual.paid_after_level["L1"]["EUR"],)]
    assert within_30.actual.paid_after_level == within_30.candidate.paid_after_level == {"L1": {"EUR": D("130.00")}}
    within_14 = _simulate(s, tmp_path, 14)
    assert query(s, "select amount_recovered_14_days from level_outcomes") == [
        (within_14.actual.paid_after_level["L1"]["EUR"],)]
    assert within_14.actual.paid_after_level == within_14.candidate.paid_after_level == {"L1": {"EUR": D("30.00")}}


def test_a_payment_in_another_currency_is_not_mixed_in(tmp_path):
    # customer scope: one case per currency for CU1's EUR and USD contracts, both at level 1 on 8 March
    w = _world(tmp_path, scope="customer")
    w.customer().contract("CT1").contract("CT2", currency="USD")
    w.invoice("I1", "300.00", "2026-02-15", "2026-03-01", "CT1")
    w.invoice("I2", "200.00", "2026-02-15", "2026-03-01", "CT2", currency="USD")
    w.payment("P1", "30.00", "2026-03-13", "CT1")
    w.payment("P2", "50.00", "2026-03-12", "CT2", currency="USD")
    s = w.run(FIRST_DAY, LAST_DAY)
    assert _recovered(s, LAST_DAY, 14) == [
        ("cu-CU1-EUR-20260302", 1, "EUR", "2026-03-08", 1, D("30.00")),
        ("cu-CU1-USD-20260302", 1, "USD", "2026-03-08", 1, D("50.00"))]
    assert _outcomes(s) == [(1, "EUR", D("30.00"), D("30.00"), D("30.00")),
                            (1, "USD", D("50.00"), D("50.00"), D("50.00"))]
    assert _simulate(s, tmp_path, 14).actual.paid_after_level == {"L1": {"EUR": D("30.00"), "USD": D("50.00")}}


def test_failed_and_reversed_payments_are_not_cash(tmp_path):
    w = _demanded_300(tmp_path)
    w.payment("P3", "40.00", "2026-03-10", status="failed", reason_code="AM04")
    w.payment("P4", "50.00", "2026-03-14", status="reversed", reversed_on="2026-03-20", reason_code="MD06")
    s = w.run(FIRST_DAY, LAST_DAY)
    assert _outcomes(s) == [(1, "EUR", D("30.00"), D("30.00"), D("130.00"))]
    assert _simulate(s, tmp_path, 14).actual.paid_after_level == {"L1": {"EUR": D("30.00")}}
    # as the balances count it: a reversed payment counts until its reversal, a failed one never
    assert _recovered(s, "2026-03-19", 14) == [("ct-CT1-20260302", 1, "EUR", "2026-03-08", 2, D("80.00"))]
    assert _recovered(s, "2026-03-20", 14) == [("ct-CT1-20260302", 1, "EUR", "2026-03-08", 1, D("30.00"))]


END = [("due_date", 7, 7), {"name": "End", "timing": {"after": "previous_level", "days": 0},
                            "actions": [{"type": "end_contract", "when": "end_of_period"}]}]


def _ending(tmp_path) -> World:
    """Level 1 on 8 March (term 7), level 2 ends the contract on 15 March."""
    w = _world(tmp_path, END)
    w.customer().contract(billed_until="2026-03-31").invoice("I1", "300.00", "2026-02-15", "2026-03-01")
    return w


def test_contracts_ended_are_the_exported_end_contract_actions(tmp_path):
    s = _ending(tmp_path).run(FIRST_DAY, LAST_DAY, dispatch=True)  # live days: the end_contract is exported
    assert query(s, "select executed_on::varchar, status from action_ledger where action = 'end_contract'") == [
        ("2026-03-15", "recorded")]
    sim = _simulate(s, tmp_path, 14)
    assert sim.actual.contracts_ended == query(s, "select count(*) from contract_terminations")[0][0] == 1


def test_a_backfilled_end_contract_is_not_a_contract_ended(tmp_path):
    s = _ending(tmp_path).write()
    with run_mod.connect(s.database) as con:
        run_mod.load_inputs(con, s)
        backfill(con, date.fromisoformat(FIRST_DAY), date.fromisoformat(LAST_DAY), s, catch_up="none")
    assert query(s, "select executed_on::varchar, status from action_ledger where action = 'end_contract'") == [
        ("2026-03-15", "not_dispatched")]
    assert query(s, "select count(*) from contract_terminations") == [(0,)]
    assert _simulate(s, tmp_path, 14).actual.contracts_ended == 0


def test_a_recovery_is_the_last_level_s_before_the_case_closed_also_after_a_backfill(tmp_path):
    """L1 sent on 15 March, L2 on 25 March; a payment booked on 20 March arrives late and a backfill
    closes the case on 20 March. L2 stays in the ledger (it was sent), but the customer paid after L1:
    level_outcomes credited L2, with -5 days to pay, where recovered_after_level credits L1."""
    w = World(tmp_path, policy([("due_date", 5, 0), ("previous_level", 10, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    s = w.run("2026-03-11", "2026-03-28", dispatch=True)
    w.payment("P1", "100.00", "2026-03-20", invoice_id="I1")
    s = w.write()
    with run_mod.connect(s.database) as con:
        run_mod.load_inputs(con, s)
        backfill(con, date(2026, 3, 11), date(2026, 3, 28), s, catch_up="none")
    assert query(s, "select closed_on::varchar, close_reason from case_register") == [("2026-03-20", "balance_cleared")]
    assert query(s, "select level_no, executed_on::varchar, status from action_ledger order by 1") == [
        (1, "2026-03-15", "sent"), (2, "2026-03-25", "sent")]
    assert query(s, "select level_no, amount_recovered from recovered_after_level('2026-03-28', 30) order by 1") == [
        (1, D("100.00")), (2, D("0.00"))]
    assert query(s, "select level_no, cases_reached, cases_recovered, paid_within_7_days, median_days_to_pay "
                    "from level_outcomes order by 1") == [(1, 1, 1, 1, D("5.0")), (2, 1, 0, 0, None)]


def test_the_outcomes_of_a_day_not_computed_yet_are_refused(tmp_path):
    """state_as_of and key_figures_as_of refuse a day after the last one run; level_outcomes_as_of
    answered it with the figures of the last day, stamped with the day asked."""
    import duckdb
    import pytest

    w = World(tmp_path, policy([("due_date", 5, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    s = w.run("2026-03-11", "2026-03-16")
    con = duckdb.connect(str(s.database), read_only=True)
    try:
        with pytest.raises(duckdb.Error, match=r"state_as_of\(2026-04-30\): that day is after the last day computed, "
                                               r"2026-03-16; its state is not known yet"):
            con.execute("select * from level_outcomes_as_of('2026-04-30')").fetchall()
        assert con.execute("select as_of::varchar, level_no, cases_reached from level_outcomes_as_of('2026-03-16')"
                           ).fetchall() == [("2026-03-16", 1, 1)]
    finally:
        con.close()
