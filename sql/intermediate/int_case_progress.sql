-- Where each case open at the start of $as_of stands, read from the ledger (the
-- only memory carried between days): the last level executed before $as_of, its own
-- due date (executed date + payment term), the fees charged so far, and the delay
-- reminders sent by hand add: the days between their creation and their confirmed
-- dispatch. A manual reminder not confirmed by $as_of holds the case. One recorded by a
-- backfill or simulation (not_dispatched) was never handed to a person: it neither holds
-- nor delays the case, unless it is the very reminder a person received on a live day (same key
-- and day: it carries that row's status and confirmation, state.apply_day). Rows `held` by the
-- fresh-data gate were never done. All of it is
-- the macro case_levels_done (sql/schema/020_levels_done_macro.sql), which the `cases`
-- view and the analysts' state_as_of read too.
with open_cases as (
    select *
    from case_register
    where opened_on < $as_of
      and (closed_on is null or closed_on >= $as_of)
      and scope <> 'collection'  -- failed collections have their own progress (int_col_case_progress)
),

-- levels executed before $as_of; a confirmation on $as_of itself counts
progress as (
    select * from case_levels_done($as_of, $as_of)
),

final as (
    select c.case_id, c.scope, c.target_id, c.contract_id, c.customer_id, c.currency,
           c.policy_id, c.policy_version, c.routed_by, c.opened_on,
           coalesce(p.current_level, 0) as last_level_no,
           p.last_level_on as last_executed_on,
           p.level_due_date as last_level_due_date,
           cast(coalesce(p.fees_total, 0) as decimal(18, 2)) as fees_total,
           cast(coalesce(p.manual_delay_days, 0) as integer) as manual_delay_days,
           cast(coalesce(p.current_level_delay_days, 0) as integer) as last_level_delay_days,
           coalesce(p.awaiting_confirmation, false) as awaiting_confirmation
    from open_cases c
    left join progress p using (case_id)
)

select * from final
