-- Open receivables on $as_of: what is left of each invoice after its own payments and
-- the contract's credit, applied oldest first (due date, then invoice date, then id),
-- including invoices not yet due.
with remainders as (
    select r.*, coalesce(c.credit, 0) as contract_credit
    from int_receivable_remainders r
    left join int_contract_credits c using (contract_id)
    where r.remaining > 0
),

-- the credit settles the oldest receivables first: a running sum per contract of what remains
allocated as (
    select *,
           sum(remaining) over (
               partition by contract_id
               order by due_date, invoice_date, invoice_id
               rows between unbounded preceding and current row
           ) as cumulative_remaining
    from remainders
    where contract_credit > 0
),

-- a contract without credit to apply settles nothing: each receivable stays open for all that
-- remains of it, without the running sum (the sort is the costly part of this model)
open_parts as (
    select * exclude (cumulative_remaining),
           least(remaining, cumulative_remaining - contract_credit) as open_amount
    from allocated
    where cumulative_remaining > contract_credit
    union all
    select *, remaining as open_amount
    from remainders
    where contract_credit <= 0
),

final as (
    select cast($as_of as date) as as_of,
           invoice_id, invoice_number, contract_id, customer_id, currency,
           invoice_date, due_date, scheduled_payment_on, dunning_paused,
           amount,
           cast(open_amount as decimal(18, 2)) as open_amount,
           due_date < $as_of as is_overdue,
           days_overdue($as_of, due_date) as days_overdue
    from open_parts
)

select * from final
