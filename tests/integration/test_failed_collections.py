"""Failed collections through the real pipeline: cases, counting, money, exports, dispatch.

Each test builds a tiny world (tests/world.py), runs the daily step over a range and
reads what the product recorded. The scenarios in tests/scenarios/seed_003_*.yaml
cover the seed's walk-throughs; these tests pin down the rules between them.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
from datetime import date
from decimal import Decimal

import duckdb
import pytest

from pipeline.engine import run as run_mod
from world import World, policy, query

LEVELS = [("due_date", 30, 0)]  # ordinary dunning far enough away not to interfere


def _world(tmp_path, collections: dict, **customer) -> World:
    # a grace period keeps ordinary dunning from opening a case before the collection fails
    w = World(tmp_path, policy(LEVELS, grace_days=10, extra={"collections": collections}))
    w.customer(**customer).contract(payment_method="direct_debit")
    return w


def _failed(w: World, payment_id: str, invoice_id: str, booked_on: str, code: str, amount="100.00", mandate="M1",
            contract="CT1"):
    w.payment(payment_id, amount, booked_on, invoice_id=invoice_id, status="failed", reason_code=code,
              mandate_id=mandate, contract_id=contract)


def _ledger(settings) -> list[tuple]:
    return [(d.isoformat(), key, str(amount)) for d, key, amount in query(
        settings, "select executed_on, action_key, amount_demanded from action_ledger "
                  "order by executed_on, action_key")]


def _cases(settings) -> list[tuple]:
    return [(c, o.isoformat(), x.isoformat() if x else None, r, t, k) for c, o, x, r, t, k in query(
        settings, "select case_id, opened_on, closed_on, close_reason, failure_type, counting from case_register "
                  "order by opened_on, case_id")]


GRACE_STEPS = [
    {"type": "payment_alternative", "name": "Transfer", "method": "transfer", "grace_days": 5},
    {"type": "official_letter", "name": "Letter", "grace_days": 5},
    {"type": "registered_mail", "name": "Registered", "grace_days": 5},
]


def test_per_transaction_starts_every_failure_at_step_1_per_mandate_continues(tmp_path):
    def run(counting: str, folder: str):
        w = _world(tmp_path / folder, {"counting": {"hard": counting}, "steps": {"hard": GRACE_STEPS}})
        w.invoice("I1", "100.00", "2026-03-01", "2026-03-01").invoice("I2", "40.00", "2026-03-01", "2026-03-01")
        _failed(w, "P1", "I1", "2026-03-03", "MS02")
        _failed(w, "P2", "I2", "2026-03-05", "MD01", amount="40.00")
        return w.run("2026-03-01", "2026-03-06")

    per_transaction = run("per_transaction", "a")
    assert _ledger(per_transaction) == [("2026-03-03", "cc-P1/S1/reminder", "100.00"),
                                        ("2026-03-05", "cc-P2/S1/reminder", "40.00")]
    assert [c[0] for c in _cases(per_transaction)] == ["cc-P1", "cc-P2"]
    per_mandate = run("per_mandate", "b")
    # the mandate's second failure triggers step 2 at once, for both invoices
    assert _ledger(per_mandate) == [("2026-03-03", "cm-M1-hard-20260303/S1/reminder", "100.00"),
                                    ("2026-03-05", "cm-M1-hard-20260303/S2/reminder", "140.00")]
    assert _cases(per_mandate) == [("cm-M1-hard-20260303", "2026-03-03", None, None, "hard", "per_mandate")]


def test_a_mandate_keeps_counting_after_a_settled_case(tmp_path):
    w = _world(tmp_path, {"steps": {"hard": GRACE_STEPS}})  # hard: per mandate by default
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-01").invoice("I2", "100.00", "2026-03-08", "2026-03-08")
    _failed(w, "P1", "I1", "2026-03-02", "MS02")
    w.payment("P2", "100.00", "2026-03-04", invoice_id="I1")
    _failed(w, "P3", "I2", "2026-03-10", "MS02")
    settings = w.run("2026-03-01", "2026-03-20")
    # step 1 for the first refusal; the second refusal of the mandate gets step 2, then step 3
    assert _ledger(settings) == [("2026-03-02", "cm-M1-hard-20260302/S1/reminder", "100.00"),
                                 ("2026-03-10", "cm-M1-hard-20260310/S2/reminder", "100.00"),
                                 ("2026-03-15", "cm-M1-hard-20260310/S3/reminder", "100.00")]
    assert _cases(settings) == [
        ("cm-M1-hard-20260302", "2026-03-02", "2026-03-04", "settled", "hard", "per_mandate"),
        ("cm-M1-hard-20260310", "2026-03-10", "2026-03-20", "unsettled", "hard", "per_mandate"),
        ("ct-CT1-20260320", "2026-03-20", None, None, None, None)]


def test_an_unbound_failure_after_a_retry_is_its_result_a_later_one_a_new_case(tmp_path):
    w = _world(tmp_path, {"steps": {"soft": [{"type": "retry", "days": 2}, GRACE_STEPS[0]]}})
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-01").invoice("I2", "100.00", "2026-03-05", "2026-03-05")
    _failed(w, "P1", "", "2026-03-02", "AM04")  # bound to no invoice
    _failed(w, "P2", "", "2026-03-05", "AM04")  # the retry of 4 March failed
    _failed(w, "P3", "", "2026-03-08", "AM04")  # next collection: not a retry result, a case of its own
    settings = w.run("2026-03-01", "2026-03-10")
    assert _ledger(settings) == [("2026-03-04", "cc-P1/S1/attempt_payment", "100.00"),
                                 ("2026-03-05", "cc-P1/S2/reminder", "100.00"),
                                 ("2026-03-10", "cc-P3/S1/attempt_payment", "100.00")]
    # a retry's result is the same money: cc-P1 still claims 100.00, not 200.00
    assert query(settings, "select case_id, cast(principal as varchar), json_extract_string(details, '$.payment_id') "
                           "from action_ledger order by action_key") == [
        ("cc-P1", "100.00", "P1"), ("cc-P1", "100.00", "P2"), ("cc-P3", "100.00", "P3")]


@pytest.mark.parametrize("within, next_step_on", [(None, "2026-03-14"), (4, "2026-03-08")])
def test_a_retry_whose_result_never_comes_moves_on_after_result_within_days(tmp_path, within, next_step_on):
    retry = {"type": "retry", "days": 2} | ({"result_within_days": within} if within else {})
    w = _world(tmp_path, {"steps": {"soft": [retry, GRACE_STEPS[0]]}})
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-01")
    _failed(w, "P1", "I1", "2026-03-02", "AM04")  # retried on 4 March; no result is ever reported
    settings = w.run("2026-03-01", "2026-03-15")
    # the default waits 10 days for the result
    assert _ledger(settings) == [("2026-03-04", "cc-P1/S1/attempt_payment", "100.00"),
                                 (next_step_on, "cc-P1/S2/reminder", "100.00")]
    assert query(settings, "select step_type, result_days from policy_collection_steps order by step_no") == [
        ("retry", within or 10), ("payment_alternative", None)]


def test_retries_registered_before_result_within_days_existed_take_its_default(tmp_path):
    w = _world(tmp_path, {"steps": {"soft": [{"type": "retry", "days": 2}, GRACE_STEPS[0]]}})
    s = w.write()
    with run_mod.connect(s.database) as con:
        run_mod.load_inputs(con, s)
        con.execute("update policy_collection_steps set result_days = null")  # as an earlier release left them
        run_mod.load_inputs(con, s)  # the same version again: not inserted anew
        rows = con.execute("select step_type, result_days from policy_collection_steps order by step_no").fetchall()
    assert rows == [("retry", 10), ("payment_alternative", None)]


def test_paying_the_link_amount_settles_the_case_and_the_charges_become_credit(tmp_path):
    steps = [{"type": "payment_alternative", "grace_days": 10, "admin_charges": {"EUR": "2.50"}}]
    w = _world(tmp_path, {"payment_link": "https://pay.example.com/{case_key}?a={amount}", "steps": {"soft": steps}})
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-01")
    _failed(w, "P1", "I1", "2026-03-02", "AM04")
    w.payment("P2", "102.50", "2026-03-06")  # through the link: failed amount + charges, bound to no invoice
    settings = w.run("2026-03-01", "2026-03-20")
    assert _ledger(settings) == [("2026-03-02", "cc-P1/S1/reminder", "102.50")]
    assert _cases(settings) == [("cc-P1", "2026-03-02", "2026-03-06", "settled", "soft", "per_transaction")]
    # the charges were never invoiced: what the customer paid for them is credit on the contract
    assert query(settings, "select cast(unapplied_credit as varchar), cast(balance as varchar) from contract_balances "
                           "where as_of = '2026-03-20'") == [("2.50", "-2.50")]
    assert query(settings, "select case_id, cast(fee as varchar) from fee_ledger") == [("cc-P1", "2.50")]


def test_an_unsettled_case_is_listed_and_dunning_takes_over(tmp_path):
    steps = [{"type": "notify"}, {"type": "change_mandate", "status": "cancel", "block_account": True}]
    w = _world(tmp_path, {"steps": {"hard": steps}})
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-01")
    _failed(w, "P1", "I1", "2026-03-02", "MD01")
    settings = w.run("2026-03-01", "2026-04-01")
    # both steps run the same day; the last does not wait, so the case is unsettled that day and
    # ordinary dunning opens its case when its own grace period (10 days) is over
    assert _ledger(settings) == [("2026-03-02", "cm-M1-hard-20260302/S1/reminder", "100.00"),
                                 ("2026-03-02", "cm-M1-hard-20260302/S2/change_mandate", "100.00"),
                                 ("2026-03-31", "ct-CT1-20260312/L1/reminder", "100.00")]
    assert query(settings, "select case_id, cast(unsettled_on as varchar), last_step, cast(outstanding as varchar), "
                           "cast(amount_demanded as varchar), mandate_id, payment_id, reason_code "
                           "from unsettled_collections") == [
        ("cm-M1-hard-20260302", "2026-03-02", 2, "100.00", "100.00", "M1", "P1", "MD01")]
    # the world's days are a simulation: its own schema records the export as a live day would
    assert query(settings, "select action_key, contract_id, mandate_id, change, block_account, payment_id, step_no "
                           "from mandate_changes") == [
        ("cm-M1-hard-20260302/S2/change_mandate", "CT1", "M1", "cancel", True, "P1", 2)]


def test_exports_of_a_live_run_name_the_mandate_and_the_payment(tmp_path):
    steps = [{"type": "retry", "when": "next_month_plus_days", "days": 2},
             {"type": "change_mandate", "status": "suspend"}, {"type": "notify", "customer": False, "merchant": True}]
    w = _world(tmp_path, {"counting": {"soft": "per_mandate"}, "steps": {"soft": steps}})
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-01")
    _failed(w, "P1", "I1", "2026-03-02", "AM04", mandate="MD-7")
    _failed(w, "P2", "I1", "2026-04-05", "AM04", mandate="MD-7")
    settings = w.write()
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        run_mod.run_range(con, date(2026, 3, 1), date(2026, 4, 5), settings)
    assert query(settings, "select action_key, cast(executed_on as varchar), cast(amount as varchar), payment_id, "
                           "mandate_id from collection_requests") == [
        ("cm-MD-7-soft-20260302/S1/attempt_payment", "2026-04-03", "100.00", "P1", "MD-7")]
    assert query(settings, "select action_key, cast(executed_on as varchar), mandate_id, change, block_account, "
                           "payment_id, reason_code, step_no from mandate_changes") == [
        ("cm-MD-7-soft-20260302/S2/change_mandate", "2026-04-05", "MD-7", "suspend", False, "P2", "AM04", 2)]


def test_unknown_reason_codes_are_technical_listed_and_logged(tmp_path, caplog):
    w = _world(tmp_path, {"steps": {"technical": [{"type": "notify"}]}})
    w.contract("CT2", payment_method="credit_card")
    w.invoice("I1", "10.00", "2026-03-01", "2026-03-01").invoice("I2", "20.00", "2026-03-01", "2026-03-01",
                                                                  contract_id="CT2")
    _failed(w, "P1", "I1", "2026-03-02", "ZZ01")
    # card code 05 with its leading zero lost; then a SEPA code on a card contract
    _failed(w, "P2", "I2", "2026-03-02", "5", amount="20.00", mandate="", contract="CT2")
    _failed(w, "P3", "I2", "2026-03-03", "AM04", amount="20.00", mandate="", contract="CT2")
    with caplog.at_level(logging.WARNING, logger="pipeline.failed_collections.reference"):
        settings = w.run("2026-03-01", "2026-03-03")
    assert query(settings, "select payment_id, contract_id, reason_code, looked_up_in, cast(failed_on as varchar) "
                           "from unknown_reason_codes") == [
        ("P1", "CT1", "ZZ01", "sepa_reason_codes", "2026-03-02"),
        ("P3", "CT2", "AM04", "card_decline_codes", "2026-03-03")]
    assert [r.getMessage() for r in caplog.records] == [
        "payment P1 (contract CT1) failed with reason code 'ZZ01', which is not in sepa_reason_codes: handled as a "
        "technical failure",
        "payment P3 (contract CT2) failed with reason code 'AM04', which is not in card_decline_codes: handled as a "
        "technical failure"]
    # P2 (05: do not honour) is soft and this policy has no soft steps: no case, ordinary dunning applies
    assert _cases(settings) == [("cc-P1", "2026-03-02", "2026-03-02", "unsettled", "technical", "per_transaction"),
                                ("cc-P3", "2026-03-03", "2026-03-03", "unsettled", "technical", "per_transaction")]


def test_dunning_waits_while_a_collection_case_works_on_the_contract(tmp_path):
    w = World(tmp_path, policy([("due_date", 5, 7), ("previous_level", 7, 0)], extra={"collections": {
        "steps": {"soft": [{"type": "payment_alternative", "method": "transfer", "grace_days": 14}]}}}))
    w.customer().contract(payment_method="direct_debit")
    w.invoice("I1", "100.00", "2026-02-20", "2026-03-01")
    _failed(w, "P1", "I1", "2026-03-04", "AM04")
    settings = w.run("2026-03-01", "2026-03-20")
    # the dunning case opened on 2 March, before the failure; level 1 (due 6 March) waited until
    # the collection case ended unsettled on 18 March, without moving its schedule
    assert query(settings, "select action_key, cast(scheduled_on as varchar), cast(executed_on as varchar) "
                           "from action_ledger order by executed_on, action_key") == [
        ("cc-P1/S1/reminder", "2026-03-04", "2026-03-04"), ("ct-CT1-20260302/L1/reminder", "2026-03-06", "2026-03-18")]


def test_running_a_day_again_records_the_same(tmp_path):
    w = _world(tmp_path, {"steps": {"soft": [{"type": "retry", "days": 3}, GRACE_STEPS[0]],
                                    "hard": [{"type": "notify"}, GRACE_STEPS[1]]}})
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-01").invoice("I2", "50.00", "2026-03-01", "2026-03-01")
    _failed(w, "P1", "I1", "2026-03-02", "AM04")
    _failed(w, "P2", "I1", "2026-03-06", "AM04")
    _failed(w, "P3", "I2", "2026-03-03", "MS02", amount="50.00")
    settings = w.run("2026-03-01", "2026-03-12")
    snapshot = "select * exclude (status_changed_on) from action_ledger order by action_key"
    before, cases_before = query(settings, snapshot), _cases(settings)
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        for day in (date(2026, 3, 6), date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9), date(2026, 3, 10),
                    date(2026, 3, 11), date(2026, 3, 12)):
            run_mod.plan_day(con, day, run_mod.RunMode.SIMULATE)
    assert query(settings, snapshot) == before
    assert _cases(settings) == cases_before
    assert [r[0] for r in before] == ["cc-P1/S1/attempt_payment", "cc-P1/S2/reminder",
                                      "cm-M1-hard-20260303/S1/reminder", "cm-M1-hard-20260303/S2/reminder"]


def test_a_payment_alternative_goes_out_by_email_and_sms_through_the_outbox(tmp_path):
    steps = [{"type": "payment_alternative", "channels": "email_and_sms", "grace_days": 14,
              "admin_charges": {"EUR": "3.00"}}]
    w = _world(tmp_path, {"payment_link": "https://pay.example.com/{case_key}?amount={amount}",
                          "steps": {"soft": steps}}, locale="en_GB", phone="+4917612345678")
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-01")
    _failed(w, "P1", "I1", "2026-03-02", "AM04")
    settings = w.write()
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        results = run_mod.run_range(con, date(2026, 3, 2), date(2026, 3, 2), settings)
    assert results[0].documents_written == 2
    assert query(settings, "select action_key, channel, status, document_path from action_ledger order by 1") == [
        ("cc-P1/S1/reminder", "email", "sent", "2026-03-02/cc-P1__S1__reminder"),
        ("cc-P1/S1/sms", "sms", "sent", "2026-03-02/cc-P1__S1__sms")]
    message = email.message_from_bytes(
        (settings.outbox / "2026-03-02" / "cc-P1__S1__reminder" / "message.eml").read_bytes(),
        policy=email.policy.default)
    assert message["Subject"] == "Your payment of €100.00 could not be collected"
    assert message["To"] == "Customer CU1 <CU1@x.example>"
    text = message.get_body(("plain",)).get_content()
    for line in ("We tried to collect €100.00 on 2 Mar 2026 (mandate M1), but the collection failed because there "
                 "were not enough funds on the account (bank reason AM04: Insufficient funds on the debtor account).",
                 "Administration charges: €3.00", "Total to pay:           €103.00",
                 "Please pay €103.00 by 16 Mar 2026 through this secure payment link:",
                 "  https://pay.example.com/cc-P1?amount=103.00"):
        assert line in text.splitlines()
    assert [p.get_filename() for p in message.iter_attachments()] == ["reminder-N-I1.pdf"]
    sms = json.loads((settings.outbox / "2026-03-02" / "cc-P1__S1__sms" / "sms.json").read_text())
    assert sms == {"to": "+4917612345678", "reference": "cc-P1/S1/sms", "customer_id": "CU1", "locale": "en_GB",
                   "text": "Test GmbH: collecting €100.00 failed. Please pay €103.00 by 16 Mar 2026: "
                           "https://pay.example.com/cc-P1?amount=103.00"}
    con = duckdb.connect(str(settings.database), read_only=True)
    assert con.execute("select cast(fee as varchar), cast(amount_demanded as varchar) from action_ledger "
                       "order by action_key").fetchall() == [("3.00", "103.00"), ("0.00", "103.00")]
    con.close()
    assert Decimal("103.00") == Decimal("100.00") + Decimal("3.00")


def test_explain_shows_the_step_reached_and_what_the_next_one_waits_for(tmp_path):
    from pipeline.reporting.explain import explain_case, format_explanation

    w = _world(tmp_path, {"steps": {"soft": [{"type": "retry", "days": 3}, GRACE_STEPS[0]]}})
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-01")
    _failed(w, "P1", "I1", "2026-03-02", "AM04")
    settings = w.run("2026-03-01", "2026-03-06")
    con = duckdb.connect(str(settings.database), read_only=True)
    try:
        waiting = format_explanation(explain_case(con, "cc-P1", date(2026, 3, 6))).splitlines()
        opening = format_explanation(explain_case(con, "cc-P1", date(2026, 3, 2))).splitlines()
    finally:
        con.close()
    assert waiting[3:10] == [
        "Dunned         failed collection P1 (payment or mandate) of contract CT1, customer CU1",
        "Follows        invoice N-I1 (I1), due 2026-03-01, 5 days overdue",
        "Overdue        100.00 EUR against threshold 0.00 EUR (reached)",
        "Balance        100.00 EUR",
        "Fees so far    0.00 EUR",
        "Current level  L1 Retry, executed 2026-03-05, due date 2026-03-05",
        "History        2026-03-05  L1 Retry  attempt_payment (recorded)"]
    # no result of the 5 March retry yet: the transfer offer waits for it 10 days at most
    assert waiting[-1] == "Next action    L2 Transfer, scheduled 2026-03-15, runs on 2026-03-15"
    assert opening[-1] == "Next action    L1 Retry, scheduled 2026-03-05, runs on 2026-03-05"


def test_explain_shows_a_delayed_sms_on_its_day_and_a_re_run_sends_it_once(tmp_path):
    # the delayed SMS was planned only while no ledger row had its key, whatever the row's day, so
    # explaining the day it went out (the models as of that day) left it out
    from pipeline.reporting.explain import LevelStep, explain_case

    steps = [{"type": "payment_alternative", "name": "Link", "channels": "email_and_sms", "grace_days": 10,
              "sms_delay_days": 4}]
    w = _world(tmp_path, {"payment_link": "https://pay.example.com/{case_key}", "steps": {"soft": steps}},
               phone="+4917612345678")
    w.invoice("I1", "80.00", "2026-03-01", "2026-03-01")
    _failed(w, "P1", "I1", "2026-03-02", "AM04", amount="80.00")
    settings = w.run("2026-03-01", "2026-03-06", dispatch=True)
    ledger = "select action_key, executed_on::varchar, status, amount_demanded from action_ledger order by 2, 1"
    sent = [("cc-P1/S1/reminder", "2026-03-02", "sent", Decimal("80.00")),
            ("cc-P1/S1/sms", "2026-03-06", "sent", Decimal("80.00"))]
    assert query(settings, ledger) == sent
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        run_mod.run_day(con, date(2026, 3, 6), settings)  # the SMS's day again: planned again, not sent again
        on_the_day = explain_case(con, "cc-P1", date(2026, 3, 6))
    assert query(settings, ledger) == sent
    assert sorted(p.name for p in settings.outbox.rglob("sms.json")) == ["sms.json"]
    assert on_the_day.history == [
        LevelStep(1, "Link", "reminder", "sent", date(2026, 3, 2), date(2026, 3, 2), date(2026, 3, 12)),
        LevelStep(1, "Link", "sms", "sent", date(2026, 3, 6), date(2026, 3, 6), date(2026, 3, 12))]
