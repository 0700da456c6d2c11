"""Ingest the billing files of the day into typed tables, with the quarantine as a check.

Bad rows never stop the run: they are quarantined. The checks make them visible
in the UI (a warning per quarantined row count, an error if any row went missing).
"""


import dagster as dg

from dagster_project.code_versions import ingest_version
from dagster_project.partitions import DUCKDB_POOL, daily_partitions
from dagster_project.resources import DunningResource
from pipeline.engine import run as pipeline_run
from pipeline.warehouse.ingest import quarantine_messages


@dg.asset(
    partitions_def=daily_partitions,
    group_name="ingest",
    kinds={"duckdb", "csv", "parquet"},
    pool=DUCKDB_POOL,
    code_version=ingest_version(),
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[
        # blocking: state is never computed, nor anything sent, from inputs that lost rows
        dg.AssetCheckSpec("rows_accounted_for", asset="billing_inputs", blocking=True,
                          description="For every table, rows read = rows loaded + rows quarantined."),
        dg.AssetCheckSpec("no_quarantined_rows", asset="billing_inputs",
                          description="Warns when input rows were quarantined."),
    ],
)
def billing_inputs(context: dg.AssetExecutionContext, dunning: DunningResource) -> dg.MaterializeResult:
    """Customers, contracts, invoices, payments and suspensions loaded into stg_* tables."""
    settings = dunning.settings()
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        _, reports = pipeline_run.load_inputs(con, settings)
        messages = quarantine_messages(con)
    for line in messages:
        context.log.warning(line)
    table = "| table | read | loaded | quarantined |\n|---|---:|---:|---:|\n" + "\n".join(
        f"| {r.table} | {r.rows_read} | {r.rows_loaded} | {r.rows_quarantined} |" for r in reports)
    quarantined = sum(r.rows_quarantined for r in reports)
    return dg.MaterializeResult(
        metadata={"as_of": context.partition_key_range.end,
                  "rows_loaded": sum(r.rows_loaded for r in reports),
                  "rows_quarantined": quarantined,
                  "tables": dg.MetadataValue.md(table)},
        check_results=[
            dg.AssetCheckResult(check_name="rows_accounted_for", passed=all(r.balanced for r in reports)),
            dg.AssetCheckResult(check_name="no_quarantined_rows", passed=quarantined == 0,
                                severity=dg.AssetCheckSeverity.WARN,
                                metadata={"rows_quarantined": quarantined,
                                          "first_rows": dg.MetadataValue.md("\n".join(f"- {m}" for m in messages))}),
        ],
    )
