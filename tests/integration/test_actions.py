"""Actions beside reminders: webhook, end contract (credit note), attempt payment, set field, keep active."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from pipeline.config.policy import PolicyError, load_policy_file
from world import World, moving_world, policy, query


def _world(tmp_path, levels, **contract):
    w = World(tmp_path, policy(levels))
    w.customer().contract(billed_until="2026-03-31", **contract)
    w.invoice("I1", "30.00", "2026-03-01", "2026-03-15", period_start="2026-03-01", period_end="2026-03-31")
    return w


ESCALATION = [
    {"name": "Reminder and webhook", "timing": {"after": "due_date", "days": 7}, "fee": {"EUR": "2.50"},
     "actions": [{"type": "webhook"}, {"type": "reminder"}]},
    {"name": "End contract", "timing": {"after": "due_date", "days": 14},
     "actions": [{"type": "end_contract", "when": "immediately"}]},
]


def test_webhook_beside_a_reminder_and_end_contract_immediately_with_its_credit_note(tmp_path):
    s = _world(tmp_path, ESCALATION).run("2026-03-16", "2026-03-29", dispatch=True)
    assert query(s, "select executed_on::varchar, action_key, status, fee, fees_total, amount_demanded "
                    "from action_ledger order by executed_on, action_key") == [
        ("2026-03-22", "ct-CT1-20260316/L1/reminder", "sent", Decimal("0.00"), Decimal("2.50"), Decimal("32.50")),
        ("2026-03-22", "ct-CT1-20260316/L1/webhook", "sent", Decimal("2.50"), Decimal("2.50"), Decimal("32.50")),
        ("2026-03-29", "ct-CT1-20260316/L2/end_contract", "recorded", Decimal("0.00"), Decimal("2.50"),
         Decimal("32.50"))]
    # 30.00 for 31 days of March; ended on 29 March, so 30 and 31 March are credited: 30 x 2/31 = 1.935... -> 1.94
    assert query(s, "select mode, effective_on::varchar, credit_note_amount, credit_note_for_invoice_id "
                    "from contract_terminations") == [("immediately", "2026-03-29", Decimal("1.94"), "I1")]
    event = json.loads((s.outbox / "2026-03-22" / "ct-CT1-20260316__L1__webhook" / "event.json").read_text())
    assert (event["id"], event["type"], event["occurred_on"], event["data"]["amount_demanded"]) == (
        "ct-CT1-20260316/L1/webhook", "payment.escalated", "2026-03-22", "32.50")


def test_end_contract_at_the_end_of_the_billed_period_has_no_credit_note(tmp_path):
    levels = [{"name": "End", "timing": {"after": "due_date", "days": 5},
               "actions": [{"type": "end_contract", "when": "end_of_period"}]}]
    s = _world(tmp_path, levels).run("2026-03-16", "2026-03-25")
    # the world's days are a simulation: its own schema records the export as a live day would
    assert query(s, "select contract_id, mode, effective_on::varchar, credit_note_amount "
                    "from contract_terminations") == [("CT1", "end_of_period", "2026-03-31", Decimal("0.00"))]
    assert query(s, "select status, details from action_ledger") == [
        ("recorded", '{"when":"end_of_period","effective_on":"2026-03-31","credit_note_amount":0.00,'
                           '"credit_note_for_invoice_id":"I1"}')]


def test_attempt_payment_and_set_field_are_exported_with_provenance(tmp_path):
    levels = [{"name": "Collect", "timing": {"after": "due_date", "days": 3},
               "actions": [{"type": "attempt_payment"},
                           {"type": "set_field", "target": "contract", "field": "dunning_flag", "value": "red"}]},
              {"name": "Keep", "timing": {"after": "previous_level", "days": 10}, "actions": [{"type": "keep_active"}]}]
    s = _world(tmp_path, levels).run("2026-03-16", "2026-04-01", dispatch=True)
    assert query(s, "select executed_on::varchar, amount, level_no from collection_requests") == [
        ("2026-03-18", Decimal("30.00"), 1)]
    assert query(s, "select target, target_id, field, value::varchar, split_part(policy_version, '@', 1) "
                    "from field_updates") == [("contract", "CT1", "dunning_flag", '"red"', "default")]
    assert query(s, "select action_key, status from action_ledger where level_no = 2") == [
        ("ct-CT1-20260316/L2/keep_active", "recorded")]


def test_keep_active_is_only_allowed_on_the_last_level(tmp_path):
    doc = policy([{"name": "Keep", "timing": {"after": "due_date", "days": 1}, "actions": [{"type": "keep_active"}]},
                  {"name": "Later", "timing": {"after": "due_date", "days": 9}}])
    import yaml

    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PolicyError, match=r"levels\[0\] \(L1 \"Keep\"\): keep_active is a final step"):
        load_policy_file(path)


def test_move_to_policy_closes_the_case_and_the_next_opens_under_the_target(tmp_path):
    w = moving_world(tmp_path)
    s = w.run("2026-03-16", "2026-03-31")
    assert query(s, "select case_id, policy_id, routed_by, opened_on::varchar, closed_on::varchar, close_reason "
                    "from case_register order by opened_on") == [
        ("ct-CT1-20260316", "default", "default", "2026-03-16", "2026-03-25", "moved_to_policy"),
        ("ct-CT1-20260326", "collections", "moved", "2026-03-26", None, None)]
    # the new case's first level (due + 3) has long come: it runs on the day the case opens
    assert query(s, "select case_id, level_no, action, executed_on::varchar from action_ledger "
                    "order by executed_on, action_key") == [
        ("ct-CT1-20260316", 1, "reminder", "2026-03-20"),
        ("ct-CT1-20260316", 2, "move_to_policy", "2026-03-25"),
        ("ct-CT1-20260326", 1, "reminder", "2026-03-26")]


def test_move_to_policy_must_name_another_policy_and_be_the_last_step(tmp_path):
    import yaml

    doc = policy([{"name": "Move", "timing": {"after": "due_date", "days": 1},
                   "actions": [{"type": "move_to_policy", "policy": "nowhere"}]}])
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PolicyError, match=r"policy default version 0: move_to_policy names 'nowhere'; allowed: "
                                          r"another policy of this file \(\)"):
        load_policy_file(path)
    doc = policy([{"name": "Move", "timing": {"after": "due_date", "days": 1},
                   "actions": [{"type": "move_to_policy", "policy": "other"}]},
                  {"name": "Later", "timing": {"after": "due_date", "days": 9}}])
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PolicyError, match=r"levels\[0\] \(L1 \"Move\"\): move_to_policy is a final step"):
        load_policy_file(path)


END_NOW = [{"name": "End", "timing": {"after": "due_date", "days": 5},
            "actions": [{"type": "end_contract", "when": "immediately"}]}]


def _two_invoice_cases(tmp_path, i2_due: str, **contract):
    """Invoice scope: I1 and I2 of CT1 are two cases, each of which ends the contract."""
    w = World(tmp_path, policy(END_NOW, scope="invoice"))
    w.customer().contract(billed_until="2026-03-31", **contract)
    w.invoice("I1", "31.00", "2026-03-01", "2026-03-15", period_start="2026-03-01", period_end="2026-03-31")
    w.invoice("I2", "10.00", "2026-03-02", i2_due)
    return w


def test_two_cases_ending_one_contract_the_same_day_end_it_once_with_one_credit_note(tmp_path):
    s = _two_invoice_cases(tmp_path, "2026-03-15").run("2026-03-16", "2026-03-22", dispatch=True)
    # the contract system gets one termination, one credit note: 31.00 x 11 unused days / 31 = 11.00
    assert query(s, "select action_key, effective_on::varchar, credit_note_amount, credit_note_for_invoice_id "
                    "from contract_terminations") == [
        ("in-I1-20260316/L1/end_contract", "2026-03-20", Decimal("11.00"), "I1")]
    # the other case's level is done (recorded), and says what had ended the contract already
    assert query(s, "select action_key, status, details from action_ledger order by action_key") == [
        ("in-I1-20260316/L1/end_contract", "recorded",
         '{"when":"immediately","effective_on":"2026-03-20","credit_note_amount":11.00,'
         '"credit_note_for_invoice_id":"I1"}'),
        ("in-I2-20260316/L1/end_contract", "recorded",
         '{"when":"immediately","already_ended":true,"already_ended_by_case":"in-I1-20260316",'
         '"already_ended_on":"2026-03-20","credit_note_amount":0.00}')]
    assert query(s, "select action_key from action_ledger where level_no = 1 and status_is_done(status) "
                    "order by 1") == [("in-I1-20260316/L1/end_contract",), ("in-I2-20260316/L1/end_contract",)]


def test_a_contract_ended_on_an_earlier_day_is_not_ended_again(tmp_path):
    s = _two_invoice_cases(tmp_path, "2026-03-18").run("2026-03-16", "2026-03-25", dispatch=True)
    assert query(s, "select action_key, effective_on::varchar, credit_note_amount from contract_terminations") == [
        ("in-I1-20260316/L1/end_contract", "2026-03-20", Decimal("11.00"))]
    assert query(s, "select executed_on::varchar, details from action_ledger where case_id like 'in-I2%'") == [
        ("2026-03-23", '{"when":"immediately","already_ended":true,"already_ended_by_case":"in-I1-20260316",'
                       '"already_ended_on":"2026-03-20","credit_note_amount":0.00}')]


def test_an_ended_contract_is_dunned_but_not_ended_again(tmp_path):
    s = _two_invoice_cases(tmp_path, "2026-03-15", status="ended", ended_on="2026-03-10").run(
        "2026-03-16", "2026-03-22", dispatch=True)
    assert query(s, "select count(*) from contract_terminations") == [(0,)]
    assert query(s, "select action_key, status, details from action_ledger order by action_key") == [
        (key, "recorded", '{"when":"immediately","already_ended":true,"already_ended_by_case":null,'
                          '"already_ended_on":"2026-03-10","credit_note_amount":0.00}')
        for key in ("in-I1-20260316/L1/end_contract", "in-I2-20260316/L1/end_contract")]


def test_a_contract_row_that_ends_it_later_does_not_stop_an_immediate_end(tmp_path):
    """The contract is to end on 31 March (its row says so); ending it immediately on 20 March still ends
    it, with its credit note. The row's end counted as having ended it already."""
    s = _two_invoice_cases(tmp_path, "2026-03-15", status="ended", ended_on="2026-03-31").run(
        "2026-03-16", "2026-03-22", dispatch=True)
    assert query(s, "select action_key, effective_on::varchar, credit_note_amount from contract_terminations") == [
        ("in-I1-20260316/L1/end_contract", "2026-03-20", Decimal("11.00"))]


