-- What each level of each policy achieved by $as_of, per currency (amounts never mix
-- currencies). A paid case is credited to the last level it received before paying, so each
-- recovery counts once: a case paid 20 days after level 1 but 6 days after level 2 is level
-- 2's. Paid means closed as balance_cleared or invoice_settled (int_case_closures), or a failed
-- collection settled (int_col_case_closures); voided invoices, moves to another policy and unsettled
-- collections are not recoveries. Levels done as in state_as_of (the levels_done macro). The
-- amounts are cash, read from recovered_after_level (the one definition of a recovery figure,
-- also behind `dunning simulate`): payments booked within 7, 14 and 30 days after the level.
with levels as (
    select case_id, level_no, level_name, executed_on from levels_done(cast($as_of as date) + 1)
),

documents as (
    select case_id, level_no, count(*) as documents_sent
    from action_ledger
    where executed_on <= $as_of
      and action in ('reminder', 'sms', 'notify_merchant')
      and status_is_sent(status)
      and coalesce(status_changed_on, executed_on) <= $as_of
    group by case_id, level_no
),

case_levels as (
    select l.*, coalesce(d.documents_sent, 0) as documents_sent, r.policy_id, r.currency,
           r.closed_on <= $as_of and r.close_reason in ('balance_cleared', 'invoice_settled', 'settled') as paid,
           r.closed_on - l.executed_on as days_to_pay,
           -- the last level the case received before it closed: a level sent after the day a backfill
           -- later found the case paid (a late payment) stays in the ledger, but was not what it paid after
           l.level_no = max(l.level_no) filter (where r.closed_on is null or l.executed_on <= r.closed_on)
                            over (partition by l.case_id) as is_last_level
    from levels l
    -- the cases as they stood that day; a day after the last one computed is refused (state_as_of):
    -- its outcomes are not known yet
    join state_as_of($as_of) r using (case_id)
    left join documents d using (case_id, level_no)
),

cash as (
    select w30.case_id, w30.level_no,
           w7.amount_recovered as recovered_7_days,
           w14.amount_recovered as recovered_14_days,
           w30.amount_recovered as recovered_30_days
    from recovered_after_level($as_of, 30) w30
    join recovered_after_level($as_of, 14) w14 using (case_id, level_no)
    join recovered_after_level($as_of, 7) w7 using (case_id, level_no)
),

outcomes as (
    select cast($as_of as date) as as_of, c.*, coalesce(c.paid and c.is_last_level, false) as recovered,
           m.recovered_7_days, m.recovered_14_days, m.recovered_30_days
    from case_levels c
    left join cash m using (case_id, level_no)
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
           cast(coalesce(sum(recovered_30_days), 0) as decimal(18, 2)) as amount_recovered,
           cast(coalesce(sum(recovered_7_days), 0) as decimal(18, 2)) as amount_recovered_7_days,
           cast(coalesce(sum(recovered_14_days), 0) as decimal(18, 2)) as amount_recovered_14_days
    from outcomes
    group by as_of, policy_id, level_no, currency
)

select * from final order by policy_id, level_no, currency
