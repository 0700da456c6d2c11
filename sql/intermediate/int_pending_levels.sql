-- The levels each active case has still to run, with the day each is scheduled for.
-- Levels are scheduled from an anchor of the receivable the case follows today (it moves
-- forward in contract scope as older receivables are paid) or from the previous level's
-- own due date (the receivable's due date for level 1). A reminder sent by hand delays
-- every later level by the days between its creation and its confirmed dispatch: a level on an
-- anchor of the receivable by every such delay so far, a level after the previous level by the
-- previous level's own (the earlier ones moved the previous level already: counting them again
-- delayed every level after the next one twice, review 2026-12-08).
-- Which levels are pending, their order and reach: int_pending_level_ranks, at the case's
-- last level. `courtesy`: the level would run on or before the followed receivable's due
-- date (is_courtesy_level, sql/schema/025_level_rules_macro.sql).
with pending_levels as (
    select a.case_id, a.followed_due_date, a.last_level_no = 0 as first_level, r.level_no, r.level_name, r.anchor,
           r.payment_term_days, r.channel, r.template,
           level_anchor_date(r.anchor, a.followed_invoice_date, a.followed_due_date,
                             a.followed_scheduled_payment_on, a.last_level_due_date)
               + r.offset_days
               + case when r.anchor = 'previous_level' then a.last_level_delay_days else a.manual_delay_days end
               as scheduled_on,
           r.pending_rank, r.reachable
    from int_active_cases a
    join int_pending_level_ranks r on r.policy_version = a.policy_version and r.last_level_no = a.last_level_no
),

final as (
    select * exclude (reachable),
           is_courtesy_level(anchor, first_level, scheduled_on, followed_due_date) as courtesy,
           reachable
    from pending_levels
)

select * from final
