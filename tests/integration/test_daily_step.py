"""The daily step on hand-made worlds: exact dates, amounts and statuses, day by day."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from world import World, actions, policy, query

# SPEC section 4: reminders after 14, 7, 7 days, dunning notice after 7, all terms 0
SPEC_LEVELS = [("previous_level", 14, 0), ("previous_level", 7, 0), ("previous_level", 7, 0), ("previous_level", 7, 0)]


def test_spec_worked_example_standard(tmp_path):
    w = World(tmp_path, policy(SPEC_LEVELS, scope="invoice"))
    w.customer().contract().invoice("I1", "100.00", "2026-04-26", "2026-05-10")
    s = w.run("2026-05-01", "2026-06-20")
    assert actions(s) == [
        ("2026-05-24", "in-I1-20260511", 1, "reminder", "100.00"),
        ("2026-05-31", "in-I1-20260511", 2, "reminder", "100.00"),
        ("2026-06-07", "in-I1-20260511", 3, "reminder", "100.00"),
        ("2026-06-14", "in-I1-20260511", 4, "reminder", "100.00"),
    ]


def test_spec_worked_example_suspended_25_may_until_1_june(tmp_path):
    w = World(tmp_path, policy(SPEC_LEVELS, scope="invoice"))
    w.customer().contract().invoice("I1", "100.00", "2026-04-26", "2026-05-10")
    w.suspension("global", "", "2026-05-25", "2026-06-01")
    s = w.run("2026-05-01", "2026-06-20")
    assert [(d, lv) for d, _, lv, _, _ in actions(s)] == [
        ("2026-05-24", 1), ("2026-06-01", 2), ("2026-06-08", 3), ("2026-06-15", 4)]


@pytest.mark.parametrize("scope", ["customer", "contract", "invoice"])
def test_suspension_scopes_hold_the_level_without_moving_the_schedule(tmp_path, scope):
    w = World(tmp_path, policy(SPEC_LEVELS, scope="invoice"))
    w.customer().contract().invoice("I1", "100.00", "2026-04-26", "2026-05-10")
    w.suspension(scope, {"customer": "CU1", "contract": "CT1", "invoice": "I1"}[scope], "2026-05-25", "2026-06-03")
    s = w.run("2026-05-01", "2026-06-12")
    assert [(d, lv) for d, _, lv, _, _ in actions(s)] == [("2026-05-24", 1), ("2026-06-03", 2), ("2026-06-10", 3)]


def test_invoice_pause_flag_stops_dunning(tmp_path):
    w = World(tmp_path, policy(SPEC_LEVELS, scope="invoice"))
    w.customer().contract().invoice("I1", "100.00", "2026-04-26", "2026-05-10", dunning_paused="true")
    s = w.run("2026-05-01", "2026-06-20")
    assert actions(s) == []


def test_allocation_bound_first_then_oldest_first_with_credit_note_and_overpayment(tmp_path):
    w = World(tmp_path, policy([("due_date", 30, 0)]))
    w.customer().contract()
    w.invoice("I1", "100.00", "2026-01-01", "2026-01-15")
    w.invoice("I2", "200.00", "2026-02-01", "2026-02-15")
    w.invoice("I3", "300.00", "2026-03-01", "2026-03-15")
    w.invoice("CN1", "-50.00", "2026-03-05", "2026-03-05")          # credit note: oldest first
    w.payment("P1", "320.00", "2026-03-10", invoice_id="I3")         # settles I3, 20.00 over
    w.payment("P2", "40.00", "2026-03-11")                           # no invoice: oldest first
    w.payment("P3", "999.00", "2026-03-12", status="failed")        # counts for nothing
    s = w.run("2026-03-20", "2026-03-20")
    assert query(s, "select invoice_id, open_amount from open_receivables order by invoice_id") == [
        ("I2", Decimal("190.00"))]   # I1 100 covered by 50 + 20 + 40 = 110, 10 left for I2
    assert query(s, "select open_amount, overdue_amount, unapplied_credit, balance, oldest_invoice_id "
                    "from contract_balances") == [
        (Decimal("190.00"), Decimal("190.00"), Decimal("0.00"), Decimal("190.00"), "I2")]


def test_credit_settles_not_yet_due_invoices_and_never_crosses_contracts(tmp_path):
    w = World(tmp_path, policy([("due_date", 30, 0)]))
    w.customer().contract("CT1").contract("CT2")
    w.invoice("A1", "100.00", "2026-03-01", "2026-04-30", contract_id="CT1")   # not yet due
    w.invoice("B1", "80.00", "2026-03-01", "2026-03-10", contract_id="CT2")
    w.payment("P1", "150.00", "2026-03-05", contract_id="CT1")
    s = w.run("2026-03-20", "2026-03-20")
    assert query(s, "select contract_id, open_amount, overdue_amount, unapplied_credit, balance "
                    "from contract_balances order by contract_id") == [
        ("CT1", Decimal("0.00"), Decimal("0.00"), Decimal("50.00"), Decimal("-50.00")),
        ("CT2", Decimal("80.00"), Decimal("80.00"), Decimal("0.00"), Decimal("80.00"))]


def test_reversed_payment_counts_until_reversal_and_reopens_a_new_case(tmp_path):
    w = World(tmp_path, policy([("due_date", 5, 0), ("previous_level", 10, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    w.payment("P1", "100.00", "2026-03-18", invoice_id="I1", status="reversed", reversed_on="2026-03-25")
    s = w.run("2026-03-11", "2026-04-10")
    assert query(s, "select case_id, opened_on::varchar, closed_on::varchar, close_reason from case_register "
                    "order by opened_on") == [
        ("ct-CT1-20260311", "2026-03-11", "2026-03-18", "balance_cleared"),
        ("ct-CT1-20260325", "2026-03-25", None, None)]
    # the new case starts at level 1 again; its time (due + 5) has long come
    assert [(d, c, lv) for d, c, lv, _, _ in actions(s)] == [
        ("2026-03-15", "ct-CT1-20260311", 1), ("2026-03-25", "ct-CT1-20260325", 1),
        ("2026-04-04", "ct-CT1-20260325", 2)]


def test_contract_case_resets_only_when_not_yet_due_invoices_are_paid_too(tmp_path):
    w = World(tmp_path, policy([("due_date", 5, 0), ("previous_level", 10, 0), ("previous_level", 10, 0)]))
    w.customer().contract()
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    w.invoice("I2", "100.00", "2026-03-20", "2026-04-20")
    w.payment("P1", "100.00", "2026-03-22", invoice_id="I1")   # overdue part paid, I2 not yet due
    w.payment("P2", "100.00", "2026-04-02", invoice_id="I2")   # whole balance cleared
    s = w.run("2026-03-11", "2026-04-10")
    assert query(s, "select case_id, closed_on::varchar, close_reason from case_register") == [
        ("ct-CT1-20260311", "2026-04-02", "balance_cleared")]
    # between 22 March and 2 April the case waits: nothing overdue, level 2 not executed
    assert [(d, lv) for d, _, lv, _, _ in actions(s)] == [("2026-03-15", 1)]


def test_partial_payment_moves_the_followed_receivable_without_skipping_a_level(tmp_path):
    levels = [("due_date", 10, 0), ("due_date", 20, 0), ("due_date", 30, 0)]
    w = World(tmp_path, policy(levels))
    w.customer().contract()
    w.invoice("I1", "100.00", "2026-01-01", "2026-01-10")
    w.invoice("I2", "100.00", "2026-01-20", "2026-01-25")
    w.payment("P1", "150.00", "2026-01-28")   # pays I1 and half of I2 (oldest first): the case follows I2
    s = w.run("2026-01-11", "2026-03-05")
    got = query(s, "select executed_on::varchar, level_no, followed_invoice_id, days_overdue, principal "
                   "from action_ledger order by executed_on")
    assert got == [
        ("2026-01-20", 1, "I1", 10, Decimal("100.00")),   # I1 10 days overdue (I2 not yet due)
        ("2026-02-14", 2, "I2", 20, Decimal("50.00")),    # anchor moved to I2: 25 Jan + 20
        ("2026-02-24", 3, "I2", 30, Decimal("50.00")),
    ]


def test_thresholds_per_currency(tmp_path):
    w = World(tmp_path, policy([("due_date", 1, 0)], thresholds={"EUR": "50.00", "GBP": "20.00"}))
    w.customer("CU1").customer("CU2", locale="en_GB", country="GB")
    w.contract("CT1", "CU1", "EUR").contract("CT2", "CU2", "GBP")
    w.invoice("I1", "49.99", "2026-03-01", "2026-03-10", contract_id="CT1", customer_id="CU1")
    w.invoice("I2", "25.00", "2026-03-01", "2026-03-10", contract_id="CT2", customer_id="CU2", currency="GBP")
    s = w.run("2026-03-11", "2026-03-20")
    assert query(s, "select case_id from case_register") == [("ct-CT2-20260311",)]


def test_grace_period_opens_the_case_after_the_grace_days(tmp_path):
    w = World(tmp_path, policy([("due_date", 1, 0)], grace_days=5))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    s = w.run("2026-03-11", "2026-03-20")
    # 15 March is 5 days overdue (not more than the grace period); 16 March is 6
    assert query(s, "select case_id, opened_on::varchar from case_register") == [("ct-CT1-20260316", "2026-03-16")]
    assert [(d, lv) for d, _, lv, _, _ in actions(s)] == [("2026-03-16", 1)]


def test_catch_up_executes_the_highest_due_level_and_records_the_skipped(tmp_path):
    w = World(tmp_path, policy([("due_date", 7, 0), ("due_date", 14, 0), ("due_date", 21, 0), ("due_date", 40, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-01-01", "2026-01-10")
    s = w.run("2026-02-05", "2026-02-05")   # first run ever: 26 days overdue
    assert query(s, "select level_no, action, status, scheduled_on::varchar from action_ledger order by level_no") == [
        (1, "level_skipped", "skipped", "2026-01-17"),
        (2, "level_skipped", "skipped", "2026-01-24"),
        (3, "reminder", "not_dispatched", "2026-01-31")]


def test_threshold_is_checked_again_before_each_level(tmp_path):
    w = World(tmp_path, policy([("due_date", 1, 0), ("due_date", 10, 0)], thresholds={"EUR": "50.00"}))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    w.payment("P1", "60.00", "2026-03-15", invoice_id="I1")        # 40.00 left: below threshold
    w.invoice("I2", "30.00", "2026-03-01", "2026-03-25")             # overdue from 26 March: 70.00
    s = w.run("2026-03-11", "2026-03-31")
    assert [(d, lv, amt) for d, _, lv, _, amt in actions(s)] == [("2026-03-11", 1, "100.00"), ("2026-03-26", 2, "70.00")]


def test_fees_are_cumulative_and_skipped_without_apply_fees(tmp_path):
    levels = [("previous_level", 5, 3, {"EUR": "5.00"}), ("previous_level", 5, 3, {"EUR": "7.50"})]
    w = World(tmp_path, policy(levels, scope="invoice"))
    w.customer("CU1").customer("CU2", apply_fees="false")
    w.contract("CT1", "CU1").contract("CT2", "CU2")
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-10", contract_id="CT1", customer_id="CU1")
    w.invoice("I2", "100.00", "2026-03-01", "2026-03-10", contract_id="CT2", customer_id="CU2")
    s = w.run("2026-03-11", "2026-04-01")
    assert query(s, "select target_id, executed_on::varchar, level_due_date::varchar, fee, fees_total, "
                    "amount_demanded from action_ledger order by target_id, level_no") == [
        ("I1", "2026-03-15", "2026-03-18", Decimal("5.00"), Decimal("5.00"), Decimal("105.00")),
        ("I1", "2026-03-23", "2026-03-26", Decimal("7.50"), Decimal("12.50"), Decimal("112.50")),
        ("I2", "2026-03-15", "2026-03-18", Decimal("0.00"), Decimal("0.00"), Decimal("100.00")),
        ("I2", "2026-03-23", "2026-03-26", Decimal("0.00"), Decimal("0.00"), Decimal("100.00"))]


def test_case_keeps_its_policy_version_and_new_cases_take_the_new_one(tmp_path):
    doc = policy([("due_date", 5, 0), ("previous_level", 30, 0)])
    v2 = dict(doc["policies"][0]["versions"][0], effective_from="2026-03-20",
              levels=[{"name": "Only", "timing": {"after": "due_date", "days": 2}}])
    doc["policies"][0]["versions"].append(v2)
    w = World(tmp_path, doc)
    w.customer().contract("CT1").contract("CT2")
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-10", contract_id="CT1")
    w.invoice("I2", "100.00", "2026-03-15", "2026-03-25", contract_id="CT2")
    s = w.run("2026-03-11", "2026-04-20")
    got = query(s, "select case_id, level_no, executed_on::varchar, split_part(policy_version, '@', 1) "
                   "from action_ledger order by case_id, level_no")
    versions = dict(query(s, "select case_id, policy_version from case_register"))
    assert versions["ct-CT1-20260311"] != versions["ct-CT2-20260326"]
    assert got == [("ct-CT1-20260311", 1, "2026-03-15", "default"), ("ct-CT1-20260311", 2, "2026-04-14", "default"),
                   ("ct-CT2-20260326", 1, "2026-03-27", "default")]


def test_ended_contracts_are_dunned_and_disabled_customers_are_not(tmp_path):
    w = World(tmp_path, policy([("due_date", 1, 0)]))
    w.customer("CU1").customer("CU2", dunning_disabled="true")
    w.contract("CT1", "CU1", status="ended", ended_on="2026-02-28").contract("CT2", "CU2")
    w.invoice("I1", "10.00", "2026-02-01", "2026-03-01", contract_id="CT1", customer_id="CU1")
    w.invoice("I2", "10.00", "2026-02-01", "2026-03-01", contract_id="CT2", customer_id="CU2")
    s = w.run("2026-03-02", "2026-03-03")
    assert query(s, "select case_id from case_register") == [("ct-CT1-20260302",)]


def test_rerunning_a_day_changes_nothing(tmp_path):
    w = World(tmp_path, policy(SPEC_LEVELS, scope="invoice"))
    w.customer().contract().invoice("I1", "100.00", "2026-04-26", "2026-05-10")
    s = w.run("2026-05-01", "2026-05-31")
    before = (query(s, "select * from action_ledger order by action_key"), query(s, "select * from case_register"))
    w.run("2026-05-31", "2026-05-31")
    w.run("2026-05-24", "2026-05-31")
    after = (query(s, "select * from action_ledger order by action_key"), query(s, "select * from case_register"))
    assert after == before


def _manual_world(tmp_path):
    levels = [{"name": "By hand", "timing": {"after": "due_date", "days": 14}, "channel": "manual"},
              {"name": "Notice", "timing": {"after": "previous_level", "days": 7}}]
    w = World(tmp_path, policy(levels))
    w.customer().contract().invoice("I1", "100.00", "2026-04-26", "2026-05-10")
    return w


def test_manual_reminder_confirmed_5_days_late_delays_the_next_level_by_5_days(tmp_path):
    from pipeline.engine import run as run_mod
    from pipeline.warehouse.state import confirm_manual

    w = _manual_world(tmp_path)
    s = w.run("2026-05-11", "2026-05-28", dispatch=True)
    assert query(s, "select action_key, status, executed_on::varchar from action_ledger") == [
        ("ct-CT1-20260511/L1/reminder", "prepared", "2026-05-24")]
    with run_mod.connect(s.database) as con:
        confirm_manual(con, "ct-CT1-20260511/L1/reminder", date(2026, 5, 29))
    w.run("2026-05-29", "2026-06-10", dispatch=True)
    # without the delay level 2 would run on 31 May (24 May + 7)
    assert query(s, "select level_no, status, executed_on::varchar, confirmed_on::varchar from action_ledger "
                    "order by level_no") == [(1, "sent", "2026-05-24", "2026-05-29"), (2, "sent", "2026-06-05", None)]


def test_later_levels_wait_while_a_manual_reminder_is_not_confirmed(tmp_path):
    w = _manual_world(tmp_path)
    s = w.run("2026-05-11", "2026-06-30", dispatch=True)
    assert query(s, "select level_no, status from action_ledger") == [(1, "prepared")]


def test_interest_is_simple_actual_365_summed_then_rounded_half_up(tmp_path):
    doc = policy([("due_date", 10, 0), ("due_date", 60, 0, {"EUR": "5.00"})],
                 extra={"interest": {"annual_rate_percent": "5"}})
    w = World(tmp_path, doc)
    w.customer().contract()
    w.invoice("I1", "333.33", "2026-02-15", "2026-03-01").invoice("I2", "333.33", "2026-02-16", "2026-03-01")
    s = w.run("2026-03-02", "2026-04-30")
    # 2 x 333.33 x 5% x 10/365 = 0.91315... (rounding each invoice first would give 0.92)
    # 2 x 333.33 x 5% x 60/365 = 5.47890... -> 5.48
    assert query(s, "select executed_on::varchar, principal, fee, fees_total, interest, amount_demanded "
                    "from action_ledger order by level_no") == [
        ("2026-03-11", Decimal("666.66"), Decimal("0.00"), Decimal("0.00"), Decimal("0.91"), Decimal("667.57")),
        ("2026-04-30", Decimal("666.66"), Decimal("5.00"), Decimal("5.00"), Decimal("5.48"), Decimal("677.14"))]


def test_no_interest_without_a_rate(tmp_path):
    w = World(tmp_path, policy([("due_date", 10, 0)]))
    w.customer().contract().invoice("I1", "1000.00", "2026-02-15", "2026-03-01")
    s = w.run("2026-03-11", "2026-03-11")
    assert query(s, "select interest, amount_demanded from action_ledger") == [(Decimal("0.00"), Decimal("1000.00"))]


def test_customer_scope_duns_all_contracts_of_a_currency_together(tmp_path):
    w = World(tmp_path, policy([("due_date", 5, 0), ("previous_level", 10, 0)], scope="customer"))
    w.customer().contract("C1").contract("C2").contract("C3", currency="GBP")
    w.invoice("I1", "100.00", "2026-02-15", "2026-03-01", contract_id="C1")
    w.invoice("I2", "50.00", "2026-02-20", "2026-03-05", contract_id="C2")
    w.invoice("I3", "70.00", "2026-02-16", "2026-03-02", contract_id="C3", currency="GBP")
    w.payment("P1", "100.00", "2026-03-12", contract_id="C1", invoice_id="I1")
    w.payment("P2", "50.00", "2026-03-25", contract_id="C2")
    s = w.run("2026-03-02", "2026-03-31", dispatch=True)
    assert query(s, "select case_id, opened_on::varchar, closed_on::varchar, close_reason from case_register "
                    "order by case_id") == [
        ("cu-CU1-EUR-20260302", "2026-03-02", "2026-03-25", "balance_cleared"),
        ("cu-CU1-GBP-20260303", "2026-03-03", None, None)]
    assert query(s, "select case_id, level_no, executed_on::varchar, followed_invoice_id, principal "
                    "from action_ledger order by case_id, level_no") == [
        ("cu-CU1-EUR-20260302", 1, "2026-03-06", "I1", Decimal("150.00")),   # one demand for both contracts
        ("cu-CU1-EUR-20260302", 2, "2026-03-16", "I2", Decimal("50.00")),    # I1 paid: follows I2 now
        ("cu-CU1-GBP-20260303", 1, "2026-03-07", "I3", Decimal("70.00")),
        ("cu-CU1-GBP-20260303", 2, "2026-03-17", "I3", Decimal("70.00"))]
    import email
    from email import policy as email_policy

    eml = (s.outbox / "2026-03-06" / "cu-CU1-EUR-20260302__L1__reminder" / "message.eml").read_bytes()
    text = email.message_from_bytes(eml, policy=email_policy.default).get_body(("plain",)).get_content()
    assert "N-I1" in text and "N-I2" in text and "N-I3" not in text


COURTESY = [("due_date", -3, 0), ("due_date", 7, 0)]


def test_a_courtesy_reminder_before_the_due_date_opens_the_case_then(tmp_path):
    w = World(tmp_path, policy(COURTESY, scope="invoice", grace_days=3))
    w.customer().contract()
    w.invoice("I1", "80.00", "2026-02-24", "2026-03-10")
    w.invoice("I2", "90.00", "2026-02-24", "2026-03-10")
    w.invoice("I3", "10.00", "2026-02-24", "2026-03-10")
    w.payment("P1", "80.00", "2026-03-05", invoice_id="I1")    # paid before its courtesy reminder
    w.payment("P2", "10.00", "2026-03-09", invoice_id="I3")    # paid after it, before the due date
    s = w.run("2026-03-01", "2026-03-20")
    assert query(s, "select case_id, opened_on::varchar, closed_on::varchar from case_register order by 1") == [
        ("in-I2-20260307", "2026-03-07", None), ("in-I3-20260307", "2026-03-07", "2026-03-09")]
    assert query(s, "select case_id, level_no, executed_on::varchar, scheduled_on::varchar, principal "
                    "from action_ledger order by case_id, level_no") == [
        ("in-I2-20260307", 1, "2026-03-07", "2026-03-07", Decimal("90.00")),
        ("in-I2-20260307", 2, "2026-03-17", "2026-03-17", Decimal("90.00")),
        ("in-I3-20260307", 1, "2026-03-07", "2026-03-07", Decimal("10.00"))]


def test_a_version_edited_in_place_keeps_serving_the_cases_opened_under_it(tmp_path):
    w = World(tmp_path, policy([("due_date", 5, 0), ("previous_level", 10, 0)]))
    w.customer().contract("CT1").contract("CT2")
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-10", contract_id="CT1")
    w.invoice("I2", "100.00", "2026-03-20", "2026-03-25", contract_id="CT2")
    s = w.run("2026-03-11", "2026-03-20")
    w.policy_doc["policies"][0]["versions"][0]["levels"][1]["timing"]["days"] = 30   # edited, same effective date
    w.run("2026-03-21", "2026-04-30")
    versions = query(s, "select policy_version, in_file from policy_versions order by in_file")
    assert [in_file for _, in_file in versions] == [False, True]
    assert query(s, "select case_id, level_no, executed_on::varchar, policy_version from action_ledger "
                    "order by case_id, level_no") == [
        ("ct-CT1-20260311", 1, "2026-03-15", versions[0][0]),
        ("ct-CT1-20260311", 2, "2026-03-25", versions[0][0]),   # the old version: 10 days after level 1
        ("ct-CT2-20260326", 1, "2026-03-30", versions[1][0]),
        ("ct-CT2-20260326", 2, "2026-04-29", versions[1][0])]   # the edited one: 30 days after level 1


def test_a_database_with_keyed_contract_balances_is_copied_once_without_the_key(tmp_path):
    import duckdb

    from pipeline.warehouse.state import ensure_state

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    # the table as earlier releases created it, keyed on (as_of, contract_id)
    con.execute("""create table contract_balances (
        as_of date not null, contract_id varchar not null, customer_id varchar not null, currency varchar not null,
        open_amount decimal(18,2) not null, overdue_amount decimal(18,2) not null,
        unapplied_credit decimal(18,2) not null, balance decimal(18,2) not null, open_receivables bigint not null,
        overdue_receivables bigint not null, oldest_invoice_id varchar, oldest_due_date date,
        oldest_days_overdue integer, primary key (as_of, contract_id))""")
    con.execute("""insert into contract_balances values
        ('2026-03-02', 'CT2', 'CU1', 'EUR', 10.00, 0.00, 0.00, 10.00, 1, 0, 'I2', '2026-03-20', 0),
        ('2026-03-01', 'CT1', 'CU1', 'EUR', 30.00, 30.00, 0.00, 30.00, 1, 1, 'I1', '2026-02-15', 14)""")
    ensure_state(con)
    ensure_state(con)  # a second run finds nothing to do
    constraints = con.execute("""select constraint_type from duckdb_constraints()
                                 where table_name = 'contract_balances' order by all""").fetchall()
    rows = con.execute("select as_of::varchar, contract_id, balance, oldest_days_overdue from contract_balances").fetchall()
    con.close()
    assert ("PRIMARY KEY",) not in constraints and constraints.count(("NOT NULL",)) == 10
    assert rows == [("2026-03-01", "CT1", Decimal("30.00"), 14), ("2026-03-02", "CT2", Decimal("10.00"), 0)]


def test_the_state_schema_is_defined_again_only_for_another_release_or_a_missing_object(tmp_path, monkeypatch):
    import duckdb

    from pipeline.warehouse import state
    from pipeline.warehouse.work_schemas import in_schema

    con = duckdb.connect(str(tmp_path / "state.duckdb"))
    state.ensure_state(con)
    release = state.release_fingerprint()
    recorded = con.execute("select main.state_schema_release()").fetchall()[0][0]
    assert recorded["release"] == release
    assert {"action_ledger", "case_register", "cases", "ledger_statuses", "aging_buckets"} <= set(recorded["objects"])

    def cases_comment():
        return con.execute("select comment from duckdb_views() where view_name = 'cases'").fetchall()[0][0]

    con.execute("comment on view cases is 'kept'")
    state.ensure_state(con)  # the same release, nothing missing: left as it is
    assert cases_comment() == "kept"
    con.execute("drop view aging")
    state.ensure_state(con)  # an object it made is gone: everything defined again
    assert con.execute("select count(*) from duckdb_views() where view_name = 'aging'").fetchall() == [(1,)]
    assert cases_comment() is None  # `cases` was replaced (its comments come with the run)
    con.execute("comment on view cases is 'kept'")
    monkeypatch.setattr(state, "release_fingerprint", lambda: "f" * 64)
    state.ensure_state(con)  # another release: everything defined again, and recorded for it
    assert cases_comment() is None
    assert con.execute("select main.state_schema_release().release").fetchall() == [("f" * 64,)]

    con.execute("create schema work")
    with in_schema(con, "work"):  # a new schema finds main's record through the search path: not its own
        state.ensure_state(con)
    made_in_work = con.execute("""select count(*) from duckdb_tables()
                                  where schema_name = 'work' and table_name = 'action_ledger'""").fetchall()
    assert made_in_work == [(1,)]
    assert con.execute("select work.state_schema_release().release").fetchall() == [("f" * 64,)]
    con.close()
