-- The level each case executes on $as_of, and the pending levels it passes over.
-- A case executes at most one level a day: the next level, or with absolute timing the
-- highest level due, the ones below it recorded as skipped. Suspensions, the threshold
-- (checked again before each level), the grace period and a manual reminder not yet confirmed
-- hold a case back without moving its schedule, so on resumption a level whose time has come
-- runs. A courtesy level (on or before the followed receivable's due date) demands what falls
-- due by its own due date; any other level demands what is overdue and waits while the followed
-- receivable is inside the grace period. After a backfill, the levels it recorded and nobody
-- received may be sent again today (catch_up; int_catch_up_actions).
-- The rules are macros (sql/schema/025_level_rules_macro.sql) that marts/case_outlook, which
-- says what comes next, applies too.
-- the level each case runs: the highest in reach today; the case's courtesy and payment term are
-- that level's (none when no level is in reach)
with chosen_per_case as (
    select case_id,
           max(level_no) filter (where level_in_reach(reachable, scheduled_on, $as_of)) as chosen_level_no,
           arg_max_null(courtesy, level_no) filter (where level_in_reach(reachable, scheduled_on, $as_of)) as chosen_courtesy,
           arg_max_null(payment_term_days, level_no) filter (where level_in_reach(reachable, scheduled_on, $as_of)) as chosen_payment_term_days
    from int_pending_levels
    group by case_id
),

gated_levels as (
    select p.* exclude (courtesy), c.chosen_level_no, c.chosen_courtesy as courtesy, c.chosen_payment_term_days
    from int_pending_levels p
    join chosen_per_case c using (case_id)
),

-- what holds any level today: suspensions, a customer without dunning, a manual reminder not
-- yet confirmed
dunnable_cases as (
    select *
    from int_active_cases
    where case_dunnable(suspended, dunning_disabled, awaiting_confirmation)
),

-- what a courtesy level demands: the case's open receivables due by the level's own due date
courtesy_demands as (
    select c.case_id, sum(o.open_amount) as due_by_amount
    from (select distinct case_id, chosen_payment_term_days, followed_due_date from gated_levels where courtesy) c
    join dunnable_cases a on a.case_id = c.case_id
    join int_open_receivables o
      on o.customer_id = a.customer_id
     and case_covers(a.scope, a.target_id, a.contract_id, a.customer_id, a.currency, a.followed_invoice_id,
                     o.invoice_id, o.contract_id, o.customer_id, o.currency)
    where o.due_date <= demands_due_by(true, cast($as_of as date), c.chosen_payment_term_days, c.followed_due_date)
    group by c.case_id
),

scheduled as (
    select a.case_id, a.scope, a.target_id, a.contract_id, a.customer_id, a.currency,
           a.policy_id, a.policy_version, a.routed_by, a.fees_total as fees_before, a.apply_fees,
           a.followed_invoice_id, a.days_overdue,
           -- what the level demands: the overdue amount, or for a courtesy level the amount due by its due date
           level_demand(c.courtesy, d.due_by_amount, a.overdue_amount) as demanded_principal,
           demands_due_by(c.courtesy, cast($as_of as date), c.payment_term_days, c.followed_due_date) as demands_due_by,
           a.threshold,
           c.level_no, c.level_name, c.scheduled_on, c.payment_term_days, c.channel, c.template,
           c.level_no = c.chosen_level_no as executed,
           false as catch_up
    from gated_levels c
    join dunnable_cases a on a.case_id = c.case_id
    left join courtesy_demands d on d.case_id = c.case_id
    where c.level_no <= c.chosen_level_no
      and past_grace(c.courtesy, a.days_overdue, a.grace_days)
),

-- a level a backfill recorded and nobody received, sent today after all (int_catch_up_actions)
catch_up as (
    select a.case_id, a.scope, a.target_id, a.contract_id, a.customer_id, a.currency,
           a.policy_id, a.policy_version, a.routed_by, u.fees_through_level as fees_before, a.apply_fees,
           a.followed_invoice_id, a.days_overdue,
           a.overdue_amount as demanded_principal,
           demands_due_by(false, cast($as_of as date), l.payment_term_days, a.followed_due_date) as demands_due_by,
           a.threshold,
           l.level_no, l.level_name, cast($as_of as date) as scheduled_on, l.payment_term_days, l.channel,
           l.template,
           true as executed,
           true as catch_up
    from (select case_id, level_no, max(fees_through_level) as fees_through_level
          from int_catch_up_actions group by case_id, level_no) u
    join dunnable_cases a on a.case_id = u.case_id
    join policy_levels l on l.policy_version = a.policy_version and l.level_no = u.level_no
    where past_grace(false, a.days_overdue, a.grace_days)
),

gated as (
    select *
    from (select * from scheduled union all select * from catch_up)
    where threshold_reached(demanded_principal, threshold)
),

-- a case executing its next level today needs no catch-up of a lower one
final as (
    select * exclude (threshold)
    from gated g
    where not (g.catch_up and exists (
        select 1 from gated s where s.case_id = g.case_id and s.executed and not s.catch_up))
)

select * from final
