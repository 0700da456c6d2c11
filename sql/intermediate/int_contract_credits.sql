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

-- the invoices that are no receivable on $as_of: not issued yet, voided, credit notes. Few next to
-- the receivables, so looking a payment's invoice up among them is far cheaper than among the
-- receivables (at 1M contracts 0.8 s against 1.2-1.6 s); every payment's invoice is a loaded
-- invoice (ingestion quarantines a payment naming an unknown one, `unknown_invoice`)
no_receivable_ids as (
    select invoice_id
    from stg_invoices
    where not is_receivable_on($as_of, invoice_date, voided_on, amount)
),

unbound_payments as (
    select contract_id, amount as credit
    from effective_payments
    where invoice_id is null
    union all
    select p.contract_id, p.amount as credit
    from effective_payments p
    semi join no_receivable_ids r on r.invoice_id = p.invoice_id
),

overpayments as (
    select contract_id, overpaid as credit
    from int_receivable_remainders
    where overpaid > 0
),

credit_notes as (
    select contract_id, -amount as credit
    from stg_invoices
    where invoice_counts_on($as_of, invoice_date, voided_on)
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
