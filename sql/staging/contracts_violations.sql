-- Business rules for contracts; customers are already staged.
-- Every copy of an id counts, also one already quarantined by a type or value rule
-- (`quarantined_keys`): the copies that passed are then quarantined too.
with duplicate_ids as (
    select contract_id from (select contract_id from typed union all select contract_id from quarantined_keys)
    group by contract_id having count(*) > 1
),

duplicates as (
    select _source_file, _source_row, 'duplicate_id' as rule, 'contract_id' as column_name,
           contract_id as value, 'contract_id appears more than once; every copy is quarantined' as message,
           1 as priority
    from typed where contract_id in (select contract_id from duplicate_ids)
),

unknown_customers as (
    select _source_file, _source_row, 'unknown_customer', 'customer_id', customer_id,
           'no loaded customer has this id', 2
    from typed t where not exists (select 1 from stg_customers c where c.customer_id = t.customer_id)
),

bad_statuses as (
    select _source_file, _source_row, 'invalid_value', 'status', status,
           'allowed: active, ended', 3
    from typed where status not in ('active', 'ended')
),

bad_currencies as (
    select _source_file, _source_row, 'invalid_currency', 'currency', currency,
           'expected an ISO 4217 code like EUR', 3
    from typed where not regexp_full_match(currency, '[A-Z]{3}')
),

unknown_policies as (
    select _source_file, _source_row, 'unknown_policy', 'policy', policy,
           'no policy has this handle; allowed: ' || array_to_string($policy_handles, ', '), 4
    from typed where policy is not null and not list_contains($policy_handles, policy)
),

bad_periods as (
    select _source_file, _source_row, 'ended_before_started', 'ended_on', cast(ended_on as varchar),
           'ended_on is before started_on', 5
    from typed where ended_on < started_on
),

final as (
    select * from duplicates
    union all select * from unknown_customers
    union all select * from bad_statuses
    union all select * from bad_currencies
    union all select * from unknown_policies
    union all select * from bad_periods
)

select * from final