def test_an_end_that_takes_effect_earlier_than_an_earlier_end_of_the_period_still_ends_it(tmp_path):
    """L1 ends CT1 at the end of its billed period (31 March), L2 immediately on 23 March: the contract
    ends on 23 March, with the credit note for the unused days. L2 was recorded as already ended."""
    levels = [{"name": "End later", "timing": {"after": "due_date", "days": 5},
               "actions": [{"type": "end_contract", "when": "end_of_period"}]},
              {"name": "End now", "timing": {"after": "due_date", "days": 8},
               "actions": [{"type": "end_contract", "when": "immediately"}]}]
    w = World(tmp_path, policy(levels))
    w.customer().contract(billed_until="2026-03-31")
    w.invoice("I1", "31.00", "2026-03-01", "2026-03-15", period_start="2026-03-01", period_end="2026-03-31")
    s = w.run("2026-03-16", "2026-03-25", dispatch=True)
    # 31.00 x 8 unused days (24 to 31 March) / 31
    assert query(s, "select action_key, mode, effective_on::varchar, credit_note_amount from contract_terminations "
                    "order by action_key") == [
        ("ct-CT1-20260316/L1/end_contract", "end_of_period", "2026-03-31", Decimal("0.00")),
        ("ct-CT1-20260316/L2/end_contract", "immediately", "2026-03-23", Decimal("8.00"))]


