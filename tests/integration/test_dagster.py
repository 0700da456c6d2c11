"""Dagster wiring: two consecutive partitions in process, then re-materialization changes nothing."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import dagster as dg
import pytest

from dagster_project.definitions import defs
from dagster_project.defs.dunning.assets import dunning_state, outbox_documents
from dagster_project.defs.ingest.assets import billing_inputs
from dagster_project.resources import DunningResource
from world import World, policy, query

pytestmark = pytest.mark.slow(45)  # long: each worker starts with its share (tests/conftest.py)

ASSETS = [billing_inputs, dunning_state, outbox_documents]


def _world(tmp_path):
    w = World(tmp_path, policy([("due_date", 14, 7), ("previous_level", 7, 7, {"EUR": "5.00"})]))
    w.customer("CU1").customer("CU2", locale="en_GB", country="GB")
    w.contract("CT1", "CU1").contract("CT2", "CU2", "GBP")
    w.invoice("I1", "100.00", "2026-04-26", "2026-05-10", contract_id="CT1", customer_id="CU1")
    w.invoice("I2", "250.50", "2026-04-27", "2026-05-11", contract_id="CT2", customer_id="CU2", currency="GBP")
    return w


def _materialize(instance, resources, day):
    result = dg.materialize(ASSETS, partition_key=day, resources=resources, instance=instance)
    assert result.success
    return result


def _snapshot(settings):
    ledger = query(settings, "select * exclude (status_changed_on) from action_ledger order by action_key")
    cases = query(settings, "select * from case_register order by case_id")
    files = sorted((p.relative_to(settings.outbox).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest())
                   for p in settings.outbox.rglob("*") if p.is_file())
    return ledger, cases, files


def test_definitions_load_with_daily_partitions_and_schedule():
    d = defs()
    # every table a user reads is an asset; the three steps (billing_inputs, dunning_state,
    # outbox_documents) and the report make them; billing_files is the input folder (external)
    assert {k.to_user_string() for k in d.resolve_asset_graph().get_all_asset_keys()} == {
        "billing_files", "stg_customers", "stg_contracts", "stg_invoices", "stg_payments", "stg_suspensions",
        "quarantine", "open_receivables", "contract_balances", "cases", "action_ledger",
        "documents/outbox", "documents/email", "documents/letter", "documents/sms", "documents/webhook",
        "documents/manual", "analyst_copy", "daily_report"}
    assert {n.name for n in d.resolve_job_def("daily_dunning").all_node_defs} == {
        "billing_inputs", "dunning_state", "outbox_documents", "daily_report"}
    assert [s.name for s in d.schedules] == ["daily_dunning_schedule", "daily_state_schedule"]
    assert {n.name for n in d.resolve_job_def("daily_state").all_node_defs} == {"billing_inputs", "dunning_state"}
    assert d.resolve_job_def("daily_dunning").partitions_def.get_partition_keys()[0] == "2025-01-01"


def test_two_consecutive_partitions_then_rematerializing_changes_nothing(tmp_path):
    w = _world(tmp_path)
    config = w.write_config()
    settings = w.write()
    resources = {"dunning": DunningResource(config_file=str(config))}
    instance = dg.DagsterInstance.ephemeral()
    first = _materialize(instance, resources, "2026-05-24")
    assert first.asset_materializations_for_node("outbox_documents")[0].metadata["documents_written"].value == 1
    _materialize(instance, resources, "2026-05-25")
    assert query(settings, "select executed_on::varchar, case_id, level_no, status, amount_demanded, "
                           "level_due_date::varchar from action_ledger order by action_key") == [
        ("2026-05-24", "ct-CT1-20260524", 1, "sent", Decimal("100.00"), "2026-05-31"),
        ("2026-05-25", "ct-CT2-20260524", 1, "sent", Decimal("250.50"), "2026-06-01")]
    checks = {(c.asset_key.to_user_string(), c.check_name): c.passed for c in first.get_asset_check_evaluations()}
    documents = ("outbox", "email", "letter", "sms", "webhook", "manual")
    assert checks == {
        **{(f"stg_{t}", name): True for t in ("customers", "contracts", "invoices", "payments", "suspensions")
           for name in ("rows_accounted_for", "no_quarantined_rows")},
        ("contract_balances", "balances_reconcile"): True,
        **{("action_ledger", name): True
           for name in ("action_keys_unique", "nothing_sent_twice", "dispatched_rows_unchanged")},
        **{(f"documents/{d}", name): True for d in documents
           for name in ("nothing_sent_twice", "sent_actions_have_documents")}}
    before = _snapshot(settings)
    assert len(before[2]) == 2 * 2 + 2 * 2   # two documents (pdf + eml) and two manifests (csv + json)

    _materialize(instance, resources, "2026-05-25")
    assert _snapshot(settings) == before
    # an earlier partition would discard the later day: refused, naming the backfill, nothing changes
    refused = dg.materialize(ASSETS, partition_key="2026-05-24", resources=resources, instance=instance,
                             raise_on_error=False)
    assert not refused.success
    failure = next(e for e in refused.all_events if e.event_type_value == "STEP_FAILURE")
    assert "dunning backfill --from 2026-05-24 --to 2026-05-25" in failure.step_failure_data.error.message
    assert _snapshot(settings) == before
    assert query(settings, "select count(*) from contract_balances where as_of = '2026-05-25'") == [(2,)]


def test_a_range_backfill_is_one_run_equal_to_the_cli_backfill_and_sends_nothing(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    dagster_world, cli_world = _world(tmp_path / "dagster"), _world(tmp_path / "cli")
    config = dagster_world.write_config()
    settings = dagster_world.write()
    result = dg.materialize(
        ASSETS, resources={"dunning": DunningResource(config_file=str(config))},
        instance=dg.DagsterInstance.ephemeral(),
        tags={"dagster/asset_partition_range_start": "2026-05-20",
              "dagster/asset_partition_range_end": "2026-06-10", "dunning/catch_up": "highest"})
    assert result.success
    assert result.asset_materializations_for_node("outbox_documents")[0].metadata["documents_written"].value == 0

    cli_config = cli_world.write_config()
    cli = CliRunner().invoke(app, ["backfill", "--from", "2026-05-20", "--to", "2026-06-10",
                                   "--catch-up", "highest", "--config", str(cli_config)])
    assert cli.exit_code == 0, cli.output
    ledger = "select * exclude (status_changed_on) from action_ledger order by action_key"
    assert query(settings, ledger) == query(cli_world.write(), ledger)
    assert query(settings, "select action_key, executed_on::varchar, status from action_ledger order by 1") == [
        ("ct-CT1-20260520/L1/reminder", "2026-05-24", "not_dispatched"),
        ("ct-CT1-20260520/L2/reminder", "2026-06-07", "not_dispatched"),
        ("ct-CT2-20260520/L1/reminder", "2026-05-25", "not_dispatched"),
        ("ct-CT2-20260520/L2/reminder", "2026-06-08", "not_dispatched")]
    assert query(settings, "select first_day::varchar, last_day::varchar, catch_up from backfill_runs") == [
        ("2026-05-20", "2026-06-10", "highest")]
    assert not settings.outbox.exists() or not any(settings.outbox.rglob("*.eml"))


@pytest.mark.parametrize("tags", [
    # a backfill of one partition of the assets (single-run policy): the range tags, start == end
    {"dagster/backfill": "bkfl0001", "dagster/asset_partition_range_start": "2026-05-25",
     "dagster/asset_partition_range_end": "2026-05-25"},
    # a job's backfill: one run per partition, tagged with the backfill
    {"dagster/backfill": "bkfl0002", "dagster/partition": "2026-05-25"},
])
def test_a_backfill_of_one_partition_sends_nothing_as_the_cli_backfill_of_one_day(tmp_path, tags):
    """A run of one day that is part of a backfill was taken for the live day (it planned live and
    sent, ignoring the catch-up choice and recording no backfill): only the width of the range was
    looked at."""
    from typer.testing import CliRunner

    from pipeline.cli import app

    cli_world, dagster_world = _world(tmp_path / "cli"), _world(tmp_path / "dagster")
    cli_config = str(cli_world.write_config())
    for args in (["run", "--as-of", "2026-05-24"],
                 ["backfill", "--from", "2026-05-25", "--to", "2026-05-25", "--catch-up", "highest"]):
        out = CliRunner().invoke(app, [*args, "--config", cli_config])
        assert out.exit_code == 0, out.output
    settings = dagster_world.write()
    resources = {"dunning": DunningResource(config_file=str(dagster_world.write_config()))}
    instance = dg.DagsterInstance.ephemeral()
    _materialize(instance, resources, "2026-05-24")
    kwargs = {"partition_key": tags["dagster/partition"]} if "dagster/partition" in tags else {}
    result = dg.materialize(ASSETS, resources=resources, instance=instance, tags=tags, **kwargs,
                            run_config={"ops": {"dunning_state": {"config": {"catch_up": "highest"}}}})
    assert result.success
    assert result.asset_materializations_for_node("outbox_documents")[0].metadata["documents_written"].value == 0
    ledger = "select action_key, executed_on::varchar, status, dispatch_mode from action_ledger order by 1"
    assert query(settings, ledger) == query(cli_world.write(), ledger) == [
        ("ct-CT1-20260524/L1/reminder", "2026-05-24", "sent", "live"),
        ("ct-CT2-20260524/L1/reminder", "2026-05-25", "not_dispatched", "backfill")]
    assert query(settings, "select first_day::varchar, last_day::varchar, catch_up from backfill_runs") == [
        ("2026-05-25", "2026-05-25", "highest")]


def test_a_live_day_with_a_policy_lint_error_plans_and_sends_nothing_as_the_cli(tmp_path):
    """`dunning run` lints the policy file first and stops on an error; the Dagster day did not lint."""
    from typer.testing import CliRunner

    from pipeline.cli import app

    w = World(tmp_path, policy([("due_date", 14, 7), ("previous_level", -3, 7)]))  # L2 before L1's deadline
    w.customer("CU1").contract("CT1", "CU1").invoice("I1", "100.00", "2026-04-26", "2026-05-10")
    config = w.write_config()
    settings = w.write()
    cli = CliRunner().invoke(app, ["run", "--as-of", "2026-05-24", "--config", str(config)])
    assert cli.exit_code == 2, cli.output
    result = dg.materialize(ASSETS, partition_key="2026-05-24",
                            resources={"dunning": DunningResource(config_file=str(config))},
                            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "billing_inputs"
    assert ("timed -3 days after the previous level's own due date" in failure.event_specific_data.error.message
            and "nothing planned or sent: fix the policy file first" in failure.event_specific_data.error.message)
    # nothing ingested, planned or sent: the day stopped before it touched the database
    assert query(settings, "select table_name from information_schema.tables") == []


def test_the_state_code_version_follows_the_sql_and_the_policy(tmp_path, monkeypatch):
    from dagster_project import code_versions

    before = code_versions.state_version()
    policy_file = tmp_path / "policy.yaml"
    monkeypatch.setattr(code_versions, "_policy_file", lambda: [policy_file])
    policy_file.write_text("policies: []\n")
    first = code_versions.state_version()
    policy_file.write_text("policies: [] # edited\n")
    assert len({before, first, code_versions.state_version()}) == 3
