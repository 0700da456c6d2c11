-- The failed-collection exports and checks; they read the staged inputs, so they are created
-- after ingestion (pipeline/failed_collections/reference.py load_reference).
create or replace view mandate_changes as
select action_key, case_id, contract_id, customer_id, executed_on,
       json_extract_string(details, '$.mandate_id') as mandate_id,
       json_extract_string(details, '$.status') as change,
       cast(json_extract_string(details, '$.block_account') as boolean) as block_account,
       json_extract_string(details, '$.payment_id') as payment_id,
       json_extract_string(details, '$.reason_code') as reason_code,
       policy_id, policy_version, level_no as step_no
from action_ledger where action = 'change_mandate' and status_is_exported(status);
create or replace view unsettled_collections as
with last_rows as (
    select case_id, arg_max(principal, (executed_on, level_no, action_key)) as outstanding,
           arg_max(fees_total, (executed_on, level_no, action_key)) as admin_charges,
           arg_max(amount_demanded, (executed_on, level_no, action_key)) as amount_demanded,
           arg_max(details, (executed_on, level_no, action_key)) as details,
           max(level_no) as last_step
    from action_ledger
    where scope = 'collection' and status_is_done(status)
    group by case_id
)
select r.case_id, r.contract_id, r.customer_id, r.currency, r.failure_type, r.counting,
       json_extract_string(l.details, '$.mandate_id') as mandate_id,
       json_extract_string(l.details, '$.payment_id') as payment_id,
       json_extract_string(l.details, '$.reason_code') as reason_code,
       r.opened_on, r.closed_on as unsettled_on, l.last_step, l.outstanding, l.admin_charges, l.amount_demanded,
       r.policy_id, r.policy_version
from case_register r
left join last_rows l using (case_id)
where r.scope = 'collection' and r.close_reason = 'unsettled';
create or replace view unknown_reason_codes as
with failures as (
    select p.payment_id, p.contract_id, k.customer_id, k.payment_method, p.status,
           case when p.status = 'failed' then p.booked_on else p.reversed_on end as failed_on,
           p.reason_code, p.amount, p.currency, p.mandate_id,
           reason_code_list(k.payment_method) as looked_up_in  -- as sql/collections/int_col_failures.sql
    from stg_payments p
    join stg_contracts k using (contract_id)
    where p.status = 'failed' or (p.status = 'reversed' and p.reason_code is not null)
),
known as (
    select 'sepa_reason_codes' as list, code from sepa_reason_codes
    union all
    select 'card_decline_codes', code from card_decline_codes
)
select * from failures f
where not exists (select 1 from known k
                  where k.list = f.looked_up_in
                    and k.code = normalized_reason_code(f.reason_code))
order by failed_on, payment_id;
