"""One materialization a day: the daily job over all assets, scheduled after billing closes."""

import dagster as dg

from dagster_project.partitions import daily_partitions

daily_dunning_job = dg.define_asset_job("daily_dunning", selection=dg.AssetSelection.all(),
                                        partitions_def=daily_partitions)

daily_dunning_schedule = dg.build_schedule_from_partitioned_job(daily_dunning_job, hour_of_day=6, minute_of_hour=0)
