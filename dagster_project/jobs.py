"""The one job: the whole day, every asset, over the shared daily partitions.

Shared by the schedule (`defs/dunning/schedules.py`) and the input sensor
(`defs/ingest/sensors.py`), like the partitions definition.
"""

import dagster as dg

daily_dunning_job = dg.define_asset_job(
    "daily_dunning",
    selection=dg.AssetSelection.all(),  # the daily partitions of its assets
    description="The day: ingest -> state (plan) -> documents (dispatch, then the analysts' copy) -> daily "
                "report. A range of partitions runs as one backfill run (run config "
                "ops.dunning_state.config.catch_up: none | highest | each) and sends nothing.",
)
