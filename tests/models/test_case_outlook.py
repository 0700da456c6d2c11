"""`marts/case_outlook`: what comes next for each open case and why, on hand-made worlds.

`dunning explain` prints this model's row; these tests pin its columns and that the
command says the same as the model.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import duckdb

from pipeline.reporting.explain import explain_case, format_explanation, run_outlook
from world import World, policy, query

D = date.fromisoformat
CASE = "ct-CT1-20260311"
COLUMNS = ("case_id", "next_level_no", "next_level_name", "scheduled_on", "runs_on", "held_by_suspension_until",
           "held_by_open_suspension", "held_by_pause_flag", "held_by_failed_collection", "awaiting_confirmation_key",
           "nothing_overdue", "below_threshold", "overdue_amount", "threshold", "dunning_disabled")


def outlook(settings, as_of: date, case_id: str = CASE):
    """The model's row for the case (COLUMNS, then `reason`), and the explanation's next action line."""
    con = duckdb.connect(str(settings.database), read_only=True)
    try:
        run_outlook(con, as_of, "marts/case_outlook")
        cur = con.execute(f"select {', '.join(COLUMNS)}, reason from case_outlook where case_id = ?", [case_id])
        rows = cur.fetchall()
        assert len(rows) == 1, rows
        text = format_explanation(explain_case(con, case_id, as_of))
    finally:
        con.close()
    nxt = text[text.index("Next action    "):]
    return rows[0][:-1], rows[0][-1], nxt


def _said(row) -> str:
    """The next-action line `dunning explain` must print for a model row (COLUMNS)."""
    _, level_no, name, scheduled_on, runs_on = row[:5]
    line = f"Next action    L{level_no} {name}, scheduled {scheduled_on}"
    if runs_on is None:
        return line + ", no date yet: it waits"
    return line + (f", runs on {runs_on}" if runs_on <= scheduled_on else
                   f", runs on {runs_on}, at once when dunning resumes")


def test_case_waiting_for_its_next_level_runs_on_the_scheduled_day(tmp_path):
    levels = [("due_date", 5, 7, {"EUR": "5.00"}), ("previous_level", 10, 7), ("previous_level", 10, 0)]
    w = World(tmp_path, policy(levels, thresholds={"EUR": "50.00"}))
    w.customer().contract()
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-10").invoice("I2", "40.00", "2026-03-05", "2026-04-30")
    s = w.run("2026-03-11", "2026-03-20")
    row, reason, said = outlook(s, D("2026-03-20"))
    assert row == (CASE, 2, "Level 2", D("2026-04-01"), D("2026-04-01"), None, None, False, False, None,
                   False, False, Decimal("100.00"), Decimal("50.00"), False)
    assert reason == "runs on 2026-04-01"
    assert said == _said(row)


def test_the_level_executed_on_the_day_counts_as_done(tmp_path):
    # level 1 runs on 15 March (due date 22 March): the next is level 2, 10 days after that
    w = World(tmp_path, policy([("due_date", 5, 7), ("previous_level", 10, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    s = w.run("2026-03-11", "2026-03-15")
    before, _, _ = outlook(s, D("2026-03-14"))
    on_the_day, _, said = outlook(s, D("2026-03-15"))
    assert before[1:5] == (1, "Level 1", D("2026-03-15"), D("2026-03-15"))
    assert on_the_day[1:5] == (2, "Level 2", D("2026-04-01"), D("2026-04-01"))
    assert said == _said(on_the_day)


def test_case_held_by_a_dated_suspension_runs_the_day_dunning_resumes(tmp_path):
    w = World(tmp_path, policy([("due_date", 5, 0), ("previous_level", 7, 0), ("previous_level", 7, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    w.suspension("customer", "CU1", "2026-03-18", "2026-04-02")
    s = w.run("2026-03-11", "2026-03-25")
    row, reason, said = outlook(s, D("2026-03-25"))
    assert row == (CASE, 2, "Level 2", D("2026-03-22"), D("2026-04-02"), D("2026-04-02"), None, False, False, None,
                   False, False, Decimal("100.00"), Decimal("0.00"), False)
    assert reason == "runs on 2026-04-02, when dunning resumes; suspended until 2026-04-02"
    assert said.splitlines() == [_said(row), f"{'':15}held by customer suspension of CU1 until 2026-04-02"]


def test_open_ended_suspension_leaves_no_date(tmp_path):
    w = World(tmp_path, policy([("due_date", 5, 0), ("previous_level", 7, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    w.suspension("contract", "CT1", "2026-03-18")
    s = w.run("2026-03-11", "2026-03-25")
    row, reason, said = outlook(s, D("2026-03-25"))
    assert row[1:8] == (2, "Level 2", D("2026-03-22"), None, None, "contract CT1", False)
    assert reason == "waits; suspended without end (contract CT1)"
    assert said.splitlines() == [_said(row), f"{'':15}held by contract suspension of CT1 (no end date)"]


def test_case_below_the_threshold_waits_without_a_date(tmp_path):
    w = World(tmp_path, policy([("due_date", 1, 0), ("due_date", 10, 0)], thresholds={"EUR": "50.00"}))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    w.payment("P1", "60.00", "2026-03-15", invoice_id="I1")
    s = w.run("2026-03-11", "2026-03-25")
    row, reason, said = outlook(s, D("2026-03-25"))
    assert row == (CASE, 2, "Level 2", D("2026-03-20"), None, None, None, False, False, None,
                   False, True, Decimal("40.00"), Decimal("50.00"), False)
    assert reason == "waits; demanded 40.00 below threshold 50.00"
    assert said.splitlines() == [_said(row),
                                 f"{'':15}held by overdue amount 40.00 EUR is below the threshold 50.00 EUR"]


def test_case_awaiting_confirmation_of_a_manual_reminder_waits(tmp_path):
    levels = [{"name": "By hand", "timing": {"after": "due_date", "days": 14}, "channel": "manual"},
              {"name": "Notice", "timing": {"after": "previous_level", "days": 7}}]
    w = World(tmp_path, policy(levels))
    w.customer().contract().invoice("I1", "100.00", "2026-04-26", "2026-05-10")
    s = w.run("2026-05-11", "2026-06-05", dispatch=True)
    case, key = "ct-CT1-20260511", "ct-CT1-20260511/L1/reminder"
    row, reason, said = outlook(s, D("2026-06-05"), case)
    assert row == (case, 2, "Notice", D("2026-05-31"), None, None, None, False, False, key,
                   False, False, Decimal("100.00"), Decimal("0.00"), False)
    assert reason == f"waits; awaiting confirmation of {key}"
    assert said.splitlines() == [_said(row), f"{'':15}held by confirmation of the manual reminder {key} "
                                             "(later levels move by the days until it is confirmed)"]
    # on the day the reminder is made, it already holds the next level
    row, _, _ = outlook(s, D("2026-05-24"), case)
    assert (row[1], row[4], row[9]) == (2, None, key)


def test_after_a_manual_reminder_the_outlook_names_the_day_each_later_level_runs(tmp_path):
    """L1 by hand on 24 May, confirmed 5 days late; L2 and L3 each 7 days after the previous level
    (term 0). L2 runs on 5 June (31 May + 5) and L3 on 12 June: the delay moved L2, and L3 follows L2's
    own due date (review 2026-12-08: L3 was scheduled on 17 June, the delay counted twice). The outlook
    says so on the day L2 runs (the level done that day moves the anchor) and the day after."""
    from world import confirmed_manual_world

    levels = [{"name": "By hand", "timing": {"after": "due_date", "days": 14}, "channel": "manual",
               "payment_term_days": 0},
              {"name": "Second", "timing": {"after": "previous_level", "days": 7}, "payment_term_days": 0},
              {"name": "Notice", "timing": {"after": "previous_level", "days": 7}, "payment_term_days": 0}]
    w, s = confirmed_manual_world(tmp_path, levels)
    w.run("2026-05-29", "2026-06-06", dispatch=True)
    case = "ct-CT1-20260511"
    for day in ("2026-06-05", "2026-06-06"):
        row, reason, _ = outlook(s, D(day), case)
        assert row[:5] == (case, 3, "Notice", D("2026-06-12"), D("2026-06-12")), day
    w.run("2026-06-07", "2026-06-20", dispatch=True)
    assert query(s, "select level_no, executed_on::varchar from action_ledger order by level_no") == [
        (1, "2026-05-24"), (2, "2026-06-05"), (3, "2026-06-12")]
