-- Cases that are open on $as_of after the day's closures, with what their target shows
-- today: the receivable they follow, its dates, the overdue amount against the policy
-- version's threshold and grace period, and whether dunning is suspended.
with active_cases as (
    select case_id, scope, target_id, contract_id, customer_id, currency, policy_id,
           policy_version, routed_by, last_level_no, last_level_due_date, fees_total,
           manual_delay_days, last_level_delay_days, awaiting_confirmation
    from int_case_progress
    where case_id not in (select case_id from int_case_closures)
    union all
    select case_id, scope, target_id, contract_id, customer_id, currency, policy_id,
           policy_version, routed_by, 0, null, 0, 0, 0, false
    from int_case_openings
),

final as (
    select a.*,
           t.followed_invoice_id, t.followed_invoice_date, t.followed_due_date,
           t.followed_scheduled_payment_on, t.days_overdue, t.open_amount, t.overdue_amount,
           t.suspended, t.dunning_disabled, t.apply_fees,
           coalesce(th.threshold, 0) as threshold,
           v.grace_days
    from active_cases a
    join int_dunning_targets t on t.scope = a.scope and t.target_id = a.target_id
    join policy_versions v on v.policy_version = a.policy_version
    left join policy_thresholds th on th.policy_version = a.policy_version and th.currency = a.currency
)

select * from final
