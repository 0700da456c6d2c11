"""The `collections` section of a policy and the shipped reason-code lists.

Validation messages name the file and the key; a version without `collections`
keeps the id it had before the section existed; the steps land in the policy
tables the SQL models read.
"""

from __future__ import annotations

import csv
import logging

import duckdb
import pytest

from pipeline.failed_collections.reference import CODE_FILES
from pipeline.config.policy import PolicyError, load_into_duckdb, load_policy_file
from pipeline.config.settings import PROJECT_ROOT

BASE = """
policies:
  - handle: default
    default: true
    versions:
      - effective_from: 2026-01-01
        levels:
          - name: First
            timing: {after: due_date, days: 7}
        collections:
COLLECTIONS
"""
OTHER = """
  - handle: other
    versions:
      - effective_from: 2026-01-01
        levels:
          - name: First
            timing: {after: due_date, days: 7}
        collections:
          steps:
            hard: [{type: notify}]
"""
V = "policies[0].versions[0].collections"


def _write(tmp_path, collections: str, more: str = "") -> object:
    path = tmp_path / "p.yaml"
    path.write_text(BASE.replace("COLLECTIONS", collections) + more)
    return path


@pytest.mark.parametrize("collections,message", [
    ("          steps:\n            hard: [{type: retry, days: 3}]",
     f"{V}.steps.hard: Value error, [0] retry: only soft failures (insufficient funds) are retried; a hard "
     "failure would fail again the same way"),
    ("          steps:\n            technical: [{type: notify}, {type: retry, days: 3}]",
     f"{V}.steps.technical: Value error, [1] retry: only soft failures (insufficient funds) are retried; a "
     "technical failure would fail again the same way"),
    ("          steps:\n            hard: [{type: move_to_profile, policy: other}, {type: notify}]",
     f"{V}.steps.hard: Value error, [0] move_to_profile: only the last step may move the mandate (no step runs "
     "after it)"),
    ("          steps:\n            soft: [{type: payment_alternative, method: transfer, channels: email_and_sms, "
     "grace_days: 5, sms_delay_days: 5}]",
     f"{V}.steps.soft[0].payment_alternative: Value error, sms_delay_days (5) must be shorter than grace_days (5): "
     "the SMS belongs to this step"),
    ("          steps:\n            soft: [{type: payment_alternative, method: transfer, sms_delay_days: 2}]",
     f"{V}.steps.soft[0].payment_alternative: Value error, sms_delay_days needs channels: email_and_sms: the SMS "
     "is sent later, after the step's own document"),
    ("          steps:\n            hard: [{type: official_letter, grace_days: 3, sms: true, sms_delay_days: 9}]",
     f"{V}.steps.hard[0].official_letter: Value error, sms_delay_days (9) must be shorter than grace_days (3): "
     "the SMS belongs to this step"),
    ("          steps:\n            soft: [{type: payment_alternative}]",
     f"{V}: Value error, steps.soft[0] (payment_alternative) sends a payment link: give collections.payment_link, "
     "e.g. https://pay.example.com/{case_key}"),
    ("          payment_link: 'https://pay.example.com/{case}'\n          steps:\n            soft: [{type: notify}]",
     f"{V}.payment_link: Value error, 'https://pay.example.com/{{case}}': unknown placeholder(s) case; allowed: "
     "{case_key}, {amount}, {currency}"),
    ("          payment_link: 'http://pay.example.com/{case_key}'\n"
     "          steps:\n            soft: [{type: notify}]",
     f"{V}.payment_link: Value error, 'http://pay.example.com/{{case_key}}' must be an https:// address without "
     "spaces"),
    ("          payment_link: 'https://pay.example.com/x'\n          steps:\n            soft: [{type: notify}]",
     f"{V}.payment_link: Value error, 'https://pay.example.com/x' must contain {{case_key}}: the link has to "
     "identify the case"),
    ("          steps:\n            soft: [{type: retry, when: next_month, days: 3}]",
     f"{V}.steps.soft[0].retry: Value error, when: next_month takes no days (use next_month_plus_days)"),
    ("          steps:\n            soft: [{type: retry}]",
     f"{V}.steps.soft[0].retry: Value error, when: after_days needs days: 1 or more"),
    ("          steps:\n            hard: [{type: notify, customer: false}]",
     f"{V}.steps.hard[0].notify: Value error, notify needs customer: true, merchant: true or both"),
    ("          steps:\n            medium: [{type: notify}]", f"{V}.steps.medium: unknown key"),
    ("          steps:\n            hard: [{type: notify, colour: red}]",
     f"{V}.steps.hard[0].notify.colour: unknown key"),
    ("          steps: {}", f"{V}.steps: Value error, give steps for at least one of soft, hard, technical"),
    ("          counting: {soft: per_customer}\n          steps:\n            hard: [{type: notify}]",
     f"{V}.counting.soft: got 'per_customer'; allowed: 'per_transaction' or 'per_mandate'"),
    ("          steps:\n            hard: [{type: change_mandate, status: delete}]",
     f"{V}.steps.hard[0].change_mandate.status: got 'delete'; allowed: 'suspend' or 'cancel'"),
])
def test_validation_errors_name_the_key(tmp_path, collections, message):
    path = _write(tmp_path, collections)
    with pytest.raises(PolicyError) as err:
        load_policy_file(path)
    assert str(err.value) == f"{path}: {message}"


