"""The analyst's face (documented tables, COMMENT ON) and the CLI end to end on a small world."""

from __future__ import annotations

import duckdb
from typer.testing import CliRunner

from pipeline.warehouse import catalog
from pipeline.cli import app
from pipeline.config.policy import json_schema
from pipeline.config.settings import PROJECT_ROOT
from world import World, policy, query

runner = CliRunner()


def test_committed_docs_match_the_catalog_and_the_policy_models():
    assert (PROJECT_ROOT / "docs" / "tables.md").read_text(encoding="utf-8") == catalog.markdown()
    assert (PROJECT_ROOT / "docs" / "policy.schema.json").read_text(encoding="utf-8") == json_schema()


def _world(tmp_path):
    w = World(tmp_path, policy([("due_date", 7, 7), ("previous_level", 7, 7, {"EUR": "5.00"})]))
    w.customer().contract().invoice("I1", "100.00", "2026-04-26", "2026-05-10")
    return w


def test_every_table_and_column_analysts_see_is_documented_in_the_database(tmp_path):
    w = _world(tmp_path)
    config = w.write_config()
    result = runner.invoke(app, ["backfill", "--from", "2026-05-01", "--to", "2026-05-20", "--catch-up", "none", "--config", str(config)])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(tmp_path / "dunning.duckdb"), read_only=True)
    undocumented = con.execute(
        """select table_name, column_name from duckdb_columns()
           where schema_name = 'main' and not internal and (comment is null or comment = '')
           order by all""").fetchall()
    tables = con.execute("select table_name, comment from duckdb_tables() where schema_name = 'main' "
                         "union all select view_name, comment from duckdb_views() where schema_name = 'main' "
                         "and not internal order by 1").fetchall()
    con.close()
    assert undocumented == []
    assert [t for t, _ in tables] == sorted(n for n, (kind, _, _) in catalog.CATALOG.items() if kind != "table macro")
    assert all(comment for _, comment in tables)


def test_backfill_records_without_sending_and_run_dispatches_the_live_day(tmp_path):
    w = _world(tmp_path)
    config = w.write_config()
    settings = w.write()
    assert runner.invoke(app, ["backfill", "--from", "2026-05-10", "--to", "2026-05-17", "--catch-up", "none", "--config", str(config)]).exit_code == 0
    assert query(settings, "select executed_on::varchar, status from action_ledger") == [("2026-05-17", "not_dispatched")]
    result = runner.invoke(app, ["run", "--as-of", "2026-05-31", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "2026-05-31: opened 0, closed 0, actions 1, skipped levels 0, documents 1" in result.output
    assert query(settings, "select executed_on::varchar, level_no, status from action_ledger order by 1") == [
        ("2026-05-17", 1, "not_dispatched"), ("2026-05-31", 2, "sent")]
    assert sorted(p.name for p in (settings.outbox / "2026-05-31").iterdir()) == [
        "ct-CT1-20260511__L2__reminder", "manifest.csv", "manifest.json"]


def test_demo_runs_days_in_order_and_prints_the_summary(tmp_path):
    config = tmp_path / "dunning.yaml"
    config.write_text((PROJECT_ROOT / "dunning.yaml").read_text().replace("var/", str(tmp_path) + "/var/")
                      .replace("policy_file: policies", f"policy_file: {PROJECT_ROOT}/policies")
                      .replace("templates: templates", f"templates: {PROJECT_ROOT}/templates"))
    result = runner.invoke(app, ["demo", "--end", "2026-06-30", "--days", "3", "--contracts", "40",
                                 "--config", str(config)])
    assert result.exit_code == 0, result.output
    for expected in ("Open cases per level on 2026-06-30", "Overdue amounts", "documents written:",
                     "quarantined input rows: 8", "make dagster"):
        assert expected in result.output
    con = duckdb.connect(str(tmp_path / "var" / "dunning.duckdb"), read_only=True)
    assert con.execute("select list(as_of::varchar order by as_of) from run_log").fetchall() == [
        (["2026-06-28", "2026-06-29", "2026-06-30"],)]
    sent = con.execute("select count(*) from action_ledger where status = 'sent'").fetchall()[0][0]
    with_pdf = con.execute("select count(*) from action_ledger where status = 'sent' "
                           "and action in ('reminder', 'notify_merchant') and channel <> 'sms'").fetchall()[0][0]
    sms = con.execute("select count(*) from action_ledger where status = 'sent' and channel = 'sms'").fetchall()[0][0]
    kinds = con.execute("select case when action = 'reminder' then channel else action end as kind, count(*) "
                        "from action_ledger where status = 'sent' group by kind order by kind").fetchall()
    con.close()
    assert f"documents written: {sent} ({', '.join(f'{k} {n}' for k, n in kinds)}) in " in result.output
    assert sum(n for _, n in kinds) == sent and len(kinds) >= 2
    outbox = tmp_path / "var" / "outbox"
    assert with_pdf == len(list(outbox.glob("2026-*/*/letter.pdf"))) > 0
    assert sms == len(list(outbox.glob("2026-*/*/sms.json"))) > 0


def test_confirm_refuses_what_is_not_a_prepared_manual_document(tmp_path):
    w = _world(tmp_path)
    config = w.write_config()
    assert runner.invoke(app, ["backfill", "--from", "2026-05-10", "--to", "2026-05-17", "--catch-up", "none", "--config", str(config)]).exit_code == 0
    result = runner.invoke(app, ["confirm", "ct-CT1-20260511/L1/reminder", "--on", "2026-05-18", "--config", str(config)])
    assert result.exit_code == 2
    assert "ct-CT1-20260511/L1/reminder is on channel outbox in status not_dispatched; only prepared manual" in " ".join(result.output.split())
    result = runner.invoke(app, ["confirm", "nope", "--on", "2026-05-18", "--config", str(config)])
    assert result.exit_code == 2 and "no action 'nope' in the ledger" in result.output


def test_open_cases_per_level_keep_policies_apart(tmp_path):
    """Two policies' level 1 were one row, named after whichever case DuckDB read last (any_value)."""
    from datetime import date

    from pipeline.reporting import summary

    doc = policy([{"name": "Friendly reminder", "timing": {"after": "due_date", "days": 1}}])
    doc["policies"].append({"handle": "strict", "versions": [{"effective_from": "2020-01-01", "levels": [
        {"name": "Formal notice", "timing": {"after": "due_date", "days": 1}}]}]})
    w = World(tmp_path, doc)
    w.customer("CU1").contract("CT1", "CU1").invoice("I1", "100.00", "2026-03-01", "2026-03-10", "CT1", "CU1")
    w.customer("CU2").contract("CT2", "CU2", policy="strict").invoice(
        "I2", "100.00", "2026-03-01", "2026-03-10", "CT2", "CU2")
    s = w.run("2026-03-11", "2026-03-11")
    con = duckdb.connect(str(s.database), read_only=True)
    try:
        assert summary.open_cases_per_level(con) == [("default", 1, "Friendly reminder", 1),
                                                     ("strict", 1, "Formal notice", 1)]
        assert summary.day_summary_markdown(con, date(2026, 3, 11)).splitlines()[:4] == [
            "| policy | level | open cases |", "|---|---|---:|",
            "| default | 1 Friendly reminder | 1 |", "| strict | 1 Formal notice | 1 |"]
    finally:
        con.close()
