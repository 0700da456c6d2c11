"""Backfills: recomputation in a work schema, the difference report, adoption, catch-up choices."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from pipeline.engine import run as run_mod
from pipeline.engine.backfill import BackfillError, backfill
from pipeline.engine.run import RunRefused
from world import World, policy, query

V1 = [("due_date", 7, 7), ("previous_level", 0, 7, {"EUR": "5.00"})]
V2_LEVELS = [{"name": "Early", "timing": {"after": "due_date", "days": 3}, "payment_term_days": 7,
              "fee": {"EUR": "2.50"}}]


def _world(tmp_path, *, thresholds=None) -> World:
    doc = policy(V1)
    doc["policies"][0]["versions"].append({"effective_from": "2027-01-01", "scope": "contract",
                                           "thresholds": thresholds or {}, "levels": V2_LEVELS})
    w = World(tmp_path, doc)
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-15")
    return w


def _backfill(settings, start, end, **kw):
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        version = kw.pop("version", None)
        if version == "v2":
            kw["policy_version"] = con.execute(
                "select policy_version from policy_versions where effective_from = '2027-01-01'").fetchall()[0][0]
        return backfill(con, date.fromisoformat(start), date.fromisoformat(end), settings, **kw)


def test_a_backfill_under_another_version_reports_what_differs_and_keeps_what_was_sent(tmp_path):
    s = _world(tmp_path).run("2026-03-16", "2026-03-31", dispatch=True)
    assert query(s, "select action_key, executed_on::varchar, status from action_ledger order by 1") == [
        ("ct-CT1-20260316/L1/reminder", "2026-03-22", "sent"),
        ("ct-CT1-20260316/L2/reminder", "2026-03-29", "sent")]
    result = _backfill(s, "2026-03-16", "2026-03-31", catch_up="none", version="v2")
    assert result.differences == {"changed": 1, "would_not_have_happened": 1}
    assert query(s, "select kind, action_key, before_status, before_executed_on::varchar, "
                    "after_executed_on::varchar, before_amount, after_amount, before_fee, after_fee "
                    "from backfill_differences order by action_key") == [
        ("changed", "ct-CT1-20260316/L1/reminder", "sent", "2026-03-22", "2026-03-18",
         Decimal("100.00"), Decimal("102.50"), Decimal("0.00"), Decimal("2.50")),
        ("would_not_have_happened", "ct-CT1-20260316/L2/reminder", "sent", "2026-03-29", None,
         Decimal("105.00"), None, Decimal("5.00"), None)]
    # what was sent stays the record; nothing of the backfill is sent
    assert query(s, "select action_key, executed_on::varchar, status from action_ledger order by 1") == [
        ("ct-CT1-20260316/L1/reminder", "2026-03-22", "sent"),
        ("ct-CT1-20260316/L2/reminder", "2026-03-29", "sent")]
    assert query(s, "select backfill_id, catch_up, actions_before, actions_after, differences from backfill_runs") == [
        ("bf-2026-03-16-2026-03-31-1", "none", 2, 1, 2)]


# from before the case opened too: it closes on its opening day, never before it
@pytest.mark.parametrize("start", ["2026-03-16", "2026-03-10"])
def test_a_case_the_recomputation_never_opens_is_reported_and_closed(tmp_path, start):
    s = _world(tmp_path, thresholds={"EUR": "500.00"}).run("2026-03-16", "2026-03-25", dispatch=True)
    result = _backfill(s, start, "2026-03-25", catch_up="none", version="v2")
    assert result.differences == {"would_not_have_happened": 1}
    assert query(s, "select case_id, opened_on::varchar, closed_on::varchar, close_reason from case_register") == [
        ("ct-CT1-20260316", "2026-03-16", "2026-03-16", "not_in_backfill")]


CASE_LEVELS = "select action_key, executed_on::varchar, status, fee, fees_total from action_ledger order by 2, 1"


def _corrected(tmp_path, live_to: str, due_date: str):
    """Live days from 16 March to `live_to`, sent; then I1's due date corrected (from 15 March) in the files."""
    w = _world(tmp_path)
    w.run("2026-03-16", live_to, dispatch=True)
    w.rows["invoices"][0]["due_date"] = due_date
    return w.write()


