"""The daily step and its dispatch, as two assets over the shared daily partitions.

`dunning_state` depends on its own previous day: a day's state is the previous
day's state stepped forward, so partitions must run in date order. Dispatch is
a separate asset so that a failed send can be retried without recomputing, and
so that the UI shows planning and sending apart.
"""

from datetime import date

import dagster as dg

from dagster_project.partitions import DUCKDB_POOL, daily_partitions
from dagster_project.resources import DunningResource
from pipeline import catalog, run as pipeline_run
from pipeline.report import day_summary_markdown


@dg.asset(
    partitions_def=daily_partitions,
    group_name="dunning",
    kinds={"duckdb", "sql"},
    pool=DUCKDB_POOL,
    deps=[
        "billing_inputs",
        dg.AssetDep("dunning_state", partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)),
    ],
)
def dunning_state(context: dg.AssetExecutionContext, dunning: DunningResource) -> dg.MaterializeResult:
    """Balances, open receivables, cases and the action ledger as of the partition day."""
    as_of = date.fromisoformat(context.partition_key)
    settings = dunning.settings()
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        result = pipeline_run.plan_day(con, as_of, live=True, settings=settings)
        catalog.apply_comments(con)
        summary = day_summary_markdown(con, as_of)
    if result.dispatch_blocked:
        context.log.warning(result.dispatch_blocked)
    return dg.MaterializeResult(metadata={
        "cases_opened": result.cases_opened, "cases_closed": result.cases_closed,
        "actions": result.actions, "levels_skipped": result.levels_skipped,
        "dispatch_blocked": result.dispatch_blocked or "",
        "summary": dg.MetadataValue.md(summary)})


@dg.asset(
    partitions_def=daily_partitions,
    group_name="dunning",
    kinds={"pdf", "email"},
    pool=DUCKDB_POOL,
    deps=["dunning_state"],
)
def outbox_documents(context: dg.AssetExecutionContext, dunning: DunningResource) -> dg.MaterializeResult:
    """The day's documents rendered and delivered through their channels, exactly once."""
    as_of = date.fromisoformat(context.partition_key)
    settings = dunning.settings()
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        written = pipeline_run.dispatch_day(con, as_of, settings)
        review = con.execute("select count(*) from dispatch_review").fetchall()[0][0]
    if review:
        context.log.warning(f"{review} action(s) need review: query the dispatch_review view")
    return dg.MaterializeResult(metadata={"documents_written": written, "needs_review": review,
                                          "outbox": str(settings.outbox / as_of.isoformat())})
