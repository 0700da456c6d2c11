-- The level each case executes on $as_of, and the pending levels it passes over.
-- A case executes at most one level a day: the next level, or with absolute timing the
-- highest level due, the ones below it recorded as skipped. Suspensions, the threshold
-- (checked again before each level) and a manual reminder not yet confirmed hold a case
-- back without moving its schedule, so on resumption a level whose time has come runs.
-- A courtesy level (timed from the receivable on or before its due date) is measured on
-- the open amount, since nothing is overdue yet.
with chosen_levels as (
    select *,
           max(case when reachable and scheduled_on <= $as_of then level_no end)
               over (partition by case_id) as chosen_level_no
    from int_pending_levels
),

gated_levels as (
    select *,
           bool_or(level_no = chosen_level_no and anchor <> 'previous_level' and scheduled_on <= followed_due_date)
               over (partition by case_id) as courtesy
    from chosen_levels
),

final as (
    select a.case_id, a.scope, a.target_id, a.contract_id, a.customer_id, a.currency,
           a.policy_id, a.policy_version, a.routed_by, a.fees_total as fees_before, a.apply_fees,
           a.followed_invoice_id, a.days_overdue,
           -- what the level demands: the overdue amount, or for a courtesy level the amount due
           case when c.courtesy then a.open_amount else a.overdue_amount end as demanded_principal,
           c.level_no, c.level_name, c.scheduled_on, c.payment_term_days, c.channel, c.template,
           c.level_no = c.chosen_level_no as executed
    from gated_levels c
    join int_active_cases a on a.case_id = c.case_id
    where c.level_no <= c.chosen_level_no
      and not a.suspended
      and not a.dunning_disabled
      and not a.awaiting_confirmation
      and (case when c.courtesy then a.open_amount else a.overdue_amount end) > 0
      and (case when c.courtesy then a.open_amount else a.overdue_amount end) >= a.threshold
)

select * from final
