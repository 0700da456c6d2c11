"""Any past day recomputed from today's files sees only what was known that day (SPEC 3, 9)."""

from __future__ import annotations

from world import World, policy, query

LEVELS = [("due_date", 5, 7), ("previous_level", 0, 7, {"EUR": "5.00"})]
DAY = "2026-03-25"


def _known_on_the_day(tmp_path) -> World:
    """The files as they looked on DAY."""
    w = World(tmp_path, policy(LEVELS))
    w.customer().contract()
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-15")
    w.invoice("I2", "50.00", "2026-03-05", "2026-03-19")
    w.payment("P1", "30.00", "2026-03-10", status="settled")
    return w


def _files_of_today(tmp_path) -> World:
    """The same history with everything that happened after DAY appended or updated."""
    w = World(tmp_path, policy(LEVELS))
    # a later version of the policy (effective after DAY) must not apply on DAY
    w.policy_doc["policies"][0]["versions"].append(
        {"effective_from": "2026-04-01", "scope": "contract", "levels": [
            {"name": "Later", "timing": {"after": "due_date", "days": 1}, "fee": {"EUR": "99.00"}}]})
    w.customer().contract()
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-15")
    w.invoice("I2", "50.00", "2026-03-05", "2026-03-19", voided_on="2026-03-28")     # voided later
    w.invoice("I3", "70.00", "2026-03-26", "2026-04-09")                             # issued later
    w.payment("P1", "30.00", "2026-03-10", status="reversed", reversed_on="2026-03-27")  # reversed later
    w.payment("P2", "120.00", "2026-03-30")                                          # booked later
    w.suspension("contract", "CT1", "2026-03-26", "2026-04-30")                       # suspended later
    return w


def test_a_past_day_from_todays_files_equals_the_day_as_it_was(tmp_path):
    then = _known_on_the_day(tmp_path / "then").run("2026-03-16", DAY)
    now = _files_of_today(tmp_path / "now").run("2026-03-16", DAY)
    for sql in ("select * exclude (policy_version) from action_ledger order by action_key",
                "select * exclude (policy_version) from case_register order by case_id",
                "select * from contract_balances order by as_of, contract_id",
                "select * from open_receivables order by invoice_id"):
        assert query(now, sql) == query(then, sql) != []
