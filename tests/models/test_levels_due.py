"""`marts/levels_due` on hand-made inputs: which level each case executes today, and what it demands.

Pins down, with exact rows: the next level whose day has come runs and demands the overdue
amount; with absolute timing the highest level due runs and the ones below it are recorded as
skipped (`executed = false`); a suspension, the threshold or the grace period hold a case (no
row; the threshold is reached at equality, grace ends the day after it); a courtesy level (on or
before the due date) demands what falls due by its own due date and is not held by grace; a
catch-up level runs on its own but not beside the case's next level.
Inputs: int_pending_levels, int_active_cases, int_open_receivables, int_catch_up_actions,
policy_levels (only the columns the model reads).
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
                  "scheduled_on": "date", "followed_due_date": "date", "reachable": "boolean",
                  "courtesy": "boolean"}
ACTIVE_CASES = {"case_id": "varchar", "scope": "varchar", "target_id": "varchar", "contract_id": "varchar",
                "customer_id": "varchar", "currency": "varchar", "policy_id": "varchar", "policy_version": "varchar",
                "routed_by": "varchar", "fees_total": "decimal(18,2)", "apply_fees": "boolean",
                "followed_invoice_id": "varchar", "days_overdue": "bigint", "open_amount": "decimal(38,2)",
                "overdue_amount": "decimal(38,2)", "threshold": "decimal(18,2)", "suspended": "boolean",
                "dunning_disabled": "boolean", "awaiting_confirmation": "boolean", "grace_days": "integer",
                "followed_due_date": "date"}
OPEN_RECEIVABLES = {"invoice_id": "varchar", "contract_id": "varchar", "customer_id": "varchar", "currency": "varchar",
                    "due_date": "date", "open_amount": "decimal(18,2)", "is_overdue": "boolean"}
CATCH_UP_ACTIONS = {"case_id": "varchar", "level_no": "integer", "fees_through_level": "decimal(18,2)"}
POLICY_LEVELS = {"policy_version": "varchar", "level_no": "integer", "level_name": "varchar",
                 "payment_term_days": "integer", "channel": "varchar", "template": "varchar"}

COLUMNS = ("case_id", "level_no", "level_name", "scheduled_on", "executed", "catch_up", "demanded_principal",
           "days_overdue", "fees_before", "payment_term_days", "channel", "template")


def case(case_id, *, open_amount="140.00", overdue_amount="100.00", threshold="0.00", suspended=False,
         days_overdue=10, grace_days=0):
    return {"case_id": case_id, "scope": "contract", "target_id": case_id, "contract_id": case_id,
            "customer_id": "CU1", "currency": "EUR", "policy_id": "P1", "policy_version": VERSION,
            "routed_by": None, "fees_total": Decimal("5.00"), "apply_fees": True, "followed_invoice_id": "I1",
            "days_overdue": days_overdue, "open_amount": Decimal(open_amount),
            "overdue_amount": Decimal(overdue_amount), "threshold": Decimal(threshold), "suspended": suspended,
            "dunning_disabled": False, "awaiting_confirmation": False, "grace_days": grace_days,
            "followed_due_date": D("2026-03-10")}


def level(case_id, level_no, scheduled_on, *, anchor="due_date", reachable=True, followed_due_date="2026-03-10",
          courtesy=False):
    return {"case_id": case_id, "level_no": level_no, "level_name": f"Level {level_no}", "anchor": anchor,
            "payment_term_days": 7, "channel": "letter", "template": f"l{level_no}",
            "scheduled_on": None if scheduled_on is None else D(scheduled_on),
            "followed_due_date": D(followed_due_date), "reachable": reachable, "courtesy": courtesy}


def row(case_id, level_no, scheduled_on, *, executed=True, catch_up=False, demanded="100.00", days_overdue=10,
        fees_before="5.00"):
    return (case_id, level_no, f"Level {level_no}", D(scheduled_on), executed, catch_up, Decimal(demanded),
            days_overdue, Decimal(fees_before), 7, "letter", f"l{level_no}")


def receivable(invoice_id, due_date, open_amount, contract_id="A"):
    return {"invoice_id": invoice_id, "contract_id": contract_id, "customer_id": "CU1", "currency": "EUR",
            "due_date": D(due_date), "open_amount": Decimal(open_amount), "is_overdue": False}


def levels_due(cases, pending, catch_up=(), as_of=AS_OF, receivables=()):
    con = model_db()
    try:
        input_table(con, "int_active_cases", ACTIVE_CASES, cases)
        input_table(con, "int_open_receivables", OPEN_RECEIVABLES, receivables)
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


@pytest.mark.parametrize("courtesy, scheduled_on, expected", [
    # three days before the due date (int_pending_levels: courtesy): what falls due by the level's
    # own due date, 8 March + 7 = 15 March: I1 and I2, not I3 due on 31 March
    (True, "2026-03-07", [row("A", 1, "2026-03-07", demanded="140.00", days_overdue=-2)]),
    # no courtesy level (e.g. timed after a previous level that ran): it demands what is overdue, nothing
    (False, "2026-03-07", []),
])
def test_a_courtesy_level_demands_what_falls_due_by_its_own_due_date(courtesy, scheduled_on, expected):
    rows = levels_due([case("A", open_amount="340.00", overdue_amount="0.00", days_overdue=-2)],
                      [level("A", 1, scheduled_on, courtesy=courtesy)], as_of=D("2026-03-08"),
                      receivables=[receivable("I1", "2026-03-10", "100.00"), receivable("I2", "2026-03-15", "40.00"),
                                   receivable("I3", "2026-03-31", "200.00"),
                                   receivable("I9", "2026-03-01", "999.00", contract_id="B")])  # another contract
    assert rows == expected


def test_a_courtesy_level_with_a_short_term_demands_the_receivable_it_follows():
    # payment term 7 from 1 March ends 8 March, before I1's due date (10 March): I1 is demanded all the same
    rows = levels_due([case("A", open_amount="300.00", overdue_amount="0.00", days_overdue=-9)],
                      [level("A", 1, "2026-03-01", courtesy=True)], as_of=D("2026-03-01"),
                      receivables=[receivable("I1", "2026-03-10", "100.00"), receivable("I2", "2026-03-31", "200.00")])
    assert rows == [row("A", 1, "2026-03-01", demanded="100.00", days_overdue=-9)]


@pytest.mark.parametrize(("days_overdue", "courtesy", "runs"), [
    (5, False, False),  # inside the grace period of 5 days: the level waits
    (6, False, True),   # the first day past grace
    (5, True, True),    # a courtesy level is not held by grace
])
def test_grace_holds_every_level_but_a_courtesy_level(days_overdue, courtesy, runs):
    rows = levels_due([case("A", days_overdue=days_overdue, grace_days=5)],
                      [level("A", 2, "2026-03-11", courtesy=courtesy)],
                      receivables=[receivable("I1", "2026-03-10", "100.00")])
    demanded = "100.00"
    assert rows == ([row("A", 2, "2026-03-11", demanded=demanded, days_overdue=days_overdue)] if runs else [])


def test_a_catch_up_runs_alone_but_not_beside_the_next_level():
    rows = levels_due([case("A"), case("B")], [
        level("A", 2, "2026-03-18"),
        level("B", 3, "2026-03-30"),  # B's next level is not due: its catch-up runs alone
    ], catch_up=[{"case_id": "A", "level_no": 1, "fees_through_level": Decimal("0.00")},
                 {"case_id": "B", "level_no": 2, "fees_through_level": Decimal("2.50")},
                 {"case_id": "B", "level_no": 2, "fees_through_level": Decimal("2.50")}])  # two actions of one level
    # B's catch-up states the fees its backfill recorded up to level 2 (2.50), not the case's 5.00,
    # which counts a higher level the customer has not been sent yet
    assert rows == [row("A", 2, "2026-03-18"),
                    row("B", 2, "2026-03-20", catch_up=True, fees_before="2.50")]  # scheduled today, from policy_levels
