-- Cases that open on $as_of: a target routed to a policy of its scope, with no open
-- case, whose followed receivable is more days overdue than the grace period, whose
-- overdue amount reaches the currency's threshold, and which is not suspended.
-- A courtesy level (the policy's first level, on or before the due date: is_courtesy_level)
-- opens the case on its day when what it demands, the receivables due by its own due date,
-- reaches the threshold. The case remembers the policy version in force today.
with open_case_contracts as (
    select contract_id, scope, target_id
    from int_case_progress
    where case_id not in (select case_id from int_case_closures)
),

-- a target whose own case is still open opens none: left out before it is routed (most targets
-- on a day have a case open)
targets_without_case as (
    select t.*
    from int_dunning_targets t
    anti join open_case_contracts o on o.scope = t.scope and o.target_id = t.target_id
),

routed_targets as (
    select t.*, r.policy_id, r.policy_version, r.grace_days, r.routed_by, r.experiment, r.arm,
           coalesce(th.threshold, 0) as threshold,
           f.payment_term_days as first_level_payment_term_days,
           -- a first level timed after the "previous level" counts from the due date (SPEC 4)
           is_courtesy_level(f.anchor, true,
                             level_anchor_date(f.anchor, t.followed_invoice_date, t.followed_due_date,
                                               t.followed_scheduled_payment_on, null) + f.offset_days,
                             t.followed_due_date)
           and level_anchor_date(f.anchor, t.followed_invoice_date, t.followed_due_date,
                                 t.followed_scheduled_payment_on, null) + f.offset_days <= $as_of
               as courtesy_due
    from targets_without_case t
    join int_routed_contracts r
      on r.contract_id = t.contract_id and r.invoice_id = t.followed_invoice_id and r.scope = t.scope
    left join policy_thresholds th on th.policy_version = r.policy_version and th.currency = t.currency
    left join int_first_levels f on f.policy_version = r.policy_version
),

-- what a courtesy first level would demand today: the target's receivables due by its own due date
courtesy_demands as (
    select t.scope, t.target_id, sum(o.open_amount) as due_by_amount
    from routed_targets t
    join int_open_receivables o
      on o.customer_id = t.customer_id
     and case_covers(t.scope, t.target_id, t.contract_id, t.customer_id, t.currency, t.followed_invoice_id,
                     o.invoice_id, o.contract_id, o.customer_id, o.currency)
    where t.courtesy_due
      and o.due_date <= demands_due_by(true, cast($as_of as date), t.first_level_payment_term_days, t.followed_due_date)
    group by t.scope, t.target_id
),

candidates as (
    select t.*
    from routed_targets t
    left join courtesy_demands d on d.scope = t.scope and d.target_id = t.target_id
    where not t.suspended
      and not t.dunning_disabled
      and ((t.days_overdue > t.grace_days and threshold_reached(t.overdue_amount, t.threshold))
           or (t.courtesy_due and threshold_reached(d.due_by_amount, t.threshold)))
),

-- one dunning process per contract: an invoice case never runs beside a contract case
-- of the same contract (possible only when a policy changes scope between versions)
final as (
    select (case c.scope when 'contract' then 'ct-' when 'customer' then 'cu-' else 'in-' end)
               || c.target_id || '-' || strftime(cast($as_of as date), '%Y%m%d') as case_id,
           c.scope, c.target_id, c.contract_id, c.customer_id, c.currency,
           c.policy_id, c.policy_version, cast($as_of as date) as opened_on, c.routed_by, c.experiment, c.arm
    from candidates c
    where not exists (select 1 from open_case_contracts o
                      where o.contract_id = c.contract_id and o.scope <> c.scope)
)

select * from final
