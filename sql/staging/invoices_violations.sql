-- Business rules for invoices; contracts are already staged.
-- Every copy of an id counts, also one already quarantined by a type or value rule
-- (`quarantined_keys`): the copies that passed are then quarantined too.
with duplicate_ids as (
    select invoice_id from (select invoice_id from typed union all select invoice_id from quarantined_keys)
    group by invoice_id having count(*) > 1
),

with_contract as (
    select t.*, c.customer_id as contract_customer_id, c.currency as contract_currency,
           c.contract_id is not null as contract_known
    from typed t left join stg_contracts c on c.contract_id = t.contract_id
),

duplicates as (
    select _source_file, _source_row, 'duplicate_id' as rule, 'invoice_id' as column_name,
           invoice_id as value, 'invoice_id appears more than once; every copy is quarantined' as message,
           1 as priority
    from typed where invoice_id in (select invoice_id from duplicate_ids)
),

unknown_contracts as (
    select _source_file, _source_row, 'unknown_contract', 'contract_id', contract_id,
           'no loaded contract has this id', 2
    from with_contract where not contract_known
),

customer_mismatches as (
    select _source_file, _source_row, 'customer_mismatch', 'customer_id', customer_id,
           'the contract belongs to customer ' || contract_customer_id, 3
    from with_contract where contract_known and customer_id <> contract_customer_id
),

currency_mismatches as (
    select _source_file, _source_row, 'currency_mismatch', 'currency', currency,
           'the contract is billed in ' || contract_currency, 3
    from with_contract where contract_known and currency <> contract_currency
),

due_before_issue as (
    select _source_file, _source_row, 'due_before_invoice_date', 'due_date', cast(due_date as varchar),
           'due_date is before invoice_date ' || cast(invoice_date as varchar), 4
    from typed where due_date < invoice_date
),

final as (
    select * from duplicates
    union all select * from unknown_contracts
    union all select * from customer_mismatches
    union all select * from currency_mismatches
    union all select * from due_before_issue
)

select * from final
