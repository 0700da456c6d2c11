"""`dunning explain`: the facts of a case, read from the day's own models, on hand-made worlds."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import duckdb
import pytest

from pipeline.reporting.explain import ExplainError, LevelStep, Suspension, explain_case, format_explanation, main
from world import World, moving_world, policy, query

D = date.fromisoformat
CASE = "ct-CT1-20260311"


def explain(settings, case_id=CASE, as_of=None):
    con = duckdb.connect(str(settings.database), read_only=True)
    try:
        return explain_case(con, case_id, as_of)
    finally:
        con.close()


def test_contract_case_at_level_1_with_the_next_level_on_a_known_date(tmp_path):
    levels = [("due_date", 5, 7, {"EUR": "5.00"}), ("previous_level", 10, 7), ("previous_level", 10, 0)]
    w = World(tmp_path, policy(levels, thresholds={"EUR": "50.00"}, grace_days=0))
    w.customer().contract()
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-10").invoice("I2", "40.00", "2026-03-05", "2026-04-30")
    s = w.run("2026-03-11", "2026-03-20")
    e = explain(s)   # default: the last day run
    assert (e.as_of, e.scope, e.policy_id, e.policy_scope, e.grace_days, e.opened_on) == (
        D("2026-03-20"), "contract", "default", "contract", 0, D("2026-03-11"))
    assert e.policy_version == query(s, "select policy_version from case_register")[0][0]
    assert (e.followed_invoice_id, e.followed_invoice_number, e.followed_due_date, e.days_overdue) == (
        "I1", "N-I1", D("2026-03-10"), 10)
    # I2 is not yet due: overdue 100.00, the contract's balance 140.00
    assert (e.overdue_amount, e.balance, e.threshold, e.fees_total) == (
        Decimal("100.00"), Decimal("140.00"), Decimal("50.00"), Decimal("5.00"))
    assert e.current_level == LevelStep(1, "Level 1", "reminder", "not_dispatched", D("2026-03-15"),
                                        D("2026-03-15"), D("2026-03-22"))
    assert e.history == [e.current_level]
    assert (e.suspensions, e.awaiting_confirmation, e.closed_on) == ([], None, None)
    n = e.next_action   # level 1's own due date 22 March + 10
    assert (n.level_no, n.level_name, n.scheduled_on, n.runs_on, n.held_by) == (
        2, "Level 2", D("2026-04-01"), D("2026-04-01"), [])
    text = format_explanation(e)
    assert "Follows        invoice N-I1 (I1), due 2026-03-10, 10 days overdue" in text
    assert "Overdue        100.00 EUR against threshold 50.00 EUR (reached)" in text
    assert "Next action    L2 Level 2, scheduled 2026-04-01, runs on 2026-04-01" in text


def test_level_executed_on_the_as_of_day_counts_and_the_next_one_is_scheduled_from_it(tmp_path):
    w = World(tmp_path, policy([("due_date", 5, 7), ("previous_level", 10, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    s = w.run("2026-03-11", "2026-03-15")
    e = explain(s)
    assert (e.current_level.level_no, e.current_level.executed_on, e.current_level.level_due_date) == (
        1, D("2026-03-15"), D("2026-03-22"))
    assert (e.next_action.level_no, e.next_action.scheduled_on) == (2, D("2026-04-01"))


def test_case_held_by_a_customer_suspension_runs_on_resumption(tmp_path):
    w = World(tmp_path, policy([("due_date", 5, 0), ("previous_level", 7, 0), ("previous_level", 7, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    w.suspension("customer", "CU1", "2026-03-18", "2026-04-02")
    s = w.run("2026-03-11", "2026-03-25")
    e = explain(s)
    assert e.suspensions == [Suspension("customer", "CU1", D("2026-03-18"), D("2026-04-02"))]
    n = e.next_action   # its time (15 March + 7) came during the suspension: it runs at once on resumption
    assert (n.level_no, n.scheduled_on, n.runs_on, n.held_by) == (
        2, D("2026-03-22"), D("2026-04-02"), ["customer suspension of CU1 until 2026-04-02"])
    assert "runs on 2026-04-02, at once when dunning resumes" in format_explanation(e)
    # the product agrees: level 2 is executed on 2 April
    w.run("2026-03-26", "2026-04-03")
    assert query(s, "select level_no, executed_on::varchar from action_ledger order by level_no") == [
        (1, "2026-03-15"), (2, "2026-04-02")]


def test_suspension_ending_before_the_scheduled_day_does_not_move_it(tmp_path):
    w = World(tmp_path, policy([("due_date", 5, 0), ("previous_level", 20, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    w.suspension("contract", "CT1", "2026-03-18", "2026-03-25")
    s = w.run("2026-03-11", "2026-03-20")
    n = explain(s).next_action
    assert (n.level_no, n.scheduled_on, n.runs_on, n.held_by) == (2, D("2026-04-04"), D("2026-04-04"), [])


def test_case_below_the_threshold_after_a_partial_payment_waits(tmp_path):
    w = World(tmp_path, policy([("due_date", 1, 0), ("due_date", 10, 0)], thresholds={"EUR": "50.00"}))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    w.payment("P1", "60.00", "2026-03-15", invoice_id="I1")
    s = w.run("2026-03-11", "2026-03-25")
    e = explain(s)
    assert (e.overdue_amount, e.balance, e.threshold) == (Decimal("40.00"), Decimal("40.00"), Decimal("50.00"))
    assert e.closed_on is None and e.current_level.level_no == 1
    n = e.next_action
    assert (n.level_no, n.scheduled_on, n.runs_on, n.held_by) == (
        2, D("2026-03-20"), None, ["overdue amount 40.00 EUR is below the threshold 50.00 EUR"])
    text = format_explanation(e)
    assert "Overdue        40.00 EUR against threshold 50.00 EUR (below: the case waits)" in text
    assert "scheduled 2026-03-20, no date yet: it waits" in text


def test_closed_case_says_when_and_why(tmp_path):
    w = World(tmp_path, policy([("due_date", 5, 0), ("previous_level", 10, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    w.payment("P1", "100.00", "2026-03-18", invoice_id="I1")
    s = w.run("2026-03-11", "2026-03-25")
    for as_of in (None, D("2026-03-18")):   # closed before the day, and on the day itself
        e = explain(s, as_of=as_of)
        assert (e.closed_on, e.close_reason, e.is_open, e.next_action) == (
            D("2026-03-18"), "balance_cleared", False, None)
        assert [(h.level_no, h.executed_on) for h in e.history] == [(1, D("2026-03-15"))]
        assert "Next action    none: the case closed on 2026-03-18 (balance_cleared)" in format_explanation(e)
    assert explain(s, as_of=D("2026-03-17")).closed_on is None


def test_as_of_in_the_past_gives_the_state_on_that_day(tmp_path):
    w = World(tmp_path, policy([("due_date", 5, 0), ("previous_level", 7, 0), ("previous_level", 7, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    s = w.run("2026-03-11", "2026-04-05")
    assert [lv for lv, in query(s, "select level_no from action_ledger order by level_no")] == [1, 2, 3]
    e = explain(s, as_of=D("2026-03-21"))   # level 2 runs on 22 March
    assert (e.as_of, e.days_overdue, e.current_level.level_no, [h.level_no for h in e.history]) == (
        D("2026-03-21"), 11, 1, [1])
    assert (e.next_action.level_no, e.next_action.runs_on) == (2, D("2026-03-22"))
    now = explain(s)
    assert (now.current_level.level_no, now.current_level.executed_on, now.next_action) == (3, D("2026-03-29"), None)
    assert "every level has run" in format_explanation(now)


def test_manual_reminder_awaiting_confirmation_holds_the_next_level(tmp_path):
    levels = [{"name": "By hand", "timing": {"after": "due_date", "days": 14}, "channel": "manual"},
              {"name": "Notice", "timing": {"after": "previous_level", "days": 7}}]
    w = World(tmp_path, policy(levels))
    w.customer().contract().invoice("I1", "100.00", "2026-04-26", "2026-05-10")
    s = w.run("2026-05-11", "2026-06-05", dispatch=True)
    e = explain(s, "ct-CT1-20260511")
    assert e.awaiting_confirmation == "ct-CT1-20260511/L1/reminder"
    assert (e.next_action.level_no, e.next_action.scheduled_on, e.next_action.runs_on) == (2, D("2026-05-31"), None)



def test_a_level_inside_the_grace_period_runs_the_day_after_it_and_says_why(tmp_path):
    # issue 12, item 3: a courtesy level opened the case; the next level waits for the grace period
    w = World(tmp_path, policy([("due_date", -3, 0), ("due_date", 1, 0)], scope="invoice", grace_days=5))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    s = w.run("2026-03-07", "2026-03-12")
    n = explain(s, "in-I1-20260307").next_action
    assert (n.level_no, n.scheduled_on, n.runs_on) == (2, D("2026-03-11"), D("2026-03-16"))
    assert n.held_by == ["the grace period of the followed invoice, until 2026-03-15"]
    assert query(s, "select action_key from action_ledger") == [("in-I1-20260307/L1/reminder",)]

def test_unknown_case_and_days_without_state(tmp_path, capsys):
    w = World(tmp_path, policy([("due_date", 5, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    s = w.run("2026-03-11", "2026-03-20")
    assert main(s.database, "ct-NOPE-20260311", None) == 2
    assert "no dunning case 'ct-NOPE-20260311' in the case register" in capsys.readouterr().err
    assert main(s.database, CASE, D("2026-03-21")) == 2
    assert "the pipeline has run up to 2026-03-20" in capsys.readouterr().err
    assert main(s.database, CASE, D("2026-03-10")) == 2
    assert "opened on 2026-03-11" in capsys.readouterr().err
    assert main(s.database, CASE, None) == 0
    assert capsys.readouterr().out.startswith(f"Case           {CASE} as of 2026-03-20\n")
    with pytest.raises(ExplainError):
        explain(s, "nope")


def test_explain_changes_nothing(tmp_path):
    w = World(tmp_path, policy([("due_date", 5, 0), ("previous_level", 7, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    s = w.run("2026-03-11", "2026-03-25")
    before = query(s, "select * from action_ledger"), query(s, "select * from case_register")
    explain(s, as_of=D("2026-03-15"))
    assert (query(s, "select * from action_ledger"), query(s, "select * from case_register")) == before


def test_case_whose_policy_version_was_edited_since_keeps_it_and_says_so(tmp_path):
    # editing a version in place gives it a new id; the open case keeps the old version, still registered
    w = World(tmp_path, policy([("due_date", 5, 0), ("previous_level", 7, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    s = w.run("2026-03-11", "2026-03-16")
    w.policy_doc["policies"][0]["versions"][0]["levels"][1]["fee"] = {"EUR": "5.00"}
    w.run("2026-03-17", "2026-03-20")
    e = explain(s)
    assert (e.policy_scope, e.grace_days, e.version_in_file, e.current_level.level_no) == ("contract", 0, False, 1)
    assert (e.next_action.level_no, e.next_action.runs_on) == (2, D("2026-03-22"))
    assert "edited or removed from the policy file since, kept for this case" in format_explanation(e)


def test_customer_case_follows_the_oldest_receivable_of_all_its_contracts(tmp_path):
    w = World(tmp_path, policy([("due_date", 5, 0), ("previous_level", 10, 0)], scope="customer"))
    w.customer().contract("C1").contract("C2")
    w.invoice("I1", "100.00", "2026-02-15", "2026-03-01", contract_id="C1")
    w.invoice("I2", "50.00", "2026-02-20", "2026-03-05", contract_id="C2")
    w.payment("P1", "100.00", "2026-03-12", contract_id="C1", invoice_id="I1")
    s = w.run("2026-03-02", "2026-03-14")
    e = explain(s, "cu-CU1-EUR-20260302")
    assert (e.scope, e.followed_invoice_id, e.days_overdue, e.overdue_amount, e.balance) == (
        "customer", "I2", 9, Decimal("50.00"), Decimal("50.00"))
    assert (e.current_level.level_no, e.next_action.level_no, e.next_action.runs_on) == (1, 2, D("2026-03-16"))
    assert "Dunned         customer CU1, all contracts in EUR" in format_explanation(e)


CATCH_UP_LEVELS = [("due_date", 7, 7), ("previous_level", 0, 7, {"EUR": "5.00"}), ("previous_level", 3, 7)]


def _backfilled_then_live(tmp_path, mode, live_days):
    from pipeline.engine import run as run_mod
    from pipeline.engine.backfill import backfill

    w = World(tmp_path, policy(CATCH_UP_LEVELS))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-15")
    s = w.write()
    with run_mod.connect(s.database) as con:
        run_mod.load_inputs(con, s)
        backfill(con, D("2026-03-16"), D("2026-03-31"), s, catch_up=mode)
        for day in live_days:
            run_mod.run_day(con, D(day), s)
    return s


BACKFILLED = [LevelStep(1, "Level 1", "reminder", "not_dispatched", D("2026-03-22"), D("2026-03-22"), D("2026-03-29")),
              LevelStep(2, "Level 2", "reminder", "not_dispatched", D("2026-03-29"), D("2026-03-29"), D("2026-04-05"))]


# (level caught up, its day, the day explain gives for level 3 as of that day)
@pytest.mark.parametrize("mode, caught_up, l3_on", [
    ("highest", [(2, "2026-04-01", "2026-04-11")], "2026-04-11"),
    # as of 1 April level 3 follows level 2 of the backfill (due 5 April + 3); the catch-up of
    # level 2 on 2 April moves it (what a day's outlook cannot know on 1 April)
    ("each", [(1, "2026-04-01", "2026-04-08"), (2, "2026-04-02", "2026-04-12")], "2026-04-12"),
])
def test_a_catch_up_shows_on_its_day_and_times_the_next_level_as_the_ledger_does(tmp_path, mode, caught_up, l3_on):
    # the catch-up model read the whole ledger, so explaining the day a catch-up was sent (or any
    # day before it) planned no catch-up: explain left it out and timed the next level from the backfill
    days = ["2026-04-01", "2026-04-01"] + [f"2026-04-{d:02d}" for d in range(2, 13)]  # 1 April run twice
    s = _backfilled_then_live(tmp_path, mode, days)
    assert query(s, "select action_key, executed_on::varchar, status, fee, amount_demanded from action_ledger "
                    "where executed_on >= '2026-04-01' order by executed_on, action_key") == [
        # a catch-up states the fees up to its level: none for level 1, level 2's 5.00 from level 2 on
        *[(f"ct-CT1-20260316/L{n}/reminder+catch_up", on, "sent", Decimal("0.00"),
           Decimal("100.00") if n == 1 else Decimal("105.00")) for n, on, _ in caught_up],
        ("ct-CT1-20260316/L3/reminder", l3_on, "sent", Decimal("0.00"), Decimal("105.00"))]
    history = list(BACKFILLED)
    for n, on, next_on in caught_up:
        e = explain(s, "ct-CT1-20260316", D(on))
        history.append(LevelStep(n, f"Level {n}", "reminder", "sent", D(on), D(on), D(on) + timedelta(days=7)))
        assert e.history == history
        assert e.fees_total == Decimal("5.00")
        assert (e.next_action.level_no, e.next_action.scheduled_on, e.next_action.runs_on) == (3, D(next_on), D(next_on))


# --- the day as the ledger has it (review 2026-12-07) ---------------------------------------------


def test_a_level_the_fresh_data_gate_held_is_not_the_current_level(tmp_path):
    w = World(tmp_path, policy([("due_date", 5, 7), ("previous_level", 10, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    w.payment("P0", "1.00", "2026-01-05", contract_id="CT1")   # the newest payment is old: data stale
    w.settings_overrides = {"dispatch": {"max_payment_age_days": 3}}
    s = w.run("2026-03-11", "2026-03-15", dispatch=True)
    assert query(s, "select action_key, status from action_ledger") == [("ct-CT1-20260311/L1/reminder", "held")]
    assert query(s, "select current_level from state_as_of('2026-03-15')") == [(0,)]
    e = explain(s)
    assert e.current_level is None
    assert [(h.level_no, h.status) for h in e.history] == [(1, "held")]
    assert "Current level  none yet" in format_explanation(e)
    assert (e.next_action.level_no, e.next_action.runs_on) == (1, D("2026-03-16"))


def _paid_late_on_the_day_sent(tmp_path, amount):
    """L1 sent on 15 March; then a payment booked on 15 March arrives and the day is run again: its plan no
    longer has L1 (below the threshold, or the case closes), but the ledger keeps it as sent."""
    w = World(tmp_path, policy([("due_date", 5, 7), ("previous_level", 10, 0)], thresholds={"EUR": "50.00"}))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    w.run("2026-03-11", "2026-03-15", dispatch=True)
    w.payment("P1", amount, "2026-03-15", invoice_id="I1")
    return w.run("2026-03-15", "2026-03-15", dispatch=True)


def test_a_re_run_of_the_day_keeps_the_level_it_sent_in_the_explanation(tmp_path):
    s = _paid_late_on_the_day_sent(tmp_path, "60.00")   # 40.00 left, below the threshold: the case stays open
    assert query(s, "select action_key, executed_on::varchar, status from action_ledger") == [
        ("ct-CT1-20260311/L1/reminder", "2026-03-15", "sent")]
    assert query(s, "select status, current_level, level_due_date::varchar from state_as_of('2026-03-15')") == [
        ("open", 1, "2026-03-22")]
    e = explain(s)
    assert (e.current_level.level_no, e.current_level.status, e.current_level.level_due_date) == (
        1, "sent", D("2026-03-22"))
    # the next level counts from L1's due date, as tomorrow's run will; the threshold holds it
    assert (e.next_action.level_no, e.next_action.scheduled_on, e.next_action.held_by) == (
        2, D("2026-04-01"), ["overdue amount 40.00 EUR is below the threshold 50.00 EUR"])


def test_a_case_closed_by_a_re_run_of_the_day_still_shows_what_that_day_sent(tmp_path):
    s = _paid_late_on_the_day_sent(tmp_path, "100.00")
    e = explain(s)
    assert (e.closed_on, e.close_reason) == (D("2026-03-15"), "balance_cleared")
    assert [(h.level_no, h.action, h.status, h.executed_on) for h in e.history] == [
        (1, "reminder", "sent", D("2026-03-15"))]
    assert e.current_level.level_no == 1


def test_a_case_moved_to_another_policy_is_closed_on_the_day_of_the_move(tmp_path):
    w = moving_world(tmp_path)
    s = w.run("2026-03-16", "2026-03-25")
    e = explain(s, "ct-CT1-20260316")
    assert (e.closed_on, e.close_reason, e.next_action) == (D("2026-03-25"), "moved_to_policy", None)
    assert [(h.level_no, h.action) for h in e.history] == [(1, "reminder"), (2, "move_to_policy")]


def test_a_courtesy_level_s_demand_is_what_the_threshold_line_weighs(tmp_path):
    """Before the due date nothing is overdue, but the next courtesy level demands what falls due by its
    own due date: the Overdue line said "below: the case waits" beside a next level held by nothing."""
    w = World(tmp_path, policy([("due_date", -5, 0), ("due_date", -2, 0), ("due_date", 7, 7)],
                               thresholds={"EUR": "10.00"}))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    s = w.run("2026-03-04", "2026-03-09")
    assert query(s, "select action_key, executed_on::varchar from action_ledger where action <> 'level_skipped' "
                    "order by 2") == [("ct-CT1-20260305/L1/reminder", "2026-03-05"),
                                      ("ct-CT1-20260305/L2/reminder", "2026-03-08")]
    e = explain(s, "ct-CT1-20260305", D("2026-03-06"))
    assert (e.next_action.level_no, e.next_action.runs_on, e.next_action.held_by) == (2, D("2026-03-08"), [])
    assert ("Overdue        0.00 EUR; the next level demands 100.00 EUR (what falls due by its own due date) "
            "against threshold 10.00 EUR (reached)") in format_explanation(e)


def test_a_day_no_run_computed_shows_its_plan_even_when_a_later_day_ran_the_level(tmp_path):
    """Live runs on 14 and 20 March only. On 17 March (not run) the plan runs L1; the ledger has L1 from
    20 March under the same key, which hid the plan: no history, no level, no fee on 17 March."""
    w = World(tmp_path, policy([("due_date", 5, 7, {"EUR": "5.00"}), ("previous_level", 10, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    w.run("2026-03-14", "2026-03-14", dispatch=True)
    s = w.run("2026-03-20", "2026-03-20", dispatch=True)
    assert query(s, "select action_key, executed_on::varchar from action_ledger") == [
        ("ct-CT1-20260314/L1/reminder", "2026-03-20")]
    e = explain(s, "ct-CT1-20260314", D("2026-03-17"))
    assert [(h.level_no, h.status, h.executed_on) for h in e.history] == [(1, "not run", D("2026-03-17"))]
    assert (e.current_level.level_no, e.fees_total) == (1, Decimal("5.00"))
    e = explain(s, "ct-CT1-20260314", D("2026-03-20"))
    assert [(h.level_no, h.status, h.executed_on) for h in e.history] == [(1, "sent", D("2026-03-20"))]


def test_explain_reads_a_database_an_older_release_ran_last(tmp_path, capsys):
    """`dunning explain` is read-only: a database whose last run was an older release lacks the macros
    this release's models call (hand_sent and first_day_past_grace in case_outlook, 2026-12-08) and holds
    older definitions of others. It explains with this release's macros, as temp macros of its own
    connection, and leaves the file as it was. Before, it stopped with "function does not exist"."""
    w = World(tmp_path, policy([("due_date", 5, 7), ("previous_level", 3, 7)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    s = w.run("2026-03-11", "2026-03-20")
    expected = format_explanation(explain(s))
    with duckdb.connect(str(s.database)) as con:  # what an older release's run left: no such macros
        con.execute("drop macro hand_sent")
        con.execute("drop macro first_day_past_grace")
    assert main(s.database, CASE, None) == 0
    assert capsys.readouterr().out == expected + "\n"
    assert query(s, "select count(*) from duckdb_functions() where function_name in "
                    "('hand_sent', 'first_day_past_grace') and not internal") == [(0,)]