def test_a_move_names_another_policy_that_handles_the_same_failure_types(tmp_path):
    steps = ("          steps:\n            hard: [{type: notify}, {type: move_to_profile, policy: other}]\n"
             "            technical: [{type: notify}]")
    path = _write(tmp_path, steps)
    with pytest.raises(PolicyError) as err:
        load_policy_file(path)
    assert str(err.value) == (
        f"{path}: (top level): Value error, policy default version 0: collections.steps.hard[1]: move_to_profile "
        "names 'other'; allowed: another policy of this file (there is none)")
    path = _write(tmp_path, steps, OTHER)
    with pytest.raises(PolicyError) as err:
        load_policy_file(path)
    assert str(err.value) == (
        f"{path}: (top level): Value error, policy default version 0: collections.steps.hard[1]: policy other "
        "cannot take the mandate: its version from 2026-01-01 has no collections steps for technical (the target "
        "needs the same required attributes: steps for every failure type this policy handles)")
    # the same target with technical steps too is accepted
    path = _write(tmp_path, steps, OTHER + "            technical: [{type: notify, customer: false, merchant: true}]\n")
    assert [p.handle for p in load_policy_file(path).policies] == ["default", "other"]


def test_versions_without_collections_keep_their_ids():
    # the ids the shipped files had before the collections section existed
    default = load_policy_file(PROJECT_ROOT / "policies" / "default.yaml").policies[0]
    assert default.version_id(default.versions[0]) == "default@ad8ab9d99c8d"
    examples = load_policy_file(PROJECT_ROOT / "policies" / "examples" / "004_rule_groups.yaml").policies
    assert [p.version_id(v) for p in examples for v in p.versions] == [
        "default@a25f7e6b15bd", "credit_card@bfe417e1b4a1", "ach@bbfd70cb5eb8", "digital_marketing@a0224d355ae5",
        "wire_transfers@adb0c10fa72d"]


def test_a_collections_section_changes_the_id(tmp_path):
    path = _write(tmp_path, "          steps:\n            hard: [{type: notify}]")
    with_steps = load_policy_file(path).policies[0]
    path.write_text(BASE.replace("        collections:\nCOLLECTIONS\n", ""))
    without = load_policy_file(path).policies[0]
    assert without.version_id(without.versions[0]) != with_steps.version_id(with_steps.versions[0])


def test_steps_land_in_the_policy_tables():
    policies = load_policy_file(PROJECT_ROOT / "policies" / "examples" / "003_failed_collections.yaml")
    con = duckdb.connect()
    load_into_duckdb(con, policies)
    core = policies.policies[0].version_id(policies.policies[0].versions[0])
    assert con.execute("select failure_type, counting, steps, payment_link from policy_collections "
                       "where policy_version = ? order by failure_type", [core]).fetchall() == [
        ("hard", "per_mandate", 4, "https://pay.example.com/c/{case_key}?amount={amount}"),
        ("soft", "per_transaction", 4, "https://pay.example.com/c/{case_key}?amount={amount}"),
        ("technical", "per_transaction", 3, "https://pay.example.com/c/{case_key}?amount={amount}")]
    assert con.execute("select step_no, step_type, wait, grace_days, retry_when, retry_days from "
                       "policy_collection_steps where policy_version = ? and failure_type = 'soft' order by step_no",
                       [core]).fetchall() == [
        (1, "retry", "retry_result", 0, "after_days", 5), (2, "retry", "retry_result", 0, "next_month", 0),
        (3, "payment_alternative", "grace", 14, None, None), (4, "official_letter", "grace", 14, None, None)]
    assert con.execute("select step_no, action_no, action, channel, template, delay_days from "
                       "policy_collection_step_actions where policy_version = ? and failure_type = 'hard' "
                       "order by step_no, action_no", [core]).fetchall() == [
        (1, 1, "reminder", "email", "failed_payment_notice", 0),
        (1, 2, "notify_merchant", "email", "failed_payment_notice", 0),
        (2, 1, "reminder", "email", "failed_payment_transfer", 0),
        (3, 1, "change_mandate", "change_mandate", None, 0),
        (4, 1, "reminder", "registered_letter", "failed_payment_formal", 0),
        (4, 2, "sms", "sms", "failed_payment_formal", 7)]
    assert [(t, n, str(c)) for t, n, c in con.execute(
        "select failure_type, step_no, charge from policy_collection_charges where policy_version = ? "
        "order by all", [core]).fetchall()] == [
        ("hard", 2, "5.00"), ("hard", 4, "10.00"), ("soft", 3, "2.50"), ("soft", 4, "7.50")]


# ------------------------------------------------------------------ the reason-code lists

