"""The day's step and its dispatch: two steps over the shared daily partitions, one asset per table.

`dunning_state` (one step) plans the day and materializes the state tables it
writes: `open_receivables`, `contract_balances`, `cases` and `action_ledger`
(the last two carried from the previous day, so partitions run in date order).
Its blocking checks (balances reconcile, action keys unique, nothing sent twice,
dispatched rows unchanged by the run) are evaluated in the same connection right
after planning; a failure fails the step, so `outbox_documents` (the only step
that sends) does not run.

`outbox_documents` (one step) dispatches and then publishes the analysts' copy,
exactly as `dunning run` does (`pipeline.engine.run`: plan -> dispatch -> publish).
It materializes one asset per channel (`documents/outbox`, `documents/email`, ...)
and `analyst_copy`. Before sending it evaluates the state's promises again, so a
documents step launched alone never sends from a state that breaks them.

A range of partitions runs as one run (single-run backfill policy) through the
same `pipeline.engine.backfill.backfill` as `dunning backfill --from --to`; the
catch-up choice is the run config `catch_up` of `dunning_state` (none, highest,
each; default none; the old run tag `dunning/catch_up` is still read when the
config is left at none). A backfill never dispatches (nothing dated in the past is
sent), also a backfill of one partition: what makes a run a backfill is its tags, not
its width (`partitions.is_backfill_run`). A live day's `billing_inputs` runs the policy
linter first, as `dunning run` does. A partition before the latest day computed is refused with the CLI's
message: recomputing it would discard the later days, which only a backfill of the
range through the latest day does.
"""


from datetime import date
from enum import Enum

import dagster as dg
from pydantic import Field

from dagster_project.checks import check_result, check_spec
from dagster_project.partitions import DUCKDB_POOL, daily_partitions, is_backfill_run
from dagster_project.resources import DunningResource
from dagster_project.tables import DOCUMENT_CHANNELS, STATE_MODELS, document_key, spec
from pipeline.engine import checks as promises
from pipeline.engine import run as pipeline_run
from pipeline.engine.backfill import CATCH_UP_MODES, BackfillError
from pipeline.reporting.summary import day_summary_markdown
from pipeline.warehouse import catalog

CATCH_UP_TAG = "dunning/catch_up"


class CatchUp(str, Enum):
    """How the next live days treat levels a backfill recorded but nobody received."""

    none = "none"
    highest = "highest"
    each = "each"


assert tuple(m.value for m in CatchUp) == CATCH_UP_MODES  # the engine's choices, in its order


class DunningStateConfig(dg.Config):
    """Used when the run covers a range of days (a backfill); a single day ignores it."""

    catch_up: CatchUp = Field(
        default=CatchUp.none,
        description="Backfill only: none (levels the backfill recorded count as done), highest (the next live "
                    "day sends the highest one once), each (one per missed level per live day).")
    policy_version: str | None = Field(
        default=None, description="Backfill only: force this policy version (handle@hash) for its policy.")


def _range(context: dg.AssetExecutionContext) -> tuple[date, date]:
    keys = context.partition_key_range
    return date.fromisoformat(keys.start), date.fromisoformat(keys.end)


def _catch_up(context: dg.AssetExecutionContext, config: DunningStateConfig) -> str:
    if config.catch_up not in (None, CatchUp.none):  # null in the launchpad: the default
        return CatchUp(config.catch_up).value
    tagged = context.run.tags.get(CATCH_UP_TAG)
    if tagged is None:
        return CatchUp.none.value
    if tagged not in CATCH_UP_MODES:
        raise dg.Failure(description=f"run tag {CATCH_UP_TAG}={tagged!r}: the catch-up must be one of "
                                     f"{', '.join(CATCH_UP_MODES)} (better: the run config catch_up)",
                         allow_retries=False)
    return tagged


STATE_CHECKS = [
    check_spec("balances_reconcile", "contract_balances", blocking=True),
    check_spec("action_keys_unique", "action_ledger", blocking=True),
    check_spec("nothing_sent_twice", "action_ledger", blocking=True,
               description="Before anything is sent: " + promises.NOTHING_SENT_TWICE.description),
    check_spec("dispatched_rows_unchanged", "action_ledger", blocking=True),
]


