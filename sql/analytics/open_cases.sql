-- Today's open cases, one row each, with everything an analyst asks first: who (the customer's
-- name), which contract, the level reached (the `cases` view) and what is owed on the latest day
-- run. Owed: the open amount of the open receivables the case covers (case_covers: its contract,
-- its invoice, the customer's receivables in its currency, or for a failed collection the invoice
-- its ledger follows) as the balances count them that day (open_receivables: after payments and
-- credits, oldest first), and of that the part past due. Fees are what the levels charged
-- (fees_total, demanded in the documents); they are not receivables.
with latest as (
    select max(as_of) as as_of from run_log
),

open_today as (
    select * from cases where is_open
),

followed as (
    select case_id, arg_max(followed_invoice_id, (executed_on, action_key)) as followed_invoice_id
    from action_ledger
    where followed_invoice_id is not null
    group by case_id
),

owed as (
    select c.case_id,
           count(*) as open_receivables,
           sum(r.open_amount) as amount_owed,
           coalesce(sum(r.open_amount) filter (where r.is_overdue), 0) as overdue_amount,
           min(r.due_date) filter (where r.is_overdue) as oldest_due_date
    from open_today c
    left join followed f using (case_id)
    join open_receivables r
      on r.customer_id = c.customer_id
     and case_covers(c.scope, c.target_id, c.contract_id, c.customer_id, c.currency, f.followed_invoice_id,
                     r.invoice_id, r.contract_id, r.customer_id, r.currency)
    group by c.case_id
),

final as (
    select l.as_of, c.case_id, c.scope, c.customer_id, cu.name as customer_name, c.contract_id, c.currency,
           c.policy_id, c.current_level, c.current_level_name, c.last_level_on, c.last_amount_demanded,
           cast(c.fees_total as decimal(18, 2)) as fees_total,
           coalesce(o.open_receivables, 0) as open_receivables,
           cast(coalesce(o.amount_owed, 0) as decimal(18, 2)) as amount_owed,
           cast(coalesce(o.overdue_amount, 0) as decimal(18, 2)) as overdue_amount,
           o.oldest_due_date,
           c.opened_on
    from open_today c
    cross join latest l
    left join owed o using (case_id)
    left join stg_customers cu on cu.customer_id = c.customer_id
)

select * from final order by policy_id, current_level desc, amount_owed desc, case_id
