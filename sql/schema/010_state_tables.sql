-- The persistent tables: what one day hands to the next, and what analysts query.
-- Only the case register and the action ledger are carried from day to day; balances and
-- open receivables are recomputed from the inputs for any date. Idempotent: run on every
-- start (pipeline.warehouse.state.ensure_state), after the ledger-rule macros (pipeline/warehouse/ledger_rules.py).
-- Column documentation: sql/schema/_tables.yml.
create table if not exists case_register (
    case_id varchar primary key,
    scope varchar not null,
    target_id varchar not null,
    contract_id varchar not null,
    customer_id varchar not null,
    currency varchar not null,
    policy_id varchar not null,
    policy_version varchar not null,
    opened_on date not null,
    closed_on date,
    close_reason varchar,
    routed_by varchar
);
alter table case_register add column if not exists routed_by varchar;
-- failed collections (scope 'collection'): the failure type and how its steps are counted
alter table case_register add column if not exists failure_type varchar;
alter table case_register add column if not exists counting varchar;
-- champion/challenger: the experiment that chose the case's policy and the arm it fell in
alter table case_register add column if not exists experiment varchar;
alter table case_register add column if not exists arm varchar;
create table if not exists action_ledger (
    action_key varchar primary key,
    case_id varchar not null,
    scope varchar not null,
    target_id varchar not null,
    contract_id varchar not null,
    customer_id varchar not null,
    currency varchar not null,
    policy_id varchar not null,
    policy_version varchar not null,
    level_no integer not null,
    level_name varchar not null,
    action varchar not null,
    channel varchar,
    template varchar,
    scheduled_on date,
    executed_on date not null,
    level_due_date date,
    followed_invoice_id varchar,
    days_overdue integer,
    principal decimal(18,2) not null,
    fee decimal(18,2) not null,
    fees_total decimal(18,2) not null,
    interest decimal(18,2) not null,
    amount_demanded decimal(18,2) not null,
    status varchar not null,
    dispatch_mode varchar not null,
    document_path varchar,
    provider_message_id varchar,
    status_changed_on date,
    confirmed_on date,
    details varchar,
    routed_by varchar
);
alter table action_ledger add column if not exists confirmed_on date;
alter table action_ledger add column if not exists details varchar;
alter table action_ledger add column if not exists routed_by varchar;
alter table action_ledger add column if not exists attempts integer default 0;
alter table action_ledger add column if not exists last_error varchar;
alter table action_ledger add column if not exists review_reason varchar;
alter table action_ledger add column if not exists demands_due_by date;

create table if not exists contract_balances (
    as_of date not null,
    contract_id varchar not null,
    customer_id varchar not null,
    currency varchar not null,
    open_amount decimal(18,2) not null,
    overdue_amount decimal(18,2) not null,
    unapplied_credit decimal(18,2) not null,
    balance decimal(18,2) not null,
    open_receivables bigint not null,
    overdue_receivables bigint not null,
    oldest_invoice_id varchar,
    oldest_due_date date,
    oldest_days_overdue integer
);
create table if not exists open_receivables (
    as_of date not null,
    invoice_id varchar not null,
    invoice_number varchar not null,
    contract_id varchar not null,
    customer_id varchar not null,
    currency varchar not null,
    invoice_date date not null,
    due_date date not null,
    scheduled_payment_on date,
    dunning_paused boolean not null,
    amount decimal(18,2) not null,
    open_amount decimal(18,2) not null,
    is_overdue boolean not null,
    days_overdue integer not null
);
-- backfills (pipeline/engine/backfill.py): every live day reads the latest one's catch-up choice
create table if not exists backfill_runs (
    backfill_id varchar primary key,
    first_day date not null,
    last_day date not null,
    policy_version varchar,
    catch_up varchar not null,
    actions_before integer not null,
    actions_after integer not null,
    differences integer not null,
    sequence_no integer
);
-- the order backfills were run in (the latest run's catch-up choice is the one in force). Databases
-- made before the column: their backfills are numbered in the order their rows were inserted
alter table backfill_runs add column if not exists sequence_no integer;
update backfill_runs set sequence_no = r.n
from (select backfill_id,
             (select coalesce(max(sequence_no), 0) from backfill_runs) + row_number() over (order by rowid) as n
      from backfill_runs where sequence_no is null) r
where backfill_runs.backfill_id = r.backfill_id;
create table if not exists backfill_differences (
    backfill_id varchar not null,
    kind varchar not null,
    action_key varchar not null,
    case_id varchar not null,
    level_no integer not null,
    action varchar not null,
    before_status varchar,
    before_executed_on date,
    after_executed_on date,
    before_amount decimal(18,2),
    after_amount decimal(18,2),
    before_fee decimal(18,2),
    after_fee decimal(18,2),
    primary key (backfill_id, action_key)
);
create table if not exists run_log (
    as_of date not null,
    run_number integer not null,
    mode varchar not null,
    cases_opened integer not null,
    cases_closed integer not null,
    actions_planned integer not null,
    levels_skipped integer not null,
    documents_sent integer not null,
    dispatch_blocked varchar,
    primary key (as_of, run_number)
);
alter table run_log add column if not exists dispatch_blocked varchar;
