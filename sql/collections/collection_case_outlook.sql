-- What comes next for every active collection case after $as_of's own steps, and why: the
-- next step, the day it is scheduled for as things stand, the day it runs if nothing changes
-- (`runs_on`; NULL when it waits for an event: a retry's result, a lifted suspension or
-- pause, money to collect) and what holds it. `dunning explain` prints this row.
-- The steps the day runs (planned_collection_actions; the ledger's status once the day has
-- run) count as done: the next step is due from the day they ran after their wait (at once,
-- a grace period, a retry's result), otherwise from the day int_col_case_progress names. Its date
-- and the wait are the rules of sql/schema/025_level_rules_macro.sql (`collection_step_on`,
-- `collection_due_after`); a later failure that would bring it forward has not arrived yet.
with ran_today as (
    select p.case_id, max(p.level_no) as step_no
    from planned_collection_actions p
    left join action_ledger l using (action_key)
    where case when l.status is null then p.status <> 'skipped' else status_is_done(l.status) end
    group by p.case_id
),

progress as (
    select a.case_id, a.policy_version, a.failure_type, a.held, a.outstanding, a.next_due_from,
           r.step_no as ran_today_step_no,
           coalesce(r.step_no, a.last_step_no) as done_step_no,
           case when r.step_no is null then a.next_due_from
                else collection_due_after(w.wait, cast($as_of as date), w.grace_days, w.result_days, null)
           end as due_from
    from int_col_active_cases a
    left join ran_today r using (case_id)
    left join policy_collection_steps w
      on w.policy_version = a.policy_version and w.failure_type = a.failure_type and w.step_no = r.step_no
),

final as (
    select p.case_id,
           s.step_no as next_step_no,
           s.step_name as next_step_name,
           s.step_type as next_step_type,
           p.ran_today_step_no,
           p.due_from,
           collection_step_on(s.step_type, s.retry_when, s.retry_days, p.due_from) as scheduled_on,
           case when s.step_no is not null and p.due_from is not null and not p.held and p.outstanding > 0
                then greatest(collection_step_on(s.step_type, s.retry_when, s.retry_days, p.due_from),
                              cast($as_of as date) + 1)
           end as runs_on,
           s.step_no is not null and p.due_from is null as awaiting_retry_result,
           p.held,
           p.outstanding <= 0 as nothing_outstanding,
           case when s.step_no is null then 'every step has run'
                else coalesce(nullif(concat_ws('; ',
                    case when p.due_from is null then 'waits for the result of the retry' end,
                    case when p.held then 'held by a suspension, a pause flag or dunning_disabled' end,
                    case when p.outstanding <= 0 then 'no money is open' end), ''),
                    'runs on ' || cast(greatest(collection_step_on(s.step_type, s.retry_when, s.retry_days,
                                                                   p.due_from), cast($as_of as date) + 1)
                                        as varchar))
           end as reason
    from progress p
    left join policy_collection_steps s
      on s.policy_version = p.policy_version and s.failure_type = p.failure_type
     and s.step_no = p.done_step_no + 1
)

select * from final