# The invoice's due date corrected after the live days (15 March -> 17 March), a backfill from before
# the case opened: the recomputation opens the same contract's case on 18 March instead of 16 March.
# Its levels continue the live case under the live id: what the customer received stays the record
# and counts as done, nothing is sent twice and no fee is counted twice.
def test_a_recomputed_case_continues_the_live_case_it_overlaps(tmp_path):
    s = _corrected(tmp_path, "2026-03-31", "2026-03-17")
    result = _backfill(s, "2026-03-10", "2026-03-31", catch_up="highest")
    assert result.differences == {"changed": 2}
    assert query(s, "select kind, action_key, before_executed_on::varchar, after_executed_on::varchar, "
                    "before_fee, after_fee from backfill_differences order by action_key") == [
        ("changed", "ct-CT1-20260316/L1/reminder", "2026-03-22", "2026-03-24", Decimal("0.00"), Decimal("0.00")),
        ("changed", "ct-CT1-20260316/L2/reminder", "2026-03-29", "2026-03-31", Decimal("5.00"), Decimal("5.00"))]
    # one case, opened on the earlier of the two days: the live one, before its first sending
    assert query(s, "select case_id, opened_on::varchar, closed_on, close_reason from case_register") == [
        ("ct-CT1-20260316", "2026-03-16", None, None)]
    assert query(s, CASE_LEVELS) == [
        ("ct-CT1-20260316/L1/reminder", "2026-03-22", "sent", Decimal("0.00"), Decimal("0.00")),
        ("ct-CT1-20260316/L2/reminder", "2026-03-29", "sent", Decimal("5.00"), Decimal("5.00"))]
    _live(s, "2026-04-01")
    assert query(s, CATCH_UP_ROWS) == []  # both levels reached the customer already
    assert query(s, "select sum(fee) from fee_ledger") == [(Decimal("5.00"),)]


# The due date corrected to 12 March: the recomputation opens on 13 March and reaches level 2 on 26
# March, which the live days (level 1 sent on 22 March) never sent. The catch-up sends it under the
# live case, so the letter carries the payment reference of the one the customer already has.
def test_a_catch_up_of_a_continued_case_keeps_its_id_and_payment_reference(tmp_path):
    s = _corrected(tmp_path, "2026-03-27", "2026-03-12")
    result = _backfill(s, "2026-03-10", "2026-03-27", catch_up="highest")
    assert result.differences == {"changed": 1, "would_have_happened": 1}
    assert query(s, CASE_LEVELS) == [
        ("ct-CT1-20260316/L1/reminder", "2026-03-22", "sent", Decimal("0.00"), Decimal("0.00")),
        ("ct-CT1-20260316/L2/reminder", "2026-03-26", "not_dispatched", Decimal("5.00"), Decimal("5.00"))]
    _live(s, "2026-03-28")
    assert query(s, CATCH_UP_ROWS) == [("ct-CT1-20260316/L2/reminder+catch_up", "2026-03-28", Decimal("100.00"),
                                        Decimal("0.00"), Decimal("5.00"), Decimal("105.00"), "sent")]
    assert query(s, "select case_id, opened_on::varchar from case_register") == [("ct-CT1-20260316", "2026-03-13")]
    assert query(s, "select count(distinct payment_reference(case_id)) from action_ledger where status = 'sent'") \
        == [(1,)]


