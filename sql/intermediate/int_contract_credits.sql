-- Credit per contract on $as_of that settles open receivables oldest first:
-- payments without an invoice (or bound to an invoice that is not a visible
-- receivable: voided, a credit note, not yet issued), overpayments of bound
-- invoices, and credit notes. Credit never crosses contracts.
with effective_payments as (
    select contract_id, invoice_id, amount
    from stg_payments
    where booked_on <= $as_of
      and (status = 'settled' or (status = 'reversed' and reversed_on > $as_of))
),

visible_receivable_ids as (
    select invoice_id
    from stg_invoices
    where invoice_date <= $as_of
      and (voided_on is null or voided_on > $as_of)
      and amount > 0
),

unbound_payments as (
    select p.contract_id, p.amount as credit
    from effective_payments p
    anti join visible_receivable_ids r on r.invoice_id = p.invoice_id
),

overpayments as (
    select contract_id, overpaid as credit
    from int_receivable_remainders
    where overpaid > 0
),

credit_notes as (
    select contract_id, -amount as credit
    from stg_invoices
    where invoice_date <= $as_of
      and (voided_on is null or voided_on > $as_of)
      and amount < 0
),

final as (
    select contract_id, cast(sum(credit) as decimal(18, 2)) as credit
    from (
        select * from unbound_payments
        union all select * from overpayments
        union all select * from credit_notes
    )
    group by contract_id
)

select * from final
