-- The ledger rows $as_of adds: one per executed level action and one per skipped level,
-- each with a deterministic key (case, level, action) so re-planning a day yields the
-- same keys and an existing key is never planned or sent again. Amounts carry their
-- breakdown: principal (the overdue amount today), fees (cumulative within the case).
with levels as (
    select d.*,
           case when d.executed and d.apply_fees then coalesce(f.fee, 0) else 0 end as fee
    from levels_due d
    left join policy_level_fees f
      on f.policy_version = d.policy_version and f.level_no = d.level_no and f.currency = d.currency
),

final as (
    select case_id || '/L' || level_no || '/' || (case when executed then 'reminder' else 'skipped' end)
               as action_key,
           case_id, scope, target_id, contract_id, customer_id, currency,
           policy_id, policy_version, level_no, level_name,
           case when executed then 'reminder' else 'level_skipped' end as action,
           case when executed then channel end as channel,
           case when executed then template end as template,
           scheduled_on,
           cast($as_of as date) as executed_on,
           case when executed then cast($as_of as date) + payment_term_days end as level_due_date,
           followed_invoice_id, days_overdue,
           cast(case when executed then overdue_amount else 0 end as decimal(18, 2)) as principal,
           cast(fee as decimal(18, 2)) as fee,
           cast(case when executed then fees_before + fee else 0 end as decimal(18, 2)) as fees_total,
           cast(0 as decimal(18, 2)) as interest,
           cast(case when executed then overdue_amount + fees_before + fee else 0 end as decimal(18, 2))
               as amount_demanded,
           case when executed then 'planned' else 'skipped' end as status
    from levels
)

select * from final
