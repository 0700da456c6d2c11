-- Where each collection case open at the start of $as_of stands, read from the ledger
-- like int_case_progress: the last step executed before today, the day it ran, the admin
-- charges so far, and the day its next step becomes due (`next_due_from`):
-- - after an at_once step (change the mandate, notify): the day it ran;
-- - after a step with a grace period: its end, or earlier the day a new failure of the
--   case arrived (a per-mandate case's next transaction, or the same money again);
-- - after a retry: the day a failure of the case arrived after it, or on its own day the same
--   money failing again (the retry failed), or the retry's result_days after it when none has
--   come by then;
-- - before the first step: the day the case opened.
-- A per-mandate case starts after the steps of the mandate's earlier cases.
with open_cases as (
    select *
    from case_register
    where scope = 'collection' and opened_on < $as_of and closed_on is null
),

executed_steps as (
    select case_id, level_no as step_no, min(executed_on) as executed_on, sum(fee) as charges
    from action_ledger
    where scope = 'collection' and executed_on < $as_of and status_is_done(status)
      and case_id in (select case_id from open_cases)
    group by case_id, level_no
),

progress as (
    select case_id, max(step_no) as last_step_no, arg_max(executed_on, step_no) as last_step_on,
           sum(charges) as fees_total
    from executed_steps
    group by case_id
),

earlier_mandate_steps as (
    select c.case_id, max(h.last_step_no) as steps_before
    from open_cases c
    join int_col_mandate_history h
      on c.counting = 'per_mandate' and h.mandate_id = c.target_id and h.failure_type = c.failure_type
     and h.policy_id = c.policy_id and h.opened_on < c.opened_on
    group by c.case_id
),

with_steps as (
    select c.*, k.steps as step_count, p.last_step_on, s.wait as last_wait, s.grace_days as last_grace_days,
           s.result_days as last_result_days,
           coalesce(p.last_step_no, least(coalesce(m.steps_before, 0), k.steps - 1)) as last_step_no,
           coalesce(p.fees_total, 0) as fees_total
    from open_cases c
    join policy_collections k on k.policy_version = c.policy_version and k.failure_type = c.failure_type
    left join progress p using (case_id)
    left join earlier_mandate_steps m using (case_id)
    left join policy_collection_steps s
      on s.policy_version = c.policy_version and s.failure_type = c.failure_type and s.step_no = p.last_step_no
),

-- a failure of the case after its last step; after a retry also one of the same money failing again
-- on the retry's own day (`repeat`): a card retry is declined at once, reported with that day's date
-- (the run that requested the retry could not see it; the next day's run does)
later_failures as (
    select w.case_id, min(f.failed_on) as first_failure_after
    from with_steps w
    join int_col_case_payments f
      on f.case_id = w.case_id
     and (f.failed_on > w.last_step_on
          or (f.failed_on = w.last_step_on and f.repeat and w.last_wait = 'retry_result'))
    group by w.case_id
),

final as (
    select w.case_id, w.target_id, w.contract_id, w.customer_id, w.currency, w.policy_id, w.policy_version,
           w.routed_by, w.opened_on, w.failure_type, w.counting, w.step_count, w.last_step_no, w.last_step_on,
           w.last_wait, cast(w.fees_total as decimal(18, 2)) as fees_total,
           case when w.last_step_on is null then w.opened_on
                when w.last_wait = 'at_once' then w.last_step_on
                when w.last_wait = 'grace' then least(w.last_step_on + w.last_grace_days, l.first_failure_after)
                -- least() passes over a null: no failure yet, or a retry registered without a limit
                when w.last_wait = 'retry_result' then least(w.last_step_on + w.last_result_days, l.first_failure_after)
           end as next_due_from
    from with_steps w
    left join later_failures l using (case_id)
)

select * from final
