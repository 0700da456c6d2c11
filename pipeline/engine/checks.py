"""The product's promises as SQL: each query returns one row per violation, none when it holds.

A promise names the table it is about, says what it promises, and words each
violation so a person can find the row. The queries read the DuckDB state (and
the few temp tables the helpers below fill in the same connection); values are
bound (`$as_of`, ...), never formatted in. Dagster evaluates them as asset
checks (`dagster_project/checks.py`); a notebook or a test calls `violations`.

- `rows_accounted_for`: for each input table, rows read = rows loaded + rows
  quarantined (the reader's counts from `record_rows_read`, the rest counted here).
- `balances_reconcile`: per contract on a day, invoices - payments - credit notes
  visible that day = the contract's balance in `contract_balances`, and its open
  amount = the sum of its `open_receivables` (when that table holds the day).
- `action_keys_unique`: a key names one ledger row, and it is the deterministic key
  of that row (`<case>/L<level>/...`, `<case>/S<step>/...` for collections).
- `nothing_sent_twice`: at most one dispatch record per case, level and document
  action, and no email Message-ID on two actions.
- `sent_actions_have_documents`: every document sent on a day has its folder in the
  outbox (`list_outbox_folders` lists what is there).
- `dispatched_rows_unchanged`: a re-run (or a backfill) never changes or deletes a
  ledger row that records a dispatch (`snapshot_dispatched` before the run).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from pipeline.config.input_tables import INPUT_TABLES


@dataclass(frozen=True)
class Promise:
    name: str
    table: str  # the table the promise is about
    description: str
    sql: str  # one row per violation
    describe: Callable[[dict], str]  # one violation in words
    noun: str = "violation(s)"


def _money(value) -> str:
    return "none" if value is None else f"{value:.2f}"


# -- rows read = rows loaded + rows quarantined ----------------------------------------------------

ROWS_READ_TABLE = "input_rows_read"


def record_rows_read(con, counts: Iterable[tuple[str, int]]) -> None:
    """What the reader counted per input table (the ingestion's reports), for `rows_accounted_for`."""
    con.execute(f"create or replace temp table {ROWS_READ_TABLE} (table_name varchar, rows_read bigint)")
    rows = [(t, int(n)) for t, n in counts]
    if rows:
        con.executemany(f"insert into {ROWS_READ_TABLE} values (?, ?)", rows)


_LOADED = " union all ".join(
    f"select '{t.name}' as table_name, (select count(*) from stg_{t.name}) as rows_loaded" for t in INPUT_TABLES)

ROWS_ACCOUNTED_FOR = Promise(
    "rows_accounted_for", "stg_*",
    "For every input table, rows read = rows loaded + rows quarantined.",
    f"""with loaded as ({_LOADED}),
        quarantined as (select table_name, count(*) as rows_quarantined from quarantine group by table_name)
        select r.table_name, r.rows_read, l.rows_loaded, coalesce(q.rows_quarantined, 0) as rows_quarantined
        from {ROWS_READ_TABLE} r
        join loaded l using (table_name)
        left join quarantined q using (table_name)
        where ($table_name is null or r.table_name = $table_name)
          and r.rows_read <> l.rows_loaded + coalesce(q.rows_quarantined, 0)
        order by r.table_name""",
    lambda r: (f"{r['table_name']}: {r['rows_read']} rows read, {r['rows_loaded']} loaded + "
               f"{r['rows_quarantined']} quarantined = {r['rows_loaded'] + r['rows_quarantined']}"),
    "table(s) lost or gained rows")

# -- balances reconcile ----------------------------------------------------------------------------

BALANCES_RECONCILE = Promise(
    "balances_reconcile", "contract_balances",
    "Per contract on the day: invoices - payments - credit notes visible that day = the contract's "
    "balance, and its open amount = the sum of its open receivables.",
    """with invoices as (
            select contract_id,
                   coalesce(sum(amount) filter (where amount > 0), 0) as invoiced,
                   coalesce(sum(-amount) filter (where amount < 0), 0) as credited
            from stg_invoices
            where invoice_date <= $as_of and (voided_on is null or voided_on > $as_of)
            group by contract_id),
        payments as (
            select contract_id, sum(amount) as paid
            from stg_payments
            where booked_on <= $as_of and (status = 'settled' or (status = 'reversed' and reversed_on > $as_of))
            group by contract_id),
        balances as (select * from contract_balances where as_of = $as_of),
        receivables_day as (select max(as_of) as day from open_receivables),
        receivables as (
            select contract_id, sum(open_amount) as open_amount from open_receivables
            where as_of = $as_of group by contract_id),
        compared as (
            select c.contract_id, c.currency,
                   coalesce(i.invoiced, 0) as invoiced, coalesce(p.paid, 0) as paid,
                   coalesce(i.credited, 0) as credited,
                   coalesce(i.invoiced, 0) - coalesce(p.paid, 0) - coalesce(i.credited, 0) as expected,
                   coalesce(b.balance, 0) as balance, coalesce(b.open_amount, 0) as open_amount,
                   case when (select day from receivables_day) is null or (select day from receivables_day) = $as_of
                        then coalesce(r.open_amount, 0) end as receivables
            from stg_contracts c
            left join invoices i using (contract_id)
            left join payments p using (contract_id)
            left join balances b using (contract_id)
            left join receivables r using (contract_id))
        select * from compared
        where expected <> balance or receivables <> open_amount
        order by contract_id""",
    lambda r: (f"{r['contract_id']} ({r['currency']}): invoices {_money(r['invoiced'])} - payments "
               f"{_money(r['paid'])} - credit notes {_money(r['credited'])} = {_money(r['expected'])}, "
               f"balance {_money(r['balance'])}; open amount {_money(r['open_amount'])}, open receivables "
               f"{_money(r['receivables'])}"),
    "contract(s) do not reconcile")

# -- action keys unique ----------------------------------------------------------------------------

ACTION_KEYS_UNIQUE = Promise(
    "action_keys_unique", "action_ledger",
    "An action key names one ledger row, and it is that row's deterministic key "
    "(<case>/L<level>/<action>, <case>/S<step>/<action> for failed collections).",
    """with keyed as (
            select *, case_id || '/' || (case when scope = 'collection' then 'S' else 'L' end)
                      || level_no || '/' as key_prefix
            from action_ledger),
        duplicates as (
            select action_key, count(*) as rows, null as expected_prefix from keyed
            group by action_key having count(*) > 1),
        misnamed as (
            select action_key, 1 as rows, key_prefix as expected_prefix from keyed
            where not starts_with(action_key, key_prefix))
        select * from duplicates union all select * from misnamed
        order by action_key, expected_prefix nulls first""",
    lambda r: (f"{r['action_key']}: {r['rows']} rows" if r["expected_prefix"] is None
               else f"{r['action_key']}: not the key of its row (expected {r['expected_prefix']}...)"),
    "key(s) not unique")

# -- nothing sent twice ----------------------------------------------------------------------------

NOTHING_SENT_TWICE = Promise(
    "nothing_sent_twice", "action_ledger",
    "At most one dispatch record (sending, sent, failed, needs review, prepared) per case, level and "
    "document action, and no email Message-ID on two actions.",
    """with dispatched as (
            select * from action_ledger
            where status_is_dispatch_record(status) and action_is_document(action)
              and ($channels is null or list_contains($channels, channel))),
        per_level as (
            select case_id || ' level ' || level_no || ' ' || action as what, count(*) as records,
                   string_agg(action_key || ' (' || status || ')', ', ' order by action_key) as actions
            from dispatched group by case_id, level_no, action having count(*) > 1),
        per_message as (
            select 'message ' || provider_message_id as what, count(*) as records,
                   string_agg(action_key || ' (' || status || ')', ', ' order by action_key) as actions
            -- a Message-ID is one email; letters share their print batch's id
            from dispatched where provider_message_id is not null and channel = 'email'
            group by provider_message_id having count(*) > 1)
        select * from per_level union all select * from per_message order by what""",
    lambda r: f"{r['what']}: {r['records']} dispatch records: {r['actions']}",
    "document(s) sent more than once")

# -- every sent action has its document ------------------------------------------------------------

OUTBOX_FOLDERS_TABLE = "outbox_folders"


def list_outbox_folders(con, outbox: Path | str, days: Iterable[date]) -> None:
    """The document folders in the outbox for `days` (`<outbox>/<day>/<folder>/`), as the temp table
    `outbox_folders(document_path)` with paths relative to the outbox, as the ledger records them."""
    root = str(Path(outbox))
    con.execute(f"create or replace temp table {OUTBOX_FOLDERS_TABLE} (document_path varchar)")
    for day in sorted(set(days)):
        pattern = f"{root}/{day.isoformat()}/*/*"
        # a folder that exists but holds no file is no document either
        con.execute(f"""insert into {OUTBOX_FOLDERS_TABLE}
                        select distinct regexp_replace(substr(file, length(?) + 2), '/[^/]*$', '')
                        from glob(?)""", [root, pattern])


SENT_ACTIONS_HAVE_DOCUMENTS = Promise(
    "sent_actions_have_documents", "action_ledger",
    "Every document sent on the day has its folder of files in the outbox (the bytes that were sent).",
    f"""select action_key, channel, status, document_path
        from action_ledger
        where status_is_sent(status) and action_is_document(action) and dispatch_mode = 'live'
          and executed_on = $as_of
          and ($channels is null or list_contains($channels, channel))
          and (document_path is null
               or document_path not in (select document_path from {OUTBOX_FOLDERS_TABLE}))
        order by action_key""",
    lambda r: (f"{r['action_key']} ({r['channel']}, {r['status']}): "
               + ("no document recorded" if r["document_path"] is None
                  else f"no files in the outbox folder {r['document_path']}")),
    "sent document(s) without their files")

# -- the ledger never changes a dispatched row on a re-run -----------------------------------------

SNAPSHOT_TABLE = "dispatched_before"


def snapshot_dispatched(con) -> None:
    """Remember every ledger row that records a dispatch, before a run (`dispatched_rows_unchanged`)."""
    con.execute(f"create or replace temp table {SNAPSHOT_TABLE} as "
                "select * from action_ledger where status_is_dispatch_record(status)")


def _changes(r: dict) -> str:
    before = json.loads(r["before"], parse_float=Decimal)
    if r["after"] is None:
        return f"{r['action_key']} ({before.get('status')}): deleted"
    after = json.loads(r["after"], parse_float=Decimal)
    diff = ", ".join(f"{k} {before.get(k)} -> {after.get(k)}" for k in before if before.get(k) != after.get(k))
    return f"{r['action_key']} ({before.get('status')}): changed {diff}"


DISPATCHED_ROWS_UNCHANGED = Promise(
    "dispatched_rows_unchanged", "action_ledger",
    "A run never changes or deletes a ledger row that records a dispatch (sending, sent, failed, needs "
    "review, prepared): re-running a day or a backfill keeps what really happened.",
    f"""with changed as (select * from {SNAPSHOT_TABLE} except all select * from action_ledger)
        select c.action_key, to_json(c) as before, case when a.action_key is not null then to_json(a) end as after
        from changed c left join action_ledger a using (action_key)
        order by c.action_key""",
    _changes,
    "dispatched row(s) changed")


PROMISES: dict[str, Promise] = {p.name: p for p in (
    ROWS_ACCOUNTED_FOR, BALANCES_RECONCILE, ACTION_KEYS_UNIQUE, NOTHING_SENT_TWICE,
    SENT_ACTIONS_HAVE_DOCUMENTS, DISPATCHED_ROWS_UNCHANGED)}

_PARAM = re.compile(r"\$([a-z_]+)")


def violations(con, name: str, **params) -> list[dict]:
    """The rows breaking promise `name` (empty: it holds). Parameters the query names and the caller
    leaves out are bound as NULL (`$channels`: every channel, `$table_name`: every table)."""
    promise = PROMISES[name]
    wanted = set(_PARAM.findall(promise.sql))
    cur = con.execute(promise.sql, {k: params.get(k) for k in wanted})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def failure_message(name: str, rows: list[dict], limit: int = 5) -> str | None:
    """`<n> <noun>: <first violations>; ...` or None when the promise holds."""
    if not rows:
        return None
    promise = PROMISES[name]
    shown = "; ".join(promise.describe(r) for r in rows[:limit])
    more = f"; and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"{len(rows)} {promise.noun}: {shown}{more}"


# Re-evaluated before anything of a day is sent, by every path that sends (the daily documents
# step and the sharded documents job): the state step's blocking promises, minus the one that needs
# the state step's own snapshot (`dispatched_rows_unchanged`).
SEND_GUARDS = ("balances_reconcile", "action_keys_unique", "nothing_sent_twice")


def send_guard_failures(con, as_of: date) -> list[str]:
    """What stops the sending of `as_of`'s documents: one message per broken promise (empty: send).

    A day that was never planned has no balances of its own to reconcile, so only the ledger's
    promises are evaluated for it (dispatch then sends what earlier days planned)."""
    planned = con.execute("select count(*) from run_log where as_of = ?", [as_of]).fetchall()[0][0]
    guards = SEND_GUARDS if planned else tuple(n for n in SEND_GUARDS if n != "balances_reconcile")
    return [m for m in (failure_message(n, violations(con, n, as_of=as_of)) for n in guards) if m]
