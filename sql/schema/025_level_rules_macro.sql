-- The rules that decide whether and which dunning level runs on a day, and when a failed
-- collection's next step is due: one definition each, read by the model that acts
-- (marts/levels_due, the collection steps) and by the one that looks ahead
-- (marts/case_outlook, collections/collection_case_outlook, which `dunning explain` prints).
-- Scalar macros: they bind to no table, so they exist before any model runs.

-- A pending level may run on `on_day`: reachable (int_pending_levels) and its day has come.
-- Of those, a case runs the highest (levels_due: `max(level_no) filter (where level_in_reach(..))`).
create or replace macro level_in_reach(reachable, scheduled_on, on_day) as
    reachable and scheduled_on <= on_day;

-- A courtesy level: scheduled on or before the due date of the receivable the case follows, so
-- nothing is overdue yet. It is timed from the receivable itself, or it is the case's first level
-- timed after the "previous level", which for a first level is the receivable's due date (SPEC 4):
-- `after: previous_level, days: 0` and `after: due_date, days: 0` are the same day. A later level
-- timed after a previous one is never a courtesy level: it demands what is overdue.
create or replace macro is_courtesy_level(anchor, first_level, scheduled_on, followed_due_date) as
    (anchor <> 'previous_level' or first_level) and scheduled_on <= followed_due_date;

-- The last due date a level demands: the receivables of its case due on or before it. A level
-- demands what is overdue on the day it runs. A courtesy level is about what falls due: the
-- receivable it follows and whatever else is due by the level's own due date (the day it runs
-- plus its payment term), not the invoices due weeks later. The ledger keeps it
-- (action_ledger.demands_due_by); documents list exactly these receivables.
create or replace macro demands_due_by(courtesy, on_day, payment_term_days, followed_due_date) as
    cast(case when courtesy then greatest(on_day + payment_term_days, followed_due_date)
              else on_day - 1 end as date);

-- What a level demands: the overdue amount, or for a courtesy level the open receivables of the
-- case due by demands_due_by.
create or replace macro level_demand(courtesy, due_by_amount, overdue_amount) as
    case when courtesy then coalesce(due_by_amount, 0) else overdue_amount end;

-- Grace: a level that is not a courtesy level never runs while the receivable the case follows is
-- no more days overdue than the policy's grace period, also after the followed receivable changed
-- (contract scope: an older one was paid) or when a courtesy level opened the case early. It waits
-- without moving its schedule, so it runs on the first day past grace.
create or replace macro past_grace(courtesy, days_overdue, grace_days) as
    courtesy or days_overdue > grace_days;

-- The first day past grace for a receivable due on `due_date` (past_grace: more days overdue than the
-- grace period): the first day a level that is not a courtesy level can run.
create or replace macro first_day_past_grace(due_date, grace_days) as
    cast(due_date + grace_days + 1 as date);

-- The first day a policy version can act on a receivable: its first level's day, not before the first
-- day past its grace period unless that level is a courtesy level. What routing compares (SPEC 7: the
-- policy whose next action comes earliest wins). NULL: the version has no enabled level.
create or replace macro first_action_on(anchor, first_level_on, due_date, grace_days) as
    case when first_level_on is null then null
         when is_courtesy_level(anchor, true, first_level_on, due_date) then first_level_on
         else greatest(first_level_on, first_day_past_grace(due_date, grace_days)) end;

-- The receivables a case covers: its invoice, its contract's, or the customer's in the case's
-- currency; a failed-collection case covers the invoice its failed payment was for. Join on
-- customer_id first (every scope is within one customer), then filter with this.
create or replace macro case_covers(scope, target_id, contract_id, customer_id, currency, followed_invoice_id,
                                    r_invoice_id, r_contract_id, r_customer_id, r_currency) as
    case scope
        when 'contract' then r_contract_id = contract_id
        when 'invoice' then r_invoice_id = target_id
        when 'customer' then r_customer_id = customer_id and r_currency = currency
        when 'collection' then r_invoice_id = followed_invoice_id
        else false
    end;

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
