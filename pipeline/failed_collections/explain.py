"""`dunning explain` for a collection case: its state read from the collection models.

`pipeline.explain` runs the day's models and hands a collection case over here,
because its facts live in `col_*` tables rather than the dunning intermediates.
The result is the same `Explanation`, so the command prints it the usual way:
the money still open stands in the overdue line (a collection case has no
threshold), the steps stand in the levels.
"""

from __future__ import annotations

from datetime import date, timedelta

from pipeline.explain import Explanation, ExplainError, LevelStep, NextAction, _money, _rows


def _retry_date(step: dict, due_from: date) -> date:
    if step["retry_when"] == "after_days":
        return due_from + timedelta(days=step["retry_days"])
    first = (due_from.replace(day=1) + timedelta(days=32)).replace(day=1)
    return first + timedelta(days=step["retry_days"] if step["retry_when"] == "next_month_plus_days" else 0)


def explain_collection(con, e: Explanation, as_of: date) -> Explanation:
    """Fill `e` (register facts and ledger history before `as_of` already in) from the day's models."""
    closing = con.execute("select close_reason from col_case_closures where case_id = ?", [e.case_id]).fetchall()
    if closing:  # decided before the day's steps
        e.closed_on, e.close_reason = as_of, closing[0][0]
        return e
    active = _rows(con, "select * from col_active_cases where case_id = ?", [e.case_id])
    if not active:
        raise ExplainError(f"the models do not show case {e.case_id} open on {as_of} (inputs changed since it ran?)")
    a = active[0]
    invoice = _rows(con, "select invoice_number, due_date from stg_invoices where invoice_id = ?", [a["invoice_id"]])
    e.followed_invoice_id = a["invoice_id"]
    e.followed_invoice_number = invoice[0]["invoice_number"] if invoice else f"(none: payment {a['payment_id']})"
    e.followed_due_date = invoice[0]["due_date"] if invoice else None
    e.days_overdue = a["days_overdue"] or 0
    e.overdue_amount = e.balance = _money(a["outstanding"])
    e.threshold = _money(0)
    e.dunning_disabled = False
    today = _rows(con, """select p.level_no, p.level_name, p.action, coalesce(l.status, 'not run') as status,
                                 p.scheduled_on, p.executed_on, p.level_due_date, p.fees_total
                          from planned_collection_actions p left join action_ledger l using (action_key)
                          where p.case_id = ? order by p.level_no, p.action_key""", [e.case_id])
    e.history += [LevelStep(**{k: t[k] for k in LevelStep.__dataclass_fields__}) for t in today]
    e.fees_total = _money(max((t["fees_total"] for t in today), default=a["fees_total"]))
    steps = {s["step_no"]: s for s in _rows(
        con, "select * from policy_collection_steps where policy_version = ? and failure_type = ?",
        [a["policy_version"], a["failure_type"]])}
    ran_today = max((t["level_no"] for t in today), default=None)
    last = ran_today or a["last_step_no"]
    nxt = steps.get(last + 1)
    if nxt is None:
        return e
    if ran_today is None:
        due_from = a["next_due_from"]
    else:
        wait = steps[ran_today]
        due_from = {"grace": as_of + timedelta(days=wait["grace_days"]), "at_once": as_of,
                    "retry_result": as_of + timedelta(days=wait["result_days"]) if wait["result_days"] else None,
                    }.get(wait["wait"])
    held = [] if due_from else ["the result of the retry: a failed collection moves on, a payment closes the case"]
    if a["held"]:
        held.append("a suspension, an invoice's pause flag or dunning_disabled")
    scheduled = (_retry_date(nxt, due_from) if nxt["step_type"] == "retry" else due_from) if due_from else None
    runs_on = max(scheduled, as_of + timedelta(days=1)) if scheduled and not a["held"] else None
    e.next_action = NextAction(nxt["step_no"], nxt["step_name"], scheduled or as_of, runs_on, held)
    return e
