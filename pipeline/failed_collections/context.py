"""What a collection document's template sees beyond a dunning document's context.

`build_contexts` (pipeline.delivery.documents) calls `collection_parts` once for the day's
collection rows; each context then gets `collection` (below) and, for its
`invoice`, the invoice the failed payment was for, even when it is not overdue
(a collection usually fails around the due date). Everything comes from the
ledger row (its `details` JSON, written by planned_collection_actions.sql), the
staged payment and the organization, so a re-render gives the same document.

`collection`:
    case_key                  the case id, also in the payment link
    failure_type              soft / hard / technical
    reason_code, reason       the bank's code and its meaning (English, from the code list)
    payment                   payment_id, amount, failed_on, mandate_id of the latest failure
    outstanding               failed money still open (= amounts.principal)
    admin_charges             charges of the case so far (= amounts.fees)
    total                     outstanding + admin charges (= amounts.total): the link / transfer amount
    method                    payment_link or transfer (None for a notification without either)
    payment_link              the link with case key and amount filled in, or None
    new_mandate_url           where to sign a new mandate, or None
    pay_by                    the step's own due date (end of its grace period)
    transfer                  account_holder, iban, bic, bank, reference (the case key)
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal


def collection_parts(con, actions: list[dict], organization: dict) -> dict[str, dict]:
    """Per action key of a collection row: {"collection": ..., "invoice": ...}."""
    rows = [a for a in actions if a["scope"] == "collection"]
    if not rows:
        return {}
    details = {a["action_key"]: json.loads(a.get("details") or "{}", parse_float=Decimal) for a in rows}
    payment_ids = sorted({d.get("payment_id") for d in details.values() if d.get("payment_id")})
    cur = con.execute("select payment_id, amount from stg_payments where payment_id in (select unnest(?))",
                      [payment_ids])
    amounts = dict(cur.fetchall())
    invoice_ids = sorted({a["followed_invoice_id"] for a in rows if a["followed_invoice_id"]})
    cur = con.execute(
        """select i.invoice_id, i.invoice_number, i.invoice_date, i.due_date, i.amount,
                  coalesce(o.open_amount, 0) as open_amount, coalesce(o.days_overdue, 0) as days_overdue
           from stg_invoices i left join open_receivables o using (invoice_id)
           where i.invoice_id in (select unnest(?))""",
        [invoice_ids])
    names = [d[0] for d in cur.description]
    invoices = {r[0]: dict(zip(names, r)) for r in cur.fetchall()}
    out = {}
    for a in rows:
        d = details[a["action_key"]]
        failed_on = date.fromisoformat(d["failed_on"]) if d.get("failed_on") else None
        payment = {"payment_id": d.get("payment_id"), "amount": amounts.get(d.get("payment_id"), a["principal"]),
                   "failed_on": failed_on, "mandate_id": d.get("mandate_id")}
        invoice = invoices.get(a["followed_invoice_id"]) or {
            # a failure bound to no invoice: the payment stands in for it (number, amount)
            "invoice_id": None, "invoice_number": payment["payment_id"], "invoice_date": failed_on,
            "due_date": failed_on, "amount": payment["amount"], "open_amount": a["principal"], "days_overdue": 0}
        out[a["action_key"]] = {
            "invoice": invoice,
            "collection": {
                "case_key": a["case_id"],
                "failure_type": d.get("failure_type"),
                "reason_code": d.get("reason_code"),
                "reason": d.get("reason"),
                "payment": payment,
                "outstanding": a["principal"],
                "admin_charges": a["fees_total"],
                "total": a["amount_demanded"],
                "method": d.get("method"),
                "payment_link": d.get("payment_link"),
                "new_mandate_url": d.get("new_mandate_url"),
                "pay_by": a["level_due_date"],
                "transfer": {"account_holder": organization["name"], "iban": organization["iban"],
                             "bic": organization["bic"], "bank": organization["bank"], "reference": a["case_id"]},
            },
        }
    return out
