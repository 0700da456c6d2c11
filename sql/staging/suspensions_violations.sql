-- Business rules for suspensions; customers, contracts and invoices are already staged.
with bad_scopes as (
    select _source_file, _source_row, 'invalid_value' as rule, 'scope' as column_name, scope as value,
           'allowed: global, customer, contract, invoice' as message, 1 as priority
    from typed where scope not in ('global', 'customer', 'contract', 'invoice')
),

missing_targets as (
    select _source_file, _source_row, 'missing_value', 'target_id', null,
           'a ' || scope || ' suspension needs target_id', 2
    from typed where scope in ('customer', 'contract', 'invoice') and target_id is null
),

unknown_targets as (
    select _source_file, _source_row, 'unknown_target', 'target_id', target_id,
           'no loaded ' || scope || ' has this id', 3
    from typed t
    where (scope = 'customer' and not exists (select 1 from stg_customers c where c.customer_id = t.target_id))
       or (scope = 'contract' and not exists (select 1 from stg_contracts c where c.contract_id = t.target_id))
       or (scope = 'invoice' and not exists (select 1 from stg_invoices i where i.invoice_id = t.target_id))
),

empty_periods as (
    select _source_file, _source_row, 'empty_period', 'to_date', cast(to_date as varchar),
           'to_date (the day dunning resumes) must be after from_date', 4
    from typed where to_date <= from_date
),

final as (
    select * from bad_scopes
    union all select * from missing_targets
    union all select * from unknown_targets
    union all select * from empty_periods
)

select * from final
