"""A range run leaves out exactly the invoices settled before it (and their payments), and
that changes nothing: each condition of `sql/range/range_settled_invoices.sql` is shown to
matter by an invoice that breaks only that condition and stays in."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from pipeline.engine import run as run_mod
from pipeline.warehouse import work_schemas as schemas
from pipeline.warehouse.range_inputs import narrowed_inputs
from pipeline.engine.simulate import simulate
from world import World, policy, query

START, END = date(2026, 3, 10), date(2026, 3, 20)


def _invoice(w: World, invoice_id: str, *, amount="100.00", invoice_date="2026-02-01", due_date="2026-02-15",
             paid=(("100.00", "2026-03-01"),), **kw) -> None:
    """An invoice of 100.00 issued on 1 February, paid by its own settled payment on 1 March."""
    w.invoice(invoice_id, amount, invoice_date, due_date, **kw)
    for n, (paid_amount, booked_on, *status) in enumerate(paid):
        extra = status[0] if status else {}
        w.payment(f"P-{invoice_id}-{n}", paid_amount, booked_on, invoice_id=invoice_id, **extra)


def test_only_invoices_settled_before_the_range_and_unchanged_through_it_are_left_out(tmp_path):
    w = World(tmp_path, policy([("due_date", 3, 7)]))
    w.customer().contract()
    _invoice(w, "OUT-settled")
    _invoice(w, "OUT-issued-on-first-day", invoice_date="2026-03-10", due_date="2026-03-24")
    _invoice(w, "OUT-voided-after-last-day", voided_on="2026-03-21")
    _invoice(w, "OUT-period-ended-before", period_start="2026-02-09", period_end="2026-03-09")
    _invoice(w, "OUT-paid-on-first-day", paid=(("100.00", "2026-03-10"),))
    _invoice(w, "OUT-paid-in-two", paid=(("60.00", "2026-02-20"), ("40.00", "2026-03-02")))
    _invoice(w, "IN-issued-in-range", invoice_date="2026-03-11", due_date="2026-03-25")
    _invoice(w, "IN-voided-on-last-day", voided_on="2026-03-20")
    _invoice(w, "IN-period-running", period_start="2026-03-10", period_end="2026-04-09")
    _invoice(w, "IN-paid-short", paid=(("99.99", "2026-03-01"),))
    _invoice(w, "IN-overpaid", paid=(("100.01", "2026-03-01"),))
    _invoice(w, "IN-paid-in-range", paid=(("100.00", "2026-03-11"),))
    _invoice(w, "IN-unpaid", paid=())
    _invoice(w, "IN-reversed-before", paid=(("100.00", "2026-03-01"),
                                           ("100.00", "2026-02-20", {"status": "reversed", "reversed_on": "2026-02-25"})))
    _invoice(w, "IN-failed-before", paid=(("100.00", "2026-03-01"),
                                         ("100.00", "2026-02-20", {"status": "failed", "reason_code": "AM04"})))
    _invoice(w, "IN-credit-note", amount="-20.00", paid=())
    w.payment("P-unbound", "15.00", "2026-03-01")
    s = w.write()
    with run_mod.connect(s.database) as con:
        run_mod.load_inputs(con, s)
        schemas.seed(con, "narrow_test", START)
        with narrowed_inputs(con, "narrow_test", START, END) as left_out:
            invoices = [r[0] for r in con.execute("select invoice_id from narrow_test.stg_invoices").fetchall()]
            payments = [r[0] for r in con.execute("select payment_id from narrow_test.stg_payments").fetchall()]
        remaining = con.execute("select count(*) from duckdb_tables() where schema_name = 'narrow_test' "
                                "and table_name in ('stg_invoices', 'stg_payments')").fetchall()[0][0]
    assert sorted(invoices) == ["IN-credit-note", "IN-failed-before", "IN-issued-in-range", "IN-overpaid",
                                "IN-paid-in-range", "IN-paid-short", "IN-period-running", "IN-reversed-before",
                                "IN-unpaid", "IN-voided-on-last-day"]
    assert sorted(payments) == ["P-IN-failed-before-0", "P-IN-failed-before-1", "P-IN-issued-in-range-0",
                                "P-IN-overpaid-0", "P-IN-paid-in-range-0", "P-IN-paid-short-0",
                                "P-IN-period-running-0", "P-IN-reversed-before-0", "P-IN-reversed-before-1",
                                "P-IN-voided-on-last-day-0", "P-unbound"]
    assert left_out == {"invoices_left_out": 6, "payments_left_out": 7}
    assert remaining == 0  # the narrowed tables do not outlive the range


ENDS_AT_ONCE = [
    {"name": "Reminder", "timing": {"after": "due_date", "days": 3}, "fee": {"EUR": "2.50"}},
    {"name": "End contract", "timing": {"after": "previous_level", "days": 5},
     "actions": [{"type": "end_contract", "when": "immediately"}]},
]


def _ending_world(root) -> World:
    """An unpaid February invoice ends the contract in the range; the March invoice, paid before
    the range, is the running period whose unused days are credited."""
    w = World(root, policy(ENDS_AT_ONCE))
    w.customer().contract(billed_until="2026-03-31")
    w.invoice("FEB", "30.00", "2026-02-01", "2026-03-08", period_start="2026-02-01", period_end="2026-02-28")
    w.invoice("MAR", "31.00", "2026-03-01", "2026-03-15", period_start="2026-03-01", period_end="2026-03-31")
    w.payment("P-MAR", "31.00", "2026-03-05", invoice_id="MAR")
    w.invoice("JAN", "30.00", "2026-01-01", "2026-01-15", period_start="2026-01-01", period_end="2026-01-31")
    w.payment("P-JAN", "30.00", "2026-01-10", invoice_id="JAN")  # settled and ended: left out
    return w


TERMINATION = ("select action_key, executed_on::varchar, details from {}action_ledger "
               "where action = 'end_contract' order by action_key")


def test_a_simulation_credits_the_running_period_exactly_as_the_days_run_one_by_one(tmp_path):
    daily = _ending_world(tmp_path / "daily").run("2026-03-10", "2026-03-20")
    s = _ending_world(tmp_path / "sim").write()
    with run_mod.connect(s.database) as con:
        run_mod.load_inputs(con, s)
        simulate(con, s, s.policy_file, START, END, name="same")
    expected = query(daily, TERMINATION.format(""))
    # the case opens on the first day run (10 March), level 1 is due on 11 March (due date + 3),
    # level 2 five days later; 31.00 for 31 days of March, ended on 16 March: 17-31 March credited
    assert [(key, on) for key, on, _ in expected] == [("ct-CT1-20260310/L2/end_contract", "2026-03-16")]
    assert json.loads(expected[0][2], parse_float=Decimal) == {
        "when": "immediately", "effective_on": "2026-03-16", "credit_note_amount": Decimal("15.00"),
        "credit_note_for_invoice_id": "MAR"}
    assert query(s, TERMINATION.format("sim_same.")) == expected
