-- What each level of each policy achieved by $as_of, per currency (amounts never mix
-- currencies). A paid case is credited to the last level it received before paying, so each
-- recovery counts once: a case paid 20 days after level 1 but 6 days after level 2 is level
-- 2's. Paid means closed as balance_cleared or invoice_settled (int_case_closures), or a failed
-- collection settled (col_case_closures); voided invoices, moves to another policy and unsettled
-- collections are not recoveries. Levels done as in state_as_of.
with levels_done as (
    select case_id, level_no,
           arg_max(level_name, executed_on) as level_name,
           max(executed_on) as executed_on,
           max(amount_demanded) as amount_demanded,
           count(*) filter (where action in ('reminder', 'sms', 'notify_merchant')
                              and status = 'sent'
                              and coalesce(status_changed_on, executed_on) <= $as_of) as documents_sent
    from action_ledger
    where executed_on <= $as_of
      and status not in ('skipped', 'held')
    group by case_id, level_no
),

case_levels as (
    select l.*, r.policy_id, r.currency,
           r.closed_on <= $as_of and r.close_reason in ('balance_cleared', 'invoice_settled', 'settled') as paid,
           r.closed_on - l.executed_on as days_to_pay,
           l.level_no = max(l.level_no) over (partition by l.case_id) as is_last_level
    from levels_done l
    join case_register r using (case_id)
),

outcomes as (
    select cast($as_of as date) as as_of, *, coalesce(paid and is_last_level, false) as recovered
    from case_levels
),

final as (
    select as_of, policy_id, level_no,
           arg_max(level_name, executed_on) as level_name,
           currency,
           count(*) as cases_reached,
           cast(sum(documents_sent) as bigint) as documents_sent,
           count(*) filter (where recovered) as cases_recovered,
           count(*) filter (where recovered and days_to_pay <= 7) as paid_within_7_days,
           count(*) filter (where recovered and days_to_pay <= 14) as paid_within_14_days,
           count(*) filter (where recovered and days_to_pay <= 30) as paid_within_30_days,
           -- basis points rounded half up in integers, then scaled: a DECIMAL division would
           -- give a DOUBLE
           cast(cast((20000 * count(*) filter (where recovered) + count(*)) // (2 * count(*)) as decimal(18, 0))
                * 0.0001 as decimal(9, 4)) as recovery_rate,
           cast(median(cast(days_to_pay as decimal(9, 1))) filter (where recovered) as decimal(9, 1))
               as median_days_to_pay,
           cast(coalesce(sum(amount_demanded) filter (where recovered), 0) as decimal(18, 2)) as amount_recovered
    from outcomes
    group by as_of, policy_id, level_no, currency
)

select * from final order by policy_id, level_no, currency
