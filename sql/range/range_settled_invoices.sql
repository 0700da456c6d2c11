-- Invoices that no day from $start to $end can tell apart from absent: settled before the
-- range by their own payments and unchanged through it. A range run (backfill, simulation)
-- leaves them and their payments out of its inputs (pipeline/warehouse/range_inputs.py says why each
-- condition is needed); on any day of the range such an invoice is visible, paid exactly,
-- never open, never overpaid, never voided, never a running billing period, and none of its
-- payments fails or is reversed.
with bound_payments as (
    select invoice_id,
           sum(amount) filter (where status = 'settled' and booked_on <= $start) as paid_by_start,
           count(*) filter (where not (status = 'settled' and booked_on <= $start)) as other_payments
    from stg_payments
    where invoice_id is not null
    group by invoice_id
),

final as (
    select i.invoice_id
    from stg_invoices i
    join bound_payments p using (invoice_id)
    where i.amount > 0
      and i.invoice_date <= $start
      and (i.voided_on is null or i.voided_on > $end)
      and (i.period_end is null or i.period_end < $start)
      and p.other_payments = 0
      and p.paid_by_start = i.amount
)

select * from final
