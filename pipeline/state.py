"""The persistent tables: what one day hands to the next, and what analysts query.

Only two things are carried from day to day: the case register and the action
ledger. Everything else (balances, open receivables) is recomputed from the
inputs for any date. Column documentation lives in `pipeline.catalog` and is
applied as COMMENT ON after every run.
"""

from __future__ import annotations

from datetime import date

CONTRACT_BALANCES_DDL = """
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
"""

STATE_DDL = """
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
""" + CONTRACT_BALANCES_DDL + """create table if not exists open_receivables (
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
-- backfills (pipeline/backfill.py): every live day reads the latest one's catch-up choice
create table if not exists backfill_runs (
    backfill_id varchar primary key,
    first_day date not null,
    last_day date not null,
    policy_version varchar,
    catch_up varchar not null,
    actions_before integer not null,
    actions_after integer not null,
    differences integer not null
);
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
create or replace view cases as
with levels as (
    select case_id, level_no, any_value(level_name) as level_name, any_value(executed_on) as executed_on,
           any_value(level_due_date) as level_due_date, sum(fee) as fee, max(amount_demanded) as amount_demanded
    from action_ledger where status not in ('skipped', 'held')
    group by case_id, level_no
),
progress as (
    select case_id, max(level_no) as current_level, arg_max(level_name, level_no) as current_level_name,
           arg_max(executed_on, level_no) as last_level_on, arg_max(level_due_date, level_no) as level_due_date,
           arg_max(amount_demanded, level_no) as last_amount_demanded, sum(fee) as fees_total
    from levels group by case_id
)
select r.*, coalesce(p.current_level, 0) as current_level, p.current_level_name, p.last_level_on,
       p.level_due_date, p.last_amount_demanded, coalesce(p.fees_total, 0) as fees_total,
       r.closed_on is null as is_open
from case_register r left join progress p using (case_id);
create or replace view aging as
with latest as (select * from open_receivables)
select as_of, currency,
       case when not is_overdue then 'not due'
            when days_overdue <= 30 then '1-30'
            when days_overdue <= 60 then '31-60'
            when days_overdue <= 90 then '61-90'
            else 'over 90' end as bucket,
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
from action_ledger where action = 'end_contract' and status = 'recorded';
create or replace view collection_requests as
select action_key, case_id, contract_id, customer_id, currency, executed_on,
       cast(json_extract_string(details, '$.amount') as decimal(18,2)) as amount,
       json_extract_string(details, '$.payment_id') as payment_id,
       json_extract_string(details, '$.mandate_id') as mandate_id,
       policy_id, policy_version, level_no
from action_ledger where action = 'attempt_payment' and status = 'recorded';
create or replace view field_updates as
select action_key, case_id, executed_on,
       json_extract_string(details, '$.target') as target,
       json_extract_string(details, '$.target_id') as target_id,
       json_extract_string(details, '$.field') as field,
       json_extract(details, '$.value') as value,
       policy_id, policy_version, level_no
from action_ledger where action = 'set_field' and status = 'recorded';
create or replace view dispatch_review as
select action_key, case_id, customer_id, action, channel, executed_on, status, attempts, last_error,
       coalesce(review_reason, 'failed ' || attempts || ' time(s), will be retried') as reason,
       document_path, status_changed_on
from action_ledger
where status in ('needs_review', 'failed')
order by executed_on, action_key;
create or replace view fee_ledger as
select action_key, case_id, contract_id, customer_id, currency, level_no, level_name, executed_on, fee
from action_ledger where fee <> 0;
"""


def ensure_state(con) -> None:
    con.execute(STATE_DDL)
    _unkey_contract_balances(con)
    from pipeline.analytics import ensure_analytics  # the analyst's views build on these tables

    ensure_analytics(con)


def _unkey_contract_balances(con) -> None:
    """Databases made by earlier releases keyed contract_balances on (as_of, contract_id).

    Keeping that index up to date took a tenth of a second per day written at 100k contracts,
    and nothing looks a row up by it: a day's rows are deleted (rewind) and inserted whole, one
    per contract, so the key holds by construction. The table is copied once without it.
    """
    keyed = con.execute(
        """select count(*) from duckdb_constraints()
           where database_name = current_database() and schema_name = current_schema()
             and table_name = 'contract_balances' and constraint_type = 'PRIMARY KEY'"""
    ).fetchall()[0][0]
    if keyed:
        con.execute("alter table contract_balances rename to contract_balances_keyed")
        con.execute(CONTRACT_BALANCES_DDL)
        con.execute("insert into contract_balances select * from contract_balances_keyed order by as_of, contract_id")
        con.execute("drop table contract_balances_keyed")


def rewind_to(con, as_of: date) -> None:
    """Undo what earlier runs computed for `as_of` and later, except what was dispatched.

    Re-running a day must give the same state and send nothing new: the day's
    unsent rows are recomputed with the same deterministic keys, while rows
    already dispatched stay as the record of what really happened.
    """
    # `rendered` documents were never handed to anyone: they are recomputed (and their
    # outbox folder rewritten with the same key). Rows `held` by the fresh-data gate are
    # placeholders for their day only: the next run plans those levels again.
    con.execute(
        """delete from action_ledger
           where (executed_on >= ? and status in ('planned', 'rendered', 'skipped', 'recorded'))
              or status = 'held'""",
        [as_of]
    )
    con.execute(
        """delete from case_register c where opened_on >= ?
           and not exists (select 1 from action_ledger l where l.case_id = c.case_id)""",
        [as_of],
    )
    con.execute("update case_register set closed_on = null, close_reason = null where closed_on >= ?", [as_of])
    con.execute("delete from contract_balances where as_of >= ?", [as_of])


