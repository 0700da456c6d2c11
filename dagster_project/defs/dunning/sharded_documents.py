"""The day's documents fanned out: one snapshot step, one step per shard, one collect step.

For days whose documents outgrow one machine (docs/scaling.md). The same three
library calls as `dunning dispatch` (`pipeline.delivery.dispatch.prepare`,
`pipeline.delivery.shards.run_shard`, `pipeline.delivery.dispatch.finish`), as steps:

- `documents_snapshot` (the DuckDB pool: one writer) evaluates the state's
  promises as every sending path does (`run.refuse_broken_state`:
  nothing is sent from a state that breaks one), finishes what a crashed
  run left, takes the day's snapshot and yields one dynamic output per shard
  that has documents;
- `documents_shard` (no database) renders its shard into the outbox and sends
  it, writing its outcome journal; run again after a crash it carries on from
  the journal, so Dagster's step retries are safe;
- `documents_collect` (the DuckDB pool) applies every journal to the ledger,
  writes the print batch, publishes the analysts' copy and records the
  document assets' materializations.

On one machine the job runs on the multiprocess executor (one process per
step, `render_workers` rendering processes inside each shard step); in a
cluster the same job runs on `dagster-k8s`'s `k8s_job_executor`, one pod per
step (deploy/k8s/). The shards, the outbox and the dispatch folder must be on
storage every step sees (one volume in a cluster).

`documents_fan_out_sensor` (off by default) chains it to the day: when the
`daily_state` job (the day without its documents, `daily_state_schedule`)
succeeded for a partition, it launches this job for that partition, once per
state run (its run key).
"""

from datetime import date

import dagster as dg
from pydantic import Field

from dagster_project.jobs import daily_state_job
from dagster_project.partitions import DUCKDB_POOL, daily_partitions
from dagster_project.resources import DunningResource
from dagster_project.tables import DOCUMENT_CHANNELS, document_key
from pipeline.engine import run as pipeline_run


class ShardingConfig(dg.Config):
    shards: int = Field(default=0, ge=0, le=4096,
                        description="Shards to split the day's documents into; 0: dispatch.shards from dunning.yaml.")


@dg.op(out=dg.DynamicOut(dict), pool=DUCKDB_POOL)
def documents_snapshot(context: dg.OpExecutionContext, dunning: DunningResource, config: ShardingConfig):
    """The day's documents as an immutable snapshot in shards; one output per busy shard."""
    from pipeline.delivery.dispatch import prepare

    day = date.fromisoformat(context.partition_key)
    settings = dunning.settings()
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        blocked = pipeline_run.dispatch_blocked(con, day)
        snapshot = None
        try:  # the guard of every sending path (the daily documents step, dunning run and dispatch)
            pipeline_run.refuse_broken_state(con, day)
        except pipeline_run.SendRefused as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        if blocked:
            context.log.warning(f"dispatch skipped: {blocked}")
        else:
            snapshot, summary = prepare(con, day, settings, shards=config.shards or None)
            context.log.info(f"before the snapshot: {summary.line()}")
    if snapshot is None:  # one empty shard, so the collect step still runs (print batch, copy)
        yield dg.DynamicOutput({"snapshot_id": None, "folder": None, "shard": None}, mapping_key="none")
        return
    context.log.info(f"snapshot {snapshot.snapshot_id}: {snapshot.actions} actions in shards {snapshot.busy_shards()}")
    for shard in snapshot.busy_shards():
        yield dg.DynamicOutput({"snapshot_id": snapshot.snapshot_id, "folder": str(snapshot.folder), "shard": shard},
                               mapping_key=f"shard_{shard:03d}")


@dg.op(retry_policy=dg.RetryPolicy(max_retries=2))
def documents_shard(context: dg.OpExecutionContext, dunning: DunningResource, work: dict) -> dict:
    """Render and send one shard; no database. A retry carries on from the shard's journal."""
    from pipeline.delivery.shards import run_shard

    if work["shard"] is None:
        return {**work, "rendered": 0}
    settings = dunning.settings()
    result = run_shard(work["folder"], work["shard"], settings, render_workers=settings.render_workers)
    context.log.info(f"shard {work['shard']}: rendered {result.rendered}, not rendered {result.render_failed}, "
                     f"hand-overs {result.outcomes}")
    return {**work, "rendered": result.rendered, "render_failed": result.render_failed, **result.outcomes}


