"""A range run reads only the billing rows that can matter to its days.

A backfill or a simulation runs the daily step once per day, and every day's
allocation reads all invoices and payments. Most invoices of a mature book were
paid exactly by their own payments long before the range; at 100k contracts
that is 55% of the invoices and 64% of the payments. Reading them 90 times
made a 90-day simulation take three minutes.

`sql/range/range_settled_invoices.sql` lists the invoices that no day of the
range can tell apart from absent. For every day d of the range such an invoice:

* is visible (issued on or before the first day, not voided before the last),
  so the payments bound to it are never contract credit (`int_receivable_remainders`);
* is paid exactly: every payment bound to it is settled and booked on or before
  the first day, and they sum to its amount. On d it has nothing remaining and
  nothing overpaid, so `int_receivable_remainders` drops it, and no open
  receivable, balance, target, case or level can come from it;
* is never voided on d (`int_case_closures` closes invoice cases of voided ones);
* is not a running billing period on d (`int_action_details` credits the unused
  days of the running period when a contract ends at once);
* has no failed or reversed payment (the failed-collection models).

Leaving it and its payments out therefore changes no model's result on any
day of the range, while every model still runs unchanged: the narrowed tables
take the names `stg_invoices` and `stg_payments` in the work schema, ahead of
`main` on the search path (`pipeline.warehouse.work_schemas`). `tests/integration/test_range_inputs.py`
checks each condition; the replay-equivalence test checks the whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from pipeline.warehouse import work_schemas as schemas
from pipeline.warehouse.sql_runner import run_model

MODEL = "range/range_settled_invoices"
NARROWED = ("stg_invoices", "stg_payments")


@contextmanager
def narrowed_inputs(con, schema: str, start: date, end: date) -> Iterator[dict[str, int]]:
    """Inside the block, `schema` holds the invoices and payments that can matter to `start`..`end`.

    Yields how many invoices and payments were left out. The narrowed tables are
    dropped afterwards, so nothing reading the schema later mistakes them for the inputs.
    """
    schema = schemas.checked(schema)
    run_model(con, MODEL, {"start": start, "end": end})
    try:
        # in source order, as ingestion wrote the originals
        con.execute(f"""create or replace table {schema}.stg_invoices as
                        select * from main.stg_invoices i
                        anti join range_settled_invoices s on s.invoice_id = i.invoice_id
                        order by _source_file, _source_row""")
        con.execute(f"""create or replace table {schema}.stg_payments as
                        select * from main.stg_payments p
                        anti join range_settled_invoices s on s.invoice_id = p.invoice_id
                        order by _source_file, _source_row""")
        left_out = con.execute(
            f"""select (select count(*) from main.stg_invoices) - (select count(*) from {schema}.stg_invoices),
                       (select count(*) from main.stg_payments) - (select count(*) from {schema}.stg_payments)"""
        ).fetchall()[0]
        yield {"invoices_left_out": left_out[0], "payments_left_out": left_out[1]}
    finally:
        for table in NARROWED:  # fixed names
            con.execute(f"drop table if exists {schema}.{table}")
        con.execute("drop table if exists range_settled_invoices")
