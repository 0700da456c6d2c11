-- Collection cases active on $as_of after the day's closures (still open, or opening
-- today) with what their steps need: the step reached, when the next one is due, the
-- money still open, the latest failure (for documents and exports), and whether steps
-- are held today (a suspension of the customer, a contract or invoice of the case, an
-- invoice's pause flag, or the customer's dunning_disabled), which holds a step without
-- moving it. Money still open: per invoice of the case's failed transactions the smaller
-- of what failed (the largest failed amount: a retry of the same invoice is the same money)
-- and what is open of the invoice; for transactions bound to no invoice, the smaller of
-- what failed (a retry's result not counted again) and what is open of the contract's invoices
-- issued by the day it failed, beyond those invoices. A quarantined row naming the customer, a contract or invoice of the case holds
-- its steps like a suspension (int_quarantine_holds: the money may have been paid).
with suspended_targets as (
    select scope, target_id from int_suspensions_in_force
    union
    select scope, target_id from int_quarantine_holds
),

continuing as (
    select case_id, target_id, contract_id, customer_id, currency, policy_id, policy_version, routed_by,
           failure_type, counting, step_count, last_step_no, last_step_on, fees_total, next_due_from,
           false as is_new
    from int_col_case_progress
    where case_id not in (select case_id from int_col_case_closures)
),

mandate_steps as (
    select mandate_id, failure_type, policy_id, max(last_step_no) as steps_before
    from int_col_mandate_history
    group by all
),

opening as (
    select o.case_id, o.target_id, o.contract_id, o.customer_id, o.currency, o.policy_id, o.policy_version,
           o.routed_by, o.failure_type, o.counting, k.steps as step_count,
           least(coalesce(m.steps_before, 0), k.steps - 1) as last_step_no, cast(null as date) as last_step_on,
           cast(0 as decimal(18, 2)) as fees_total, o.opened_on as next_due_from, true as is_new
    from int_col_case_openings o
    join policy_collections k on k.policy_version = o.policy_version and k.failure_type = o.failure_type
    left join mandate_steps m
      on o.counting = 'per_mandate' and m.mandate_id = o.target_id and m.failure_type = o.failure_type
     and m.policy_id = o.policy_id
),

cases as (
    select * from continuing
    union all
    select * from opening
),

invoice_groups as (
    select p.case_id, p.invoice_id, any_value(p.contract_id) as contract_id, max(p.amount) as failed,
           coalesce(any_value(o.open_amount), 0) as open_amount
    from int_col_active_payments p
    left join int_open_receivables o on o.invoice_id = p.invoice_id
    where p.invoice_id is not null
    group by p.case_id, p.invoice_id
),

invoices_open_per_contract as (
    select case_id, contract_id, sum(open_amount) as open_amount
    from invoice_groups
    group by all
),

-- a failure bound to no invoice was collecting what the contract had been invoiced by its day (a
-- retry's failure is the same money): later invoices, not yet due, are no part of it
contract_failures as (
    select case_id, contract_id, coalesce(sum(amount) filter (where not repeat), 0) as failed,
           coalesce(max(failed_on) filter (where not repeat), max(failed_on)) as invoiced_by
    from int_col_active_payments
    where invoice_id is null
    group by case_id, contract_id
),

contract_groups as (
    select f.case_id, f.contract_id, f.failed,
           greatest(coalesce(sum(o.open_amount), 0) - coalesce(any_value(i.open_amount), 0), 0) as open_amount
    from contract_failures f
    left join int_open_receivables o on o.contract_id = f.contract_id and o.invoice_date <= f.invoiced_by
    left join invoices_open_per_contract i on i.case_id = f.case_id and i.contract_id = f.contract_id
    group by f.case_id, f.contract_id, f.failed
),

money as (
    select case_id, sum(least(failed, open_amount)) as outstanding, sum(failed) as failed_amount
    from (select case_id, failed, open_amount from invoice_groups
          union all
          select case_id, failed, open_amount from contract_groups)
    group by case_id
),

latest_failures as (
    select case_id, payment_id, invoice_id, mandate_id, failed_on, reason_code, reason
    from int_col_active_payments
    qualify row_number() over (partition by case_id order by failed_on desc, payment_id desc) = 1
),

held_payments as (
    select p.case_id,
           bool_or(p.contract_id in (select target_id from suspended_targets where scope = 'contract')
                   or p.invoice_id in (select target_id from suspended_targets where scope = 'invoice')
                   or coalesce(i.dunning_paused, false)) as held
    from int_col_active_payments p
    left join stg_invoices i on i.invoice_id = p.invoice_id
    group by p.case_id
),

final as (
    select c.*,
           cast(coalesce(m.outstanding, 0) as decimal(18, 2)) as outstanding,
           cast(coalesce(m.failed_amount, 0) as decimal(18, 2)) as failed_amount,
           l.payment_id, l.invoice_id, l.mandate_id, l.failed_on, l.reason_code, l.reason,
           r.days_overdue,
           cu.apply_fees,
           exists (select 1 from suspended_targets s where s.scope = 'global')
           or c.customer_id in (select target_id from suspended_targets where scope = 'customer')
           or coalesce(h.held, false)
           or cu.dunning_disabled as held
    from cases c
    left join money m using (case_id)
    left join latest_failures l using (case_id)
    left join held_payments h using (case_id)
    left join int_open_receivables r on r.invoice_id = l.invoice_id
    join stg_customers cu on cu.customer_id = c.customer_id
)

select * from final
