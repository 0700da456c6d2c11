-- The level each case executes on $as_of, and the pending levels it passes over.
-- Levels are scheduled from an anchor of the receivable the case follows today (it
-- moves forward in contract scope as older receivables are paid) or from the previous
-- level's own due date. A case executes at most one level a day: the next level, or
-- with absolute timing the highest level due, the ones below it recorded as skipped.
-- Suspensions and the threshold hold a case back without moving its schedule.
with active_cases as (
    select case_id, scope, target_id, contract_id, customer_id, currency, policy_id,
           policy_version, last_level_no, last_level_due_date, fees_total
    from int_case_progress
    where case_id not in (select case_id from int_case_closures)
    union all
    select case_id, scope, target_id, contract_id, customer_id, currency, policy_id,
           policy_version, 0, null, 0
    from int_case_openings
),

with_target as (
    select a.*,
           t.followed_invoice_id, t.followed_invoice_date, t.followed_due_date,
           t.followed_scheduled_payment_on, t.days_overdue, t.overdue_amount,
           t.suspended, t.dunning_disabled, t.apply_fees,
           coalesce(th.threshold, 0) as threshold
    from active_cases a
    join int_dunning_targets t on t.scope = a.scope and t.target_id = a.target_id
    left join policy_thresholds th on th.policy_version = a.policy_version and th.currency = a.currency
),

pending_levels as (
    select w.case_id, l.level_no, l.level_name, l.anchor, l.payment_term_days, l.channel, l.template,
           case l.anchor
               when 'due_date' then w.followed_due_date + l.offset_days
               when 'invoice_date' then w.followed_invoice_date + l.offset_days
               when 'scheduled_payment_date'
                   then coalesce(w.followed_scheduled_payment_on, w.followed_due_date) + l.offset_days
               when 'previous_level'
                   then coalesce(w.last_level_due_date, w.followed_due_date) + l.offset_days
           end as scheduled_on,
           row_number() over (partition by w.case_id order by l.level_no) as pending_rank
    from with_target w
    join policy_levels l
      on l.policy_version = w.policy_version and l.enabled and l.level_no > w.last_level_no
),

-- the next pending level is always in reach; a later one only through an unbroken run of
-- absolute levels, because a relative level waits for the one before it
reachable_levels as (
    select *,
           bool_and(anchor <> 'previous_level' or pending_rank = 1) over (
               partition by case_id order by pending_rank
               rows between unbounded preceding and current row
           ) as reachable
    from pending_levels
),

-- the level to execute: the highest reachable level whose time has come
chosen_levels as (
    select *,
           max(case when reachable and scheduled_on <= $as_of then level_no end)
               over (partition by case_id) as chosen_level_no
    from reachable_levels
),

-- suspensions and the threshold hold a case back; its schedule stays as it is
final as (
    select w.case_id, w.scope, w.target_id, w.contract_id, w.customer_id, w.currency,
           w.policy_id, w.policy_version, w.fees_total as fees_before, w.apply_fees,
           w.followed_invoice_id, w.days_overdue, w.overdue_amount,
           c.level_no, c.level_name, c.scheduled_on, c.payment_term_days, c.channel, c.template,
           c.level_no = c.chosen_level_no as executed
    from chosen_levels c
    join with_target w on w.case_id = c.case_id
    where c.level_no <= c.chosen_level_no
      and not w.suspended
      and not w.dunning_disabled
      and w.overdue_amount > 0
      and w.overdue_amount >= w.threshold
)

select * from final
