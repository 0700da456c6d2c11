"""Run modes and the one order of a live day, from the CLI and from Dagster alike.

Each test is one defect of the engine issue: a live day planned without sending,
a re-run of a past day, a backfill under a version that adds a level, and where
the analysts' copy is published.
"""

from __future__ import annotations

import os
from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from typer.testing import CliRunner

from dagster_project.defs.dunning.assets import dunning_state, outbox_documents
from dagster_project.defs.ingest.assets import billing_inputs
from dagster_project.resources import DunningResource
from pipeline.engine import run as run_mod
from pipeline.engine.backfill import BackfillError, backfill
from pipeline.cli import app
from pipeline.reporting.explain import explain_case, format_explanation
from world import World, policy, query

pytestmark = pytest.mark.slow(50)  # long: each worker starts with its share (tests/conftest.py)

runner = CliRunner()
ASSETS = [billing_inputs, dunning_state, outbox_documents]
LEDGER = "select action_key, executed_on::varchar, status, dispatch_mode from action_ledger order by 1"


def _world(tmp_path: Path) -> World:
    w = World(tmp_path, policy([("due_date", 7, 7), ("previous_level", 0, 7, {"EUR": "5.00"})]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-15")
    return w


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_a_live_day_planned_without_sending_stays_pending_for_dispatch(tmp_path):
    w = _world(tmp_path)
    config = str(w.write_config())
    settings = w.write()
    assert _cli("run", "--as-of", "2026-03-22", "--no-dispatch", "--config", config)[0] == 0
    assert query(settings, LEDGER) == [("ct-CT1-20260322/L1/reminder", "2026-03-22", "planned", "live")]
    code, out = _cli("dispatch", "--as-of", "2026-03-22", "--config", config)
    assert code == 0, out
    assert "2026-03-22: rendered 1," in out
    assert query(settings, LEDGER) == [("ct-CT1-20260322/L1/reminder", "2026-03-22", "sent", "live")]


def test_the_next_live_day_sends_what_a_day_without_sending_left_planned(tmp_path):
    w = _world(tmp_path)
    config = str(w.write_config())
    settings = w.write()
    assert _cli("run", "--as-of", "2026-03-22", "--no-dispatch", "--config", config)[0] == 0
    code, out = _cli("run", "--as-of", "2026-03-23", "--config", config)
    assert code == 0, out
    assert query(settings, LEDGER) == [("ct-CT1-20260322/L1/reminder", "2026-03-22", "sent", "live")]
    assert len(list(settings.outbox.rglob("message.eml"))) == 1


def _analyst_stamp(settings) -> str:
    return os.readlink(Path(settings.analyst_dir) / "current")


def test_a_past_day_is_refused_from_the_cli_and_later_days_stay(tmp_path):
    w = _world(tmp_path)
    config = str(w.write_config())
    settings = w.write()
    assert _cli("run", "--as-of", "2026-03-21", "--config", config)[0] == 0
    assert _cli("run", "--as-of", "2026-03-22", "--config", config)[0] == 0
    ledger = query(settings, "select * exclude (status_changed_on) from action_ledger order by 1")
    assert _analyst_stamp(settings) == "2026-03-22-run1"

    code, out = _cli("run", "--as-of", "2026-03-21", "--config", config)
    assert code == 2
    flat = " ".join(out.split())
    assert ("Re-running the live day 2026-03-21 would discard the 1 later day(s) computed up to 2026-03-22" in flat)
    assert "dunning backfill --from 2026-03-21 --to 2026-03-22 --catch-up none|highest|each" in flat
    assert query(settings, "select * exclude (status_changed_on) from action_ledger order by 1") == ledger
    assert query(settings, "select as_of::varchar, count(*) from contract_balances group by 1 order by 1") == [
        ("2026-03-21", 1), ("2026-03-22", 1)]
    assert _analyst_stamp(settings) == "2026-03-22-run1"
    # the latest day may be run again: same state, nothing sent twice
    assert _cli("run", "--as-of", "2026-03-22", "--config", config)[0] == 0
    assert query(settings, "select * exclude (status_changed_on) from action_ledger order by 1") == ledger
    assert _analyst_stamp(settings) == "2026-03-22-run2"


def test_a_backfill_that_ends_before_the_latest_day_is_refused(tmp_path):
    w = _world(tmp_path)
    settings = w.run("2026-03-16", "2026-03-31", dispatch=True)
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        with pytest.raises(BackfillError, match="dunning backfill --from 2026-03-16 --to 2026-03-31"):
            backfill(con, date(2026, 3, 16), date(2026, 3, 25), settings, catch_up="none")
    assert query(settings, "select count(*), max(as_of)::varchar from contract_balances") == [(16, "2026-03-31")]


def _materialize(instance, resources, day):
    return dg.materialize(ASSETS, partition_key=day, resources=resources, instance=instance, raise_on_error=False)


def test_dagster_publishes_after_dispatch_as_the_cli_does(tmp_path):
    dagster_world, cli_world = _world(tmp_path / "dagster"), _world(tmp_path / "cli")
    resources = {"dunning": DunningResource(config_file=str(dagster_world.write_config()))}
    assert _materialize(dg.DagsterInstance.ephemeral(), resources, "2026-03-22").success
    assert _cli("run", "--as-of", "2026-03-22", "--config", str(cli_world.write_config()))[0] == 0

    def published(world: World) -> list[tuple]:
        settings = world.write()
        con = duckdb.connect(str(Path(settings.analyst_dir) / "dunning_analyst.duckdb"), read_only=True)
        try:
            return con.execute("select action_key, status from action_ledger order by 1").fetchall()
        finally:
            con.close()

    assert published(dagster_world) == published(cli_world) == [("ct-CT1-20260322/L1/reminder", "sent")]


# A version that adds a level, adopted by a backfill over days already sent under the old one.
V2 = {"effective_from": "2027-01-01", "scope": "contract", "grace_days": 0, "thresholds": {},
      "levels": [{"name": "Level 1", "timing": {"after": "due_date", "days": 7}, "payment_term_days": 7},
                 {"name": "Level 2", "timing": {"after": "previous_level", "days": 0}, "payment_term_days": 7,
                  "fee": {"EUR": "5.00"}},
                 {"name": "Final notice", "timing": {"after": "previous_level", "days": 0}, "payment_term_days": 7,
                  "fee": {"EUR": "10.00"}}]}


def _v2_world(tmp_path: Path) -> World:
    w = _world(tmp_path)
    w.policy_doc["policies"][0]["versions"].append(V2)
    return w


def test_a_backfill_under_a_version_that_adds_a_level_is_one_truth_afterwards(tmp_path):
    w = _v2_world(tmp_path)
    settings = w.run("2026-03-16", "2026-03-31", dispatch=True)
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        v2 = con.execute("select policy_version from policy_versions where effective_from = '2027-01-01'"
                         ).fetchall()[0][0]
        backfill(con, date(2026, 3, 16), date(2026, 4, 6), settings, catch_up="highest", policy_version=v2)
    # the case continues under the version its levels came from
    assert query(settings, "select case_id, policy_version from case_register") == [("ct-CT1-20260316", v2)]
    assert query(settings, "select action_key, executed_on::varchar, status, fee from action_ledger order by 2") == [
        ("ct-CT1-20260316/L1/reminder", "2026-03-22", "sent", Decimal("0.00")),
        ("ct-CT1-20260316/L2/reminder", "2026-03-29", "sent", Decimal("5.00")),
        ("ct-CT1-20260316/L3/reminder", "2026-04-05", "not_dispatched", Decimal("10.00"))]

    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        run_mod.run_day(con, date(2026, 4, 7), settings)
        run_mod.run_day(con, date(2026, 4, 8), settings)
        explanation = explain_case(con, "ct-CT1-20260316", date(2026, 4, 8))
    # the live day sends the level nobody received, once, without a second fee
    assert query(settings, "select action_key, executed_on::varchar, status, fee, amount_demanded "
                           "from action_ledger where action_key like '%+catch_up'") == [
        ("ct-CT1-20260316/L3/reminder+catch_up", "2026-04-07", "sent", Decimal("0.00"), Decimal("115.00"))]
    # explain, the ledger and the fees agree
    fees = query(settings, "select sum(fee) from fee_ledger where case_id = 'ct-CT1-20260316'")[0][0]
    assert fees == explanation.fees_total == Decimal("15.00")
    assert explanation.policy_version == v2 and explanation.version_in_file
    text = format_explanation(explanation)
    assert "kept for this case" not in text
    assert "Current level  L3 Final notice, executed 2026-04-07" in text
    assert "every level has run" in text
    assert query(settings, "select current_level, fees_total from cases") == [(3, Decimal("15.00"))]
