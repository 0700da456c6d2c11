-- One row per contract with anything open or any unapplied credit on $as_of:
-- the contract's balance and the oldest open receivable, which a contract-scope
-- case follows.
with receivable_totals as (
    select contract_id,
           sum(open_amount) as open_amount,
           sum(open_amount) filter (where is_overdue) as overdue_amount,
           count(*) as open_receivables,
           count(*) filter (where is_overdue) as overdue_receivables,
           arg_min(invoice_id, (due_date, invoice_date, invoice_id)) as oldest_invoice_id,
           -- the oldest is the first by due date: its due date is the earliest (required, never null)
           min(due_date) as oldest_due_date
    from int_open_receivables
    group by contract_id
),

remainder_totals as (
    select contract_id, sum(remaining) as remaining
    from int_receivable_remainders
    group by contract_id
),

unapplied_credits as (
    select c.contract_id, c.credit - coalesce(t.remaining, 0) as unapplied_credit
    from int_contract_credits c
    left join remainder_totals t using (contract_id)
    where c.credit > coalesce(t.remaining, 0)
),

final as (
    select cast($as_of as date) as as_of,
           k.contract_id, k.customer_id, k.currency,
           cast(coalesce(t.open_amount, 0) as decimal(18, 2)) as open_amount,
           cast(coalesce(t.overdue_amount, 0) as decimal(18, 2)) as overdue_amount,
           cast(coalesce(u.unapplied_credit, 0) as decimal(18, 2)) as unapplied_credit,
           cast(coalesce(t.open_amount, 0) - coalesce(u.unapplied_credit, 0) as decimal(18, 2)) as balance,
           coalesce(t.open_receivables, 0) as open_receivables,
           coalesce(t.overdue_receivables, 0) as overdue_receivables,
           t.oldest_invoice_id,
           t.oldest_due_date,
           days_overdue($as_of, t.oldest_due_date) as oldest_days_overdue
    from stg_contracts k
    left join receivable_totals t using (contract_id)
    left join unapplied_credits u using (contract_id)
    where t.contract_id is not null or u.contract_id is not null
)

select * from final
