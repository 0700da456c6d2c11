-- The views users read over the persistent tables. Each status or action-kind test is a
-- macro of pipeline/warehouse/ledger_rules.py (sql/seeds/*.csv), so every view applies the same rule.
create or replace view cases as
with progress as (select * from case_levels_done(date '9999-12-31', date '9999-12-31'))
select r.*, coalesce(p.current_level, 0) as current_level, p.current_level_name, p.last_level_on,
       p.level_due_date, p.last_amount_demanded, coalesce(p.fees_total, 0) as fees_total,
       r.closed_on is null as is_open
from case_register r left join progress p using (case_id);
create or replace view aging as
with latest as (select * from open_receivables)
select as_of, currency,
       aging_bucket(is_overdue, days_overdue) as bucket,
       count(*) as receivables,
       cast(sum(open_amount) as decimal(18,2)) as open_amount
from latest group by all order by currency, min(days_overdue);
create or replace view contract_terminations as
select action_key, case_id, contract_id, customer_id, currency, executed_on,
       json_extract_string(details, '$.when') as mode,
       cast(json_extract_string(details, '$.effective_on') as date) as effective_on,
       cast(json_extract_string(details, '$.credit_note_amount') as decimal(18,2)) as credit_note_amount,
       json_extract_string(details, '$.credit_note_for_invoice_id') as credit_note_for_invoice_id,
       policy_id, policy_version, level_no
from action_ledger where ends_contract(action, status, details, false);
create or replace view collection_requests as
select action_key, case_id, contract_id, customer_id, currency, executed_on,
       cast(json_extract_string(details, '$.amount') as decimal(18,2)) as amount,
       json_extract_string(details, '$.payment_id') as payment_id,
       json_extract_string(details, '$.mandate_id') as mandate_id,
       policy_id, policy_version, level_no
from action_ledger where action = 'attempt_payment' and status_is_exported(status);
create or replace view field_updates as
select action_key, case_id, executed_on,
       json_extract_string(details, '$.target') as target,
       json_extract_string(details, '$.target_id') as target_id,
       json_extract_string(details, '$.field') as field,
       json_extract(details, '$.value') as value,
       policy_id, policy_version, level_no
from action_ledger where action = 'set_field' and status_is_exported(status);
create or replace view dispatch_review as
select action_key, case_id, customer_id, action, channel, executed_on, status, attempts, last_error,
       coalesce(review_reason, 'failed ' || attempts || ' time(s), will be retried') as reason,
       document_path, status_changed_on
from action_ledger
where status in ('needs_review', 'failed')
order by executed_on, action_key;
create or replace view fee_ledger as
select action_key, case_id, contract_id, customer_id, currency, level_no, level_name, executed_on, fee
from action_ledger where fee <> 0 and status_is_done(status);
