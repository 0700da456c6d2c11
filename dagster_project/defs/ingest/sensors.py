"""Start the day when a complete set of input files has arrived. Off by default (it sends).

Complete: every input table (customers, contracts, invoices, payments,
suspensions) has at least one file in the data folder (`<table>.csv`,
`<table>_*.parquet` or a `<table>/` folder, as ingestion reads them), and none
of them changed in the last `SETTLE_SECONDS` (a file still being written is not
read half-way). The set's fingerprint (paths, sizes, modification times) is the
cursor and the run key: the same files never start a second run, a changed or
new file starts the day again (re-running the latest day is idempotent: nothing
already sent is sent again). The run is for today's partition (Europe/Berlin),
the one the schedule runs.
"""

import hashlib
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from dagster_project.jobs import daily_dunning_job
from dagster_project.partitions import BUSINESS_TIMEZONE
from dagster_project.resources import DunningResource
from pipeline.config.input_tables import INPUT_TABLES
from pipeline.warehouse.ingest import discover_files

SETTLE_SECONDS = 60


def input_files(data_dir: Path) -> tuple[list[str], list[Path]]:
    """(tables without a file, every input file found)."""
    missing, files = [], []
    for table in INPUT_TABLES:
        found = discover_files(data_dir, table.name)
        if not found:
            missing.append(table.name)
        files += found
    return missing, files


def fingerprint(files: list[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        st = path.stat()
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


@dg.sensor(
    name="input_files_sensor",
    job=daily_dunning_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Starts today's partition when a complete set of input files (all five tables) has arrived and "
                f"settled for {SETTLE_SECONDS} s; the same files never start it twice. Off by default: it sends "
                "documents to customers, so turn it on deliberately.",
)
def input_files_sensor(context: dg.SensorEvaluationContext, dunning: DunningResource):
    data_dir = Path(dunning.settings().data_dir)
    missing, files = input_files(data_dir)
    if missing:
        return dg.SkipReason(f"waiting for {', '.join(missing)} in {data_dir}")
    now = time.time()
    fresh = sorted(p.name for p in files if now - p.stat().st_mtime < SETTLE_SECONDS)
    if fresh:
        return dg.SkipReason(f"{', '.join(fresh)} changed in the last {SETTLE_SECONDS} s: waiting until written")
    key = fingerprint(files)
    if context.cursor == key:
        return dg.SkipReason(f"no new files in {data_dir} since the run for this set was requested")
    day = datetime.now(ZoneInfo(BUSINESS_TIMEZONE)).date().isoformat()
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"input-files-{key}", partition_key=day,
                                    tags={"dunning/trigger": "input_files", "dunning/input_files": key})],
        cursor=key)
