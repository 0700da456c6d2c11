-- The levels each active case has still to run, with the day each is scheduled for.
-- Levels are scheduled from an anchor of the receivable the case follows today (it moves
-- forward in contract scope as older receivables are paid) or from the previous level's
-- own due date (the receivable's due date for level 1). A reminder sent by hand delays
-- every later level by the days between its creation and its confirmed dispatch.
-- `courtesy`: the level would run on or before the followed receivable's due date
-- (is_courtesy_level, sql/schema/025_level_rules_macro.sql).
with pending_levels as (
    select a.case_id, a.followed_due_date, a.last_level_no = 0 as first_level, l.level_no, l.level_name, l.anchor, l.payment_term_days,
           l.channel, l.template,
           level_anchor_date(l.anchor, a.followed_invoice_date, a.followed_due_date,
                             a.followed_scheduled_payment_on, a.last_level_due_date)
               + l.offset_days + a.manual_delay_days as scheduled_on,
           row_number() over (partition by a.case_id order by l.level_no) as pending_rank
    from int_active_cases a
    join policy_levels l
      on l.policy_version = a.policy_version and l.enabled and l.level_no > a.last_level_no
),

-- the next pending level is always in reach; a later one only through an unbroken run of
-- absolute levels, because a relative level waits for the one before it
final as (
    select *,
           is_courtesy_level(anchor, first_level, scheduled_on, followed_due_date) as courtesy,
           bool_and(anchor <> 'previous_level' or pending_rank = 1) over (
               partition by case_id order by pending_rank
               rows between unbounded preceding and current row
           ) as reachable
    from pending_levels
)

select * from final
