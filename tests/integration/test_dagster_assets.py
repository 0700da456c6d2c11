"""The Dagster graph a data team opens: every table an asset, described, owned, tagged and versioned
by its SQL; lineage by the SQL layers; the backfill's catch-up as typed config; automation statuses."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from dagster_project import code_versions
from dagster_project.definitions import defs
from dagster_project.defs.dunning.assets import dunning_state
from dagster_project.defs.dunning.schedules import daily_dunning_schedule, daily_state_schedule
from dagster_project.tables import table_assets
from pipeline.config.settings import PROJECT_ROOT
from pipeline.warehouse import catalog

SQL = PROJECT_ROOT / "sql"


def test_the_definitions_load_without_a_single_warning():
    # a fresh interpreter: every module of the code location imported (the loader of the defs folder
    # hides Dagster's own warnings) and every definition resolved, with every warning shown
    script = ("import importlib, pkgutil, dagster_project\n"
              "for m in pkgutil.walk_packages(dagster_project.__path__, 'dagster_project.'):\n"
              "    importlib.import_module(m.name)\n"
              "from dagster_project.definitions import defs\n"
              "d = defs()\n"
              "d.resolve_asset_graph(); d.resolve_all_job_defs(); d.resolve_all_asset_specs()\n"
              "list(d.resolve_asset_graph().asset_check_keys); list(d.sensors); list(d.schedules)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    done = subprocess.run([sys.executable, "-W", "always", "-c", script], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""


def test_every_asset_has_description_columns_table_owner_tags_and_code_version():
    d = defs()
    specs = {s.key.to_user_string(): s for s in d.resolve_all_asset_specs()}
    assert set(specs) - {"billing_files"} == {k.to_user_string() for k in table_assets()}
    for name, spec in specs.items():
        assert spec.description and spec.owners and spec.tags.get("layer"), name
        if name == "billing_files":
            continue
        assert spec.code_version and len(spec.code_version) == 16, name
        assert spec.metadata["dagster/table_name"], name
        assert spec.metadata["dagster/column_schema"].columns, name
        assert spec.partitions_def is not None, name
    # columns from the catalog YAML, in its order, typed from the DDL
    schema = specs["contract_balances"].metadata["dagster/column_schema"]
    assert [c.name for c in schema.columns] == [c.name for c in catalog.DOCS["contract_balances"].columns]
    by_name = {c.name: c for c in schema.columns}
    assert by_name["balance"].type == "DECIMAL(18,2)" and by_name["balance"].description
    assert by_name["oldest_due_date"].constraints.nullable and not by_name["as_of"].constraints.nullable
    stg = {c.name: c.type for c in specs["stg_invoices"].metadata["dagster/column_schema"].columns}
    assert stg["amount"] == "DECIMAL(18,2)" and stg["_source_file"] == "VARCHAR"
    assert specs["cases"].metadata["dagster/table_name"] == "cases"
    assert specs["documents/email"].metadata["channels"] == "email"
    assert specs["documents/letter"].metadata["channels"] == "letter, registered_letter"
    assert specs["analyst_copy"].owners == ["team:data"] and specs["action_ledger"].owners == ["team:dunning"]
    assert {k: v for k, v in specs["stg_customers"].tags.items() if not k.startswith("dagster/")} == {
        "layer": "staging", "pii": "true"}
    assert specs["action_ledger"].freshness_policy is not None
    assert specs["daily_report"].automation_condition is not None


def test_lineage_mirrors_the_sql_layers_and_the_state_carries_from_the_previous_day():
    graph = defs().resolve_asset_graph()

    def parents(name: str) -> set[str]:
        return {k.to_user_string() for k in graph.get(dg.AssetKey.from_user_string(name)).parent_keys}

    assert parents("stg_customers") == parents("quarantine") == {"billing_files"}
    assert parents("stg_payments") == {"stg_invoices"}  # the payment rules read the staged invoices
    assert parents("open_receivables") == {"stg_payments"}
    assert parents("contract_balances") == {"open_receivables"}
    assert parents("cases") == {"contract_balances", "stg_suspensions", "cases"}
    assert parents("action_ledger") == {"cases", "action_ledger"}
    assert parents("documents/email") == {"action_ledger"}
    assert parents("analyst_copy") == {f"documents/{c}" for c in ("outbox", "email", "letter", "sms", "webhook",
                                                                  "manual")} | {"quarantine"}
    ledger = graph.get(dg.AssetKey("action_ledger"))
    mapping = ledger.partition_mappings[dg.AssetKey("action_ledger")]
    assert (mapping.start_offset, mapping.end_offset) == (-1, -1)


def test_code_versions_follow_the_sql_each_table_is_made_from():
    def files(**kwargs) -> set[str]:
        paths = code_versions.with_called_macros([*code_versions.model_files(kwargs.get("models", ())),
                                                  *code_versions.relation_files(kwargs.get("relations", ()))])
        return {p.relative_to(SQL).as_posix() for p in paths if p.is_relative_to(SQL)}

    balances = files(models=["int_contract_balances"], relations=["contract_balances"])
    assert balances == {"intermediate/int_contract_balances.sql", "intermediate/int_open_receivables.sql",
                        "intermediate/int_receivable_remainders.sql", "intermediate/int_contract_credits.sql",
                        "schema/010_state_tables.sql", "schema/015_timing_macro.sql",  # days_overdue()
                        "schema/014_invoice_visibility_macro.sql"}  # is_receivable_on()
    ledger = files(models=["planned_actions", "planned_collection_actions"], relations=["action_ledger"])
    assert {"marts/planned_actions.sql", "marts/levels_due.sql", "schema/025_level_rules_macro.sql",
            "schema/015_timing_macro.sql", "seeds/ledger_statuses.csv", "seeds/action_kinds.csv"} <= ledger
    assert "marts/planned_actions.sql" not in balances
    versions = {k.to_user_string(): a.code_version for k, a in table_assets().items()}
    assert len({versions["contract_balances"], versions["open_receivables"], versions["action_ledger"]}) == 3


def test_the_catch_up_is_typed_run_config_with_three_values():
    job = defs().resolve_job_def("daily_dunning")
    config_type = job.run_config_schema.config_type.fields["ops"].config_type.fields["dunning_state"] \
        .config_type.fields["config"].config_type.fields["catch_up"]
    assert config_type.default_value == "none"
    assert [v.config_value for v in config_type.config_type.inner_type.enum_values] == ["none", "highest", "each"]
    dg.validate_run_config(job, {"ops": {"dunning_state": {"config": {"catch_up": "highest"}}}})
    with pytest.raises(dg.DagsterInvalidConfigError, match="sometimes"):
        dg.validate_run_config(job, {"ops": {"dunning_state": {"config": {"catch_up": "sometimes"}}}})
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.materialize([dunning_state], partition_key="2026-05-24", instance=dg.DagsterInstance.ephemeral(),
                       resources={"dunning": object()},
                       run_config={"ops": {"dunning_state": {"config": {"catch_up": "sometimes"}}}})


def test_the_schedule_runs_today_at_six_and_what_is_on_by_default():
    d = defs()
    schedule = d.resolve_schedule_def("daily_dunning_schedule")
    at = datetime(2026, 6, 30, 6, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    request = daily_dunning_schedule(dg.build_schedule_context(scheduled_execution_time=at))
    assert (request.partition_key, request.run_key, schedule.cron_schedule, schedule.execution_timezone) == (
        "2026-06-30", "schedule-2026-06-30", "0 6 * * *", "Europe/Berlin")
    # a cluster's day: the state at six, its documents fanned out after it (documents_fan_out_sensor)
    state = d.resolve_schedule_def("daily_state_schedule")
    request = daily_state_schedule(dg.build_schedule_context(scheduled_execution_time=at))
    assert (request.partition_key, request.run_key, state.job_name, state.cron_schedule) == (
        "2026-06-30", "state-schedule-2026-06-30", "daily_state", "0 6 * * *")
    statuses = {s.name: s.default_status for s in [*d.sensors, *d.schedules]}
    assert statuses == {
        "daily_dunning_schedule": dg.DefaultScheduleStatus.STOPPED,  # it sends: turned on deliberately
        "daily_state_schedule": dg.DefaultScheduleStatus.STOPPED,  # with the fan-out sensor, instead of it
        "documents_fan_out_sensor": dg.DefaultSensorStatus.STOPPED,
        "input_files_sensor": dg.DefaultSensorStatus.STOPPED,
        "run_failure_email": dg.DefaultSensorStatus.RUNNING,
        "days_run_outside_dagster": dg.DefaultSensorStatus.RUNNING,
        "report_automation": dg.DefaultSensorStatus.RUNNING}
