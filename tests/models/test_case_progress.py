"""`intermediate/int_case_progress` on a hand-made case register and action ledger.

Pins down, with exact rows: which cases are open at the start of the day (opened before it,
not closed before it, not a failed collection); that only done rows count (sent, prepared,
not_dispatched; never skipped nor held rows, nor rows of the day itself) for the last level and
the fees; that a catch-up sending (`<key>+catch_up`, later) moves the last execution and its due
date to the latest sending; that a manual reminder not confirmed by the day holds the case
(`awaiting_confirmation`) while one confirmed 5 days after it was made delays later levels by 5
days; and that a manual row recorded by a backfill (not_dispatched) neither holds nor delays.
The model reads `case_register` and, through the `levels_done` macro, `action_ledger`: the
persistent tables of `create_state_schema`, filled here by hand.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from model_rows import add_rows, model_db, model_rows

D = date.fromisoformat
AS_OF = D("2026-04-01")
COLUMNS = ("case_id", "opened_on", "last_level_no", "last_executed_on", "last_level_due_date", "fees_total",
           "manual_delay_days", "awaiting_confirmation")


def case(case_id, opened_on="2026-03-11", closed_on=None, scope="contract"):
    return {"case_id": case_id, "scope": scope, "target_id": "CT1", "contract_id": "CT1", "customer_id": "CU1",
            "currency": "EUR", "policy_id": "P1", "policy_version": "P1@2026-01-01", "opened_on": D(opened_on),
            "closed_on": None if closed_on is None else D(closed_on), "routed_by": None}


def action(case_id, level_no, executed_on, status, *, fee="0.00", term=7, channel="letter", confirmed_on=None,
           key_suffix=""):
    executed = D(executed_on)
    return {"action_key": f"{case_id}/L{level_no}/reminder{key_suffix}", "case_id": case_id, "scope": "contract",
            "target_id": "CT1", "contract_id": "CT1", "customer_id": "CU1", "currency": "EUR", "policy_id": "P1",
            "policy_version": "P1@2026-01-01", "level_no": level_no, "level_name": f"Level {level_no}",
            "action": "reminder", "channel": channel, "scheduled_on": executed, "executed_on": executed,
            "level_due_date": executed + timedelta(days=term),
            "principal": Decimal("100.00"), "fee": Decimal(fee), "fees_total": Decimal("0.00"),
            "interest": Decimal("0.00"), "amount_demanded": Decimal("100.00"), "status": status,
            "dispatch_mode": "live", "confirmed_on": None if confirmed_on is None else D(confirmed_on)}


def progress(cases, ledger, as_of=AS_OF):
    con = model_db()
    try:
        add_rows(con, "case_register", cases)
        add_rows(con, "action_ledger", ledger)
        return model_rows(con, "intermediate/int_case_progress", as_of, COLUMNS, "case_id")
    finally:
        con.close()


def test_only_cases_open_at_the_start_of_the_day_have_progress():
    rows = progress([case("A"), case("B", closed_on="2026-04-01"), case("C", closed_on="2026-03-31"),
                     case("D", opened_on="2026-04-01"), case("E", scope="collection")], [])
    assert rows == [("A", D("2026-03-11"), 0, None, None, Decimal("0.00"), 0, False),
                    ("B", D("2026-03-11"), 0, None, None, Decimal("0.00"), 0, False)]


def test_done_rows_count_skipped_held_and_todays_rows_do_not():
    rows = progress([case("A")], [
        action("A", 1, "2026-03-15", "skipped", fee="2.00"),  # passed over as level 2 ran
        action("A", 2, "2026-03-15", "sent", fee="5.00"),
        action("A", 3, "2026-03-25", "not_dispatched", fee="7.50"),
        action("A", 4, "2026-03-31", "held", fee="10.00"),  # placeholder of the fresh-data gate
        action("A", 5, "2026-04-01", "sent", fee="20.00"),  # the day itself: not before it
    ])
    assert rows == [("A", D("2026-03-11"), 3, D("2026-03-25"), D("2026-04-01"), Decimal("12.50"), 0, False)]


def test_a_catch_up_sending_moves_the_level_to_its_latest_sending():
    rows = progress([case("A")], [
        action("A", 1, "2026-03-15", "not_dispatched", fee="5.00"),  # recorded by a backfill, due 22 March
        action("A", 1, "2026-03-20", "sent", key_suffix="+catch_up"),  # sent live after all, due 27 March
    ])
    assert rows == [("A", D("2026-03-11"), 1, D("2026-03-20"), D("2026-03-27"), Decimal("5.00"), 0, False)]


def test_a_manual_reminder_holds_until_confirmed_and_then_delays_by_the_days_it_took():
    rows = progress([case("A"), case("B"), case("C")], [
        action("A", 1, "2026-03-20", "prepared", channel="manual"),  # not confirmed
        action("B", 1, "2026-03-20", "sent", channel="manual", confirmed_on="2026-03-25"),
        action("C", 1, "2026-03-20", "sent", channel="manual", confirmed_on="2026-04-03"),  # after the day
    ])
    assert rows == [("A", D("2026-03-11"), 1, D("2026-03-20"), D("2026-03-27"), Decimal("0.00"), 0, True),
                    ("B", D("2026-03-11"), 1, D("2026-03-20"), D("2026-03-27"), Decimal("0.00"), 5, False),
                    ("C", D("2026-03-11"), 1, D("2026-03-20"), D("2026-03-27"), Decimal("0.00"), 0, True)]


def test_a_manual_row_recorded_by_a_backfill_neither_holds_nor_delays():
    rows = progress([case("A"), case("B")], [
        action("A", 1, "2026-03-20", "not_dispatched", channel="manual"),
        action("B", 1, "2026-03-20", "not_dispatched", channel="manual", confirmed_on="2026-03-25"),
    ])
    assert rows == [("A", D("2026-03-11"), 1, D("2026-03-20"), D("2026-03-27"), Decimal("0.00"), 0, False),
                    ("B", D("2026-03-11"), 1, D("2026-03-20"), D("2026-03-27"), Decimal("0.00"), 0, False)]
