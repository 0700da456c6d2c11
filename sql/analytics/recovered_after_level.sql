-- Cash recovered after each level: the one definition of every recovery figure
-- (level_outcomes_as_of and level_outcomes, the daily report, `dunning simulate`).
-- One row per level each case received by $as_of (the levels_done macro, as state_as_of) with the
-- cash credited to it: payments booked in the $paid_within_days days after the day the level
-- was executed, in the case's currency and on the case's scope (contract and collection: the
-- contract; invoice: payments bound to the invoice, or to no invoice of its contract, which
-- then count for each invoice case of the contract; customer: every contract of the
-- customer). Cash is what the balances count as paid on $as_of: settled payments, and
-- reversed ones only until their reversal; failed payments never count; rows booked after
-- $as_of are invisible. A payment is credited to the last level the case received before it
-- was booked (a payment booked on the day of the next level was seen before that level ran,
-- so it is the earlier level's), and only while the case was open (up to the day it closed):
-- each payment counts once per case, and a case's levels' figures add up.
with levels as (
    select case_id, level_no, level_name, executed_on from levels_done(cast($as_of as date) + 1)
),

case_levels as (
    select l.case_id, l.level_no, l.level_name, l.executed_on,
           r.scope, r.target_id, r.contract_id, r.customer_id, r.currency, r.policy_id,
           case when r.closed_on <= $as_of then r.closed_on end as closed_on,
           lead(l.executed_on) over (partition by l.case_id order by l.executed_on, l.level_no) as next_level_on
    from levels l
    join case_register r using (case_id)
),

windows as (
    select *,
           least(executed_on + cast($paid_within_days as integer),
                 coalesce(next_level_on, date '9999-12-31'),
                 coalesce(closed_on, date '9999-12-31')) as credited_until
    from case_levels
),

cash as (
    select p.payment_id, p.contract_id, c.customer_id, p.invoice_id, p.currency, p.amount, p.booked_on
    from stg_payments p
    join stg_contracts c using (contract_id)
    where payment_counts_on($as_of, p.booked_on, p.status, p.reversed_on)
),

-- equi-joins on the scope's key, then the window
on_contract as (
    select w.case_id, w.level_no, p.amount
    from windows w
    join cash p on p.contract_id = w.contract_id and p.currency = w.currency
    where w.scope <> 'customer'
      and (w.scope <> 'invoice' or p.invoice_id is null or p.invoice_id = w.target_id)
      and p.booked_on > w.executed_on and p.booked_on <= w.credited_until
),

on_customer as (
    select w.case_id, w.level_no, p.amount
    from windows w
    join cash p on p.customer_id = w.customer_id and p.currency = w.currency
    where w.scope = 'customer'
      and p.booked_on > w.executed_on and p.booked_on <= w.credited_until
),

credited as (
    select case_id, level_no, count(*) as payments, sum(amount) as amount
    from (select * from on_contract union all select * from on_customer)
    group by case_id, level_no
),

final as (
    select cast($as_of as date) as as_of,
           cast($paid_within_days as integer) as paid_within_days,
           w.case_id, w.policy_id, w.level_no, w.level_name, w.currency, w.executed_on,
           coalesce(c.payments, 0) as payments,
           cast(coalesce(c.amount, 0) as decimal(18, 2)) as amount_recovered
    from windows w
    left join credited c using (case_id, level_no)
)

select * from final order by executed_on, case_id, level_no
