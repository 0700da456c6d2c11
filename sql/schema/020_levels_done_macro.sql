-- The levels each case has done, from the ledger (the only memory carried between days):
-- one row per case and level executed before `before_day`. Rows whose status is not done
-- (skipped, held: see sql/seeds/ledger_statuses.csv) never count. A level sent again live
-- after a backfill (catch-up) counts from its latest sending. Read by the daily model
-- int_case_progress, the `cases` view and the analysts' state_as_of: one definition.
create or replace macro levels_done(before_day) as table
select case_id, level_no,
       arg_max(level_name, executed_on) as level_name,
       max(executed_on) as executed_on,
       arg_max(level_due_date, executed_on) as level_due_date,
       sum(fee) as fee,
       arg_max(amount_demanded, executed_on) as amount_demanded,
       -- a manual reminder handed to a person (one a backfill or simulation recorded never was)
       bool_or(channel = 'manual' and status <> 'not_dispatched') as manual,
       max(confirmed_on) as confirmed_on
from action_ledger
where executed_on < before_day
  and status_is_done(status)
group by case_id, level_no
