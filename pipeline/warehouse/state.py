"""The persistent tables: what one day hands to the next, and what analysts query.

Only two things are carried from day to day: the case register and the action
ledger. Everything else (balances, open receivables) is recomputed from the
inputs for any date. The DDL is in the numbered files of `sql/schema/`; column
documentation lives in `pipeline.warehouse.catalog` and is applied as COMMENT ON after every run.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb

from pipeline.release import release_fingerprint
from pipeline.warehouse.ddl import SCHEMA_DIR


def schema_files() -> list[Path]:
    """The numbered DDL files, in order (tables, macros over them, views)."""
    return sorted(SCHEMA_DIR.glob("[0-9][0-9][0-9]_*.sql"))


# A macro of the schema that says which release made its objects and their names (a macro, not a
# table: nothing for analysts to see or export). Written last, so a schema made half is made again.
SCHEMA_RELEASE = "state_schema_release"
# Only names of this form are written into the macro's text (they are the pipeline's own names);
# a schema holding any other name is made again on every run instead.
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_RELEASE = re.compile(r"^[0-9a-f]{64}$")


def ensure_state(con) -> None:
    """The persistent tables, the macros and views over them and the analysts' objects, in the current
    schema, as this release defines them.

    Every run calls it, and every object is (re)defined when the schema was made by another release
    (`release_fingerprint`) or a table, view or type made then is gone; otherwise the schema is left as
    it is (a macro dropped by hand comes back with the next release).
    Redefining all took about a quarter of a second per run (some 70 statements), which every
    `dunning` command and every test run paid before loading its inputs.
    """
    release = release_fingerprint()
    made = _made_by(con)
    if made is not None and made[0] == release and set(made[1]) <= _schema_objects(con):
        return
    create_state_schema(con)
    from pipeline.warehouse.analytics import ensure_analytics  # the analyst's views build on these tables

    ensure_analytics(con)
    names = sorted(_schema_objects(con))
    schema = _current_schema(con)
    if schema is None or not _RELEASE.match(release) or not all(_NAME.match(n) for n in names):
        return  # not recorded: the next run defines everything again, as before
    listed = ", ".join(f"'{n}'" for n in names)  # names checked just above; the release is hex
    con.execute(f"create or replace macro {schema}.{SCHEMA_RELEASE}() as "
                f"{{'release': '{release}', 'objects': [{listed}]::varchar[]}}")


def _current_schema(con) -> str | None:
    schema = con.execute("select current_schema()").fetchall()[0][0]
    return schema if _NAME.match(schema) else None


def _schema_objects(con) -> set[str]:
    """The names of the tables, views and types of the current schema. Not its macros: listing them
    means listing DuckDB's thousands of functions (30 ms, against 5 ms for the rest); the macro
    that records the release is looked for by name."""
    return {r[0] for r in con.execute(
        """with here as (select current_database() as db, current_schema() as sc)
           select table_name from duckdb_tables(), here
           where database_name = db and schema_name = sc and not temporary
           union all
           select view_name from duckdb_views(), here
           where database_name = db and schema_name = sc and not internal and not temporary
           union all
           select type_name from duckdb_types(), here
           where database_name = db and schema_name = sc and not internal""").fetchall()}


def _made_by(con) -> tuple[str, list[str]] | None:
    """(release, names of its tables, views and types) the schema's objects were made by, if recorded."""
    schema = _current_schema(con)
    if schema is None:
        return None
    try:
        made = con.execute(f"select {schema}.{SCHEMA_RELEASE}()").fetchall()[0][0]
    except (duckdb.CatalogException, duckdb.BinderException):
        # none recorded: a new schema (DuckDB then reads `schema.f()` as f(schema), main's macro with an
        # argument), or one of an earlier release. Never called inside a transaction, which this would end.
        return None
    return made["release"], made["objects"]


def create_state_schema(con) -> None:
    """The ledger-rule macros, then the numbered DDL files of sql/schema/ (idempotent)."""
    from pipeline.warehouse.ledger_rules import ensure_ledger_rules

    ensure_ledger_rules(con)  # the status and action-kind macros the views and models use
    for path in schema_files():
        con.execute(path.read_text(encoding="utf-8"))
        if path.name.startswith("010_"):
            _unkey_contract_balances(con, path)


def create_history_macros(con, *, temporary: bool = False) -> None:
    """The ledger-rule macros and the macros over the ledger (`levels_done`), without tables: for
    a database whose `action_ledger` is already there (the analysts' copy, a view over Parquet).

    `temporary`: as temp macros, which a read-only connection may create and which shadow the file's
    own: `dunning explain` reads a database the latest run may have written with an older release,
    whose macros lack (or differ from) those this release's models call."""
    from pipeline.warehouse.ledger_rules import macro_ddl

    def run(sql: str) -> None:
        # every statement of macro_ddl and of the *_macro.sql files is `create or replace macro`
        con.execute(sql.replace("create or replace macro", "create or replace temp macro") if temporary else sql)

    run(macro_ddl())
    for path in schema_files():
        if "_macro" in path.stem:
            run(path.read_text(encoding="utf-8"))


def _unkey_contract_balances(con, tables_ddl: Path) -> None:
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
        con.execute(tables_ddl.read_text(encoding="utf-8"))  # creates only what is missing: this table
        con.execute("insert into contract_balances select * from contract_balances_keyed order by as_of, contract_id")
        con.execute("drop table contract_balances_keyed")


