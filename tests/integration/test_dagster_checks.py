"""The product's promises as asset checks: each passes on a good world (tests/integration/test_dagster.py)
and fails with its exact message on a deliberately broken DuckDB state; a broken blocking promise on
the state stops the day before anything is sent, and every sending path alone refuses to send: the
documents step, the sharded documents job, `dunning dispatch` and `dunning run`."""

from __future__ import annotations

import shutil
from datetime import date

import dagster as dg
import pytest
from typer.testing import CliRunner

from dagster_project.checks import check_result
from dagster_project.defs.dunning.assets import dunning_state, outbox_documents
from dagster_project.defs.dunning.sharded_documents import sharded_documents
from dagster_project.defs.ingest.assets import billing_inputs
from dagster_project.resources import DunningResource
from pipeline.cli import app
from pipeline.engine import checks as promises
from pipeline.engine import run as run_mod
from world import World, policy, query

DAY = date(2026, 5, 24)
KEY = "ct-CT1-20260524/L1/reminder"
FOLDER = "2026-05-24/ct-CT1-20260524__L1__reminder"


def _world(tmp_path) -> World:
    w = World(tmp_path, policy([("due_date", 14, 7), ("previous_level", 7, 7, {"EUR": "5.00"})]))
    w.customer("CU1").customer("CU2", locale="en_GB", country="GB")
    w.contract("CT1", "CU1").contract("CT2", "CU2", "GBP")
    w.invoice("I1", "100.00", "2026-04-26", "2026-05-10", contract_id="CT1", customer_id="CU1")
    w.invoice("I2", "250.50", "2026-04-27", "2026-05-11", contract_id="CT2", customer_id="CU2", currency="GBP")
    return w


@pytest.fixture(scope="module")
def _sent_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("sent")
    settings = _world(root).run(DAY.isoformat(), DAY.isoformat(), dispatch=True)
    assert query(settings, "select action_key, status, document_path from action_ledger") == [(KEY, "sent", FOLDER)]
    return root


@pytest.fixture
def sent_day(_sent_world, tmp_path):
    """A live day run and sent through the library: CT1's first reminder is in the outbox (a copy per test)."""
    shutil.copytree(_sent_world, tmp_path, dirs_exist_ok=True, symlinks=True)
    w = _world(tmp_path)
    return w, w.write()


def _failed(con, name, asset, **params) -> str:
    result = check_result(con, name, asset, **params)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    return result.description


def test_each_promise_holds_on_the_day_and_fails_with_its_message_when_broken(sent_day):
    w, settings = sent_day
    with run_mod.connect(settings.database) as con:
        _, reports = run_mod.load_inputs(con, settings)
        promises.record_rows_read(con, [(r.table, r.rows_read) for r in reports])
        promises.snapshot_dispatched(con)
        promises.list_outbox_folders(con, settings.outbox, [DAY])
        good = [check_result(con, "rows_accounted_for", "stg_invoices", table_name="invoices"),
                check_result(con, "balances_reconcile", "contract_balances", as_of=DAY),
                check_result(con, "action_keys_unique", "action_ledger"),
                check_result(con, "nothing_sent_twice", "action_ledger"),
                check_result(con, "sent_actions_have_documents", "documents/outbox", as_of=DAY, channels=["outbox"]),
                check_result(con, "dispatched_rows_unchanged", "action_ledger")]
        assert [(r.check_name, r.passed, r.description) for r in good] == [
            (r.check_name, True, None) for r in good]

        # a row lost between reading and loading (put back afterwards)
        con.execute("create temp table lost as select * from stg_invoices where invoice_id = 'I2'")
        con.execute("delete from stg_invoices where invoice_id = 'I2'")
        assert _failed(con, "rows_accounted_for", "stg_invoices", table_name="invoices") == (
            "1 table(s) lost or gained rows: invoices: 2 rows read, 1 loaded + 0 quarantined = 1")
        assert check_result(con, "rows_accounted_for", "stg_payments", table_name="payments").passed
        con.execute("insert into stg_invoices select * from lost")

        # a balance that no longer adds up from the invoices and payments
        con.execute("update contract_balances set balance = 90.00 where contract_id = 'CT1' and as_of = ?", [DAY])
        assert _failed(con, "balances_reconcile", "contract_balances", as_of=DAY) == (
            "1 contract(s) do not reconcile: CT1 (EUR): invoices 100.00 - payments 0.00 - credit notes 0.00 "
            "= 100.00, balance 90.00; open amount 100.00, open receivables 100.00")

        # the document's files gone from the outbox
        shutil.rmtree(settings.outbox / FOLDER)
        promises.list_outbox_folders(con, settings.outbox, [DAY])
        assert _failed(con, "sent_actions_have_documents", "documents/outbox", as_of=DAY, channels=["outbox"]) == (
            f"1 sent document(s) without their files: {KEY} (outbox, sent): no files in the outbox folder {FOLDER}")
        assert check_result(con, "sent_actions_have_documents", "documents/email", as_of=DAY,
                            channels=["email"]).passed

        # a second dispatch record of the same level
        con.execute(f"""insert into action_ledger select * replace ('{KEY}+catch_up' as action_key)
                        from action_ledger where action_key = '{KEY}'""")
        assert _failed(con, "nothing_sent_twice", "action_ledger") == (
            f"1 document(s) sent more than once: ct-CT1-20260524 level 1 reminder: 2 dispatch records: "
            f"{KEY} (sent), {KEY}+catch_up (sent)")
        assert check_result(con, "nothing_sent_twice", "documents/email", channels=["email"]).passed

        # a sent row changed by the run, and one deleted
        con.execute(f"update action_ledger set amount_demanded = 99.00 where action_key = '{KEY}'")
        con.execute(f"delete from action_ledger where action_key = '{KEY}+catch_up'")
        con.execute(f"""insert into dispatched_before select * replace ('{KEY}+catch_up' as action_key)
                        from dispatched_before where action_key = '{KEY}'""")
        assert _failed(con, "dispatched_rows_unchanged", "action_ledger") == (
            f"2 dispatched row(s) changed: {KEY} (sent): changed amount_demanded 100.00 -> 99.00; "
            f"{KEY}+catch_up (sent): deleted")

        # keys: one that is not its row's deterministic key, one used twice (a copy without the primary key)
        con.execute("create table ledger_copy as select * from action_ledger")
        con.execute("drop table action_ledger")
        con.execute("alter table ledger_copy rename to action_ledger")
        con.execute(f"insert into action_ledger select * from action_ledger where action_key = '{KEY}'")
        con.execute("""update action_ledger set action_key = 'ct-CT2-20260524/L1/reminder'
                       where action_key = 'ct-CT1-20260524/L1/reminder' and rowid = (
                           select max(rowid) from action_ledger)""")
        con.execute(f"insert into action_ledger select * from action_ledger where action_key = '{KEY}'")
        assert _failed(con, "action_keys_unique", "action_ledger") == (
            f"2 key(s) not unique: {KEY}: 2 rows; ct-CT2-20260524/L1/reminder: not the key of its row "
            "(expected ct-CT1-20260524/L1/...)")


