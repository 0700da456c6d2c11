-- The day a level's timing counts from: its anchor on the receivable the case follows.
-- `previous_level` counts from the previous level's own due date (executed day + payment
-- term), and for a case's first level from the receivable's due date; a scheduled payment
-- date falls back to the due date. Used by int_pending_levels (every level),
-- int_case_openings (the first level, for courtesy openings) and int_routed_contracts
-- (the first level, to pick the policy whose next action comes earliest).
create or replace macro level_anchor_date(anchor, invoice_date, due_date, scheduled_payment_on,
                                          previous_level_due_date) as
    case anchor
        when 'invoice_date' then invoice_date
        when 'scheduled_payment_date' then coalesce(scheduled_payment_on, due_date)
        when 'previous_level' then coalesce(previous_level_due_date, due_date)
        else due_date
    end;

-- Days a receivable due on `due_date` is overdue on `on_day` (0 until the day after it falls due):
-- int_open_receivables computes it for each open receivable, int_contract_balances for the oldest one, and a range carries the
-- balances of a contract nobody recomputed that day with it (sql/range/range_carried_balances.sql).
create or replace macro days_overdue(on_day, due_date) as
    greatest(cast(on_day as date) - due_date, 0);
