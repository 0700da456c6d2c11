"""The stop threshold: a live day whose inputs lost a large share of a table to the quarantine
stops before anything is planned or sent (`ingestion` in dunning.yaml, docs/ingestion.md)."""

from __future__ import annotations

import dagster as dg
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from dagster_project.defs.dunning.assets import dunning_state, outbox_documents
from dagster_project.defs.ingest.assets import billing_inputs
from dagster_project.resources import DunningResource
from pipeline.cli import app
from pipeline.config.settings import IngestionSettings
from pipeline.engine import run as run_mod
from world import World, policy, query

runner = CliRunner()
DAY = "2026-05-31"


def _world(tmp_path, amounts=("100.00", "200.00", "300.00", "400.00", "500.00"), **ingestion) -> World:
    """Five overdue invoices on five contracts; `amounts` as exported (decimal commas: "100,00")."""
    w = World(tmp_path, policy([("due_date", 7, 7)]))
    w.customer("CU1")
    for n, amount in enumerate(amounts, 1):
        w.contract(f"CT{n}", "CU1").invoice(f"I{n}", amount, "2026-04-26", "2026-05-10", contract_id=f"CT{n}")
    if ingestion:
        w.settings_overrides["ingestion"] = ingestion
    return w


def _nothing_planned_or_sent(settings) -> None:
    assert query(settings, "select count(*) from action_ledger") == [(0,)]
    assert query(settings, "select count(*) from run_log") == [(0,)]
    assert not settings.outbox.exists() or not any(p.is_file() for p in settings.outbox.rglob("*"))


def test_all_invoices_quarantined_for_decimal_commas_stop_the_day_with_exit_2(tmp_path):
    w = _world(tmp_path, amounts=("100,00", "200,00", "300,00", "400,00", "500,00"))
    config = w.write_config()
    result = runner.invoke(app, ["run", "--as-of", DAY, "--config", str(config)])
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert ("Input stop: invoices: 5 of 5 rows read were quarantined (100.0%, more than the 20 % allowed; "
            "most often invalid_amount: 5)") in output
    assert "Nothing is planned or sent today" in output
    assert "ingestion.stop_when_quarantined_share_above" in output
    _nothing_planned_or_sent(w.write())


def test_a_share_at_the_threshold_runs_and_one_row_more_stops(tmp_path):
    ok = _world(tmp_path / "ok", amounts=("100,00", "200.00", "300.00", "400.00", "500.00"))  # 1 of 5 = 20 %
    result = runner.invoke(app, ["run", "--as-of", DAY, "--config", str(ok.write_config())])
    assert result.exit_code == 0, result.output
    assert query(ok.write(), "select count(*) from action_ledger where status = 'sent'") == [(4,)]
    stop = _world(tmp_path / "stop", amounts=("100,00", "200,00", "300.00", "400.00", "500.00"))  # 40 %
    result = runner.invoke(app, ["run", "--as-of", DAY, "--config", str(stop.write_config())])
    assert result.exit_code == 2 and "invoices: 2 of 5 rows read" in result.output
    _nothing_planned_or_sent(stop.write())


def test_the_share_is_configurable_per_table(tmp_path):
    amounts = ("100,00", "200,00", "300.00", "400.00", "500.00")
    relaxed = _world(tmp_path / "relaxed", amounts, per_table={"invoices": 0.5})
    assert runner.invoke(app, ["run", "--as-of", DAY, "--config", str(relaxed.write_config())]).exit_code == 0
    strict = _world(tmp_path / "strict", ("100,00",) + amounts[2:] + ("600.00",) * 5,
                    stop_when_quarantined_share_above=0.05)  # 1 of 9: 11 %
    result = runner.invoke(app, ["run", "--as-of", DAY, "--config", str(strict.write_config())])
    assert result.exit_code == 2 and "more than the 5 % allowed" in result.output
    never = _world(tmp_path / "never", ("1x",) * 5, stop_when_quarantined_share_above=1)
    assert runner.invoke(app, ["run", "--as-of", DAY, "--config", str(never.write_config())]).exit_code == 0


def test_cascaded_rows_count_for_their_table_and_each_table_is_named(tmp_path):
    w = _world(tmp_path)
    w.rows["contracts"][0]["currency"] = "euro"   # CT1 quarantined: 1 of 5 contracts, its invoice cascades
    w.rows["contracts"][1]["status"] = "paused"   # CT2 too: 2 of 5 contracts, 2 of 5 invoices
    config = w.write_config()
    result = runner.invoke(app, ["run", "--as-of", DAY, "--config", str(config)])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "contracts: 2 of 5 rows read were quarantined (40.0%" in output
    assert "invoices: 2 of 5 rows read were quarantined (40.0%, more than the 20 % allowed; most often " \
           "unknown_contract: 2)" in output


