-- What each level of levels_due demands on $as_of: one row per case and level executed or
-- skipped today (a catch-up beside the others, catch_up). An executed level demands the
-- principal levels_due computed (the overdue amount, or the open amount for a courtesy
-- level), its fee per currency where the case applies fees (a catch-up's fee was recorded
-- with it by the backfill), the case's fees so far including it, and interest where the
-- policy charges it; a skipped level demands nothing. marts/planned_actions puts these on
-- every action of the level (the fee itself on the first only).
with levels as (
    select d.*,
           -- a catch-up sends a level whose fee was recorded with it by the backfill
           case when d.executed and d.apply_fees and not d.catch_up then coalesce(f.fee, 0) else 0 end as fee
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
    -- once per case: a catch-up can execute beside the case's scheduled level
    from (select distinct case_id, scope, target_id, contract_id, customer_id, currency, followed_invoice_id,
                          policy_version
          from levels_due where executed) d
    join policy_versions v on v.policy_version = d.policy_version and v.interest_rate_percent is not null
    join int_open_receivables o
      on o.is_overdue
     and o.customer_id = d.customer_id
     and case_covers(d.scope, d.target_id, d.contract_id, d.customer_id, d.currency, d.followed_invoice_id,
                     o.invoice_id, o.contract_id, o.customer_id, o.currency)
    group by d.case_id
),

with_interest as (
    select l.*,
           cast(coalesce(cast((i.numerator * 2 + 365000000) // 730000000 as decimal(18, 2)) * 0.01, 0)
                as decimal(18, 2)) as interest
    from levels l
    left join case_interest i on i.case_id = l.case_id and l.executed
),

-- a skipped level's row in the ledger demands nothing. Every input is in cents (scale 2), so
-- the sums are exact and the casts keep every digit
final as (
    select case_id, scope, target_id, contract_id, customer_id, currency, policy_id, policy_version, routed_by,
           level_no, level_name, scheduled_on, payment_term_days, followed_invoice_id, days_overdue,
           executed, catch_up,
           case when executed then demands_due_by end as demands_due_by,
           cast(case when executed then demanded_principal else 0 end as decimal(18, 2)) as principal,
           cast(fee as decimal(18, 2)) as fee,
           cast(case when executed then fees_before + fee else 0 end as decimal(18, 2)) as fees_total,
           interest,
           cast(case when executed then demanded_principal + (fees_before + fee) + interest else 0 end
                as decimal(18, 2)) as amount_demanded
    from with_interest
)

select * from final
