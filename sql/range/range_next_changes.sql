-- For each customer whose results $as_of computed, the next day on which its results can differ
-- from today's other than by the passing of days while none of its inputs changes (those are
-- range_changes): read from the day's own results, never decided again here. The day after an
-- input-free run of days is computed afresh (pipeline/warehouse/range_days.py), so a day too early
-- only costs a recomputation; a day too late would be wrong. NULL-free: a customer with nothing
-- ahead has no row. The candidates:
-- * tomorrow, when today changed the customer's state (a case closed, a ledger row, a case opened
--   under a move_to_policy: the contract's other items route otherwise from tomorrow), while a
--   courtesy level whose day has come is held (what it demands grows with the day), while a courtesy
--   first level could open a case, and while a failed collection is worked on (its steps wait for
--   days of their own);
-- * for a collection case whose steps are held (int_col_active_cases.held: a suspension, a pause
--   flag, dunning_disabled or a quarantined row, each ending only with a dated input, if at all), the
--   day its last step's wait ends (int_col_case_closures closes it unsettled then, held or not);
-- * the day after a receivable's due date: it is overdue from then (overdue amounts, thresholds);
-- * the first day past the grace period of a target's policy, or of an open case's version;
-- * the day of a case's next level in reach, and the day of the first level of a target's policy.
-- Anything else that holds a level or an opening changes only with a dated input (range_changes): a
-- payment or credit (the threshold), the end of a suspension, a confirmation; a pause flag and
-- dunning_disabled never change in a range. A case opened today (not by a move) is tomorrow what it
-- is today: its pending levels are in today's int_pending_levels.
with open_targets as (
    select scope, target_id from int_active_cases
),

-- targets that could open a case: routed as int_case_openings routes them, nothing holds them
-- (a suspension or a pause ends on a dated input; dunning_disabled never changes in a range)
openable as (
    select t.customer_id, t.followed_due_date, r.grace_days,
           level_anchor_date(f.anchor, t.followed_invoice_date, t.followed_due_date,
                             t.followed_scheduled_payment_on, null) + f.offset_days as first_level_on,
           f.anchor
    from int_dunning_targets t
    join int_routed_contracts r
      on r.contract_id = t.contract_id and r.invoice_id = t.followed_invoice_id and r.scope = t.scope
    left join int_first_levels f on f.policy_version = r.policy_version
    anti join open_targets o on o.scope = t.scope and o.target_id = t.target_id
    where not t.suspended and not t.dunning_disabled
),

tomorrow as (
    -- a case handed over by move_to_policy: from tomorrow the contract's other items route as usual
    select customer_id from int_case_openings where routed_by = 'moved'
    union all
    select p.customer_id from int_case_progress p semi join int_case_closures c using (case_id)
    union all
    select customer_id from planned_actions
    union all
    select customer_id from int_col_case_openings
    union all
    select p.customer_id from int_col_case_progress p semi join int_col_case_closures c using (case_id)
    union all
    select customer_id from int_col_active_cases where not held
    union all
    select customer_id from planned_collection_actions
    union all
    select a.customer_id
    from int_pending_levels p join int_active_cases a using (case_id)
    where level_in_reach(p.reachable, p.scheduled_on, $as_of) and p.courtesy
      and case_dunnable(a.suspended, a.dunning_disabled, a.awaiting_confirmation)
    union all
    select customer_id from openable
    where is_courtesy_level(anchor, true, first_level_on, followed_due_date) and first_level_on <= $as_of
),

candidates as (
    select customer_id, cast($as_of as date) + 1 as changed_on from tomorrow
    union all
    select customer_id, due_date + 1 from int_open_receivables where not is_overdue
    union all
    select customer_id, first_day_past_grace(followed_due_date, grace_days) from int_active_cases
    union all
    select a.customer_id, p.scheduled_on
    from int_pending_levels p join int_active_cases a using (case_id)
    where p.reachable
    union all
    select customer_id, first_day_past_grace(followed_due_date, grace_days) from openable
    union all
    select customer_id, first_level_on from openable
    union all
    select customer_id, next_due_from from int_col_active_cases where held
),

final as (
    select customer_id, min(changed_on) as next_change_on
    from candidates
    where changed_on > $as_of
    group by customer_id
)

select * from final