def test_backfills_and_simulations_are_not_stopped_only_live_days(tmp_path):
    """They send nothing; the difference report and the simulation show what the inputs lack."""
    w = _world(tmp_path, amounts=("1x",) * 5)
    settings = w.write()
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        run_mod.plan_day(con, run_mod.date.fromisoformat(DAY), run_mod.RunMode.SIMULATE, settings=settings)
        with pytest.raises(run_mod.RunRefused, match="Input stop: invoices: 5 of 5"):
            run_mod.plan_day(con, run_mod.date.fromisoformat("2026-06-01"), run_mod.RunMode.LIVE, settings=settings)


def test_dagster_fails_the_day_with_the_same_message_and_sends_nothing(tmp_path):
    w = _world(tmp_path, amounts=("100,00", "200,00", "300,00", "400,00", "500,00"))
    config = w.write_config()
    result = dg.materialize([billing_inputs, dunning_state, outbox_documents], partition_key=DAY,
                            resources={"dunning": DunningResource(config_file=str(config))},
                            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "Input stop: invoices: 5 of 5 rows read were quarantined" in failure.step_failure_data.error.message
    _nothing_planned_or_sent(w.write())


def test_settings_name_unknown_tables_and_shares_out_of_range():
    assert IngestionSettings().share_limit("payments") == 0.2
    assert IngestionSettings(per_table={"payments": 0.05}).share_limit("payments") == 0.05
    with pytest.raises(ValidationError, match="unknown input table 'invoice'"):
        IngestionSettings(per_table={"invoice": 0.1})
    with pytest.raises(ValidationError, match="between 0 and 1"):
        IngestionSettings(per_table={"invoices": 2})
    with pytest.raises(ValidationError):
        IngestionSettings(stop_when_quarantined_share_above=1.5)


def test_an_unusable_file_stops_dunning_run_with_exit_2_and_no_traceback(tmp_path):
    w = World(tmp_path, policy([("due_date", 7, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    config = w.write_config()
    (w.root / "data" / "payments.csv").write_text("", encoding="utf-8")
    result = runner.invoke(app, ["run", "--as-of", "2026-03-20", "--config", str(config)])
    assert result.exit_code == 2
    assert "NOTHING PLANNED OR SENT: " in result.output
    assert "payments.csv: the file is empty (not even a header line)" in result.output.replace("\n", "")
    assert "Traceback" not in result.output and not (w.root / "dunning.duckdb.wal").exists()


@pytest.mark.parametrize("command, stopped", [
    (["backfill", "--from", "2026-03-01", "--to", "2026-03-02", "--catch-up", "none"], "NOTHING PLANNED OR SENT: "),
    (["simulate", "--from", "2026-03-01", "--to", "2026-03-02"], "NOTHING SIMULATED: "),
])
def test_an_unusable_file_stops_backfill_and_simulate_the_same_way(tmp_path, command, stopped):
    """simulate printed a traceback (exit 1) where run and backfill name the file and exit 2."""
    w = World(tmp_path, policy([("due_date", 7, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    config = w.write_config()
    (w.root / "data" / "payments.csv").write_text("", encoding="utf-8")
    if command[0] == "simulate":
        command = [*command, "--policy", str(w.root / "policy.yaml")]
    result = runner.invoke(app, [*command, "--config", str(config)])
    assert result.exit_code == 2
    assert stopped in result.output
    assert "payments.csv: the file is empty (not even a header line)" in result.output.replace("\n", "")
    assert "Traceback" not in result.output


def test_an_unusable_file_leaves_every_input_table_as_the_last_load_left_it(tmp_path):
    """Ingestion is all or nothing: an unusable suspensions file (read last) stopped the load after
    the invoices, payments and their quarantine rows had been replaced by the new files."""
    from pipeline.warehouse.ingest import IngestError

    w = World(tmp_path, policy([("due_date", 7, 0)]))
    w.customer().contract().invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    w.payment("P1", "10.001", "2026-03-05")   # quarantined: a typo in the amount
    settings = w.write()
    before = "select (select list(invoice_id order by invoice_id) from stg_invoices), " \
             "(select list(payment_id) from stg_payments), (select list(table_name || ':' || rule) from quarantine)"
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        assert con.execute(before).fetchall() == [(["I1"], None, ["payments:invalid_amount"])]
        w.invoice("I2", "50.00", "2026-03-02", "2026-03-12")
        w.rows["payments"][0]["amount"] = "10.00"   # fixed
        w.write()
        (w.root / "data" / "suspensions.csv").write_text("", encoding="utf-8")
        with pytest.raises(IngestError, match="suspensions.csv: the file is empty"):
            run_mod.load_inputs(con, settings)
        assert con.execute(before).fetchall() == [(["I1"], None, ["payments:invalid_amount"])]
