-- The ledger rows $as_of adds: one per executed level action and one per skipped level,
-- each with a deterministic key (case, level, action) so re-planning a day yields the
-- same keys and an existing key is never planned or sent again. Amounts carry their
-- breakdown: principal (the overdue amount today), fees (cumulative within the case) and
-- interest where the policy charges it, from int_level_amounts; an action's details come
-- from int_action_details.
with rows as (
    -- each executed level runs its actions in policy order; the fee is charged once, on the first
    select l.case_id, l.scope, l.target_id, l.contract_id, l.customer_id, l.currency, l.policy_id,
           l.policy_version, l.routed_by, l.level_no, l.level_name, a.action, a.channel, a.template,
           l.scheduled_on, l.payment_term_days, l.followed_invoice_id, l.days_overdue, l.principal,
           case when a.action_no = 1 then l.fee else 0 end as fee, l.fees_total, l.interest,
           l.amount_demanded, l.demands_due_by, a.details, true as executed, l.catch_up
    from int_level_amounts l
    join int_action_details a on a.case_id = l.case_id and a.level_no = l.level_no and a.catch_up = l.catch_up
    where l.executed
    union all
    select case_id, scope, target_id, contract_id, customer_id, currency, policy_id, policy_version, routed_by,
           level_no, level_name, 'level_skipped', null, null, scheduled_on,
           payment_term_days, followed_invoice_id, days_overdue, principal, fee, fees_total, interest,
           amount_demanded, null, null, false, false
    from int_level_amounts
    where not executed
),

final as (
    select case_id || '/L' || level_no || '/' || (case when executed then action else 'skipped' end)
               || (case when catch_up then '+catch_up' else '' end) as action_key,
           case_id, scope, target_id, contract_id, customer_id, currency,
           policy_id, policy_version, routed_by, level_no, level_name, action, channel, template,
           scheduled_on,
           cast($as_of as date) as executed_on,
           case when executed then cast($as_of as date) + payment_term_days end as level_due_date,
           followed_invoice_id, days_overdue,
           cast(principal as decimal(18, 2)) as principal,
           cast(fee as decimal(18, 2)) as fee,
           cast(fees_total as decimal(18, 2)) as fees_total,
           cast(interest as decimal(18, 2)) as interest,
           cast(amount_demanded as decimal(18, 2)) as amount_demanded,
           demands_due_by,
           case when not executed then 'skipped'
                when action_is_document(action) then 'planned'
                else 'recorded' end as status,
           cast(details as varchar) as details
    from rows
)

select * from final
