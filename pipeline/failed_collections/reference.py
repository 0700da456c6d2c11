"""Reference data and analyst views of failed collections.

The reason-code tables ship with the package as CSV files and are reloaded on
every run (`load_reference`): they are reference data, so a new release's list
replaces the old contents. The views are defined here because they read the
staged payments and the ledger; they are (re)created after ingestion.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
CODE_FILES = {"sepa_reason_codes": HERE / "sepa_reason_codes.csv",
              "card_decline_codes": HERE / "card_decline_codes.csv"}

CODES_DDL = """
create table if not exists sepa_reason_codes (
    code varchar primary key, name varchar not null, meaning varchar not null, failure_type varchar not null);
create table if not exists card_decline_codes (
    code varchar primary key, name varchar not null, meaning varchar not null, failure_type varchar not null);
"""

VIEWS_DDL = """
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
           -- the same rule as sql/collections/col_failures.sql
           case when lower(coalesce(k.payment_method, '')) in ('card', 'credit_card', 'debit_card')
                then 'card_decline_codes' else 'sepa_reason_codes' end as looked_up_in
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
                    and k.code = case when regexp_full_match(trim(f.reason_code), '[0-9]')
                                      then '0' || trim(f.reason_code) else upper(trim(f.reason_code)) end)
order by failed_on, payment_id;
"""


def load_reference(con) -> None:
    """Replace the reason-code tables with the shipped lists and (re)create the views.

    Needs the staged inputs (the views read stg_payments), so it runs after ingestion.
    """
    con.execute(CODES_DDL)
    for table, path in CODE_FILES.items():  # table names from the fixed dict above, the path bound
        con.execute(f"delete from {table}")
        con.execute(f"insert into {table} select code, name, meaning, failure_type "
                    "from read_csv(?, header = true, all_varchar = true)", [str(path)])
    con.execute(VIEWS_DDL)


# warnings naming a payment per run; the rest are counted in one line (the view lists them all)
MAX_WARNINGS = 20


def report_unknown_codes(con) -> list[tuple]:
    """Log a warning for each failed payment whose reason code is in neither list.

    Such a failure is handled as technical; the warning names the payment so someone
    can add the code (or correct the export) instead of it going unnoticed.
    """
    rows = con.execute("select payment_id, contract_id, reason_code, looked_up_in from unknown_reason_codes "
                       "order by payment_id").fetchall()
    for payment_id, contract_id, code, table in rows[:MAX_WARNINGS]:
        why = f"with reason code {code!r}, which is not in {table}" if code else "without a reason code"
        log.warning("payment %s (contract %s) failed %s: handled as a technical failure", payment_id, contract_id, why)
    if len(rows) > MAX_WARNINGS:
        log.warning("%d more failed payments with unknown reason codes: see the view unknown_reason_codes",
                    len(rows) - MAX_WARNINGS)
    return rows
