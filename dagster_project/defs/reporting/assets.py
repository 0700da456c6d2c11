"""The daily report: HTML and PDF with charts, written after the day's documents went out.

It reads the working database (key figures, aging, open cases, recovery per level,
documents sent), so it runs after `outbox_documents` and holds the DuckDB pool like
every step that opens the database. It follows its inputs on its own: when the
latest day's documents are materialized without it (a run of the state and
documents only), the automation sensor `report_automation` requests it.
"""

from datetime import date

import dagster as dg

from dagster_project.partitions import DUCKDB_POOL, daily_partitions
from dagster_project.resources import DunningResource
from dagster_project.tables import table_assets
from pipeline.engine import run as pipeline_run
from pipeline.warehouse import catalog
from pipeline.warehouse.analytics import ensure_analytics

_REPORT = table_assets()[dg.AssetKey("daily_report")]


# a multi-asset of one: the same decorator as the other steps (single-run backfills without a beta warning)
@dg.multi_asset(
    name="daily_report",
    specs=[_REPORT.spec(automation_condition=dg.AutomationCondition.eager())],
    partitions_def=daily_partitions,
    pool=DUCKDB_POOL,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def daily_report(context: dg.AssetExecutionContext, dunning: DunningResource) -> dg.MaterializeResult:
    """`<reports_dir>/<day>/report.html` and `report.pdf` for the partition day (a range: its last day)."""
    from pipeline.reporting.daily_report import write_report

    as_of = date.fromisoformat(context.partition_key_range.end)
    settings = dunning.settings()
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        created = ensure_analytics(con, replace=False)  # a database from before the analyst's macros
        if created:
            catalog.apply_comments(con, created)
        try:
            html, pdf = write_report(con, as_of, settings)
        except ValueError as exc:  # not a day that was run
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        cur = con.execute("select * from key_figures_as_of(?)", [as_of])
        names = [d[0] for d in cur.description]
        figures = [dict(zip(names, row)) for row in cur.fetchall()]
    return dg.MaterializeResult(metadata={
        "as_of": as_of.isoformat(), "dagster/row_count": len(figures), "html": dg.MetadataValue.path(str(html)),
        "pdf": dg.MetadataValue.path(str(pdf)),
        "key_figures": dg.MetadataValue.md(_markdown(figures))})


def _markdown(rows: list[dict]) -> str:
    if not rows:
        return "no figures"
    names = list(rows[0])
    return "\n".join(["| " + " | ".join(names) + " |", "|" + "---|" * len(names),
                      *("| " + " | ".join("" if r[n] is None else str(r[n]) for n in names) + " |" for r in rows)])