def _events(result, kind: str) -> list:
    return [e for e in result.all_events if e.event_type_value == kind]


def test_a_broken_blocking_promise_stops_the_day_before_anything_is_sent(sent_day):
    w, settings = sent_day
    with run_mod.connect(settings.database) as con:  # an earlier run recorded the level twice
        con.execute(f"""insert into action_ledger select * replace ('{KEY}+catch_up' as action_key)
                        from action_ledger where action_key = '{KEY}'""")
    resources = {"dunning": DunningResource(config_file=str(w.write_config()))}
    instance = dg.DagsterInstance.ephemeral()
    message = (f"1 document(s) sent more than once: ct-CT1-20260524 level 1 reminder: 2 dispatch records: "
               f"{KEY} (sent), {KEY}+catch_up (sent)")
    result = dg.materialize([billing_inputs, dunning_state, outbox_documents], partition_key="2026-05-25",
                            resources=resources, instance=instance, raise_on_error=False)
    assert not result.success
    failed = [(c.asset_key.to_user_string(), c.check_name, c.description)
              for c in result.get_asset_check_evaluations() if not c.passed]
    assert failed == [("action_ledger", "nothing_sent_twice", message)]
    assert [e.step_key for e in _events(result, "STEP_FAILURE")] == ["dunning_state"]
    assert "outbox_documents" not in {e.step_key for e in _events(result, "STEP_START")}
    # the state of the day is computed (and shown), its document is not sent
    assert query(settings, "select action_key, status from action_ledger where executed_on = '2026-05-25'") == [
        ("ct-CT2-20260524/L1/reminder", "planned")]
    assert not (settings.outbox / "2026-05-25").exists()

    # the documents step launched alone checks the state again and sends nothing either
    alone = dg.materialize([outbox_documents], partition_key="2026-05-25", resources=resources,
                           instance=instance, raise_on_error=False)
    assert not alone.success
    error = _events(alone, "STEP_FAILURE")[0].step_failure_data.user_failure_data.description
    assert error == f"Nothing sent: the state breaks its promises: {message}"
    assert query(settings, "select status from action_ledger where executed_on = '2026-05-25'") == [("planned",)]

    # so does the sharded documents job: its snapshot step fails before any snapshot or shard exists
    sharded = sharded_documents.execute_in_process(partition_key="2026-05-25", resources=resources,
                                                   instance=instance, raise_on_error=False)
    assert not sharded.success
    failure = [e for e in sharded.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failure] == ["documents_snapshot"]
    assert failure[0].step_failure_data.user_failure_data.description == \
        f"Nothing sent: the state breaks its promises: {message}"
    assert query(settings, "select status from action_ledger where executed_on = '2026-05-25'") == [("planned",)]
    assert query(settings, "select as_of, status from dispatch_snapshots") == [(date(2026, 5, 24), "collected")]
    assert not (settings.outbox / "2026-05-25").exists()

    # and so do the command line's sending paths: exit 2, the broken promise named, nothing sent
    config = str(w.write_config())
    for args in (["dispatch", "--as-of", "2026-05-25"], ["run", "--as-of", "2026-05-25"]):
        cli = CliRunner().invoke(app, [*args, "--config", config])
        assert cli.exit_code == 2, cli.output
        assert " ".join(cli.output.split()).endswith(
            f"NOTHING SENT: the state breaks its promises: {message}"), cli.output
        assert query(settings, "select status from action_ledger where executed_on = '2026-05-25'") == [("planned",)]
        assert not (settings.outbox / "2026-05-25").exists()
