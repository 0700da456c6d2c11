"""Automation a Dagster user expects: the input-folder sensor, the failure notice by the configured email
channel, the days run outside Dagster (the demo) in its history, and a cluster's day: the state, then its
documents fanned out."""

from __future__ import annotations

import os
import time
from datetime import datetime
from email import message_from_bytes, policy as email_policy
from zoneinfo import ZoneInfo

import dagster as dg

from dagster_project.definitions import defs
from dagster_project.defs.alerts.sensors import run_failure_email
from dagster_project.defs.dunning.sharded_documents import documents_fan_out_sensor, sharded_documents
from dagster_project.defs.ingest.assets import billing_inputs
from dagster_project.defs.ingest.sensors import SETTLE_SECONDS, input_files_sensor
from dagster_project.defs.reporting.sensors import days_run_outside_dagster
from dagster_project.history import record_outside_runs
from dagster_project.jobs import daily_state_job
from dagster_project.resources import DunningResource
from smtp_server import SmtpServer
from world import World, policy, query


def _world(tmp_path) -> World:
    w = World(tmp_path, policy([("due_date", 14, 7)]))
    w.customer("CU1").contract("CT1", "CU1")
    w.invoice("I1", "100.00", "2026-04-26", "2026-05-10")
    return w


def _age(paths, seconds: float) -> None:
    for path in paths:
        os.utime(path, (time.time() - seconds, time.time() - seconds))


def test_the_input_sensor_starts_the_day_once_per_complete_set_of_files(tmp_path):
    w = _world(tmp_path)
    resources = {"dunning": DunningResource(config_file=str(w.write_config()))}
    data = tmp_path / "data"
    files = sorted(data.glob("*.csv"))
    assert len(files) == 5

    def tick(cursor=None):
        return input_files_sensor(dg.build_sensor_context(cursor=cursor, resources=resources))

    (data / "suspensions.csv").rename(tmp_path / "suspensions.csv")
    assert tick().skip_message == f"waiting for suspensions in {data}"
    (tmp_path / "suspensions.csv").rename(data / "suspensions.csv")
    os.utime(data / "suspensions.csv")  # just written: maybe not complete yet
    _age([f for f in files if f.name != "suspensions.csv"], 3600)
    assert tick().skip_message == f"suspensions.csv changed in the last {SETTLE_SECONDS} s: waiting until written"

    _age(files, 3600)
    first = tick()
    today = datetime.now(ZoneInfo("Europe/Berlin")).date().isoformat()
    assert [(r.partition_key, r.tags["dunning/trigger"]) for r in first.run_requests] == [(today, "input_files")]
    assert tick(first.cursor).skip_message == f"no new files in {data} since the run for this set was requested"

    # a corrected invoices file: the day runs again (re-running the latest day sends nothing twice)
    (data / "invoices.csv").write_text((data / "invoices.csv").read_text() + "\n")
    _age([data / "invoices.csv"], 120)
    second = tick(first.cursor)
    assert len(second.run_requests) == 1 and second.cursor != first.cursor
    assert second.run_requests[0].run_key != first.run_requests[0].run_key


def _failed_run(tmp_path, **overrides):
    """A run of the ingestion whose data folder lacks a table: it fails with the ingestion's message."""
    w = _world(tmp_path)
    w.settings_overrides.update(overrides)
    config = w.write_config()
    (tmp_path / "data" / "payments.csv").unlink()
    instance = dg.DagsterInstance.ephemeral()
    resources = {"dunning": DunningResource(config_file=str(config))}
    result = dg.materialize([billing_inputs], partition_key="2026-05-24", resources=resources,
                            instance=instance, raise_on_error=False)
    assert not result.success
    failure = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0].dagster_event
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_email", dagster_event=failure, dagster_instance=instance,
        dagster_run=result.dagster_run, resources=resources).for_run_failure()
    return w, result.dagster_run, context


def test_a_failed_run_is_mailed_through_the_configured_email_channel(tmp_path, monkeypatch):
    monkeypatch.setenv("DUNNING_ALERT_EMAIL", "billing-team@example.com")
    with SmtpServer() as smtp:
        _, run, context = _failed_run(tmp_path, channels={"email": {"host": smtp.host, "port": smtp.port,
                                                                     "security": "none"}})
        run_failure_email(context)
        assert len(smtp.messages) == 1
        message = smtp.messages[0]["message"]
    assert message["Subject"] == f"[dunning] run failed: {run.job_name} 2026-05-24"
    assert message["To"] == "billing-team@example.com"
    body = message.get_content()
    assert f"/runs/{run.run_id}" in body
    assert "- billing_inputs: no file for table payments (expected payments.csv or payments.parquet)" in body


