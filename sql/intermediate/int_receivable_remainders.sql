-- Every invoice after its own invoice-bound payments on $as_of, keeping only the rows that matter
-- downstream: a receivable with something still open, or an invoice paid beyond what it owes that
-- day, the excess becoming contract credit. What an invoice owes is its amount once issued and until
-- voided (a credit note owes a negative amount), else nothing; so one pass over the invoices and
-- their payments yields the open receivables and all credit except payments without an invoice
-- (int_contract_credits): an overpaid receivable, a credit note (its amount and any payment on it),
-- payments on an invoice not issued yet, voided or of zero amount. Invoices paid exactly by their own
-- payments are the vast majority and drop out here, which keeps the allocation small.
with invoices as (
    select invoice_id, invoice_number, contract_id, customer_id, currency, invoice_date,
           due_date, scheduled_payment_on, amount, dunning_paused,
           case when invoice_counts_on($as_of, invoice_date, voided_on) then amount else 0 end as owed
    from stg_invoices
),

-- the payments that count that day (payment_counts_on). Every bound payment's invoice is a loaded
-- invoice of the same contract (ingestion quarantines a payment naming an unknown invoice or another
-- contract's), so the credit it makes is its invoice's contract's
effective_bound_payments as (
    select invoice_id, sum(amount) as bound_paid
    from stg_payments
    where invoice_id is not null
      and payment_counts_on($as_of, booked_on, status, reversed_on)
    group by invoice_id
),

-- payments are positive (ingestion), so bound_paid >= 0
settled as (
    select i.*,
           coalesce(p.bound_paid, 0) as bound_paid,
           greatest(i.owed - coalesce(p.bound_paid, 0), 0) as remaining,
           greatest(coalesce(p.bound_paid, 0) - i.owed, 0) as overpaid
    from invoices i
    left join effective_bound_payments p using (invoice_id)
),

final as (
    select * from settled where remaining > 0 or overpaid > 0
)

select * from final