class ConfirmError(ValueError):
    """A confirmation that does not fit the ledger; the message says why."""


def confirm_manual(con, action_key: str, dispatched_on: date) -> None:
    """Record that a person sent a prepared manual document on `dispatched_on`.

    Later levels of its case were waiting for this; they are delayed by the days
    between the document's creation and this date.
    """
    rows = con.execute(
        "select channel, status, executed_on from action_ledger where action_key = ?", [action_key]
    ).fetchall()
    if not rows:
        raise ConfirmError(f"no action {action_key!r} in the ledger")
    channel, status, executed_on = rows[0]
    if channel != "manual" or status != "prepared":
        raise ConfirmError(f"{action_key} is on channel {channel} in status {status}; only prepared manual "
                           "documents can be confirmed")
    if dispatched_on < executed_on:
        raise ConfirmError(f"{action_key} was prepared on {executed_on}; it cannot have been sent on {dispatched_on}")
    con.execute(
        """update action_ledger set status = 'sent', confirmed_on = ?, status_changed_on = ?
           where action_key = ?""",
        [dispatched_on, dispatched_on, action_key],
    )


def resolve_review(con, action_key: str, outcome: str, on: date) -> None:
    """A person settles an action in review: it was `delivered` (checked in the mailbox or the
    relay's log) or must be sent again (`resend`: rendered again, sent by the next dispatch)."""
    rows = con.execute("select status from action_ledger where action_key = ?", [action_key]).fetchall()
    if not rows:
        raise ConfirmError(f"no action {action_key!r} in the ledger")
    if rows[0][0] not in ("needs_review", "failed"):
        raise ConfirmError(f"{action_key} is {rows[0][0]}; only actions in review (needs_review or failed) "
                           "can be resolved")
    if outcome not in ("delivered", "resend"):
        raise ConfirmError(f"outcome must be delivered or resend, not {outcome!r}")
    con.execute(
        """update action_ledger set status = ?, review_reason = null, status_changed_on = ?,
                  attempts = case when ? = 'resend' then 0 else attempts end
           where action_key = ?""",
        ["sent" if outcome == "delivered" else "rendered", on, outcome, action_key],
    )


def apply_day(con, as_of: date, dispatch_mode: str, *, held: bool = False,
              open_receivables: bool = True) -> dict[str, int]:
    """Write the day's decisions (temp tables from the models) into the persistent state.

    `held`: the fresh-data gate stopped dispatch today. The day's actions are written as
    `held` (visible, but neither sent, exported nor counted as done), so the next run with
    fresh data decides them again instead of acting on stale payments.
    """
    closed = con.execute(
        """update case_register r set closed_on = ?, close_reason = c.close_reason
           from int_case_closures c where r.case_id = c.case_id""",
        [as_of],
    ).fetchall()[0][0]
    opened = con.execute(
        """insert into case_register by name
           select case_id, scope, target_id, contract_id, customer_id, currency, policy_id,
                  policy_version, opened_on, routed_by
           from int_case_openings
           on conflict do nothing"""
    ).fetchall()[0][0]
    # failed collections: cases close (settled, or unsettled after the last step) and open alike
    closed += con.execute(
        """update case_register r set closed_on = ?, close_reason = c.close_reason
           from col_case_closures c where r.case_id = c.case_id""",
        [as_of],
    ).fetchall()[0][0]
    opened += con.execute(
        """insert into case_register by name
           select case_id, scope, target_id, contract_id, customer_id, currency, policy_id,
                  policy_version, opened_on, routed_by, failure_type, counting
           from col_case_openings
           on conflict do nothing"""
    ).fetchall()[0][0]
    # a backfill records what would have happened; nothing of it is sent or exported (a move to
    # another policy is no export but the case's own transition, so it holds in a backfill too)
    planned = con.execute(
        """insert into action_ledger by name
           select * exclude (status),
                  case when ? then 'held'
                       when ? = 'backfill' and status <> 'skipped' and action <> 'move_to_policy'
                       then 'not_dispatched' else status end as status,
                  ? as dispatch_mode, ? as status_changed_on
           from (select * from planned_actions union all by name select * from planned_collection_actions)
           order by action_key
           on conflict do nothing""",
        [held, dispatch_mode, dispatch_mode, as_of],
    ).fetchall()[0][0]
    del planned  # a re-run inserts nothing new; the summary below describes the day either way
    # a case handed to another policy closes today; the next case for its item opens under that policy
    moved = con.execute(
        """update case_register set closed_on = ?, close_reason = 'moved_to_policy'
           where closed_on is null and case_id in (
               select case_id from action_ledger where executed_on = ? and action = 'move_to_policy'
                 and status = 'recorded')""",
        [as_of, as_of],
    ).fetchall()[0][0]
    # a collection case whose last step ran today and does not wait (notify, change the mandate)
    # ends unsettled today; not while held: a held step is decided again by the next run
    if not held:
        moved += con.execute(
            """update case_register set closed_on = ?, close_reason = 'unsettled'
               where closed_on is null and case_id in (select case_id from col_steps_due where ends_case)""",
            [as_of],
        ).fetchall()[0][0]
    counts = con.execute(
        """select count(*) filter (where status not in ('skipped', 'held')), count(*) filter (where status = 'skipped')
           from action_ledger where executed_on = ?""",
        [as_of],
    ).fetchall()[0]
    con.execute("insert into contract_balances select * from int_contract_balances")
    if open_receivables:
        # replaced whole: deleting every row of an indexed table costs seconds at scale, this does not
        con.execute("create or replace table open_receivables as select * from int_open_receivables")
    return {"cases_opened": opened, "cases_closed": closed + moved, "actions": counts[0], "levels_skipped": counts[1]}