# The due date corrected to 25 March, after both levels were sent: the recomputation opens the target on
# 26 March. The continued case opens on the earlier day, 16 March, so no sent level precedes its opening:
# explain answers for the day L1 went out, and a later backfill starting between the sending and the
# recomputed opening seeds the case with its sent rows and changes nothing.
def test_a_continued_case_opens_no_later_than_what_it_sent(tmp_path):
    from pipeline.reporting.explain import explain_case

    s = _corrected(tmp_path, "2026-04-02", "2026-03-25")
    _backfill(s, "2026-03-10", "2026-04-02", catch_up="none")
    register = query(s, "select case_id, opened_on::varchar, closed_on from case_register")
    levels = query(s, CASE_LEVELS)
    assert register == [("ct-CT1-20260316", "2026-03-16", None)]
    assert levels == [
        ("ct-CT1-20260316/L1/reminder", "2026-03-22", "sent", Decimal("0.00"), Decimal("0.00")),
        ("ct-CT1-20260316/L2/reminder", "2026-03-29", "sent", Decimal("5.00"), Decimal("5.00"))]
    with run_mod.connect(s.database) as con:
        assert explain_case(con, "ct-CT1-20260316", date(2026, 3, 22)).opened_on == date(2026, 3, 16)
    result = _backfill(s, "2026-03-24", "2026-04-02", catch_up="none")
    assert result.differences == {}
    assert (query(s, "select case_id, opened_on::varchar, closed_on from case_register"),
            query(s, CASE_LEVELS)) == (register, levels)


# Two live cases of one contract: A (opened 16 March, L1 sent, paid 20 March), then B (opened 25 March for
# I2, L1 and L2 sent). Corrected: I1 due 13 March and paid 27 March, I2 due 28 March. The recomputation has
# X (14-27 March), overlapping A and B, and Y (from 29 March), overlapping B only. A continues as X and B
# as Y: B's levels are not caught up again under another case.
def test_each_live_case_continues_as_the_earliest_recomputed_case_left_for_it(tmp_path):
    def world(corrected: bool) -> World:
        w = World(tmp_path, policy([("due_date", 2, 5), ("previous_level", 0, 7, {"EUR": "5.00"})]))
        w.customer().contract()
        w.invoice("I1", "100.00", "2026-03-01", "2026-03-13" if corrected else "2026-03-15")
        w.invoice("I2", "100.00", *(("2026-03-28", "2026-03-28") if corrected else ("2026-03-21", "2026-03-24")))
        w.payment("P1", "100.00", "2026-03-27" if corrected else "2026-03-20", invoice_id="I1")
        return w

    world(False).run("2026-03-16", "2026-03-31", dispatch=True)
    s = world(True).write()
    result = _backfill(s, "2026-03-10", "2026-03-31", catch_up="highest")
    assert result.differences == {"changed": 2, "would_have_happened": 1, "would_not_have_happened": 1}
    assert query(s, "select case_id, opened_on::varchar, closed_on::varchar, close_reason from case_register "
                    "order by 1") == [("ct-CT1-20260316", "2026-03-14", "2026-03-27", "balance_cleared"),
                                      ("ct-CT1-20260325", "2026-03-25", None, None)]
    _live(s, "2026-04-01")
    assert query(s, CASE_LEVELS) == [
        ("ct-CT1-20260316/L1/reminder", "2026-03-17", "sent", Decimal("0.00"), Decimal("0.00")),
        ("ct-CT1-20260316/L2/reminder", "2026-03-20", "not_dispatched", Decimal("5.00"), Decimal("5.00")),
        ("ct-CT1-20260325/L1/reminder", "2026-03-26", "sent", Decimal("0.00"), Decimal("0.00")),
        ("ct-CT1-20260325/L2/reminder", "2026-03-31", "sent", Decimal("5.00"), Decimal("5.00"))]


