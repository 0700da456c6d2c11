-- Key figures per currency and policy on any day, read from the case state of that day so
-- that a report for a past day never counts what happened after it. Close reasons are the
-- ones the pipeline writes (int_case_closures, int_col_case_closures for failed collections, and
-- moved_to_policy from apply_day); any other reason still counts in cases_closed and shows in
-- closed_other.
with cases as (
    select * from state_as_of($as_of)
),

final as (
    select as_of, currency, policy_id,
           count(*) as cases_opened,
           count(*) filter (where opened_on = $as_of) as cases_opened_on_day,
           count(*) filter (where status = 'closed') as cases_closed,
           count(*) filter (where closed_on = $as_of) as cases_closed_on_day,
           count(*) filter (where close_reason = 'balance_cleared') as closed_balance_cleared,
           count(*) filter (where close_reason = 'invoice_settled') as closed_invoice_settled,
           count(*) filter (where close_reason = 'invoice_voided') as closed_invoice_voided,
           count(*) filter (where close_reason = 'moved_to_policy') as closed_moved_to_policy,
           count(*) filter (where close_reason = 'settled') as closed_collection_settled,
           count(*) filter (where close_reason = 'unsettled') as closed_collection_unsettled,
           count(*) filter (where close_reason = 'superseded') as closed_collection_superseded,
           count(*) filter (where status = 'closed' and close_reason not in
                            ('balance_cleared', 'invoice_settled', 'invoice_voided', 'moved_to_policy',
                             'settled', 'unsettled', 'superseded'))
               as closed_other,
           count(*) filter (where is_open) as cases_open,
           cast(sum(fees_total) as decimal(18, 2)) as fees_earned
    from cases
    group by as_of, currency, policy_id
)

select * from final order by currency, policy_id