@dg.multi_asset(
    name="dunning_state",
    specs=[spec(name) for name in STATE_MODELS],
    check_specs=STATE_CHECKS,
    partitions_def=daily_partitions,
    pool=DUCKDB_POOL,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def dunning_state(context: dg.AssetExecutionContext, dunning: DunningResource, config: DunningStateConfig):
    """Balances, open receivables, cases and the action ledger as of the partition day (or range)."""
    from pipeline.engine.backfill import backfill

    start, end = _range(context)
    settings = dunning.settings()
    blocked = None
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        promises.snapshot_dispatched(con)
        try:
            if not is_backfill_run(context):
                result = pipeline_run.plan_day(con, start, pipeline_run.RunMode.LIVE, settings=settings)
                blocked = result.dispatch_blocked
                for warning in result.warnings:
                    context.log.warning(warning)
                catalog.apply_comments(con)
            else:
                catch_up = _catch_up(context, config)
                done = backfill(con, start, end, settings, catch_up=catch_up, policy_version=config.policy_version)
                context.log.info(f"backfill {done.backfill_id}: differences {done.differences}, catch-up {catch_up}")
        except (pipeline_run.RunRefused, BackfillError) as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        metadata = _state_metadata(con, end)
        results = [
            check_result(con, "balances_reconcile", "contract_balances", as_of=end),
            check_result(con, "action_keys_unique", "action_ledger"),
            check_result(con, "nothing_sent_twice", "action_ledger"),
            check_result(con, "dispatched_rows_unchanged", "action_ledger"),
        ]
    if blocked:
        context.log.warning(blocked)
    for name in STATE_MODELS:
        yield dg.MaterializeResult(asset_key=name, metadata={"as_of": end.isoformat(), **metadata[name]})
    yield from results


def _state_metadata(con, as_of: date) -> dict[str, dict]:
    run = con.execute("""select run_number, mode, cases_opened, cases_closed, actions_planned, levels_skipped,
                                dispatch_blocked from run_log where as_of = ? order by run_number desc limit 1""",
                      [as_of]).fetchall()
    run_number, mode, opened, closed, actions, skipped, blocked = run[0] if run else (None,) * 7
    balances, overdue_contracts = con.execute(
        "select count(*), count(*) filter (where overdue_amount > 0) from contract_balances where as_of = ?",
        [as_of]).fetchall()[0]
    receivables, overdue = con.execute(
        "select count(*), count(*) filter (where is_overdue) from open_receivables where as_of = ?",
        [as_of]).fetchall()[0]
    per_currency = con.execute("""select currency, sum(open_amount), sum(overdue_amount) from contract_balances
                                  where as_of = ? group by all order by all""", [as_of]).fetchall()
    cases, open_cases = con.execute("select count(*), count(*) filter (where is_open) from cases").fetchall()[0]
    ledger = con.execute("select count(*) from action_ledger").fetchall()[0][0]
    per_level = con.execute(
        """select level_no, action, status, count(*), sum(amount_demanded), currency from action_ledger
           where executed_on = ? group by all order by all""", [as_of]).fetchall()
    actions_table = "| level | action | status | actions | demanded | currency |\n|---:|---|---|---:|---:|---|\n" + \
        "\n".join(f"| {lv} | {a} | {st} | {n} | {amt} | {c} |" for lv, a, st, n, amt, c in per_level)
    money = "| currency | open | overdue |\n|---|---:|---:|\n" + "\n".join(
        f"| {c} | {o} | {d} |" for c, o, d in per_currency)
    run_meta = {"run_number": run_number, "mode": mode or ""}
    return {
        "open_receivables": {"dagster/row_count": receivables, "overdue_receivables": overdue, **run_meta},
        "contract_balances": {"dagster/row_count": balances, "contracts_overdue": overdue_contracts,
                              "amounts": dg.MetadataValue.md(money), **run_meta},
        "cases": {"dagster/row_count": cases, "open_cases": open_cases, "cases_opened": opened,
                  "cases_closed": closed, **run_meta},
        "action_ledger": {"dagster/row_count": ledger, "actions_today": actions, "levels_skipped": skipped,
                          "dispatch_blocked": blocked or "", "by_level": dg.MetadataValue.md(actions_table),
                          "summary": dg.MetadataValue.md(day_summary_markdown(con, as_of)), **run_meta},
    }


# -- documents -------------------------------------------------------------------------------------

DOCUMENT_KEYS = {name: document_key(name) for name in DOCUMENT_CHANNELS}


def _document_checks() -> list[dg.AssetCheckSpec]:
    out = []
    for name, key in DOCUMENT_KEYS.items():
        out.append(check_spec("nothing_sent_twice", key, blocking=False,
                              description="After dispatch: " + promises.NOTHING_SENT_TWICE.description))
        out.append(check_spec("sent_actions_have_documents", key, blocking=False))
    return out


@dg.multi_asset(
    name="outbox_documents",
    specs=[spec(key) for key in DOCUMENT_KEYS.values()] + [spec("analyst_copy")],
    check_specs=_document_checks(),
    partitions_def=daily_partitions,
    pool=DUCKDB_POOL,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def outbox_documents(context: dg.AssetExecutionContext, dunning: DunningResource):
    """The day's documents rendered and delivered through their channels, exactly once; then the
    analysts' copy is published, so it shows the statuses after dispatch (as after `dunning run`)."""
    start, end = _range(context)
    settings = dunning.settings()
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        if is_backfill_run(context):
            context.log.info("a backfill sends nothing: documents dated in the past are never dispatched")
            written: dict[str, int] = {}
        else:
            con.execute("""create or replace temp table pending_before as
                           select action_key from action_ledger
                           where status_is_pending_dispatch(status) and action_is_document(action)
                             and dispatch_mode = 'live'""")
            try:  # it first evaluates the state's promises (run.refuse_broken_state), as every sending path
                pipeline_run.dispatch_day(con, start, settings)
            except pipeline_run.SendRefused as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from None
            written = dict(con.execute(
                """select l.channel, count(*) from action_ledger l join pending_before p using (action_key)
                   where not status_is_pending_dispatch(l.status) and l.document_path is not null
                   group by all""").fetchall())
        export = pipeline_run.publish_day(con, settings, end)  # never blocks an analyst's session
        review = con.execute("select count(*) from dispatch_review").fetchall()[0][0]
        by_status = con.execute(
            """select channel, status, count(*) from action_ledger where executed_on = ?
               and action_is_document(action) group by all order by all""", [end]).fetchall()
        promises.list_outbox_folders(con, settings.outbox, [end])
        results = []
        for name, key in DOCUMENT_KEYS.items():
            channels = list(DOCUMENT_CHANNELS[name][0])
            results.append(check_result(con, "nothing_sent_twice", key, channels=channels))
            results.append(check_result(con, "sent_actions_have_documents", key, as_of=end, channels=channels))
        exported = _exported(con, export)
    if review:
        context.log.warning(f"{review} action(s) need review: query the dispatch_review view")
    for name, key in DOCUMENT_KEYS.items():
        channels = DOCUMENT_CHANNELS[name][0]
        rows = [(c, s, n) for c, s, n in by_status if c in channels]
        table = "| channel | status | documents |\n|---|---|---:|\n" + "\n".join(f"| {c} | {s} | {n} |" for c, s, n in rows)
        metadata = {"as_of": end.isoformat(), "dagster/row_count": sum(n for *_, n in rows),
                    "documents_written": sum(written.get(c, 0) for c in channels),
                    "by_status": dg.MetadataValue.md(table), "needs_review": review,
                    "outbox": str(settings.outbox / end.isoformat())}
        if start != end:
            metadata["backfill"] = f"{start}..{end}"
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
    yield dg.MaterializeResult(asset_key="analyst_copy", metadata={
        "as_of": end.isoformat(), "analyst_export": str(export), "dagster/row_count": exported[1],
        "objects": exported[0], "path": str(settings.analyst_dir)})
    yield from results


def _exported(con, export) -> tuple[int, int]:
    """(objects, rows) in the export folder, read from the Parquet files' own metadata."""
    if export is None or not any(export.glob("*.parquet")):
        return 0, 0
    objects, rows = con.execute("select count(distinct file_name), coalesce(sum(num_rows), 0) "
                                "from parquet_file_metadata(?)", [str(export / "*.parquet")]).fetchall()[0]
    return int(objects), int(rows)
