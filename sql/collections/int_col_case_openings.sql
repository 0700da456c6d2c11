-- Collection cases that open on $as_of: failures of today that belong to no case still
-- open, on a contract whose policy version in force today has collection steps for the
-- failure type, for a customer not excluded from dunning, while the money is open. The
-- failure is routed like a dunning case: on its invoice, or for a failure bound to no
-- invoice on the contract's oldest open receivable (nothing open: nothing to collect).
-- Per-mandate counting puts the day's failures of one mandate and type into one case
-- `cm-<mandate>-<type>-<yyyymmdd>`; otherwise each failure is a case `cc-<payment>`.
-- The case keeps today's policy version for its whole life.
with attached as (
    select payment_id
    from int_col_case_payments
    where case_id not in (select case_id from int_col_case_closures)
),

todays_failures as (
    select *
    from int_col_failures
    where failed_on = $as_of
      and payment_id not in (select payment_id from attached)
),

routed as (
    select f.*, r.policy_id, r.policy_version, r.routed_by, pc.counting as type_counting
    from todays_failures f
    left join int_open_receivables o on o.invoice_id = f.invoice_id
    left join int_contract_balances b on b.contract_id = f.contract_id
    join int_routed_contracts r
      on r.contract_id = f.contract_id
     and r.invoice_id = case when f.invoice_id is null then b.oldest_invoice_id else o.invoice_id end
    join policy_collections pc on pc.policy_version = r.policy_version and pc.failure_type = f.failure_type
    join stg_customers cu on cu.customer_id = f.customer_id
    where not cu.dunning_disabled
),

keyed as (
    select *,
           case when type_counting = 'per_mandate' and mandate_id is not null
                then 'per_mandate' else 'per_transaction' end as counting
    from routed
),

final as (
    select case when counting = 'per_mandate'
                    then 'cm-' || mandate_id || '-' || failure_type || '-' || strftime(cast($as_of as date), '%Y%m%d')
                else 'cc-' || payment_id end as case_id,
           'collection' as scope,
           case when counting = 'per_mandate' then mandate_id else payment_id end as target_id,
           arg_min(contract_id, payment_id) as contract_id,
           arg_min(customer_id, payment_id) as customer_id,
           arg_min(currency, payment_id) as currency,
           arg_min(policy_id, payment_id) as policy_id,
           arg_min(policy_version, payment_id) as policy_version,
           arg_min(routed_by, payment_id) as routed_by,
           cast($as_of as date) as opened_on,
           failure_type, counting,
           list(payment_id order by payment_id) as payment_ids
    from keyed
    group by all
)

select * from final
