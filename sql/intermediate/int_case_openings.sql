-- Cases that open on $as_of: a target routed to a policy of its scope, with no open
-- case, whose followed receivable is more days overdue than the grace period, whose
-- overdue amount reaches the currency's threshold, and which is not suspended.
-- A courtesy level (the policy's first level, timed on or before the due date) opens the
-- case on its day when the receivable is unpaid, measured on the open amount.
-- The case remembers the policy version in force today.
with open_case_contracts as (
    select contract_id, scope, target_id
    from int_case_progress
    where case_id not in (select case_id from int_case_closures)
),

routed_targets as (
    select t.*, r.policy_id, r.policy_version, r.grace_days, r.routed_by,
           coalesce(th.threshold, 0) as threshold,
           -- a first level timed after a previous level is no courtesy level
           case when f.anchor <> 'previous_level'
                then level_anchor_date(f.anchor, t.followed_invoice_date, t.followed_due_date,
                                       t.followed_scheduled_payment_on, null) + f.offset_days
           end as first_level_on
    from int_dunning_targets t
    join int_routed_contracts r
      on r.contract_id = t.contract_id and r.invoice_id = t.followed_invoice_id and r.scope = t.scope
    left join policy_thresholds th on th.policy_version = r.policy_version and th.currency = t.currency
    left join int_first_levels f on f.policy_version = r.policy_version
),

candidates as (
    select *
    from routed_targets
    where not suspended
      and not dunning_disabled
      and ((days_overdue > grace_days and overdue_amount > 0 and overdue_amount >= threshold)
           or (first_level_on <= followed_due_date and first_level_on <= $as_of
               and open_amount > 0 and open_amount >= threshold))
),

-- one dunning process per contract: an invoice case never runs beside a contract case
-- of the same contract (possible only when a policy changes scope between versions)
final as (
    select (case c.scope when 'contract' then 'ct-' when 'customer' then 'cu-' else 'in-' end)
               || c.target_id || '-' || strftime(cast($as_of as date), '%Y%m%d') as case_id,
           c.scope, c.target_id, c.contract_id, c.customer_id, c.currency,
           c.policy_id, c.policy_version, cast($as_of as date) as opened_on, c.routed_by
    from candidates c
    where not exists (select 1 from open_case_contracts o
                      where o.scope = c.scope and o.target_id = c.target_id)
      and not exists (select 1 from open_case_contracts o
                      where o.contract_id = c.contract_id and o.scope <> c.scope)
)

select * from final
