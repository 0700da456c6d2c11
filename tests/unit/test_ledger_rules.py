"""The meanings of ledger statuses and action kinds: one seed file each, macros generated from them."""

from __future__ import annotations

import duckdb

from pipeline.config.policy import ACTION_TYPES, DOCUMENT_ACTIONS
from pipeline.failed_collections.steps import COLLECTION_ACTIONS
from pipeline.warehouse import ledger_rules


def test_the_policy_vocabulary_and_the_action_kinds_seed_agree():
    seeded = [r["action"] for r in ledger_rules.action_kinds()]
    assert sorted(seeded) == sorted([*ACTION_TYPES, *COLLECTION_ACTIONS, "level_skipped"])
    assert DOCUMENT_ACTIONS == ("reminder", "sms", "notify_merchant")
    assert ledger_rules.actions_of_kind("document") == ("reminder", "sms", "notify_merchant", "webhook")
    assert ledger_rules.actions_of_kind("export") == ("end_contract", "attempt_payment", "set_field", "change_mandate")


def test_status_macros_answer_from_the_seed():
    con = duckdb.connect()
    ledger_rules.ensure_ledger_rules(con)
    rows = con.execute(
        """select status, status_is_done(status), status_is_dispatch_record(status), status_is_sent(status),
                  status_is_exported(status), status_is_pending_dispatch(status)
           from ledger_statuses order by status""").fetchall()
    assert rows == [
        ("failed", True, True, False, False, False),
        ("held", False, False, False, False, False),
        ("needs_review", True, True, False, False, False),
        ("not_dispatched", True, False, False, False, False),
        ("planned", True, False, False, False, True),
        ("prepared", True, True, False, False, False),
        ("recorded", True, False, False, True, False),
        ("rendered", True, False, False, False, True),
        ("sending", True, True, False, False, False),
        ("sent", True, True, True, False, False),
        ("skipped", False, False, False, False, False),
    ]
    assert con.execute("select status_is_done(null), action_is_document('webhook'), action_is_export('webhook'), "
                       "action_is_transition('move_to_policy'), aging_bucket(true, 61), aging_bucket(false, 0)"
                       ).fetchall() == [(False, True, False, True, "61-90", "not due")]
    assert ledger_rules.aging_buckets() == ("not due", "1-30", "31-60", "61-90", "over 90")
