"""Ingest the billing files of the day into the typed input tables, with the quarantine beside them.

One step (`billing_inputs`) reads every input file once and materializes one
asset per typed table (`stg_customers`, ... `stg_suspensions`) and the
`quarantine`. Bad rows never stop the run: they are quarantined (unless the
share is above the stop threshold, which the state step refuses). The checks
state the ingestion's promise per table: rows read = rows loaded + rows
quarantined (blocking: state is never computed, nor anything sent, from inputs
that lost rows), and a warning when rows were quarantined.
"""

import dagster as dg

from dagster_project.checks import check_result, check_spec
from dagster_project.partitions import DUCKDB_POOL, daily_partitions, is_backfill_run
from dagster_project.resources import DunningResource
from dagster_project.tables import billing_files_spec, spec
from pipeline.config.input_tables import INPUT_TABLES
from pipeline.engine import checks as promises
from pipeline.engine import run as pipeline_run
from pipeline.warehouse.ingest import quarantine_messages

STG = [f"stg_{t.name}" for t in INPUT_TABLES]

billing_files = billing_files_spec()


@dg.multi_asset(
    name="billing_inputs",
    specs=[spec(name) for name in STG] + [spec("quarantine")],
    check_specs=[
        *(check_spec("rows_accounted_for", name, blocking=True,
                     description=f"Rows read from the {name[4:]} files = rows loaded + rows quarantined.")
          for name in STG),
        *(check_spec("no_quarantined_rows", name, blocking=False,
                     description=f"Warns when rows of the {name[4:]} files were quarantined "
                                 "(the quarantine table names file, row, column and rule).")
          for name in STG),
    ],
    partitions_def=daily_partitions,
    pool=DUCKDB_POOL,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def billing_inputs(context: dg.AssetExecutionContext, dunning: DunningResource):
    """Customers, contracts, invoices, payments and suspensions loaded into the stg_* tables.

    A live day first runs the policy linter, as `dunning run` does: an error stops the day before
    anything is ingested, planned or sent (a backfill, like `dunning backfill`, does not lint)."""
    from pipeline.config.policy import PolicyError
    from pipeline.config.policy_lint import PolicyLintError, before_a_live_day

    settings = dunning.settings()
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        if not is_backfill_run(context):
            try:
                for finding in before_a_live_day(settings, con):
                    context.log.warning(str(finding))
            except (PolicyError, PolicyLintError) as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from None
        _, reports = pipeline_run.load_inputs(con, settings)
        messages = quarantine_messages(con)
        promises.record_rows_read(con, [(r.table, r.rows_read) for r in reports])
        accounted = {name: check_result(con, "rows_accounted_for", name, table_name=name[4:]) for name in STG}
        per_rule = con.execute("""select table_name, rule, count(*) from quarantine
                                  group by all order by all""").fetchall()
    for line in messages:
        context.log.warning(line)
    as_of = context.partition_key_range.end
    for r in reports:
        yield dg.MaterializeResult(asset_key=f"stg_{r.table}", metadata={
            "as_of": as_of, "dagster/row_count": r.rows_loaded, "rows_read": r.rows_read,
            "rows_quarantined": r.rows_quarantined, "files": "\n".join(r.files), "database": str(settings.database)})
    quarantined = sum(r.rows_quarantined for r in reports)
    table = "| table | read | loaded | quarantined |\n|---|---:|---:|---:|\n" + "\n".join(
        f"| {r.table} | {r.rows_read} | {r.rows_loaded} | {r.rows_quarantined} |" for r in reports)
    rules = "| table | rule | rows |\n|---|---|---:|\n" + "\n".join(f"| {t} | {rule} | {n} |" for t, rule, n in per_rule)
    yield dg.MaterializeResult(asset_key="quarantine", metadata={
        "as_of": as_of, "dagster/row_count": quarantined, "tables": dg.MetadataValue.md(table),
        "rules": dg.MetadataValue.md(rules),
        "first_rows": dg.MetadataValue.md("\n".join(f"- {m}" for m in messages) or "none")})
    yield from accounted.values()
    for r in reports:
        lines = [m for m in messages if m.endswith(f"quarantined from {r.table}")]
        yield dg.AssetCheckResult(
            asset_key=f"stg_{r.table}", check_name="no_quarantined_rows", passed=r.rows_quarantined == 0,
            severity=dg.AssetCheckSeverity.WARN,
            description=(f"{r.rows_quarantined} of {r.rows_read} rows quarantined" if r.rows_quarantined else None),
            metadata={"rows_quarantined": r.rows_quarantined,
                      "first_rows": dg.MetadataValue.md("\n".join(f"- {m}" for m in lines) or "none")})