def _codes(table: str) -> dict[str, tuple[str, str, str]]:
    with open(CODE_FILES[table], newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    codes = {r["code"]: (r["name"], r["meaning"], r["failure_type"]) for r in rows}
    assert len(codes) == len(rows), "a code is listed twice"
    return codes


def test_the_sepa_list_has_the_r_transaction_codes_each_with_a_name_meaning_and_type():
    codes = _codes("sepa_reason_codes")
    assert sorted(codes) == [
        "AC01", "AC04", "AC06", "AC13", "AG01", "AG02", "AM04", "AM05", "BE05", "CNOR", "DNOR", "ED05", "FF01",
        "FOCR", "MD01", "MD02", "MD06", "MD07", "MS02", "MS03", "RC01", "RR01", "RR02", "RR03", "RR04", "SL01",
        "SL11", "SL12", "SL13", "SL14"]
    assert all(name and meaning and kind in ("soft", "hard", "technical") for name, meaning, kind in codes.values())
    assert codes["AM04"][0] == "InsufficientFunds" and codes["MS02"][0] == "NotSpecifiedReasonCustomerGenerated"


@pytest.mark.parametrize("table,code,failure_type", [
    ("sepa_reason_codes", "AM04", "soft"), ("sepa_reason_codes", "MS03", "soft"),
    ("sepa_reason_codes", "MS02", "hard"), ("sepa_reason_codes", "MD01", "hard"),
    ("sepa_reason_codes", "MD06", "hard"), ("sepa_reason_codes", "AC04", "hard"),
    ("sepa_reason_codes", "SL01", "hard"), ("sepa_reason_codes", "AC13", "hard"),
    ("sepa_reason_codes", "AC01", "technical"), ("sepa_reason_codes", "MD02", "technical"),
    ("sepa_reason_codes", "AM05", "technical"), ("sepa_reason_codes", "FF01", "technical"),
    ("card_decline_codes", "51", "soft"), ("card_decline_codes", "05", "soft"),
    ("card_decline_codes", "61", "soft"), ("card_decline_codes", "54", "hard"),
    ("card_decline_codes", "57", "hard"), ("card_decline_codes", "62", "hard"),
    ("card_decline_codes", "R1", "hard"), ("card_decline_codes", "91", "technical"),
    ("card_decline_codes", "96", "technical"),
])
def test_failure_type_of_a_code(table, code, failure_type):
    assert _codes(table)[code][2] == failure_type


def test_the_card_list_keeps_two_digit_codes():
    codes = _codes("card_decline_codes")
    assert {"05", "51", "54", "57", "61", "62", "65", "91", "96"} <= set(codes)
    assert all(len(c) == 2 for c in codes)


def _staged_payments(con, rows: list[tuple]) -> None:
    """Just the staged columns the reference views read: (payment_id, contract_id, status, reason_code)."""
    con.execute("create table stg_contracts (contract_id varchar, customer_id varchar, payment_method varchar)")
    con.execute("insert into stg_contracts values ('CT1', 'CU1', 'direct_debit'), ('CT2', 'CU1', 'card')")
    con.execute("""create table stg_payments (payment_id varchar, contract_id varchar, status varchar,
                   booked_on date, reversed_on date, reason_code varchar, amount decimal(18,2), currency varchar,
                   mandate_id varchar)""")
    con.executemany("insert into stg_payments values (?, ?, ?, date '2026-03-02', null, ?, 10.00, 'EUR', null)", rows)


def test_reference_tables_are_replaced_on_every_load_and_unknown_codes_are_logged(caplog):
    from pipeline.failed_collections import reference

    from pipeline.warehouse.state import create_state_schema

    con = duckdb.connect()
    create_state_schema(con)  # the views also read the ledger and the case register
    _staged_payments(con, [("P1", "CT1", "failed", "AM04"), ("P2", "CT2", "failed", "am04 "),
                           ("P3", "CT2", "failed", "5"), ("P4", "CT1", "failed", None), ("P5", "CT1", "settled", "XX")]
                     + [(f"Q{i:02d}", "CT1", "failed", "XX") for i in range(20)])
    reference.load_reference(con)
    con.execute("insert into sepa_reason_codes values ('ZZ99', 'Made up', 'not shipped', 'soft')")
    reference.load_reference(con)
    assert con.execute("select count(*) from sepa_reason_codes where code = 'ZZ99'").fetchall() == [(0,)]
    assert con.execute("select count(*) from sepa_reason_codes").fetchall() == [(30,)]
    with caplog.at_level(logging.WARNING, logger="pipeline.failed_collections.reference"):
        rows = reference.report_unknown_codes(con)
    # AM04 is known on the direct-debit contract, not on the card one (case and spaces do not matter);
    # "5" is the card code 05; a settled payment is no failure
    assert [r[0] for r in rows][:3] == ["P2", "P4", "Q00"] and len(rows) == 22
    messages = [r.getMessage() for r in caplog.records]
    assert messages[:2] == [
        "payment P2 (contract CT2) failed with reason code 'am04 ', which is not in card_decline_codes: handled as "
        "a technical failure",
        "payment P4 (contract CT1) failed without a reason code: handled as a technical failure"]
    assert len(messages) == 21
    assert messages[-1] == "2 more failed payments with unknown reason codes: see the view unknown_reason_codes"
