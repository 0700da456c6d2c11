-- The steps each active collection case runs on $as_of. Its next step is due from the
-- day int_col_case_progress names (today for a case opening today); a retry on its own date
-- counted from that day (after N days, the first of the next month, or that plus N days).
-- A case runs the step on the first day it is due while money is open and nothing holds
-- it, so a suspension delays a step without moving its date. After an at_once step the
-- following one runs the same day, and so on; a retry always waits for its own date.
-- `ends_case`: the last step ran and does not wait (it is at_once): the case is unsettled
-- at the end of the day.
with pending as (
    select a.case_id, a.last_step_no, a.next_due_from, a.step_count,
           s.step_no, s.step_type, s.step_name, s.wait, s.grace_days, s.retry_when, s.retry_days,
           -- the first pending step is due from the case's trigger day; a later one from today,
           -- the day the step before it runs (it only runs when that one does)
           case when s.step_no = a.last_step_no + 1 then a.next_due_from else cast($as_of as date) end as due_from
    from int_col_active_cases a
    join policy_collection_steps s
      on s.policy_version = a.policy_version and s.failure_type = a.failure_type and s.step_no > a.last_step_no
    where a.next_due_from is not null and not a.held and a.outstanding > 0
),

scheduled as (
    select *,
           case when step_type <> 'retry' then due_from
                when retry_when = 'after_days' then due_from + retry_days
                else cast(date_trunc('month', due_from) + interval 1 month as date)
                     + (case when retry_when = 'next_month_plus_days' then retry_days else 0 end)
           end as scheduled_on
    from pending
),

chained as (
    select *,
           bool_and(scheduled_on <= $as_of) over (
               partition by case_id order by step_no rows between unbounded preceding and current row) as all_due,
           coalesce(bool_and(wait = 'at_once') over (
               partition by case_id order by step_no rows between unbounded preceding and 1 preceding), true)
               as after_at_once
    from scheduled
),

final as (
    select case_id, step_no, step_type, step_name, wait, grace_days, scheduled_on,
           step_no = step_count and wait = 'at_once' as ends_case
    from chained
    where all_due and after_at_once
)

select * from final
