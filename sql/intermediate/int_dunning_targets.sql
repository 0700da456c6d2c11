-- Everything that could be dunned on $as_of, in every scope: a contract with an open
-- balance (following its oldest open receivable), each open invoice, and a customer's
-- contracts in one currency together (following their oldest open receivable). Carries what
-- the case rules need: overdue amount, the followed receivable's dates, whether dunning
-- is suspended, and the customer's flags. A quarantined row naming the target's contract,
-- customer or followed invoice holds it like a suspension (`held_by_quarantine`,
-- int_quarantine_holds: its data is incomplete); for a customer-scope target, a held contract of
-- the customer in that currency holds it too.
with global_suspension as (
    select count(*) > 0 as active from int_suspensions_in_force where scope = 'global'
),

contract_targets as (
    select 'contract' as scope, b.contract_id as target_id, b.contract_id, b.customer_id, b.currency,
           b.open_amount, b.overdue_amount,
           o.invoice_id as followed_invoice_id, o.invoice_number as followed_invoice_number,
           o.invoice_date as followed_invoice_date, o.due_date as followed_due_date,
           o.scheduled_payment_on as followed_scheduled_payment_on,
           o.days_overdue, o.dunning_paused as followed_paused
    from int_contract_balances b
    join int_open_receivables o on o.invoice_id = b.oldest_invoice_id
),

invoice_targets as (
    select 'invoice' as scope, o.invoice_id as target_id, o.contract_id, o.customer_id, o.currency,
           o.open_amount, case when o.is_overdue then o.open_amount else 0 end as overdue_amount,
           o.invoice_id, o.invoice_number, o.invoice_date, o.due_date, o.scheduled_payment_on,
           o.days_overdue, o.dunning_paused
    from int_open_receivables o
    -- only worth building when some policy version (also an old one cases keep) has this scope
    where exists (select 1 from policy_versions where scope = 'invoice')
),

customer_totals as (
    select customer_id, currency,
           sum(open_amount) as open_amount,
           coalesce(sum(open_amount) filter (where is_overdue), 0) as overdue_amount,
           arg_min(invoice_id, (due_date, invoice_date, invoice_id)) as oldest_invoice_id
    from int_open_receivables
    where exists (select 1 from policy_versions where scope = 'customer')
    group by customer_id, currency
),

customer_targets as (
    select 'customer' as scope, t.customer_id || '-' || t.currency as target_id, o.contract_id,
           t.customer_id, t.currency, t.open_amount, t.overdue_amount,
           o.invoice_id, o.invoice_number, o.invoice_date, o.due_date, o.scheduled_payment_on,
           o.days_overdue, o.dunning_paused
    from customer_totals t
    join int_open_receivables o on o.invoice_id = t.oldest_invoice_id
),

targets as (
    select * from contract_targets
    union all
    select * from invoice_targets
    union all
    select * from customer_targets
),

-- held because a quarantined row names what the target follows (the one place this is decided:
-- case_outlook and explain read this column)
flagged as (
    select t.*,
           exists (select 1 from int_quarantine_holds where scope = 'global')
           or t.customer_id in (select target_id from int_quarantine_holds where scope = 'customer')
           or t.contract_id in (select target_id from int_quarantine_holds where scope = 'contract')
           or t.followed_invoice_id in (select target_id from int_quarantine_holds where scope = 'invoice')
           or (t.scope = 'customer'
               and t.target_id in (select customer_id || '-' || currency from int_quarantine_holds
                                   where scope = 'contract' and customer_id is not null and currency is not null))
               as held_by_quarantine
    from targets t
),

final as (
    select t.*,
           cu.dunning_disabled, cu.apply_fees,
           (select active from global_suspension)
           or t.followed_paused
           or t.customer_id in (select target_id from int_suspensions_in_force where scope = 'customer')
           or t.contract_id in (select target_id from int_suspensions_in_force where scope = 'contract')
           or t.followed_invoice_id in (select target_id from int_suspensions_in_force where scope = 'invoice')
           or t.held_by_quarantine
           -- a failed collection being worked on (int_col_dunning_holds): no second demand for the money
           or t.contract_id in (select contract_id from int_col_dunning_holds)
           or (t.scope = 'customer'
               and t.target_id in (select customer_id || '-' || currency from int_col_dunning_holds))
           as suspended
    from flagged t
    join stg_customers cu using (customer_id)
)

select * from final