# Only what reached someone ties a recomputed case to a live one: days planned and never sent are
# replaced, and the case takes the id the recomputation gives it, as a backfill of new days does.
def test_a_live_case_that_sent_nothing_is_replaced_by_the_recomputed_one(tmp_path):
    w = _world(tmp_path)
    s = w.write()
    with run_mod.connect(s.database) as con:  # live days planned, never dispatched
        run_mod.load_inputs(con, s)
        for n in range(16):
            run_mod.plan_day(con, date(2026, 3, 16) + timedelta(days=n), settings=s)
    w.rows["invoices"][0]["due_date"] = "2026-03-17"
    s = w.write()
    assert query(s, "select distinct case_id, status from action_ledger") == [("ct-CT1-20260316", "planned")]
    _backfill(s, "2026-03-10", "2026-03-31", catch_up="highest")
    assert query(s, "select case_id, opened_on::varchar, closed_on from case_register") == [
        ("ct-CT1-20260318", "2026-03-18", None)]
    assert query(s, CASE_LEVELS) == [
        ("ct-CT1-20260318/L1/reminder", "2026-03-24", "not_dispatched", Decimal("0.00"), Decimal("0.00")),
        ("ct-CT1-20260318/L2/reminder", "2026-03-31", "not_dispatched", Decimal("5.00"), Decimal("5.00"))]


def test_a_backfill_over_new_days_equals_running_them(tmp_path):
    live = _world(tmp_path / "a").run("2026-03-16", "2026-04-10")
    w = _world(tmp_path / "b")
    s = w.write()
    _backfill(s, "2026-03-16", "2026-04-10", catch_up="none")
    columns = "action_key, executed_on, level_no, status, principal, fee, fees_total, amount_demanded"
    assert query(s, f"select {columns} from action_ledger order by 1") == \
        query(live, f"select {columns} from action_ledger order by 1") != []
    assert query(s, "select * from case_register") == query(live, "select * from case_register")
    assert query(s, "select count(*), sum(balance) from contract_balances") == \
        query(live, "select count(*), sum(balance) from contract_balances")


@pytest.mark.parametrize("mode, expected", [
    ("none", []),
    ("highest", [("ct-CT1-20260316/L2/reminder+catch_up", "2026-04-01", "sent", Decimal("0.00"))]),
    ("each", [("ct-CT1-20260316/L1/reminder+catch_up", "2026-04-01", "sent", Decimal("0.00")),
              ("ct-CT1-20260316/L2/reminder+catch_up", "2026-04-02", "sent", Decimal("0.00"))]),
])
def test_the_next_live_days_catch_up_as_the_user_chose(tmp_path, mode, expected):
    w = _world(tmp_path)
    s = w.write()
    _backfill(s, "2026-03-16", "2026-03-31", catch_up=mode)
    _live(s, "2026-04-01", "2026-04-02", "2026-04-03", "2026-04-03")  # a re-run of the latest day changes nothing
    with pytest.raises(RunRefused, match="dunning backfill --from 2026-04-02 --to 2026-04-03"):
        _live(s, "2026-04-02")  # an earlier day would discard 3 April
    assert query(s, "select action_key, executed_on::varchar, status, fee from action_ledger "
                    "where action_key like '%+catch_up' order by 2") == expected
    assert query(s, "select count(*) from action_ledger where status = 'not_dispatched'") == [(2,)]


# Two backfills ending on the same day. Their ids compare as text (`bf-<start>-<end>-<n>`: the later
# start sorts last, and `-10` before `-9`), so the live day followed whichever id sorted last, not the
# choice the user made last.
@pytest.mark.parametrize("first, second, expected", [
    ("none", "highest", [("ct-CT1-20260316/L2/reminder+catch_up", "2026-04-01", "sent", Decimal("0.00"))]),
    ("highest", "none", []),
])
def test_the_next_live_day_follows_the_backfill_run_last(tmp_path, first, second, expected):
    s = _world(tmp_path).write()
    _backfill(s, "2026-03-20", "2026-03-31", catch_up=first)
    _backfill(s, "2026-03-16", "2026-03-31", catch_up=second)  # done again, wider: the user's latest choice
    assert query(s, "select backfill_id, catch_up, sequence_no from backfill_runs order by sequence_no") == [
        ("bf-2026-03-20-2026-03-31-1", first, 1), ("bf-2026-03-16-2026-03-31-1", second, 2)]
    _live(s, "2026-04-01")
    assert query(s, "select action_key, executed_on::varchar, status, fee from action_ledger "
                    "where action_key like '%+catch_up' order by 1") == expected


