-- Receivables visible on $as_of after their own invoice-bound payments, keeping only
-- the rows that matter downstream: something is still open, or the invoice was overpaid
-- (the excess becomes contract credit). Invoices paid exactly by their own payments
-- are the vast majority and drop out here, which keeps the allocation small.
with visible_invoices as (
    select invoice_id, invoice_number, contract_id, customer_id, currency, invoice_date,
           due_date, scheduled_payment_on, amount, dunning_paused
    from stg_invoices
    where is_receivable_on($as_of, invoice_date, voided_on, amount)
),

-- a reversed payment counts until its reversal date; failed payments never count
effective_bound_payments as (
    select invoice_id, sum(amount) as bound_paid
    from stg_payments
    where invoice_id is not null
      and booked_on <= $as_of
      and (status = 'settled' or (status = 'reversed' and reversed_on > $as_of))
    group by invoice_id
),

settled as (
    select i.*,
           coalesce(p.bound_paid, 0) as bound_paid,
           i.amount - least(i.amount, coalesce(p.bound_paid, 0)) as remaining,
           greatest(coalesce(p.bound_paid, 0) - i.amount, 0) as overpaid
    from visible_invoices i
    left join effective_bound_payments p using (invoice_id)
),

final as (
    select * from settled where remaining > 0 or overpaid > 0
)

select * from final
