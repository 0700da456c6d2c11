-- The ledger rows $as_of adds: one per executed level action and one per skipped level,
-- each with a deterministic key (case, level, action) so re-planning a day yields the
-- same keys and an existing key is never planned or sent again. Amounts carry their
-- breakdown: principal (the overdue amount today), fees (cumulative within the case) and
-- interest where the policy charges it.
with levels as (
    select d.*,
           case when d.executed and d.apply_fees then coalesce(f.fee, 0) else 0 end as fee
    from levels_due d
    left join policy_level_fees f
      on f.policy_version = d.policy_version and f.level_no = d.level_no and f.currency = d.currency
),

-- simple interest, actual/365, on each overdue invoice's open amount from its due date to
-- today, summed and rounded half-up to the cent. Integer arithmetic in cents and
-- 1/10000 percent keeps it exact: (x * 2 + d) // (2 * d) rounds x / d half-up.
case_interest as (
    select d.case_id,
           sum(cast(o.open_amount * 100 as hugeint)
               * cast(v.interest_rate_percent * 10000 as hugeint)
               * (cast($as_of as date) - o.due_date)) as numerator
    from levels_due d
    join policy_versions v on v.policy_version = d.policy_version and v.interest_rate_percent is not null
    join int_open_receivables o
      on o.contract_id = d.contract_id and o.is_overdue and (d.scope = 'contract' or o.invoice_id = d.target_id)
    where d.executed
    group by d.case_id
),

with_interest as (
    select l.*,
           cast(coalesce(cast((i.numerator * 2 + 365000000) // 730000000 as decimal(18, 2)) * 0.01, 0)
                as decimal(18, 2)) as interest
    from levels l
    left join case_interest i on i.case_id = l.case_id and l.executed
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
           interest,
           cast(case when executed then overdue_amount + fees_before + fee + interest else 0 end as decimal(18, 2))
               as amount_demanded,
           case when executed then 'planned' else 'skipped' end as status
    from with_interest
)

select * from final
