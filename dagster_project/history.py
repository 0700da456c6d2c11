"""Days computed outside Dagster (`dunning demo`, `dunning run`, `dunning backfill`) in Dagster's history.

Every run of a day, from the command line or from Dagster, adds a row to the
run log; every Dagster run of a day adds a materialization of `action_ledger`
for that partition. So for each day, run-log rows beyond the number of
materializations Dagster has are runs made outside it. For each of them this
module records materializations of the day's assets (inputs, state, documents
per channel; the analysts' copy for the run it is stamped with, the daily report
where the report file exists), with `recorded_from: run_log` and the run's number
in their metadata: after `make demo`, the UI shows the demo's days as
materialized partitions.

The run log is read from the analysts' copy (`<analyst_dir>/current/*.parquet`,
written after every run), never from the working database: that file allows one
writing process, and a run must never find it held by this reader.
Used by `python -m dagster_project.dev` before the UI starts and by the sensor
`days_run_outside_dagster` while it runs.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import dagster as dg
import duckdb

from dagster_project.partitions import daily_partitions
from dagster_project.tables import DOCUMENT_CHANNELS, document_key, table_assets
from pipeline.config.settings import Settings

LEDGER = dg.AssetKey("action_ledger")
SOURCE = "run_log"


def copy_folder(settings: Settings) -> Path:
    return Path(settings.analyst_dir) / "current"


def copy_version(settings: Settings) -> str | None:
    """What changes when a new copy is published (the sensor's cursor), or None without a copy."""
    folder = copy_folder(settings)
    log = folder / "run_log.parquet"
    if not log.is_file():
        return None
    st = log.stat()
    return f"{os.readlink(folder) if folder.is_symlink() else folder}:{st.st_mtime_ns}:{st.st_size}"


def _query(con, sql: str, params=None) -> list[tuple]:
    try:
        return con.execute(sql, params or []).fetchall()
    except duckdb.Error:  # a table missing from the copy: no figures for it
        return []


def _day_counts(con, folder: Path) -> dict[str, dict]:
    """Row counts per day for the metadata: balances, cases, ledger, documents per channel."""
    def p(name: str) -> str:
        return str(folder / f"{name}.parquet")

    counts: dict[str, dict] = {"contract_balances": dict(_query(
        con, "select as_of, count(*) from read_parquet(?) group by all", [p("contract_balances")]))}
    counts["documents"] = {(d, ch): n for d, ch, n in _query(
        con, """select executed_on, channel, count(*) from read_parquet(?)
                where action in ('reminder', 'sms', 'notify_merchant', 'webhook') group by all""",
        [p("action_ledger")])}
    return counts


def outside_runs(instance: dg.DagsterInstance, settings: Settings) -> list[dg.AssetMaterialization]:
    """Materializations for the runs in the run log that Dagster has not recorded (see the module)."""
    folder = copy_folder(settings)
    if not (folder / "run_log.parquet").is_file():
        return []
    con = duckdb.connect()
    try:
        log = _query(con, """select as_of, run_number, mode, documents_sent from read_parquet(?)
                             where mode in ('live', 'backfill') order by as_of, run_number""",
                     [str(folder / "run_log.parquet")])
        counts = _day_counts(con, folder)
    finally:
        con.close()
    valid = set(daily_partitions.get_partition_keys())
    days = sorted({d.isoformat() for d, *_ in log} & valid)
    if not days:
        return []
    seen = Counter(r.partition_key for r in _materializations(instance, days))
    stamp = os.readlink(folder) if folder.is_symlink() else ""
    last_run = {d: n for d, n, *_ in log}
    assets = table_assets()
    events = []
    for as_of, run_number, mode, sent in log:
        day = as_of.isoformat()
        if day not in valid or run_number <= seen[day]:
            continue
        common = {"recorded_from": SOURCE, "run_number": run_number, "mode": mode, "as_of": day}
        for key, asset in assets.items():
            metadata = dict(common)
            if key.path[0] == "documents":
                channels = DOCUMENT_CHANNELS[key.path[-1]][0]
                metadata["dagster/row_count"] = sum(counts["documents"].get((as_of, c), 0) for c in channels)
            elif key.to_user_string() == "contract_balances":
                metadata["dagster/row_count"] = counts["contract_balances"].get(as_of, 0)
            elif key.to_user_string() == "analyst_copy":
                if not stamp.startswith(f"{day}-run{run_number}"):
                    continue
                metadata["analyst_export"] = str(Path(settings.analyst_dir) / stamp)
            elif key.to_user_string() == "daily_report":
                report = Path(settings.reports_dir) / day / "report.html"
                if run_number != last_run[as_of] or not report.is_file():
                    continue
                metadata["html"] = dg.MetadataValue.path(str(report))
            if key == document_key("outbox"):
                metadata["documents_sent_all_channels"] = sent
            events.append(dg.AssetMaterialization(
                asset_key=key, partition=day, metadata=metadata,
                description="Computed outside Dagster (dunning demo, run or backfill); recorded from the run log."))
    return events


def _materializations(instance: dg.DagsterInstance, days: list[str]) -> list:
    out, cursor = [], None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=LEDGER, asset_partitions=days), limit=1000, cursor=cursor)
        out += result.records
        if not result.has_more:
            return out
        cursor = result.cursor


def record_outside_runs(instance: dg.DagsterInstance, settings: Settings) -> int:
    """Record them in `instance` now (before the UI starts); returns how many days were recorded."""
    events = outside_runs(instance, settings)
    for event in events:
        instance.report_runless_asset_event(event)
    return len({e.partition for e in events if e.asset_key == LEDGER})
