-- Every case opened on or before $as_of with its status that day. Derived from the case
-- register and the ledger alone, because the ledger is the history: a level counts from the
-- day it was executed, and rows skipped in a catch-up or held by the fresh-data gate were
-- never levels done (as in the `cases` view, which is this on the latest day). A level sent
-- again live after a backfill (catch-up) counts from its latest execution up to $as_of.
-- A day after the last day computed (run_log) is an error that says so: no state is known for
-- it yet, and an empty or stale answer would look like one.
with asked as (
    select case when last_day is null
                then error('state_as_of(' || cast($as_of as date) || '): no day has been computed yet')
                when cast($as_of as date) > last_day
                then error('state_as_of(' || cast($as_of as date) || '): that day is after the last day '
                           || 'computed, ' || last_day || '; its state is not known yet')
                else cast($as_of as date) end as as_of
    from (select max(as_of) as last_day from run_log)
),

-- the levels done up to $as_of (case_levels_done, as the `cases` view and int_case_progress read them)
progress as (
    select * from case_levels_done(cast($as_of as date) + 1, cast($as_of as date))
),

final as (
    select d.as_of,
           r.case_id, r.scope, r.target_id, r.contract_id, r.customer_id, r.currency,
           r.policy_id, r.policy_version, r.routed_by, r.opened_on,
           case when r.closed_on <= $as_of then r.closed_on end as closed_on,
           case when r.closed_on <= $as_of then r.close_reason end as close_reason,
           case when r.closed_on <= $as_of then 'closed' else 'open' end as status,
           r.closed_on is null or r.closed_on > $as_of as is_open,
           coalesce(p.current_level, 0) as current_level,
           p.current_level_name,
           p.last_level_on,
           p.level_due_date,
           p.last_amount_demanded,
           cast(coalesce(p.fees_total, 0) as decimal(18, 2)) as fees_total
    from case_register r
    cross join asked d  -- every row depends on the check, so it runs even with no case at all
    left join progress p using (case_id)
    where r.opened_on <= d.as_of
)

select * from final order by opened_on, case_id
