"""`dunning explain CASE_ID`: why a dunning case is where it is, as of a day.

The answer must be the product's own, so no rule is re-implemented here: the
day's SQL models run as temp tables (`run_daily_models`) and the facts are read
from them. Temp tables live only in this connection and DuckDB allows them on a
read-only connection, so `main` opens the database read-only: explaining never
changes the state. Like any DuckDB reader it cannot open the file while a run
holds it, and a run cannot start during the seconds an explanation takes.

The state shown is the end of the as-of day: its closures, openings and the
levels it executed (the ledger's rows up to that day, which a re-run of the day
keeps where they record a dispatch, and the day's plan where the ledger has not
recorded it), the current level being the highest the ledger counts as done.
What comes next (the next level, its day, what holds it) is the row of
the model `marts/case_outlook`, which applies levels_due's own rules; a collection
case's is `collections/collection_case_outlook` (pipeline.failed_collections.explain).
The fees are the ledger's (`fee_ledger`). This module only phrases the facts.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import duckdb

from pipeline.reporting.explain_types import (Explanation, ExplainError, LevelStep, NextAction, Suspension, fees_so_far,
                                              fmt_money, format_explanation, money, planned_steps, recorded_steps, rows)
from pipeline.failed_collections.explain import explain_collection
from pipeline.warehouse.sql_runner import run_daily_models, run_model
from pipeline.warehouse.state import create_history_macros

__all__ = ["Explanation", "ExplainError", "LevelStep", "NextAction", "Suspension", "explain_case",
           "format_explanation", "main", "run_outlook"]

def run_outlook(con, as_of: date, model: str) -> None:
    """The day's models, then the outlook model (`marts/case_outlook` or `collections/collection_case_outlook`)
    unless the runner already made it among the day's models."""
    made = run_daily_models(con, as_of)
    if model.rsplit("/", 1)[-1] not in made:
        run_model(con, model, {"as_of": as_of})


def explain_case(con, case_id: str, as_of: date | None = None) -> Explanation:
    reg = rows(con, "select * from case_register where case_id = ?", [case_id])
    if not reg:
        raise ExplainError(f"no dunning case {case_id!r} in the case register")
    r = reg[0]
    last_run = con.execute("select max(as_of) from run_log").fetchone()[0]
    as_of = as_of or last_run
    if as_of is None:
        raise ExplainError("the pipeline has not run yet; give --as-of")
    if last_run is not None and as_of > last_run:
        raise ExplainError(f"the pipeline has run up to {last_run}; {as_of} has no recorded state yet")
    if as_of < r["opened_on"]:
        raise ExplainError(f"case {case_id} opened on {r['opened_on']}; it did not exist on {as_of}")
    pv = rows(con, "select scope, grace_days, in_file from policy_versions where policy_version = ?",
              [r["policy_version"]])
    e = Explanation(case_id, as_of, r["scope"], r["target_id"], r["contract_id"], r["customer_id"], r["currency"],
                    r["policy_id"], r["policy_version"], *((pv[0]["scope"], pv[0]["grace_days"]) if pv else (None, None)),
                    r["opened_on"])
    e.version_in_file = bool(pv[0]["in_file"]) if pv else False
    e.history = recorded_steps(con, case_id, as_of)
    # closed by the end of the day as the runs recorded it (on the day: its closures, or the move of a
    # move_to_policy, decided when the day's actions are applied): nothing to compute
    if r["closed_on"] is not None and r["closed_on"] <= as_of:
        e.closed_on, e.close_reason = r["closed_on"], r["close_reason"]
        return e
    if e.scope == "collection":  # a failed collection: its facts are in the col_* models
        run_outlook(con, as_of, "collections/collection_case_outlook")
        return explain_collection(con, e, as_of)
    run_outlook(con, as_of, "marts/case_outlook")
    closing = con.execute("select close_reason from int_case_closures where case_id = ?", [case_id]).fetchall()
    if closing:   # decided before the day's actions
        e.closed_on, e.close_reason = as_of, closing[0][0]
        return e
    active = rows(con, """select a.*, t.followed_invoice_number, t.open_amount, b.balance as contract_balance
                          from int_active_cases a
                          join int_dunning_targets t on t.scope = a.scope and t.target_id = a.target_id
                          left join int_contract_balances b on b.contract_id = a.contract_id
                          where a.case_id = ?""", [case_id])
    outlook = rows(con, "select * from case_outlook where case_id = ?", [case_id])
    if not active or not outlook:
        raise ExplainError(f"the models do not show case {case_id} open on {as_of} (inputs changed since it ran?)")
    a, o = active[0], outlook[0]
    e.followed_invoice_id, e.followed_invoice_number = a["followed_invoice_id"], a["followed_invoice_number"]
    e.followed_due_date, e.days_overdue = a["followed_due_date"], a["days_overdue"]
    e.overdue_amount, e.threshold = money(a["overdue_amount"]), money(a["threshold"])
    e.balance = money(a["contract_balance"] if e.scope == "contract" else a["open_amount"])
    e.dunning_disabled = bool(o["dunning_disabled"])
    e.suspensions = [Suspension(**s) for s in o["suspensions_in_force"]]
    if o["held_by_pause_flag"]:
        e.suspensions.append(Suspension("pause flag", e.followed_invoice_id, None, None))
    e.history += planned_steps(con, case_id, as_of, "planned_actions")
    e.fees_total = fees_so_far(con, case_id, as_of, "planned_actions")
    e.threshold_reached = not o["nothing_overdue"] and not o["below_threshold"]
    if o["demanded_amount"] is not None and money(o["demanded_amount"]) != e.overdue_amount:
        e.demanded_amount = money(o["demanded_amount"])
    e.awaiting_confirmation = o["awaiting_confirmation_key"]
    e.next_action = _next_action(e, o)
    return e