def test_without_an_email_channel_the_notice_is_written_to_the_outbox(tmp_path):
    w, run, context = _failed_run(tmp_path)
    run_failure_email(context)
    notice = message_from_bytes((tmp_path / "outbox" / "alerts" / f"{run.run_id}.eml").read_bytes(),
                                policy=email_policy.default)
    assert notice["To"] == notice["From"]  # the organization's own address
    assert "no file for table payments" in notice.get_content()


def test_days_the_command_line_ran_are_recorded_once_in_dagsters_history(tmp_path):
    w = _world(tmp_path)
    settings = w.run("2026-05-23", "2026-05-24", dispatch=True)  # like `dunning demo`: live days, published
    instance = dg.DagsterInstance.ephemeral()
    assert record_outside_runs(instance, settings) == 2
    assert record_outside_runs(instance, settings) == 0  # recorded once
    for key in ("action_ledger", "stg_invoices", "documents/outbox", "contract_balances"):
        assert instance.get_materialized_partitions(dg.AssetKey.from_user_string(key)) == {
            "2026-05-23", "2026-05-24"}, key
    # the analysts' copy is stamped with the range's last day; no report was written
    assert instance.get_materialized_partitions(dg.AssetKey("analyst_copy")) == {"2026-05-24"}
    assert instance.get_materialized_partitions(dg.AssetKey("daily_report")) == set()
    event = instance.get_latest_materialization_event(dg.AssetKey(["documents", "outbox"])).asset_materialization
    assert (event.partition, event.metadata["recorded_from"].value, event.metadata["dagster/row_count"].value) == (
        "2026-05-24", "run_log", 1)

    # the sensor does the same while the UI runs, and looks again only when a new copy is published
    context = dg.build_sensor_context(instance=instance, resources={
        "dunning": DunningResource(config_file=str(w.write_config()))})
    result = days_run_outside_dagster(context)
    assert result.asset_events == [] and result.cursor
    again = days_run_outside_dagster(dg.build_sensor_context(
        instance=instance, cursor=result.cursor,
        resources={"dunning": DunningResource(config_file=str(w.write_config()))}))
    assert again.skip_message == "no new run since the last look"


def test_in_a_cluster_the_documents_fan_out_after_the_days_state(tmp_path):
    # daily_state_schedule -> daily_state (the day without its documents) -> documents_fan_out_sensor
    # -> sharded_documents for the same partition: the day stays one scheduled materialization
    w = _world(tmp_path)
    settings = w.write()
    resources = {"dunning": DunningResource(config_file=str(w.write_config()))}
    instance = dg.DagsterInstance.ephemeral()
    base = defs()
    location = dg.Definitions(assets=base.assets, asset_checks=base.asset_checks, jobs=[daily_state_job],
                              resources=resources)
    state = location.resolve_job_def("daily_state").execute_in_process(partition_key="2026-05-24", instance=instance)
    assert state.success
    started = {e.step_key for e in state.all_events if e.event_type_value == "STEP_START"}
    assert started == {"billing_inputs", "dunning_state"}
    key = "ct-CT1-20260524/L1/reminder"
    assert query(settings, "select action_key, status from action_ledger") == [(key, "planned")]

    context = dg.build_run_status_sensor_context(
        sensor_name="documents_fan_out_sensor", dagster_instance=instance, dagster_run=state.dagster_run,
        dagster_event=state.get_run_success_event())
    request = documents_fan_out_sensor(context)
    assert (request.partition_key, request.run_key, request.tags["dunning/state_run"]) == (
        "2026-05-24", f"documents-after-{state.run_id}", state.run_id)
    assert [t.job_name for t in documents_fan_out_sensor.targets] == ["sharded_documents"]

    documents = sharded_documents.execute_in_process(partition_key=request.partition_key, resources=resources,
                                                     instance=instance, tags=request.tags)
    assert documents.success
    assert query(settings, "select action_key, status, document_path from action_ledger") == [
        (key, "sent", "2026-05-24/ct-CT1-20260524__L1__reminder")]

    # a range of days is one backfill run without a partition tag: it sends nothing, so no fan-out
    ranged = dg.DagsterRun(job_name="daily_state", run_id="range-run", tags={
        "dagster/asset_partition_range_start": "2026-05-20", "dagster/asset_partition_range_end": "2026-05-24"})
    skipped = documents_fan_out_sensor(dg.build_run_status_sensor_context(
        sensor_name="documents_fan_out_sensor", dagster_instance=instance, dagster_run=ranged,
        dagster_event=state.get_run_success_event()))
    assert skipped.skip_message == "run range-run computed a range of days: a backfill sends nothing"


def test_the_daily_state_job_is_the_day_without_its_documents():
    job = defs().resolve_job_def("daily_state")
    selected = sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys)
    assert selected == ["action_ledger", "cases", "contract_balances", "open_receivables", "quarantine",
                        "stg_contracts", "stg_customers", "stg_invoices", "stg_payments", "stg_suspensions"]
