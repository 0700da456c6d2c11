-- The rules that decide whether and which dunning level runs on a day, and when a failed
-- collection's next step is due: one definition each, read by the model that acts
-- (marts/levels_due, the collection steps) and by the one that looks ahead
-- (marts/case_outlook, collections/collection_case_outlook, which `dunning explain` prints).
-- Scalar macros: they bind to no table, so they exist before any model runs.

-- A pending level may run on `on_day`: reachable (int_pending_levels) and its day has come.
-- Of those, a case runs the highest (levels_due: `max(case when level_in_reach(..) then level_no end)`).
create or replace macro level_in_reach(reachable, scheduled_on, on_day) as
    reachable and scheduled_on <= on_day;

-- A courtesy level: timed from the receivable itself (not the previous level) on or before its due
-- date, so nothing is overdue yet and it is measured on the open amount.
create or replace macro is_courtesy_level(anchor, scheduled_on, followed_due_date) as
    anchor <> 'previous_level' and scheduled_on <= followed_due_date;

-- What a level demands: the overdue amount, or for a courtesy level the amount due.
create or replace macro level_demand(courtesy, open_amount, overdue_amount) as
    case when courtesy then open_amount else overdue_amount end;

-- The threshold, checked again before each level: something is demanded and it reaches the threshold.
create or replace macro threshold_reached(demanded, threshold) as
    demanded > 0 and demanded >= threshold;

-- Nothing holds the case today: no suspension (nor pause flag, nor failed collection being
-- worked on: int_dunning_targets.suspended), dunning enabled, no manual reminder awaiting confirmation.
create or replace macro case_dunnable(suspended, dunning_disabled, awaiting_confirmation) as
    not suspended and not dunning_disabled and not awaiting_confirmation;

-- The day a failed collection's step is scheduled for, counted from the day it is due from:
-- a retry on its own date (after N days, the first of the next month, or that plus N days),
-- any other step on that day.
create or replace macro collection_step_on(step_type, retry_when, retry_days, due_from) as
    case when step_type <> 'retry' then due_from
         when retry_when = 'after_days' then due_from + retry_days
         else cast(date_trunc('month', due_from) + interval 1 month as date)
              + (case when retry_when = 'next_month_plus_days' then retry_days else 0 end)
    end;

-- The day a collection case's next step is due from after a step ran on `step_on`: an
-- at_once step that day, a grace period at its end, a retry when its result is due (NULL: a
-- retry registered without a limit); earlier when a new failure of the case arrived
-- (`first_failure_after`, NULL when none has; least() passes over a NULL).
create or replace macro collection_due_after(wait, step_on, grace_days, result_days, first_failure_after) as
    case wait
        when 'at_once' then step_on
        when 'grace' then least(step_on + grace_days, first_failure_after)
        when 'retry_result' then least(step_on + result_days, first_failure_after)
    end;
