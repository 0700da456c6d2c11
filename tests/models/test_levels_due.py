"""`marts/levels_due` on hand-made inputs: which level each case executes today, and what it demands.

Pins down, with exact rows: the next level whose day has come runs and demands the overdue
amount; with absolute timing the highest level due runs and the ones below it are recorded as
skipped (`executed = false`); a suspension or the threshold hold a case (no row; the threshold
is reached at equality); a courtesy level (timed from the due date, before it) demands the open
amount; a catch-up level runs on its own but not beside the case's next level.
Inputs: int_pending_levels, int_active_cases, int_catch_up_actions, policy_levels (only the
columns the model reads).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from model_rows import add_rows, input_table, model_db, model_rows

D = date.fromisoformat
AS_OF = D("2026-03-20")
VERSION = "P1@2026-01-01"

PENDING_LEVELS = {"case_id": "varchar", "level_no": "integer", "level_name": "varchar", "anchor": "varchar",
                  "payment_term_days": "integer", "channel": "varchar", "template": "varchar",
                  "scheduled_on": "date", "followed_due_date": "date", "reachable": "boolean"}
ACTIVE_CASES = {"case_id": "varchar", "scope": "varchar", "target_id": "varchar", "contract_id": "varchar",
                "customer_id": "varchar", "currency": "varchar", "policy_id": "varchar", "policy_version": "varchar",
                "routed_by": "varchar", "fees_total": "decimal(18,2)", "apply_fees": "boolean",
                "followed_invoice_id": "varchar", "days_overdue": "bigint", "open_amount": "decimal(38,2)",
                "overdue_amount": "decimal(38,2)", "threshold": "decimal(18,2)", "suspended": "boolean",
                "dunning_disabled": "boolean", "awaiting_confirmation": "boolean"}
CATCH_UP_ACTIONS = {"case_id": "varchar", "level_no": "integer"}
POLICY_LEVELS = {"policy_version": "varchar", "level_no": "integer", "level_name": "varchar",
                 "payment_term_days": "integer", "channel": "varchar", "template": "varchar"}

COLUMNS = ("case_id", "level_no", "level_name", "scheduled_on", "executed", "catch_up", "demanded_principal",
           "days_overdue", "fees_before", "payment_term_days", "channel", "template")


def case(case_id, *, open_amount="140.00", overdue_amount="100.00", threshold="0.00", suspended=False,
         days_overdue=10):
    return {"case_id": case_id, "scope": "contract", "target_id": case_id, "contract_id": case_id,
            "customer_id": "CU1", "currency": "EUR", "policy_id": "P1", "policy_version": VERSION,
            "routed_by": None, "fees_total": Decimal("5.00"), "apply_fees": True, "followed_invoice_id": "I1",
            "days_overdue": days_overdue, "open_amount": Decimal(open_amount),
            "overdue_amount": Decimal(overdue_amount), "threshold": Decimal(threshold), "suspended": suspended,
            "dunning_disabled": False, "awaiting_confirmation": False}


def level(case_id, level_no, scheduled_on, *, anchor="due_date", reachable=True, followed_due_date="2026-03-10"):
    return {"case_id": case_id, "level_no": level_no, "level_name": f"Level {level_no}", "anchor": anchor,
            "payment_term_days": 7, "channel": "letter", "template": f"l{level_no}",
            "scheduled_on": None if scheduled_on is None else D(scheduled_on),
            "followed_due_date": D(followed_due_date), "reachable": reachable}


def row(case_id, level_no, scheduled_on, *, executed=True, catch_up=False, demanded="100.00", days_overdue=10):
    return (case_id, level_no, f"Level {level_no}", D(scheduled_on), executed, catch_up, Decimal(demanded),
            days_overdue, Decimal("5.00"), 7, "letter", f"l{level_no}")


def levels_due(cases, pending, catch_up=(), as_of=AS_OF):
    con = model_db()
    try:
        input_table(con, "int_active_cases", ACTIVE_CASES, cases)
        input_table(con, "int_pending_levels", PENDING_LEVELS, pending)
        input_table(con, "int_catch_up_actions", CATCH_UP_ACTIONS, catch_up)
        input_table(con, "policy_levels", POLICY_LEVELS)
        add_rows(con, "policy_levels", [
            {"policy_version": VERSION, "level_no": n, "level_name": f"Level {n}", "payment_term_days": 7,
             "channel": "letter", "template": f"l{n}"} for n in (1, 2, 3)])
        return model_rows(con, "marts/levels_due", as_of, COLUMNS, "case_id, level_no, catch_up")
    finally:
        con.close()


def test_the_next_level_whose_day_has_come_runs_on_the_overdue_amount():
    rows = levels_due([case("A"), case("B")], [
        level("A", 1, "2026-03-15"), level("A", 2, None, anchor="previous_level", reachable=False),
        # B's next level is tomorrow: nothing today
        level("B", 1, "2026-03-21"),
    ])
    assert rows == [row("A", 1, "2026-03-15", demanded="100.00")]


def test_absolute_timing_runs_the_highest_level_due_and_skips_the_lower():
    rows = levels_due([case("A")], [
        level("A", 1, "2026-03-15"), level("A", 2, "2026-03-20"),
        level("A", 3, "2026-03-25"),  # in reach but not yet due: no row
    ])
    assert rows == [row("A", 1, "2026-03-15", executed=False), row("A", 2, "2026-03-20")]


def test_a_suspended_case_executes_nothing():
    rows = levels_due([case("A", suspended=True), case("B")],
                      [level("A", 1, "2026-03-15"), level("B", 1, "2026-03-15")])
    assert rows == [row("B", 1, "2026-03-15")]


def test_below_the_threshold_nothing_runs_at_the_threshold_it_does():
    rows = levels_due([case("A", overdue_amount="49.99", threshold="50.00"),
                       case("B", overdue_amount="50.00", threshold="50.00")],
                      [level("A", 1, "2026-03-15"), level("B", 1, "2026-03-15")])
    assert rows == [row("B", 1, "2026-03-15", demanded="50.00")]


@pytest.mark.parametrize("anchor, scheduled_on, expected", [
    # three days before the due date, timed from it: a courtesy level, on the open amount
    ("due_date", "2026-03-07", [row("A", 1, "2026-03-07", demanded="140.00", days_overdue=0)]),
    # timed from the previous level: never a courtesy level, and nothing is overdue
    ("previous_level", "2026-03-07", []),
])
def test_a_courtesy_level_demands_the_open_amount(anchor, scheduled_on, expected):
    rows = levels_due([case("A", open_amount="140.00", overdue_amount="0.00", days_overdue=0)],
                      [level("A", 1, scheduled_on, anchor=anchor)], as_of=D("2026-03-08"))
    assert rows == expected


def test_a_catch_up_runs_alone_but_not_beside_the_next_level():
    rows = levels_due([case("A"), case("B")], [
        level("A", 2, "2026-03-18"),
        level("B", 3, "2026-03-30"),  # B's next level is not due: its catch-up runs alone
    ], catch_up=[{"case_id": "A", "level_no": 1},
                 {"case_id": "B", "level_no": 2}, {"case_id": "B", "level_no": 2}])  # two actions of one level
    assert rows == [row("A", 2, "2026-03-18"),
                    row("B", 2, "2026-03-20", catch_up=True)]  # scheduled today, from policy_levels