def test_backfills_recorded_before_their_order_was_are_numbered_in_the_order_they_ran(tmp_path):
    import duckdb

    s = _world(tmp_path).write()
    _backfill(s, "2026-03-20", "2026-03-31", catch_up="none")
    _backfill(s, "2026-03-16", "2026-03-31", catch_up="highest")
    # the database as an earlier release left it: no sequence_no, made by another release
    con = duckdb.connect(str(s.database))
    con.execute("alter table backfill_runs drop column sequence_no")
    con.execute("drop macro state_schema_release")
    con.close()
    _live(s, "2026-04-01")  # ensure_state numbers them in the order their rows were inserted
    assert query(s, "select backfill_id, catch_up, sequence_no from backfill_runs order by sequence_no") == [
        ("bf-2026-03-20-2026-03-31-1", "none", 1), ("bf-2026-03-16-2026-03-31-1", "highest", 2)]
    assert query(s, "select action_key, executed_on::varchar, status, fee from action_ledger "
                    "where action_key like '%+catch_up' order by 1") == [
        ("ct-CT1-20260316/L2/reminder+catch_up", "2026-04-01", "sent", Decimal("0.00"))]
    _backfill(s, "2026-03-16", "2026-04-01", catch_up="none")  # the next one follows them
    assert query(s, "select backfill_id, sequence_no from backfill_runs order by sequence_no") == [
        ("bf-2026-03-20-2026-03-31-1", 1), ("bf-2026-03-16-2026-03-31-1", 2), ("bf-2026-03-16-2026-04-01-1", 3)]


def _live(settings, *days):
    """Live days after the backfill, in the order given, with one connection and ingestion."""
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        for day in days:
            run_mod.run_day(con, date.fromisoformat(day), settings)


def test_an_unknown_version_or_mode_is_refused(tmp_path):
    s = _world(tmp_path).write()
    with pytest.raises(BackfillError, match="no policy version 'default@nope'"):
        _backfill(s, "2026-03-16", "2026-03-20", catch_up="none", policy_version="default@nope")
    with pytest.raises(BackfillError, match="catch-up must be one of none, highest, each, not 'all'"):
        _backfill(s, "2026-03-16", "2026-03-20", catch_up="all")


CATCH_UP_ROWS = ("select action_key, executed_on::varchar, principal, fee, fees_total, amount_demanded, status "
                 "from action_ledger where action_key like '%+catch_up' order by executed_on, action_key")


# (key, day, fees stated): a level's catch-up states the fees the backfill recorded up to that level. Level 1
# of `each` has none: level 2's fee is stated with level 2, the next day, not before the customer has it.
@pytest.mark.parametrize("mode, expected", [
    ("highest", [("ct-CT1-20260316/L2/reminder+catch_up", "2026-04-01", Decimal("5.00"))]),
    ("each", [("ct-CT1-20260316/L1/reminder+catch_up", "2026-04-01", Decimal("0.00")),
              ("ct-CT1-20260316/L2/reminder+catch_up", "2026-04-02", Decimal("5.00"))]),
])
def test_a_catch_up_demands_what_is_owed_on_the_day_it_is_sent(tmp_path, mode, expected):
    w = _world(tmp_path)
    w.payment("P1", "30.00", "2026-03-30", invoice_id="I1")  # after level 2 (29 March) demanded 105.00
    s = w.write()
    _backfill(s, "2026-03-16", "2026-03-31", catch_up=mode)
    assert query(s, "select action_key, principal, fees_total, amount_demanded from action_ledger "
                    "where status = 'not_dispatched' order by action_key") == [
        ("ct-CT1-20260316/L1/reminder", Decimal("100.00"), Decimal("0.00"), Decimal("100.00")),
        ("ct-CT1-20260316/L2/reminder", Decimal("100.00"), Decimal("5.00"), Decimal("105.00"))]
    _live(s, "2026-04-01", "2026-04-02", "2026-04-03")
    # 70.00 still overdue, plus the fees the backfill recorded up to the level; no second fee
    assert query(s, CATCH_UP_ROWS) == [(key, on, Decimal("70.00"), Decimal("0.00"), fees, Decimal("70.00") + fees,
                                        "sent") for key, on, fees in expected]


