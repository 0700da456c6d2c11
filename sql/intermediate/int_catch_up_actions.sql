-- The document actions a live $as_of sends after a backfill, as its user chose
-- (backfill_runs.catch_up of the backfill run last, by sequence_no, of those ending before the
-- day: two backfills may end on the same day, and the user's latest choice holds): a backfill records the
-- levels it computes as not dispatched, and `highest` sends each open case's highest such
-- level once, `each` its lowest one not yet caught up, one level a day. Only a live day
-- ($live) catches up; a backfill's or a simulation's schema has no backfill runs anyway.
-- The levels go through the gates of levels_due and the amounts of int_level_amounts like any
-- level, so the document demands what is owed on the day it is sent, with the fees the backfill
-- recorded up to that level (not those of higher levels the customer has not been told of yet:
-- `each` sends them on later days); a case that reaches a
-- higher level (today: levels_due) needs no reminder of a lower one. A level whose catch-up a failed
-- run started is completed by the next run, whichever command recovers.
-- Like every model, it reads the ledger as it stood before $as_of: the day's own rows (a catch-up
-- sent by an earlier run of the day) are planned again under their keys, which the ledger insert
-- skips (`on conflict do nothing`), so a re-run sends nothing twice and explain shows the day as it ran.
with latest_backfill as (
    select first_day, last_day, catch_up
    from backfill_runs
    where last_day < $as_of and $live
    order by sequence_no desc
    limit 1
),

caught_up as (
    select case_id, level_no, action_key
    from action_ledger
    where action_key like '%+catch_up' and executed_on < $as_of
),

missed as (
    select l.case_id, l.level_no, l.action, l.fees_total, b.catch_up
    from action_ledger l
    cross join latest_backfill b
    where b.catch_up in ('highest', 'each')
      and l.dispatch_mode = 'backfill' and l.status = 'not_dispatched'
      and action_is_document(l.action)
      and l.executed_on between b.first_day and b.last_day
      and l.action_key || '+catch_up' not in (select action_key from caught_up)
      -- moot once the case has really reached a higher level
      and not exists (
          select 1 from action_ledger h
          where h.case_id = l.case_id and h.level_no > l.level_no and h.dispatch_mode = 'live'
            and h.executed_on < $as_of and status_is_done(h.status) and h.action_key not like '%+catch_up')
),

-- `highest`: one level per case; `each`: one level a day (chosen_levels picks one per case and day).
-- Per action, not per case: a level whose catch-up started (one action went out, another was only
-- rendered when the run failed and was rewound by the next run) keeps its remaining actions
-- eligible, so a re-run or a recovery sends them; it never starts a second level
eligible as (
    select *
    from missed m
    where not exists (
        select 1 from caught_up c
        where c.case_id = m.case_id and c.level_no <> m.level_no and m.catch_up = 'highest'
    )
),

chosen_levels as (
    select case_id, case when any_value(catch_up) = 'highest' then max(level_no) else min(level_no) end as level_no
    from eligible
    group by case_id
),

final as (
    select e.case_id, e.level_no, e.action, e.fees_total as fees_through_level
    from eligible e
    join chosen_levels c using (case_id, level_no)
)

select * from final
