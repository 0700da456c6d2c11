"""The day's jobs, over the shared daily partitions.

- `daily_dunning`: the whole day, every asset; on one machine this is the one job
  (its documents step shards dispatch over local processes, `dispatch.shards`).
- `daily_state`: the day without its documents (ingest and the planned state); in a
  cluster the documents follow in the fan-out job `sharded_documents`, which the
  sensor `documents_fan_out_sensor` launches for the partition once this job succeeded
  (defs/dunning/sharded_documents.py), so the day stays one scheduled materialization.

Shared by the schedules (`defs/dunning/schedules.py`), the input sensor
(`defs/ingest/sensors.py`) and the fan-out sensor, like the partitions definition.
"""

import dagster as dg

from dagster_project.tables import DOCUMENT_CHANNELS, document_key

# The documents step's assets (the documents per channel and the analysts' copy) and what follows
# them (the daily report): what `daily_state` leaves to the fan-out job.
DOCUMENTS_AND_AFTER = dg.AssetSelection.assets(
    *(document_key(name) for name in DOCUMENT_CHANNELS), dg.AssetKey("analyst_copy")).downstream()

daily_dunning_job = dg.define_asset_job(
    "daily_dunning",
    selection=dg.AssetSelection.all(),  # the daily partitions of its assets
    description="The day: ingest -> state (plan) -> documents (dispatch, then the analysts' copy) -> daily "
                "report. A range of partitions runs as one backfill run (run config "
                "ops.dunning_state.config.catch_up: none | highest | each) and sends nothing.",
)

daily_state_job = dg.define_asset_job(
    "daily_state",
    selection=dg.AssetSelection.all() - DOCUMENTS_AND_AFTER,
    description="The day without its documents: ingest -> state (plan). For a cluster: the documents follow in "
                "sharded_documents, launched by documents_fan_out_sensor when this run succeeded "
                "(docs/scaling.md).",
)
