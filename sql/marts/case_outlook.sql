-- What comes next for every open dunning case after $as_of's own actions, and why: the next
-- level, the day it is scheduled for (anchor + days, as things stand today), the day it runs
-- if nothing changes (`runs_on`; NULL when it waits for an event: a payment, a confirmation,
-- a lifted pause) and one column per thing that holds it. `dunning explain` prints this row.
-- The level the day executes (planned_actions; the ledger's status once the day has run)
-- counts as done, as the next day's int_case_progress will read it from the ledger: the
-- pending levels after it are re-anchored on its due date and their reach taken again.
-- Which level runs, courtesy, the threshold and the holds are levels_due's own rules, the
-- macros of sql/schema/025_level_rules_macro.sql (anchors: 015_timing_macro.sql). Holds stand
-- as on $as_of: a suspension in force holds until the day dunning resumes (NULL: open-ended), a
-- quarantined row naming the target until it is fixed (int_dunning_targets.held_by_quarantine);
-- on resumption the highest level whose time has come runs at once. A level that is not a
-- courtesy level waits until the followed receivable is past the grace period. Amounts do not
-- move: a courtesy level demands the receivables due by its own due date as they stand today.
with done_today as (
    select case_id, max(level_no) as level_no, arg_max(level_due_date, level_no) as level_due_date
    from (
        -- the day's plan, with the ledger's status where the day has run
        select p.case_id, p.level_no, p.level_due_date
        from planned_actions p
        left join action_ledger l using (action_key)
        where p.action <> 'level_skipped'
          and case when l.status is null then p.status <> 'skipped' else status_is_done(l.status) end
        union all
        -- what the day recorded and its plan no longer has: a re-run of the day on new inputs keeps
        -- what was dispatched, and the next day's models count it (int_case_progress)
        select case_id, level_no, level_due_date
        from action_ledger
        where executed_on = $as_of and action <> 'level_skipped' and status_is_done(status)
          and action_key not in (select action_key from planned_actions)
    )
    group by case_id
),

-- a manual reminder not confirmed by $as_of: an earlier one (int_case_progress's flag), else today's
earlier_manual as (
    select case_id, arg_min(action_key, (executed_on, action_key)) as action_key
    from action_ledger
    where hand_sent(channel, status) and executed_on < $as_of and status_is_done(status)
      and (confirmed_on is null or confirmed_on > $as_of)
    group by case_id
),

manual_today as (
    select p.case_id, min(p.action_key) as action_key
    from planned_actions p
    left join action_ledger l using (action_key)
    where p.channel = 'manual' and p.action <> 'level_skipped'
      and case when l.status is null then p.status <> 'skipped'
               else status_is_done(l.status) and l.status <> 'not_dispatched' end
      and (l.confirmed_on is null or l.confirmed_on > $as_of)
    group by p.case_id
),

after_day as (
    select a.case_id, a.scope, a.target_id, a.contract_id, a.customer_id, a.currency, a.policy_version,
           a.followed_invoice_id,
           a.followed_invoice_date, a.followed_due_date, a.followed_scheduled_payment_on, a.last_level_due_date,
           a.open_amount, a.overdue_amount, a.threshold, a.grace_days, a.days_overdue, a.dunning_disabled,
           t.contract_id as followed_contract_id, t.followed_paused, t.held_by_quarantine,
           greatest(a.last_level_no, coalesce(d.level_no, 0)) as done_level_no,
           -- the last level's own delay (a manual reminder), which a level after it carries until
           -- another level is done: then that level's day holds it
           case when coalesce(d.level_no, 0) > a.last_level_no then 0 else a.last_level_delay_days end
               as done_level_delay_days, a.last_level_delay_days,
           case when d.level_no >= a.last_level_no then d.level_due_date else a.last_level_due_date end
               as done_level_due_date,
           case when a.awaiting_confirmation then coalesce(e.action_key, 'a manual reminder')
                else m.action_key end as awaiting_confirmation_key,
           -- a failed collection being worked on for the followed contract (int_col_dunning_holds)
           t.contract_id in (select contract_id from int_col_dunning_holds)
           or (a.scope = 'customer'
               and a.target_id in (select customer_id || '-' || currency from int_col_dunning_holds))
               as held_by_failed_collection
    from int_active_cases a
    join int_dunning_targets t on t.scope = a.scope and t.target_id = a.target_id
    left join done_today d using (case_id)
    left join earlier_manual e using (case_id)
    left join manual_today m using (case_id)
),

-- the pending levels after the day's, a previous_level anchor moved to the level done today (with
-- the delay of a manual reminder it carried: int_pending_levels);
-- their order and reach after it: int_pending_level_ranks
pending as (
    select p.case_id, p.level_no, p.level_name, p.anchor, p.payment_term_days, c.done_level_no = 0 as first_level,
           c.followed_due_date,
           p.scheduled_on
           + cast(level_anchor_date(p.anchor, c.followed_invoice_date, c.followed_due_date,
                                    c.followed_scheduled_payment_on, c.done_level_due_date)
                  - level_anchor_date(p.anchor, c.followed_invoice_date, c.followed_due_date,
                                      c.followed_scheduled_payment_on, c.last_level_due_date) as integer)
           + case when p.anchor = 'previous_level' then c.done_level_delay_days - c.last_level_delay_days else 0 end
               as scheduled_on,
           r.pending_rank, r.reachable
    from int_pending_levels p
    join after_day c using (case_id)
    join int_pending_level_ranks r
      on r.policy_version = c.policy_version and r.last_level_no = c.done_level_no and r.level_no = p.level_no
    where p.level_no > c.done_level_no
),

reachable_levels as (
    select *,
           is_courtesy_level(anchor, first_level, scheduled_on, followed_due_date) as courtesy
    from pending
),

-- the first day anything can run: tomorrow, or the earliest reachable level's day
first_days as (
    select c.case_id,
           greatest(cast($as_of as date) + 1, min(r.scheduled_on)) as first_day
    from after_day c
    left join reachable_levels r on r.case_id = c.case_id and r.reachable
    group by c.case_id
),

suspensions as (
    select c.case_id, s.scope, coalesce(s.target_id, '*') as target_id, s.from_date, s.to_date,
           s.to_date is null or s.to_date > f.first_day as holds
    from after_day c
    join first_days f using (case_id)
    join stg_suspensions s
      on s.from_date <= $as_of and (s.to_date is null or s.to_date > $as_of)
     and (s.scope = 'global' or (s.scope = 'customer' and s.target_id = c.customer_id)
          or (s.scope = 'contract' and s.target_id = c.followed_contract_id)
          or (s.scope = 'invoice' and s.target_id = c.followed_invoice_id))
    join int_suspensions_in_force i on i.scope = s.scope and i.target_id = coalesce(s.target_id, '*')
),

case_suspensions as (
    select case_id,
           list({'scope': scope, 'target_id': target_id, 'from_date': from_date, 'to_date': to_date}
                order by scope, from_date, target_id, to_date) as suspensions_in_force,
           list({'scope': scope, 'target_id': target_id, 'to_date': to_date}
                order by scope, from_date, target_id, to_date) filter (where holds) as holding_suspensions,
           max(to_date) filter (where holds) as held_by_suspension_until,
           string_agg(scope || case when scope = 'global' then '' else ' ' || target_id end, '; '
                      order by scope, from_date, target_id) filter (where holds and to_date is null)
               as held_by_open_suspension
    from suspensions
    group by case_id
),

-- the day dated suspensions allow, and the level that would run then (for the threshold)
resumes as (
    select c.*, f.first_day, s.suspensions_in_force, s.holding_suspensions, s.held_by_suspension_until,
           s.held_by_open_suspension,
           greatest(f.first_day, s.held_by_suspension_until) as resume_day
    from after_day c
    join first_days f using (case_id)
    left join case_suspensions s using (case_id)
),

level_on_resume as (
    select r.case_id,
           coalesce(max(case when level_in_reach(l.reachable, l.scheduled_on, r.resume_day) then l.level_no end),
                    min(l.level_no) filter (where l.reachable)) as level_no
    from resumes r
    join reachable_levels l using (case_id)
    group by r.case_id
),

-- a level that is not a courtesy level waits while the followed receivable is inside the grace period
graced as (
    select r.* exclude (resume_day),
           coalesce(l.courtesy, false) as courtesy,
           l.payment_term_days,
           case when o.level_no is not null and not coalesce(l.courtesy, false)
                     and r.followed_due_date + r.grace_days >= r.resume_day
                then r.followed_due_date + r.grace_days end as in_grace_until,
           case when coalesce(l.courtesy, false) then r.resume_day
                else greatest(r.resume_day, first_day_past_grace(r.followed_due_date, r.grace_days)) end as resume_day
    from resumes r
    left join level_on_resume o using (case_id)
    left join reachable_levels l on l.case_id = o.case_id and l.level_no = o.level_no
),

-- what a courtesy level demands: the case's open receivables due by its own due date
courtesy_demands as (
    select g.case_id, sum(o.open_amount) as due_by_amount
    from graced g
    join int_open_receivables o
      on o.customer_id = g.customer_id
     and case_covers(g.scope, g.target_id, g.contract_id, g.customer_id, g.currency, g.followed_invoice_id,
                     o.invoice_id, o.contract_id, o.customer_id, o.currency)
    where g.courtesy and o.due_date <= demands_due_by(true, g.resume_day, g.payment_term_days, g.followed_due_date)
    group by g.case_id
),

gates as (
    select g.*,
           level_demand(g.courtesy, d.due_by_amount, g.overdue_amount) as demanded_amount
    from graced g
    left join courtesy_demands d using (case_id)
),

holds as (
    select *,
           coalesce(demanded_amount, overdue_amount) <= 0 as nothing_overdue,
           coalesce(demanded_amount, overdue_amount) > 0
           and not threshold_reached(coalesce(demanded_amount, overdue_amount), threshold) as below_threshold,
           coalesce(followed_paused, false) as held_by_pause_flag
    from gates
),

runs as (
    select *,
           case when held_by_open_suspension is null and not held_by_pause_flag and not held_by_failed_collection
                     and not held_by_quarantine
                     and awaiting_confirmation_key is null and not nothing_overdue and not below_threshold
                     and not dunning_disabled
                then resume_day end as runs_on
    from holds
),

chosen as (
    select r.case_id,
           coalesce(max(case when level_in_reach(l.reachable, l.scheduled_on, coalesce(r.runs_on, r.first_day))
                             then l.level_no end),
                    min(l.level_no) filter (where l.reachable)) as level_no
    from runs r
    join reachable_levels l using (case_id)
    group by r.case_id
),

final as (
    select r.case_id,
           l.level_no as next_level_no,
           l.level_name as next_level_name,
           l.scheduled_on,
           case when l.level_no is not null then r.runs_on end as runs_on,
           r.held_by_suspension_until,
           r.held_by_open_suspension,
           r.held_by_pause_flag,
           r.held_by_failed_collection,
           r.held_by_quarantine,
           r.in_grace_until,
           r.awaiting_confirmation_key,
           r.nothing_overdue,
           r.below_threshold,
           cast(r.demanded_amount as decimal(18, 2)) as demanded_amount,
           cast(r.overdue_amount as decimal(18, 2)) as overdue_amount,
           cast(r.threshold as decimal(18, 2)) as threshold,
           r.dunning_disabled,
           coalesce(r.suspensions_in_force, []) as suspensions_in_force,
           coalesce(r.holding_suspensions, []) as holding_suspensions,
           case when l.level_no is null then 'every level has run'
                else concat_ws('; ',
                    case when r.runs_on is null then 'waits'
                         when r.runs_on > l.scheduled_on and r.held_by_suspension_until is not null
                             then 'runs on ' || r.runs_on || ', when dunning resumes'
                         else 'runs on ' || r.runs_on end,
                    case when r.held_by_suspension_until is not null
                         then 'suspended until ' || r.held_by_suspension_until end,
                    case when l.level_no is not null and r.in_grace_until is not null
                         then 'in the grace period until ' || r.in_grace_until end,
                    case when r.held_by_open_suspension is not null
                         then 'suspended without end (' || r.held_by_open_suspension || ')' end,
                    case when r.held_by_pause_flag then 'followed invoice paused' end,
                    case when r.held_by_failed_collection then 'a failed collection is being worked on' end,
                    case when r.held_by_quarantine
                         then 'held: a quarantined input row names it (see table quarantine)' end,
                    case when r.awaiting_confirmation_key is not null
                         then 'awaiting confirmation of ' || r.awaiting_confirmation_key end,
                    case when r.nothing_overdue then 'nothing overdue' end,
                    case when r.below_threshold
                         then 'demanded ' || r.demanded_amount || ' below threshold ' || r.threshold end,
                    case when r.dunning_disabled then 'dunning disabled for the customer' end)
           end as reason
    from runs r
    left join chosen c using (case_id)
    left join reachable_levels l on l.case_id = c.case_id and l.level_no = c.level_no
)

select * from final
