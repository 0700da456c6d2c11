-- Credit per contract on $as_of that settles open receivables oldest first: payments without an
-- invoice, and what invoices were paid beyond what they owe (int_receivable_remainders: overpaid
-- receivables, credit notes, payments bound to an invoice that is no receivable that day). Credit
-- never crosses contracts.
with unbound_payments as (
    select contract_id, amount as credit
    from stg_payments
    where invoice_id is null
      and payment_counts_on($as_of, booked_on, status, reversed_on)
),

overpayments as (
    select contract_id, overpaid as credit
    from int_receivable_remainders
    where overpaid > 0
),

final as (
    select contract_id, cast(sum(credit) as decimal(18, 2)) as credit
    from (
        select * from unbound_payments
        union all select * from overpayments
    )
    group by contract_id
)

select * from final
