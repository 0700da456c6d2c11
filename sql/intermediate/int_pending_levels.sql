-- The levels each active case has still to run, with the day each is scheduled for.
-- Levels are scheduled from an anchor of the receivable the case follows today (it moves
-- forward in contract scope as older receivables are paid) or from the previous level's
-- own due date (the receivable's due date for level 1). A reminder sent by hand delays
-- every later level by the days between its creation and its confirmed dispatch.
-- `courtesy`: the level would run on or before the followed receivable's due date
-- (is_courtesy_level, sql/schema/025_level_rules_macro.sql).
--
-- Which levels are pending, their order and which are in reach depend only on the case's
-- policy version and its last level, so they are ranked once per such pair (a handful)
-- instead of once per case (hundreds of thousands on a first day); the dates are per case.
with progress_points as (
    select distinct policy_version, last_level_no
    from int_active_cases
),

pending_by_point as (
    select p.policy_version, p.last_level_no, l.level_no, l.level_name, l.anchor, l.offset_days,
           l.payment_term_days, l.channel, l.template,
           row_number() over (partition by p.policy_version, p.last_level_no order by l.level_no) as pending_rank
    from progress_points p
    join policy_levels l
      on l.policy_version = p.policy_version and l.enabled and l.level_no > p.last_level_no
),

-- the next pending level is always in reach; a later one only through an unbroken run of
-- absolute levels, because a relative level waits for the one before it
reach_by_point as (
    select *,
           bool_and(anchor <> 'previous_level' or pending_rank = 1) over (
               partition by policy_version, last_level_no order by pending_rank
               rows between unbounded preceding and current row
           ) as reachable
    from pending_by_point
),

pending_levels as (
    select a.case_id, a.followed_due_date, a.last_level_no = 0 as first_level, r.level_no, r.level_name, r.anchor,
           r.payment_term_days, r.channel, r.template,
           level_anchor_date(r.anchor, a.followed_invoice_date, a.followed_due_date,
                             a.followed_scheduled_payment_on, a.last_level_due_date)
               + r.offset_days + a.manual_delay_days as scheduled_on,
           r.pending_rank, r.reachable
    from int_active_cases a
    join reach_by_point r on r.policy_version = a.policy_version and r.last_level_no = a.last_level_no
),

final as (
    select * exclude (reachable),
           is_courtesy_level(anchor, first_level, scheduled_on, followed_due_date) as courtesy,
           reachable
    from pending_levels
)

select * from final
