-- The level each case executes on $as_of, and the pending levels it passes over.
-- A case executes at most one level a day: the next level, or with absolute timing the
-- highest level due, the ones below it recorded as skipped. Suspensions, the threshold
-- (checked again before each level) and a manual reminder not yet confirmed hold a case
-- back without moving its schedule, so on resumption a level whose time has come runs.
with chosen_levels as (
    select *,
           max(case when reachable and scheduled_on <= $as_of then level_no end)
               over (partition by case_id) as chosen_level_no
    from int_pending_levels
),

final as (
    select a.case_id, a.scope, a.target_id, a.contract_id, a.customer_id, a.currency,
           a.policy_id, a.policy_version, a.fees_total as fees_before, a.apply_fees,
           a.followed_invoice_id, a.days_overdue, a.overdue_amount,
           c.level_no, c.level_name, c.scheduled_on, c.payment_term_days, c.channel, c.template,
           c.level_no = c.chosen_level_no as executed
    from chosen_levels c
    join int_active_cases a on a.case_id = c.case_id
    where c.level_no <= c.chosen_level_no
      and not a.suspended
      and not a.dunning_disabled
      and not a.awaiting_confirmation
      and a.overdue_amount > 0
      and a.overdue_amount >= a.threshold
)

select * from final
