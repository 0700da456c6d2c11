-- Where each case open at the start of $as_of stands, read from the ledger (the
-- only memory carried between days): the last level executed before $as_of, its own
-- due date (executed date + payment term), the fees charged so far, and the delay
-- reminders sent by hand add: the days between their creation and their confirmed
-- dispatch. A manual reminder not confirmed by $as_of holds the case. One recorded by a
-- backfill or simulation (not_dispatched) was never handed to a person: it neither holds
-- nor delays the case. Rows `held` by the fresh-data gate were never done.
with open_cases as (
    select *
    from case_register
    where opened_on < $as_of
      and (closed_on is null or closed_on >= $as_of)
      and scope <> 'collection'  -- failed collections have their own progress (int_col_case_progress)
),

executed_levels as (
    select case_id, level_no, executed_on, level_due_date, fee, manual,
           case when confirmed_on <= $as_of then confirmed_on end as confirmed_on
    from levels_done($as_of)
),

progress as (
    select case_id,
           max(level_no) as last_level_no,
           arg_max(executed_on, level_no) as last_executed_on,
           arg_max(level_due_date, level_no) as last_level_due_date,
           sum(fee) as fees_total,
           sum(case when manual then coalesce(confirmed_on - executed_on, 0) else 0 end) as manual_delay_days,
           bool_or(manual and confirmed_on is null) as awaiting_confirmation
    from executed_levels
    group by case_id
),

final as (
    select c.case_id, c.scope, c.target_id, c.contract_id, c.customer_id, c.currency,
           c.policy_id, c.policy_version, c.routed_by, c.opened_on,
           coalesce(p.last_level_no, 0) as last_level_no,
           p.last_executed_on, p.last_level_due_date,
           cast(coalesce(p.fees_total, 0) as decimal(18, 2)) as fees_total,
           cast(coalesce(p.manual_delay_days, 0) as integer) as manual_delay_days,
           coalesce(p.awaiting_confirmation, false) as awaiting_confirmation
    from open_cases c
    left join progress p using (case_id)
)

select * from final
