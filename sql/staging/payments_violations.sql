-- Business rules for payments; contracts and invoices are already staged.
-- Every copy of an id counts, also one already quarantined by a type or value rule
-- (`quarantined_keys`): the copies that passed are then quarantined too.
with duplicate_ids as (
    select payment_id from (select payment_id from typed union all select payment_id from quarantined_keys)
    group by payment_id having count(*) > 1
),

with_refs as (
    select t.*, c.currency as contract_currency, c.contract_id is not null as contract_known,
           i.contract_id as invoice_contract_id, i.invoice_id is not null as invoice_known
    from typed t
    left join stg_contracts c on c.contract_id = t.contract_id
    left join stg_invoices i on i.invoice_id = t.invoice_id
),

duplicates as (
    select _source_file, _source_row, 'duplicate_id' as rule, 'payment_id' as column_name,
           payment_id as value, 'payment_id appears more than once; every copy is quarantined' as message,
           1 as priority
    from typed where payment_id in (select payment_id from duplicate_ids)
),

unknown_contracts as (
    select _source_file, _source_row, 'unknown_contract', 'contract_id', contract_id,
           'no loaded contract has this id', 2
    from with_refs where not contract_known
),

currency_mismatches as (
    select _source_file, _source_row, 'currency_mismatch', 'currency', currency,
           'the contract is billed in ' || contract_currency, 3
    from with_refs where contract_known and currency <> contract_currency
),

unknown_invoices as (
    select _source_file, _source_row, 'unknown_invoice', 'invoice_id', invoice_id,
           'no loaded invoice has this id', 3
    from with_refs where invoice_id is not null and not invoice_known
),

invoice_contract_mismatches as (
    select _source_file, _source_row, 'invoice_contract_mismatch', 'invoice_id', invoice_id,
           'the invoice belongs to contract ' || invoice_contract_id, 3
    from with_refs where invoice_known and invoice_contract_id <> contract_id
),

bad_statuses as (
    select _source_file, _source_row, 'invalid_value', 'status', status,
           'allowed: settled, failed, reversed', 4
    from typed where status not in ('settled', 'failed', 'reversed')
),

non_positive as (
    select _source_file, _source_row, 'non_positive_amount', 'amount', cast(amount as varchar),
           'a payment amount must be positive; refunds are credit notes', 4
    from typed where amount <= 0
),

reversals_without_date as (
    select _source_file, _source_row, 'missing_reversed_on', 'reversed_on', null,
           'a reversed payment needs reversed_on', 5
    from typed where status = 'reversed' and reversed_on is null
),

reversed_before_booked as (
    select _source_file, _source_row, 'reversed_before_booked', 'reversed_on', cast(reversed_on as varchar),
           'reversed_on is before booked_on ' || cast(booked_on as varchar), 5
    from typed where reversed_on < booked_on
),

final as (
    select * from duplicates
    union all select * from unknown_contracts
    union all select * from currency_mismatches
    union all select * from unknown_invoices
    union all select * from invoice_contract_mismatches
    union all select * from bad_statuses
    union all select * from non_positive
    union all select * from reversals_without_date
    union all select * from reversed_before_booked
)

select * from final
