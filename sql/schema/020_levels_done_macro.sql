-- The levels each case has done, from the ledger (the only memory carried between days).
-- A row counts once it was executed before `before_day` with a status that is done (skipped, held:
-- see sql/seeds/ledger_statuses.csv, never count): row_done_before, read by both macros below.

create or replace macro row_done_before(executed_on, status, before_day) as
    executed_on < before_day and status_is_done(status);

-- A manual reminder handed to a person (one a backfill or simulation recorded never was).
create or replace macro hand_sent(channel, status) as
    channel = 'manual' and status <> 'not_dispatched';

-- The rule of the latest sending: one number that orders a case's sendings by level, then by day. A
-- level counts from its latest sending (levels_done), a case stands at the latest sending of its
-- highest level (case_levels_done): in both, the largest. (A struct key (level_no, executed_on) in
-- arg_max cost 40% more of the day's case progress at 1M contracts.) Epoch days stay far below the
-- factor for any real date.
create or replace macro level_sending_order(level_no, executed_on) as
    cast(level_no as bigint) * 10000000 + date_diff('day', date '1970-01-01', executed_on);

-- One row per case and level done. A level sent again live after a backfill (catch-up) counts from
-- its latest sending. Read per level by the analysts' level outcomes and recoveries, and for the
-- manual reminders of case_levels_done. `manual_only`: only the levels that sent a manual reminder
-- (hand_sent), found before grouping.
create or replace macro levels_done(before_day, manual_only := false) as table
select case_id, level_no,
       arg_max(level_name, level_sending_order(level_no, executed_on)) as level_name,
       max(executed_on) as executed_on,
       arg_max(level_due_date, level_sending_order(level_no, executed_on)) as level_due_date,
       sum(fee) as fee,
       arg_max(amount_demanded, level_sending_order(level_no, executed_on)) as amount_demanded,
       bool_or(hand_sent(channel, status)) as manual,
       max(confirmed_on) as confirmed_on
from action_ledger
where row_done_before(executed_on, status, before_day)
  and (not manual_only
       or (case_id, level_no) in (select case_id, level_no from action_ledger
                                  where row_done_before(executed_on, status, before_day)
                                    and hand_sent(channel, status)))
group by case_id, level_no;

-- Where each case stands after the levels it has done before `before_day`: its current level (the
-- highest done) with that level's name, day, own due date and demand (its latest sending), the fees
-- charged so far, and what its manual reminders add: the days between each one's sending and its
-- confirmation (all of them, and the current level's own), and whether one still waits for it. A
-- confirmation counts once it is on or before `confirmed_by` (an unconfirmed manual reminder holds
-- the case). One definition, read by the daily
-- model int_case_progress, the `cases` view and the analysts' state_as_of, so they never disagree.
-- The figures of the current level and the fees come from the rows in one pass (grouping by level
-- first cost a second grouping of every row: 1.0 s of a steady day at 1M contracts, 0.7 s so); the
-- manual reminders, rare, from levels_done.
create or replace macro case_levels_done(before_day, confirmed_by) as table
with per_case as (
    select case_id,
           max(level_no) as current_level,
           arg_max(level_name, level_sending_order(level_no, executed_on)) as current_level_name,
           arg_max(executed_on, level_sending_order(level_no, executed_on)) as last_level_on,
           arg_max(level_due_date, level_sending_order(level_no, executed_on)) as level_due_date,
           arg_max(amount_demanded, level_sending_order(level_no, executed_on)) as last_amount_demanded,
           sum(fee) as fees_total
    from action_ledger
    where row_done_before(executed_on, status, before_day)
    group by case_id
),

manual_levels as (
    select case_id, level_no, executed_on, case when confirmed_on <= confirmed_by then confirmed_on end as confirmed
    from levels_done(before_day, manual_only := true)
    where manual
),

manual_cases as (
    select case_id,
           sum(coalesce(confirmed - executed_on, 0)) as manual_delay_days,
           max(level_no) as last_manual_level_no,
           arg_max(coalesce(confirmed - executed_on, 0), level_no) as last_manual_delay_days,
           bool_or(confirmed is null) as awaiting_confirmation
    from manual_levels
    group by case_id
)

select p.*,
       coalesce(m.manual_delay_days, 0) as manual_delay_days,
       -- the delay of the current level itself, when it is a manual reminder: what a level timed after
       -- the previous level adds (the delays of earlier ones moved the current level already)
       case when m.last_manual_level_no = p.current_level then m.last_manual_delay_days else 0 end
           as current_level_delay_days,
       coalesce(m.awaiting_confirmation, false) as awaiting_confirmation
from per_case p
left join manual_cases m using (case_id);
