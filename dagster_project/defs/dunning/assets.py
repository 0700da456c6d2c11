"""The daily step and its dispatch, as two assets over the shared daily partitions.

`dunning_state` depends on its own previous day: a day's state is the previous
day's state stepped forward, so partitions must run in date order. A backfill
of a range runs as one run (single-run backfill policy) through the same
`pipeline.engine.backfill.backfill` as `dunning backfill --from --to`, so both give the
same result; the catch-up choice comes from the run tag `dunning/catch_up`
(none, highest, each; default none). Dispatch is a separate asset so that a
failed send can be retried without recomputing, and so that the UI shows
planning and sending apart; a range never dispatches (nothing dated in the past
is sent).

The assets call the library's day service in its one order (`pipeline.engine.run`):
plan (`dunning_state`) -> dispatch -> publish the analysts' copy (`outbox_documents`),
exactly as `dunning run` does. A partition before the latest day computed is
refused with the same message as the CLI: recomputing it would discard the later
days, which only a backfill of the range through the latest day does.
"""

from datetime import date

import dagster as dg

from dagster_project.code_versions import state_version
from dagster_project.partitions import DUCKDB_POOL, daily_partitions
from dagster_project.resources import DunningResource
from pipeline.warehouse import catalog
from pipeline.engine import run as pipeline_run
from pipeline.engine.backfill import BackfillError
from pipeline.reporting.summary import day_summary_markdown


def _range(context: dg.AssetExecutionContext) -> tuple[date, date]:
    keys = context.partition_key_range
    return date.fromisoformat(keys.start), date.fromisoformat(keys.end)


def _state_metadata(con, as_of: date) -> dict:
    counts = con.execute(
        """select (select count(*) from case_register), (select count(*) from case_register where closed_on is null),
                  (select count(*) from action_ledger), (select count(*) from contract_balances where as_of = ?)""",
        [as_of]).fetchall()[0]
    per_level = con.execute(
        """select level_no, action, status, count(*), sum(amount_demanded), currency from action_ledger
           where executed_on = ? group by all order by all""", [as_of]).fetchall()
    table = "| level | action | status | actions | demanded | currency |\n|---:|---|---|---:|---:|---|\n" + "\n".join(
        f"| {lv} | {a} | {st} | {n} | {amt} | {c} |" for lv, a, st, n, amt, c in per_level)
    return {"cases": counts[0], "open_cases": counts[1], "ledger_rows": counts[2], "balances_rows": counts[3],
            "actions_today": dg.MetadataValue.md(table), "summary": dg.MetadataValue.md(day_summary_markdown(con, as_of))}


@dg.asset(
    partitions_def=daily_partitions,
    group_name="dunning",
    kinds={"duckdb", "sql"},
    pool=DUCKDB_POOL,
    code_version=state_version(),
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[
        "billing_inputs",
        dg.AssetDep("dunning_state", partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)),
    ],
)
def dunning_state(context: dg.AssetExecutionContext, dunning: DunningResource) -> dg.MaterializeResult:
    """Balances, open receivables, cases and the action ledger as of the partition day (or range)."""
    from pipeline.engine.backfill import backfill

    start, end = _range(context)
    settings = dunning.settings()
    blocked = None
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        try:
            if start == end:
                result = pipeline_run.plan_day(con, start, pipeline_run.RunMode.LIVE, settings=settings)
                blocked = result.dispatch_blocked
                catalog.apply_comments(con)
            else:
                catch_up = context.run.tags.get("dunning/catch_up", "none")
                done = backfill(con, start, end, settings, catch_up=catch_up)
                context.log.info(f"backfill {done.backfill_id}: differences {done.differences}, catch-up {catch_up}")
        except (pipeline_run.RunRefused, BackfillError) as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        metadata = _state_metadata(con, end)
    if blocked:
        context.log.warning(blocked)
    metadata["dispatch_blocked"] = blocked or ""
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    partitions_def=daily_partitions,
    group_name="dunning",
    kinds={"pdf", "email"},
    pool=DUCKDB_POOL,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["dunning_state"],
)
def outbox_documents(context: dg.AssetExecutionContext, dunning: DunningResource) -> dg.MaterializeResult:
    """The day's documents rendered and delivered through their channels, exactly once; then the
    analysts' copy is published, so it shows the statuses after dispatch (as after `dunning run`)."""
    start, end = _range(context)
    settings = dunning.settings()
    if start != end:
        context.log.info("a backfill range sends nothing: documents dated in the past are never dispatched")
        with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
            export = pipeline_run.publish_day(con, settings, end)
        return dg.MaterializeResult(metadata={"documents_written": 0, "backfill": f"{start}..{end}",
                                              "analyst_export": str(export)})
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        written = pipeline_run.dispatch_day(con, start, settings)
        export = pipeline_run.publish_day(con, settings, start)  # never blocks an analyst's session
        review = con.execute("select count(*) from dispatch_review").fetchall()[0][0]
        channels = con.execute(
            """select channel, status, count(*) from action_ledger where executed_on = ?
               and action_is_document(action) group by all order by all""",
            [start]).fetchall()
    if review:
        context.log.warning(f"{review} action(s) need review: query the dispatch_review view")
    table = "| channel | status | documents |\n|---|---|---:|\n" + "\n".join(
        f"| {c} | {s} | {n} |" for c, s, n in channels)
    return dg.MaterializeResult(metadata={"documents_written": written, "needs_review": review,
                                          "analyst_export": str(export),
                                          "by_channel": dg.MetadataValue.md(table),
                                          "outbox": str(settings.outbox / start.isoformat())})