def test_no_catch_up_for_a_case_now_below_its_threshold_or_settled(tmp_path):
    w = World(tmp_path, policy(V1, thresholds={"EUR": "80.00"}))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-15")
    w.payment("P1", "30.00", "2026-03-30", invoice_id="I1")  # 70.00 left: below the threshold
    w.contract("CT2").invoice("I2", "100.00", "2026-03-01", "2026-03-15", contract_id="CT2")
    w.payment("P2", "100.00", "2026-03-31", contract_id="CT2", invoice_id="I2")  # settled: the case closes
    s = w.write()
    _backfill(s, "2026-03-16", "2026-03-31", catch_up="highest")
    _live(s, "2026-04-01")
    assert query(s, "select count(*) from action_ledger where status = 'not_dispatched'") == [(4,)]
    assert query(s, CATCH_UP_ROWS) == []


@pytest.mark.parametrize("mode", ["highest", "each"])
def test_a_case_reaching_its_next_level_needs_no_catch_up_of_a_lower_one(tmp_path, mode):
    # level 2 (29 March) gives 3 days, so level 3 falls due on the first live day, 1 April
    w = World(tmp_path, policy([("due_date", 7, 7), ("previous_level", 0, 3, {"EUR": "5.00"}),
                                ("previous_level", 0, 7)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-15")
    s = w.write()
    _backfill(s, "2026-03-16", "2026-03-31", catch_up=mode)
    _live(s, "2026-04-01", "2026-04-02", "2026-04-03")
    assert query(s, "select action_key, executed_on::varchar, status from action_ledger "
                    "where executed_on >= '2026-04-01' order by action_key") == [
        ("ct-CT1-20260316/L3/reminder", "2026-04-01", "sent")]


LETTER_AND_SMS = [{"name": f"Level {n}", "timing": {"after": anchor, "days": days}, "payment_term_days": 7,
                   "channel": "letter", "actions": [{"type": "reminder"}, {"type": "sms"}]}
                  for n, (anchor, days) in enumerate([("due_date", 7), ("previous_level", 0)], start=1)]


@pytest.mark.parametrize("recover_with", ["run", "dispatch"])
def test_catch_up_letters_survive_a_live_day_that_failed_while_sending(tmp_path, monkeypatch, recover_with):
    # issue 13, defect 1: the catch-up SMS went out (no SMS gateway configured: the outbox is the
    # delivery), the catch-up letter was rendered, then the day failed before the print batch. A
    # second `dunning run` rewound the rendered letter and never planned it again (the case
    # already had a +catch_up row): 34 of 34 letters lost. Both ways of recovering must deliver it.
    from pipeline.delivery import dispatch as dispatch_mod
    from pipeline.delivery.channels.print_batch import keys_in_batches

    doc = policy([])
    doc["policies"][0]["versions"][0]["levels"] = LETTER_AND_SMS
    w = World(tmp_path, doc)
    w.customer(phone="+4915112345678").contract().invoice("I1", "100.00", "2026-03-01", "2026-03-15")
    s = w.write()
    _backfill(s, "2026-03-16", "2026-03-31", catch_up="highest")
    real_send = dispatch_mod.send_letters

    def crash_before_sending(con, as_of, settings):
        raise RuntimeError("killed while sending")

    monkeypatch.setattr(dispatch_mod, "send_letters", crash_before_sending)
    with pytest.raises(RuntimeError, match="killed while sending"):
        _live(s, "2026-04-01")
    assert query(s, "select action_key, status from action_ledger where action_key like '%+catch_up' "
                    "order by 1") == [("ct-CT1-20260316/L2/reminder+catch_up", "rendered"),
                                      ("ct-CT1-20260316/L2/sms+catch_up", "sent")]
    monkeypatch.setattr(dispatch_mod, "send_letters", real_send)
    if recover_with == "run":
        _live(s, "2026-04-01")
    else:
        with run_mod.connect(s.database) as con:
            run_mod.load_inputs(con, s)
            run_mod.dispatch_day(con, date(2026, 4, 1), s)
    assert query(s, "select action_key, status from action_ledger where action_key like '%+catch_up' "
                    "order by 1") == [("ct-CT1-20260316/L2/reminder+catch_up", "sent"),
                                      ("ct-CT1-20260316/L2/sms+catch_up", "sent")]
    assert sorted(keys_in_batches(s.print_folder, date(2026, 4, 1))) == ["ct-CT1-20260316/L2/reminder+catch_up"]


# An export a live day recorded (status `recorded`, listed in contract_terminations) is no dispatch
# record; a backfill over its day deleted it and adopted its own `not_dispatched` row, so the contract
# silently stopped being ended, and the report said nothing differed.
ESCALATION = [
    {"name": "Reminder and webhook", "timing": {"after": "due_date", "days": 7}, "fee": {"EUR": "2.50"},
     "actions": [{"type": "webhook"}, {"type": "reminder"}]},
    {"name": "End contract", "timing": {"after": "due_date", "days": 14},
     "actions": [{"type": "end_contract", "when": "immediately"}]},
]
ENDED_LIVE = [
    ("ct-CT1-20260316/L1/reminder", "2026-03-22", "sent", "live", Decimal("0.00"), Decimal("32.50")),
    ("ct-CT1-20260316/L1/webhook", "2026-03-22", "sent", "live", Decimal("2.50"), Decimal("32.50")),
    ("ct-CT1-20260316/L2/end_contract", "2026-03-29", "recorded", "live", Decimal("0.00"), Decimal("32.50"))]
LEDGER_ROWS = ("select action_key, executed_on::varchar, status, dispatch_mode, fee, amount_demanded "
               "from action_ledger order by executed_on, action_key")
TERMINATIONS = "select action_key, mode, effective_on::varchar, credit_note_amount from contract_terminations"


def _ended_live(tmp_path):
    doc = policy(ESCALATION)
    doc["policies"][0]["versions"].append({"effective_from": "2027-01-01", "scope": "contract", "thresholds": {},
                                           "levels": V2_LEVELS})
    w = World(tmp_path, doc)
    w.customer().contract(billed_until="2026-03-31")
    w.invoice("I1", "30.00", "2026-03-01", "2026-03-15", period_start="2026-03-01", period_end="2026-03-31")
    s = w.run("2026-03-16", "2026-03-31", dispatch=True)
    assert query(s, LEDGER_ROWS) == ENDED_LIVE
    assert query(s, TERMINATIONS) == [("ct-CT1-20260316/L2/end_contract", "immediately", "2026-03-29",
                                       Decimal("1.94"))]
    return s


def test_a_backfill_keeps_an_export_a_live_day_recorded(tmp_path):
    s = _ended_live(tmp_path)
    result = _backfill(s, "2026-03-16", "2026-03-31", catch_up="none")  # the same version, the same inputs
    assert result.differences == {}
    assert query(s, LEDGER_ROWS) == ENDED_LIVE
    assert query(s, TERMINATIONS) == [("ct-CT1-20260316/L2/end_contract", "immediately", "2026-03-29",
                                       Decimal("1.94"))]


def test_a_backfill_that_would_not_have_ended_the_contract_reports_it_and_keeps_the_export(tmp_path):
    s = _ended_live(tmp_path)
    result = _backfill(s, "2026-03-16", "2026-03-31", catch_up="none", version="v2")  # no end_contract in v2
    assert result.differences == {"changed": 1, "would_not_have_happened": 2}
    assert query(s, "select kind, action_key, before_status, before_executed_on::varchar, after_executed_on::varchar, "
                    "before_fee, after_fee from backfill_differences order by action_key") == [
        ("changed", "ct-CT1-20260316/L1/reminder", "sent", "2026-03-22", "2026-03-18", Decimal("0.00"),
         Decimal("2.50")),
        ("would_not_have_happened", "ct-CT1-20260316/L1/webhook", "sent", "2026-03-22", None, Decimal("2.50"), None),
        ("would_not_have_happened", "ct-CT1-20260316/L2/end_contract", "recorded", "2026-03-29", None,
         Decimal("0.00"), None)]
    # what was sent and exported stays the record: the contract was ended on 29 March
    assert query(s, LEDGER_ROWS) == ENDED_LIVE
    assert query(s, TERMINATIONS) == [("ct-CT1-20260316/L2/end_contract", "immediately", "2026-03-29",
                                       Decimal("1.94"))]


@pytest.mark.parametrize("fails", ["before_adopting", "after_adopting"])
def test_a_backfill_stopped_before_its_run_is_recorded_leaves_nothing_and_runs_again(tmp_path, monkeypatch, fails):
    """The differences, the adoption and the run's record are one transaction (review 2026-12-08): a
    backfill stopped in between left its difference rows under an id its retry takes again, and every
    retry of the range then failed on their key; stopped after adopting, the adopted days had no
    catch-up choice on record."""
    from pipeline.engine import backfill as backfill_mod

    s = _world(tmp_path).run("2026-03-16", "2026-03-31", dispatch=True)
    before = query(s, "select * exclude (status_changed_on) from action_ledger order by action_key")
    adopt = backfill_mod._adopt

    def stopped(con, start):
        if fails == "after_adopting":
            adopt(con, start)
        raise KeyboardInterrupt

    monkeypatch.setattr(backfill_mod, "_adopt", stopped)
    with pytest.raises(KeyboardInterrupt):
        _backfill(s, "2026-03-16", "2026-03-31", catch_up="none", version="v2")
    assert query(s, "select count(*) from backfill_differences") == [(0,)]
    assert query(s, "select count(*) from backfill_runs") == [(0,)]
    assert query(s, "select * exclude (status_changed_on) from action_ledger order by action_key") == before
    monkeypatch.setattr(backfill_mod, "_adopt", adopt)
    result = _backfill(s, "2026-03-16", "2026-03-31", catch_up="none", version="v2")
    assert (result.backfill_id, result.differences) == ("bf-2026-03-16-2026-03-31-1",
                                                        {"changed": 1, "would_not_have_happened": 1})
    assert query(s, "select backfill_id, catch_up, differences from backfill_runs") == [
        ("bf-2026-03-16-2026-03-31-1", "none", 2)]


@pytest.mark.parametrize("catch_up", ["none", "highest"])
def test_a_backfill_keeps_the_delay_of_a_manual_reminder_a_person_confirmed(tmp_path, catch_up):
    """L1 by hand on 24 May, confirmed on 29 May: L2 (previous level + 7) is due on 5 June (SPEC 4
    rule 3). A backfill of the days up to 3 June with nothing changed reports no difference, and the live
    days after it send L2 on 5 June. Before (review 2026-12-08) the backfill's L1 was one nobody had
    received, so it timed L2 on 31 May ("would have happened"), recorded it as done, and the live days
    never sent it (catch-up none) or sent it on 4 June (highest)."""
    from world import confirmed_manual_world

    w, s = confirmed_manual_world(tmp_path)
    w.run("2026-05-29", "2026-06-03", dispatch=True)
    result = _backfill(s, "2026-05-11", "2026-06-03", catch_up=catch_up)
    assert result.differences == {}
    assert query(s, "select count(*) from backfill_differences") == [(0,)]
    w.run("2026-06-04", "2026-06-20", dispatch=True)
    assert query(s, "select action_key, status, executed_on::varchar, confirmed_on::varchar from action_ledger "
                    "order by 1") == [
        ("ct-CT1-20260511/L1/reminder", "sent", "2026-05-24", "2026-05-29"),
        ("ct-CT1-20260511/L2/reminder", "sent", "2026-06-05", None)]