@dg.op(pool=DUCKDB_POOL)
def documents_collect(context: dg.OpExecutionContext, dunning: DunningResource, shards: list[dict]) -> None:
    """Every shard's outcomes applied to the ledger at once; then the print batch and the analysts' copy."""
    from pipeline.delivery.dispatch import DispatchSummary, finish
    from pipeline.delivery.shards import open_snapshots

    day = date.fromisoformat(context.partition_key)
    settings = dunning.settings()
    ids = {s["snapshot_id"] for s in shards if s["snapshot_id"]}
    summary = DispatchSummary(rendered=0, sent=0, letters=0, failed=0, needs_review=0, recovered={})
    with pipeline_run.connect(settings.database, settings.duckdb_memory_limit) as con:
        if not pipeline_run.dispatch_blocked(con, day):
            snapshot = next((s for s in open_snapshots(con, settings) if s.snapshot_id in ids), None)
            finish(con, day, settings, snapshot, summary)
            pipeline_run.record_documents(con, day, summary.rendered)
        export = pipeline_run.publish_day(con, settings, day)
        by_channel = dict(con.execute(
            """select channel, count(*) from action_ledger where executed_on = ? and action_is_document(action)
               and status = 'sent' group by all""", [day]).fetchall())
    context.log.info(f"collected: {summary.line()}")
    for name, (channels, *_rest) in DOCUMENT_CHANNELS.items():
        context.log_event(dg.AssetMaterialization(
            asset_key=document_key(name), partition=context.partition_key,
            metadata={"as_of": day.isoformat(), "sent_that_day": sum(by_channel.get(c, 0) for c in channels),
                      "shards": sum(s["shard"] is not None for s in shards), "dispatch": summary.line()}))
    context.log_event(dg.AssetMaterialization(asset_key="analyst_copy", partition=context.partition_key,
                                              metadata={"analyst_export": str(export)}))


def build_sharded_documents_job(executor_def: dg.ExecutorDefinition = dg.multiprocess_executor,
                                name: str = "sharded_documents") -> dg.JobDefinition:
    """The fan-out job on `executor_def` (deploy/k8s/ builds it on k8s_job_executor)."""

    @dg.job(name=name, partitions_def=daily_partitions, executor_def=executor_def,
            description="The day's documents in shards: snapshot -> one step per shard -> collect "
                        "(docs/scaling.md). Run it after the day's state (dunning_state) is planned.")
    def sharded_documents():
        documents_collect(documents_snapshot().map(documents_shard).collect())

    return sharded_documents


sharded_documents = build_sharded_documents_job()


def build_documents_fan_out_sensor(documents_job: dg.JobDefinition) -> dg.SensorDefinition:
    """The sensor that launches `documents_job` for a day once `daily_state` succeeded for it."""

    @dg.run_status_sensor(
        name="documents_fan_out_sensor",
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[daily_state_job],
        request_job=documents_job,
        default_status=dg.DefaultSensorStatus.STOPPED,  # it sends: turned on deliberately, with daily_state
        description="When daily_state succeeded for a day, launches sharded_documents for that day (the documents "
                    "fanned out: docs/scaling.md). A range of days (a backfill) sends nothing, so it launches none.",
    )
    def documents_fan_out_sensor(context: dg.RunStatusSensorContext):
        run = context.dagster_run
        day = run.tags.get("dagster/partition")
        if day is None:  # a range of partitions, one backfill run: nothing dated in the past is sent
            return dg.SkipReason(f"run {run.run_id} computed a range of days: a backfill sends nothing")
        return dg.RunRequest(run_key=f"documents-after-{run.run_id}", partition_key=day,
                             tags={"dunning/trigger": "documents_fan_out_sensor", "dunning/state_run": run.run_id})

    return documents_fan_out_sensor


documents_fan_out_sensor = build_documents_fan_out_sensor(sharded_documents)