def test_a_re_run_after_the_billing_system_wrote_the_end_back_keeps_it(tmp_path):
    """The contracts file of the re-run shows the end this pipeline exported on the day itself: that
    is not an end before it, and the re-run dropped the termination."""
    w = _two_invoice_cases(tmp_path, "2026-03-15")
    s = w.run("2026-03-16", "2026-03-20", dispatch=True)
    terminations = "select action_key, effective_on::varchar, credit_note_amount from contract_terminations"
    assert query(s, terminations) == [("in-I1-20260316/L1/end_contract", "2026-03-20", Decimal("11.00"))]
    w.rows["contracts"][0].update(status="ended", ended_on="2026-03-20")
    s = w.run("2026-03-20", "2026-03-20", dispatch=True)
    assert query(s, terminations) == [("in-I1-20260316/L1/end_contract", "2026-03-20", Decimal("11.00"))]


def test_a_backfill_ends_a_contract_once_as_its_days_would(tmp_path):
    """A backfill exports nothing, but what it records is what would have happened: the second case's
    end finds the contract ended by the first one's, as on live days."""
    from datetime import date

    from pipeline.engine import run as run_mod
    from pipeline.engine.backfill import backfill

    s = _two_invoice_cases(tmp_path, "2026-03-18").write()
    with run_mod.connect(s.database) as con:
        run_mod.load_inputs(con, s)
        backfill(con, date(2026, 3, 16), date(2026, 3, 25), s, catch_up="none")
    assert query(s, "select action_key, status, details from action_ledger order by action_key") == [
        ("in-I1-20260316/L1/end_contract", "not_dispatched",
         '{"when":"immediately","effective_on":"2026-03-20","credit_note_amount":11.00,'
         '"credit_note_for_invoice_id":"I1"}'),
        ("in-I2-20260319/L1/end_contract", "not_dispatched",
         '{"when":"immediately","already_ended":true,"already_ended_by_case":"in-I1-20260316",'
         '"already_ended_on":"2026-03-20","credit_note_amount":0.00}')]
    assert query(s, "select count(*) from contract_terminations") == [(0,)]  # a backfill exports nothing