def rewind_to(con, as_of: date) -> None:
    """Undo what earlier runs computed for `as_of` and later, except what was dispatched.

    Re-running a day must give the same state and send nothing new: the day's
    unsent rows are recomputed with the same deterministic keys, while rows
    already dispatched stay as the record of what really happened.
    """
    # Rows that are no record of a dispatch (status_is_dispatch_record, sql/seeds/ledger_statuses.csv)
    # are recomputed with the same keys: `rendered` documents were never handed to anyone (their
    # outbox folder is rewritten), recorded exports are decided again. Rows `held` by the
    # fresh-data gate are placeholders for their day only: the next run plans those levels again.
    con.execute(
        """delete from action_ledger
           where (executed_on >= ? and not status_is_dispatch_record(status)) or status = 'held'""",
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


def write_open_receivables(con) -> None:
    """`open_receivables`, which holds the latest day only, from the day's `int_open_receivables`."""
    # replaced whole: deleting every row of an indexed table costs seconds at scale, this does not
    con.execute("create or replace table open_receivables as select * from int_open_receivables")


def apply_day(con, as_of: date, dispatch_mode: str, *, held: bool = False,
              open_receivables: bool = True, balances: bool = True) -> dict[str, int]:
    """Write the day's decisions (temp tables from the models) into the persistent state.

    `dispatch_mode` is the run mode (`pipeline.engine.run.RunMode`): live, backfill or simulate.

    `held`: the fresh-data gate stopped dispatch today. The day's actions are written as
    `held` (visible, but neither sent, exported nor counted as done), so the next run with
    fresh data decides them again instead of acting on stale payments.

    `balances=False`: leave the day's contract balances to the range that computed them, which
    writes several days' balances in one statement (pipeline/warehouse/range_days.py).
    """
    closed = con.execute(
        """update case_register r set closed_on = ?, close_reason = c.close_reason
           from int_case_closures c where r.case_id = c.case_id""",
        [as_of],
    ).fetchall()[0][0]
    opened = con.execute(
        """insert into case_register by name
           select case_id, scope, target_id, contract_id, customer_id, currency, policy_id,
                  policy_version, opened_on, routed_by, experiment, arm
           from int_case_openings
           on conflict do nothing"""
    ).fetchall()[0][0]
    # failed collections: cases close (settled, or unsettled after the last step) and open alike
    closed += con.execute(
        """update case_register r set closed_on = ?, close_reason = c.close_reason
           from int_col_case_closures c where r.case_id = c.case_id""",
        [as_of],
    ).fetchall()[0][0]
    opened += con.execute(
        """insert into case_register by name
           select case_id, scope, target_id, contract_id, customer_id, currency, policy_id,
                  policy_version, opened_on, routed_by, failure_type, counting
           from int_col_case_openings
           on conflict do nothing"""
    ).fetchall()[0][0]
    # A backfill records what would have happened in the past: nothing of it is sent or exported
    # (a move to another policy is no export but the case's own transition, so it holds there too).
    # A simulation's schema is a world of its own in which the candidate runs live: its exports are
    # recorded there as on a live day (its own contract_terminations, ...), its documents are not
    # dispatched (nobody sends or confirms them).
    # A manual reminder a person really received (the live ledger's row of the same key and day, handed
    # over: prepared or confirmed) is that reminder in a backfill or simulation too: it carries the live
    # status and confirmation, so it holds and delays the case's later levels as it did live (SPEC 4
    # rule 3). Recorded as never handed over, it let a backfill time the next level days early, and a
    # live day after it never sent that level (review 2026-12-08).
    planned = con.execute(
        """insert into action_ledger by name
           select p.* exclude (status),
                  case when ? then 'held'
                       when h.status is not null then h.status
                       when ? <> 'live' and status_is_done(p.status) and not action_is_transition(p.action)
                            and (? = 'backfill' or action_is_document(p.action))
                       then 'not_dispatched' else p.status end as status,
                  h.confirmed_on,
                  ? as dispatch_mode, ? as status_changed_on
           from (select * from planned_actions union all by name select * from planned_collection_actions) p
           left join (select action_key, executed_on, status, confirmed_on from main.action_ledger
                      where ? <> 'live' and executed_on = ? and hand_sent(channel, status)
                        and status_is_dispatch_record(status)) h
             on h.action_key = p.action_key and h.executed_on = p.executed_on
           order by p.action_key
           on conflict do nothing""",
        [held, dispatch_mode, dispatch_mode, dispatch_mode, as_of, dispatch_mode, as_of],
    ).fetchall()[0][0]
    del planned  # a re-run inserts nothing new; the summary below describes the day either way
    # a case handed to another policy closes today; the next case for its item opens under that policy
    moved = con.execute(
        """update case_register set closed_on = ?, close_reason = 'moved_to_policy'
           where closed_on is null and case_id in (
               select case_id from action_ledger where executed_on = ? and action = 'move_to_policy'
                 and status_is_done(status))""",
        [as_of, as_of],
    ).fetchall()[0][0]
    # a collection case whose last step ran today and does not wait (notify, change the mandate)
    # ends unsettled today; not while held: a held step is decided again by the next run
    if not held:
        moved += con.execute(
            """update case_register set closed_on = ?, close_reason = 'unsettled'
               where closed_on is null and case_id in (select case_id from int_col_steps_due where ends_case)""",
            [as_of],
        ).fetchall()[0][0]
    counts = con.execute(
        """select count(*) filter (where status_is_done(status)), count(*) filter (where status = 'skipped')
           from action_ledger where executed_on = ?""",
        [as_of],
    ).fetchall()[0]
    if balances:
        con.execute("insert into contract_balances select * from int_contract_balances")
    if open_receivables:
        write_open_receivables(con)
    return {"cases_opened": opened, "cases_closed": closed + moved, "actions": counts[0], "levels_skipped": counts[1]}
