-- The levels each case has done, from the ledger (the only memory carried between days):
-- one row per case and level executed before `before_day`. Rows whose status is not done
-- (skipped, held: see sql/seeds/ledger_statuses.csv) never count. A level sent again live
-- after a backfill (catch-up) counts from its latest sending. Read per case by case_levels_done
-- (below), and per level by the analysts' level outcomes and recoveries: one definition.
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
group by case_id, level_no;

-- Where each case stands after the levels it has done before `before_day`: its current level (the
-- highest done) with that level's name, day, own due date and demand, the fees charged so far, and
-- what its manual reminders add: the days between each one's sending and its confirmation, and
-- whether one still waits for it. A confirmation counts once it is on or before `confirmed_by`
-- (an unconfirmed manual reminder holds the case). One definition, read by the daily model
-- int_case_progress, the `cases` view and the analysts' state_as_of, so they never disagree.
create or replace macro case_levels_done(before_day, confirmed_by) as table
with levels as (
    select *, case when confirmed_on <= confirmed_by then confirmed_on end as confirmed
    from levels_done(before_day)
)
select case_id,
       max(level_no) as current_level,
       arg_max(level_name, level_no) as current_level_name,
       arg_max(executed_on, level_no) as last_level_on,
       arg_max(level_due_date, level_no) as level_due_date,
       arg_max(amount_demanded, level_no) as last_amount_demanded,
       sum(fee) as fees_total,
       sum(case when manual then coalesce(confirmed - executed_on, 0) else 0 end) as manual_delay_days,
       bool_or(manual and confirmed is null) as awaiting_confirmation
from levels
group by case_id;
