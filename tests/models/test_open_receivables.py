"""The open receivables chain on hand-made invoices and payments: intermediate/int_receivable_remainders,
then int_contract_credits, then int_open_receivables, each run alone on stg_invoices and stg_payments.

Pins down, with exact rows: a payment without an invoice is contract credit that settles the
receivables oldest first (by due date, not by id); a reversed payment counts until its reversal
date and a failed one never; a voided invoice drops out on its void date and a payment bound to
it becomes contract credit; what an invoice owes that day (a credit note a negative amount, an
invoice not issued yet or of zero amount nothing) is what its payments are measured against, and
all it was paid beyond that is contract credit.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from model_rows import input_table, model_db, model_rows

D = date.fromisoformat
INVOICES = {"invoice_id": "varchar", "invoice_number": "varchar", "contract_id": "varchar", "customer_id": "varchar",
            "currency": "varchar", "invoice_date": "date", "due_date": "date", "scheduled_payment_on": "date",
            "amount": "decimal(18,2)", "dunning_paused": "boolean", "voided_on": "date"}
PAYMENTS = {"payment_id": "varchar", "contract_id": "varchar", "invoice_id": "varchar", "amount": "decimal(18,2)",
            "booked_on": "date", "status": "varchar", "reversed_on": "date"}
MODELS = ("intermediate/int_receivable_remainders", "intermediate/int_contract_credits",
          "intermediate/int_open_receivables")


def invoice(invoice_id, contract_id, amount, invoice_date, due_date, voided_on=None):
    return {"invoice_id": invoice_id, "invoice_number": f"N-{invoice_id}", "contract_id": contract_id,
            "customer_id": "CU1", "currency": "EUR", "invoice_date": D(invoice_date), "due_date": D(due_date),
            "scheduled_payment_on": None, "amount": Decimal(amount), "dunning_paused": False,
            "voided_on": None if voided_on is None else D(voided_on)}


def payment(payment_id, contract_id, amount, booked_on, invoice_id=None, status="settled", reversed_on=None):
    return {"payment_id": payment_id, "contract_id": contract_id, "invoice_id": invoice_id,
            "amount": Decimal(amount), "booked_on": D(booked_on), "status": status,
            "reversed_on": None if reversed_on is None else D(reversed_on)}


def chain(invoices, payments, as_of):
    """(remainders, credits, open receivables) on `as_of`."""
    con = model_db()
    try:
        input_table(con, "stg_invoices", INVOICES, invoices)
        input_table(con, "stg_payments", PAYMENTS, payments)
        remainders = model_rows(con, MODELS[0], as_of, ("invoice_id", "bound_paid", "remaining", "overpaid"),
                                "invoice_id")
        credits = model_rows(con, MODELS[1], as_of, ("contract_id", "credit"), "contract_id")
        open_ = model_rows(con, MODELS[2], as_of, ("invoice_id", "contract_id", "open_amount", "is_overdue",
                                                   "days_overdue"), "invoice_id")
        return remainders, credits, open_
    finally:
        con.close()


def test_an_unbound_payment_settles_the_oldest_due_receivable_first():
    invoices = [invoice("I1", "CT1", "80.00", "2026-03-15", "2026-04-10"),  # the lower id, due later
                invoice("I2", "CT1", "100.00", "2026-03-01", "2026-03-10"),
                invoice("I3", "CT2", "30.00", "2026-03-01", "2026-03-10")]  # credit never crosses contracts
    remainders, credits, open_ = chain(invoices, [payment("P1", "CT1", "120.00", "2026-03-20")], D("2026-04-01"))
    assert remainders == [("I1", Decimal("0.00"), Decimal("80.00"), Decimal("0.00")),
                          ("I2", Decimal("0.00"), Decimal("100.00"), Decimal("0.00")),
                          ("I3", Decimal("0.00"), Decimal("30.00"), Decimal("0.00"))]
    assert credits == [("CT1", Decimal("120.00"))]
    assert open_ == [("I1", "CT1", Decimal("60.00"), False, 0),
                     ("I3", "CT2", Decimal("30.00"), True, 22)]


def test_a_reversed_payment_counts_until_its_reversal_date_a_failed_one_never():
    invoices = [invoice("I1", "CT1", "100.00", "2026-03-01", "2026-03-10"),
                invoice("I2", "CT1", "50.00", "2026-03-01", "2026-03-10")]
    payments = [payment("P1", "CT1", "100.00", "2026-03-12", "I1", status="reversed", reversed_on="2026-03-25"),
                payment("P2", "CT1", "50.00", "2026-03-12", "I2", status="failed")]
    before = chain(invoices, payments, D("2026-03-24"))
    assert before == ([("I2", Decimal("0.00"), Decimal("50.00"), Decimal("0.00"))], [],
                      [("I2", "CT1", Decimal("50.00"), True, 14)])
    on_reversal = chain(invoices, payments, D("2026-03-25"))
    assert on_reversal[2] == [("I1", "CT1", Decimal("100.00"), True, 15),
                              ("I2", "CT1", Decimal("50.00"), True, 15)]


def test_a_voided_invoice_drops_out_on_its_void_date_and_its_payment_becomes_credit():
    invoices = [invoice("I1", "CT1", "50.00", "2026-03-01", "2026-03-10", voided_on="2026-03-15"),
                invoice("I2", "CT1", "70.00", "2026-03-05", "2026-03-20")]
    payments = [payment("P1", "CT1", "50.00", "2026-03-08", "I1")]
    before = chain(invoices, payments, D("2026-03-14"))
    assert before == ([("I2", Decimal("0.00"), Decimal("70.00"), Decimal("0.00"))], [],
                      [("I2", "CT1", Decimal("70.00"), False, 0)])
    on_void = chain(invoices, payments, D("2026-03-15"))
    # I1 owes nothing from its void date: all that was paid on it is credit
    assert on_void == ([("I1", Decimal("50.00"), Decimal("0.00"), Decimal("50.00")),
                        ("I2", Decimal("0.00"), Decimal("70.00"), Decimal("0.00"))], [("CT1", Decimal("50.00"))],
                       [("I2", "CT1", Decimal("20.00"), False, 0)])


def test_credit_notes_prepayments_and_payments_on_a_zero_invoice_are_credit_paid_beyond_what_is_owed():
    invoices = [invoice("I1", "CT1", "100.00", "2026-03-01", "2026-03-10"),
                invoice("CN1", "CT1", "-30.00", "2026-03-05", "2026-03-05"),  # a credit note, paid 10 on top
                invoice("I4", "CT1", "20.00", "2026-04-15", "2026-05-01"),  # paid ahead of its issue
                invoice("Z1", "CT1", "0.00", "2026-03-01", "2026-03-10"),
                invoice("Z2", "CT1", "0.00", "2026-03-01", "2026-03-10")]  # nothing owed, nothing paid: no row
    payments = [payment("P2", "CT1", "10.00", "2026-03-06", "CN1"), payment("P3", "CT1", "20.00", "2026-03-25", "I4"),
                payment("P4", "CT1", "5.00", "2026-03-02", "Z1")]
    remainders, credits, open_ = chain(invoices, payments, D("2026-04-01"))
    assert remainders == [("CN1", Decimal("10.00"), Decimal("0.00"), Decimal("40.00")),
                          ("I1", Decimal("0.00"), Decimal("100.00"), Decimal("0.00")),
                          ("I4", Decimal("20.00"), Decimal("0.00"), Decimal("20.00")),
                          ("Z1", Decimal("5.00"), Decimal("0.00"), Decimal("5.00"))]
    assert credits == [("CT1", Decimal("65.00"))]
    assert open_ == [("I1", "CT1", Decimal("35.00"), True, 22)]
    # once issued, I4 owes its 20.00 and its prepayment settles it exactly: it drops out and the credit shrinks
    remainders, credits, open_ = chain(invoices, payments, D("2026-04-15"))
    assert [r[0] for r in remainders] == ["CN1", "I1", "Z1"]
    assert credits == [("CT1", Decimal("45.00"))]
    assert open_ == [("I1", "CT1", Decimal("55.00"), True, 36)]
    con = model_db()
    try:
        input_table(con, "stg_invoices", INVOICES, invoices)
        input_table(con, "stg_payments", PAYMENTS, payments)
        assert model_rows(con, MODELS[0], D("2026-04-01"), ("invoice_id", "amount", "owed"), "invoice_id") == [
            ("CN1", Decimal("-30.00"), Decimal("-30.00")), ("I1", Decimal("100.00"), Decimal("100.00")),
            ("I4", Decimal("20.00"), Decimal("0.00")), ("Z1", Decimal("0.00"), Decimal("0.00"))]
    finally:
        con.close()