def _next_action(e: Explanation, o: dict) -> NextAction | None:
    """The case_outlook row in words: the next level, its days, and what holds it."""
    if o["next_level_no"] is None:
        return None
    held = []
    for s in o["holding_suspensions"]:
        what = f"{s['scope']} suspension" + ("" if s["scope"] == "global" else f" of {s['target_id']}")
        held.append(f"{what} until {s['to_date']}" if s["to_date"] else f"{what} (no end date)")
    if o["held_by_pause_flag"]:
        held.append("pause flag on the followed invoice")
    if o["held_by_failed_collection"]:
        held.append("a failed collection being worked on for the contract")
    if o["held_by_quarantine"]:
        held.append("an input row naming it is in the quarantine (see table quarantine): fix the row and "
                    "ingest again")
    if o["in_grace_until"]:
        held.append(f"the grace period of the followed invoice, until {o['in_grace_until']}")
    if o["awaiting_confirmation_key"]:
        held.append(f"confirmation of the manual reminder {o['awaiting_confirmation_key']} "
                    "(later levels move by the days until it is confirmed)")
    if o["nothing_overdue"]:
        held.append("nothing is overdue")
    elif o["below_threshold"]:
        held.append(f"overdue amount {fmt_money(money(o['demanded_amount']), e.currency)} is below the threshold "
                    f"{fmt_money(money(o['threshold']), e.currency)}")
    if o["dunning_disabled"]:
        held.append(f"dunning is disabled for customer {e.customer_id}")
    return NextAction(o["next_level_no"], o["next_level_name"], o["scheduled_on"], o["runs_on"], held)


def main(database: Path, case_id: str, as_of: date | None) -> int:
    try:
        con = duckdb.connect(str(database), read_only=True)
    except duckdb.Error as exc:
        print(f"cannot open {database} read-only: {exc}", file=sys.stderr)
        return 1
    try:
        create_history_macros(con, temporary=True)  # this release's rules, whatever release ran last
        print(format_explanation(explain_case(con, case_id, as_of)))
        return 0
    except ExplainError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except duckdb.Error as exc:   # not a dunning database, or one from an older version
        print(f"cannot explain from {database}: {exc}", file=sys.stderr)
        return 1
    finally:
        con.close()
