-- What can change from one day of a range ($start..$end) to the next other than the passing of
-- days: every input row dated inside the range, as (changed_on, customer_id). A day's models
-- compare the day with these dates (`invoice_date <= $as_of`, `voided_on > $as_of`, `booked_on`,
-- `reversed_on`, a suspension's `to_date`, a confirmation's `confirmed_on`, a
-- policy version's `effective_from` and `effective_to`), so each such row can change its
-- customer's results on exactly that day. customer_id NULL: every customer (the end of a global
-- suspension, a policy version taking or losing effect). changed_on NULL: every day of the range (a customer
-- whose state already holds rows dated in the range that the range does not write itself, and
-- customers sharing a mandate: failed collections count steps per mandate across them).
-- pipeline/warehouse/range_days.py reads it; the rest of what makes a day differ comes from the
-- day's own results (range_next_changes).
with invoice_days as (
    select customer_id, invoice_date as changed_on from stg_invoices
    union all
    select customer_id, voided_on from stg_invoices where voided_on is not null
),

payment_days as (
    select k.customer_id, d.changed_on
    from (select contract_id, booked_on as changed_on from stg_payments
          union all
          select contract_id, reversed_on from stg_payments where reversed_on is not null) d
    join stg_contracts k using (contract_id)
),

-- a suspension ends on to_date (the day dunning resumes). Its start changes nothing for a customer
-- the day does not recompute anyway: a suspension only holds back what would happen, and nothing
-- would (a customer recomputed that day sees it; range_next_changes waits for its end)
suspension_bounds as (
    select scope, target_id, to_date as changed_on from stg_suspensions where to_date is not null
),

suspension_days as (
    select cast(null as varchar) as customer_id, changed_on from suspension_bounds where scope = 'global'
    union all
    select s.target_id, s.changed_on from suspension_bounds s where s.scope = 'customer'
    union all
    select k.customer_id, s.changed_on
    from suspension_bounds s join stg_contracts k on s.scope = 'contract' and k.contract_id = s.target_id
    union all
    select i.customer_id, s.changed_on
    from suspension_bounds s join stg_invoices i on s.scope = 'invoice' and i.invoice_id = s.target_id
),

-- a backfill's or simulation's manual reminder carries the confirmation of the live one a person
-- received (apply_day): the live ledger's (main) confirmations are dated inputs of the range too
confirmation_days as (
    select customer_id, confirmed_on as changed_on from action_ledger where confirmed_on is not null
    union
    select customer_id, confirmed_on from main.action_ledger where confirmed_on is not null
),

policy_days as (
    select cast(null as varchar) as customer_id, effective_from as changed_on from policy_versions
    union all
    select null, effective_to from policy_versions where effective_to is not null
),

-- state the range finds already written for its own days (kept records of a dispatch)
state_in_range as (
    select customer_id, cast(null as date) as changed_on from action_ledger where executed_on >= $start
    union all
    select customer_id, null from case_register where opened_on >= $start or closed_on >= $start
),

shared_mandates as (
    select k.customer_id, cast(null as date) as changed_on
    from stg_payments p
    join stg_contracts k using (contract_id)
    where p.mandate_id in (select p2.mandate_id
                           from stg_payments p2 join stg_contracts k2 using (contract_id)
                           where p2.mandate_id is not null
                           group by p2.mandate_id
                           having count(distinct k2.customer_id) > 1)
),

final as (
    select distinct changed_on, customer_id
    from (select * from invoice_days
          union all by name select * from payment_days
          union all by name select * from suspension_days
          union all by name select * from confirmation_days
          union all by name select * from policy_days
          union all by name select * from state_in_range
          union all by name select * from shared_mandates)
    where changed_on is null or changed_on between $start and $end
)

select * from final
