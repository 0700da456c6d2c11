"""`dunning explain` for a collection case: its state read from the collection models.

`pipeline.reporting.explain` runs the day's models and `collections/collection_case_outlook`, then hands
a collection case over here, because its facts live in `col_*` tables rather than the
dunning intermediates. The result is the same `Explanation` (pipeline.reporting.explain_types), so
the command prints it the usual way: the money still open stands in the overdue line (a
collection case has no threshold), the steps stand in the levels. Which step comes next,
its day and what holds it are the model's (`collection_case_outlook`), the fees the ledger's.
"""

from __future__ import annotations

from datetime import date

from pipeline.reporting.explain_types import (Explanation, ExplainError, NextAction, fees_so_far, money, planned_steps,
                                              rows)


def explain_collection(con, e: Explanation, as_of: date) -> Explanation:
    """Fill `e` (register facts and the ledger's history up to `as_of` already in) from the day's models."""
    closing = con.execute("select close_reason from int_col_case_closures where case_id = ?", [e.case_id]).fetchall()
    if closing:  # decided before the day's steps
        e.closed_on, e.close_reason = as_of, closing[0][0]
        return e
    active = rows(con, "select * from int_col_active_cases where case_id = ?", [e.case_id])
    outlook = rows(con, "select * from collection_case_outlook where case_id = ?", [e.case_id])
    if not active or not outlook:
        raise ExplainError(f"the models do not show case {e.case_id} open on {as_of} (inputs changed since it ran?)")
    a, o = active[0], outlook[0]
    invoice = rows(con, "select invoice_number, due_date from stg_invoices where invoice_id = ?", [a["invoice_id"]])
    e.followed_invoice_id = a["invoice_id"]
    e.followed_invoice_number = invoice[0]["invoice_number"] if invoice else f"(none: payment {a['payment_id']})"
    e.followed_due_date = invoice[0]["due_date"] if invoice else None
    e.days_overdue = a["days_overdue"] or 0
    e.overdue_amount = e.balance = money(a["outstanding"])
    e.threshold = money(0)
    e.dunning_disabled = False
    e.history += planned_steps(con, e.case_id, as_of, "planned_collection_actions")
    e.fees_total = fees_so_far(con, e.case_id, as_of, "planned_collection_actions")
    e.threshold_reached = not o["nothing_outstanding"]  # a collection case has no threshold
    if o["next_step_no"] is None:
        return e
    held = ["the result of the retry: a failed collection moves on, a payment closes the case"] \
        if o["awaiting_retry_result"] else []
    if o["held"]:
        held.append("a suspension, an invoice's pause flag or dunning_disabled")
    if o["nothing_outstanding"]:
        held.append("no money of the case is open")
    e.next_action = NextAction(o["next_step_no"], o["next_step_name"], o["scheduled_on"] or as_of, o["runs_on"], held)
    return e
