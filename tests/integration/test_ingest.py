"""Ingestion: typing, one test per quarantine rule, and read = loaded + quarantined."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import duckdb
import pytest

from pipeline.engine import run as run_mod
from pipeline.warehouse.ingest import IngestError, ingest, quarantine_messages
from pipeline.config.policy import load_policy_file
from world import World, policy


def _world(tmp_path):
    w = World(tmp_path, policy([("due_date", 1, 0)]))
    w.customer("CU1").contract("CT1", "CU1").invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    return w


def _ingest(w):
    settings = w.write()
    con = duckdb.connect(str(settings.database))
    handles = load_policy_file(settings.policy_file).handles
    reports = {r.table: r for r in ingest(con, settings.data_dir, handles)}
    return con, reports, settings


def _quarantined(con):
    return con.execute("select table_name, source_row, rule, column_name, value from quarantine "
                       "order by table_name, source_row").fetchall()


CASES = [
    # (table, row factory, expected (table, row, rule, column, value))
    ("invoices", lambda w: w.invoice("I2", "10.00", "2026-03-01", "2026-13-45"),
     ("invoices", 2, "invalid_date", "due_date", "2026-13-45")),
    ("invoices", lambda w: w.invoice("I2", "12,5x", "2026-03-01", "2026-03-10"),
     ("invoices", 2, "invalid_amount", "amount", "12,5x")),
    ("invoices", lambda w: w.invoice("I2", "12.345", "2026-03-01", "2026-03-10"),
     ("invoices", 2, "invalid_amount", "amount", "12.345")),
    ("invoices", lambda w: w.invoice("I2", "10.00", "2026-03-01", "2026-03-10", dunning_paused="maybe"),
     ("invoices", 2, "invalid_boolean", "dunning_paused", "maybe")),
    ("invoices", lambda w: w.invoice("I2", "", "2026-03-01", "2026-03-10"),
     ("invoices", 2, "missing_value", "amount", None)),
    ("invoices", lambda w: w.invoice("I2", "12345678901234567890", "2026-03-01", "2026-03-10"),
     ("invoices", 2, "amount_out_of_range", "amount", "12345678901234567890")),
    ("invoices", lambda w: w.invoice("I2", "10.00", "0000-01-01", "2026-03-10"),
     ("invoices", 2, "date_out_of_range", "invoice_date", "0000-01-01")),
    ("invoices", lambda w: w.invoice("I2", "10.00", "-2026-01-01", "2026-03-10"),
     ("invoices", 2, "invalid_date", "invoice_date", "-2026-01-01")),
    ("invoices", lambda w: w.invoice("I\x002", "10.00", "2026-03-01", "2026-03-10"),
     ("invoices", 2, "control_character", "invoice_id", "I\x002")),
    ("invoices", lambda w: w.invoice("I2", "10.00", "2026-03-10", "2026-03-01"),
     ("invoices", 2, "due_before_invoice_date", "due_date", "2026-03-01")),
    ("invoices", lambda w: w.invoice("I2", "10.00", "2026-03-01", "2026-03-10", contract_id="CT9"),
     ("invoices", 2, "unknown_contract", "contract_id", "CT9")),
    ("invoices", lambda w: w.invoice("I2", "10.00", "2026-03-01", "2026-03-10", currency="USD"),
     ("invoices", 2, "currency_mismatch", "currency", "USD")),
    ("invoices", lambda w: w.customer("CU2").invoice("I2", "10.00", "2026-03-01", "2026-03-10", customer_id="CU2"),
     ("invoices", 2, "customer_mismatch", "customer_id", "CU2")),
    ("payments", lambda w: w.payment("P1", "10.00", "2026-03-05", contract_id="CT-UNKNOWN"),
     ("payments", 1, "unknown_contract", "contract_id", "CT-UNKNOWN")),
    ("payments", lambda w: w.payment("P1", "10.00", "2026-03-05", currency="GBP"),
     ("payments", 1, "currency_mismatch", "currency", "GBP")),
    ("payments", lambda w: w.payment("P1", "10.00", "2026-03-05", invoice_id="I404"),
     ("payments", 1, "unknown_invoice", "invoice_id", "I404")),
    ("payments", lambda w: w.payment("P1", "-5.00", "2026-03-05"),
     ("payments", 1, "non_positive_amount", "amount", "-5.00")),
    ("payments", lambda w: w.payment("P1", "5.00", "2026-03-05", status="pending"),
     ("payments", 1, "invalid_value", "status", "pending")),
    ("payments", lambda w: w.payment("P1", "5.00", "2026-03-05", status="reversed"),
     ("payments", 1, "missing_reversed_on", "reversed_on", None)),
    ("payments", lambda w: w.payment("P1", "5.00", "2026-03-05", status="reversed", reversed_on="2026-03-01"),
     ("payments", 1, "reversed_before_booked", "reversed_on", "2026-03-01")),
    ("contracts", lambda w: w.contract("CT2", "CU1", policy="gold"),
     ("contracts", 2, "unknown_policy", "policy", "gold")),
    ("contracts", lambda w: w.contract("CT2", "CU404"),
     ("contracts", 2, "unknown_customer", "customer_id", "CU404")),
    ("contracts", lambda w: w.contract("CT2", "CU1", status="paused"),
     ("contracts", 2, "invalid_value", "status", "paused")),
    ("contracts", lambda w: w.contract("CT2", "CU1", started_on="2026-03-01", ended_on="2026-02-01"),
     ("contracts", 2, "ended_before_started", "ended_on", "2026-02-01")),
    ("customers", lambda w: w.customer("CU2", locale="german"),
     ("customers", 2, "invalid_locale", "locale", "german")),
    ("suspensions", lambda w: w.suspension("planet", "X", "2026-03-01"),
     ("suspensions", 1, "invalid_value", "scope", "planet")),
    ("suspensions", lambda w: w.suspension("customer", "", "2026-03-01"),
     ("suspensions", 1, "missing_value", "target_id", None)),
    ("suspensions", lambda w: w.suspension("invoice", "I404", "2026-03-01"),
     ("suspensions", 1, "unknown_target", "target_id", "I404")),
    ("suspensions", lambda w: w.suspension("global", "", "2026-03-05", "2026-03-05"),
     ("suspensions", 1, "empty_period", "to_date", "2026-03-05")),
]


@pytest.mark.parametrize("table,add,expected", CASES, ids=[c[2][2] + "-" + c[0] for c in CASES])
def test_each_rule_quarantines_the_row_and_keeps_the_count(tmp_path, table, add, expected):
    w = _world(tmp_path)
    add(w)
    con, reports, _ = _ingest(w)
    assert _quarantined(con) == [expected]
    r = reports[table]
    assert (r.rows_read, r.rows_quarantined, r.rows_loaded) == (r.rows_loaded + 1, 1, r.rows_read - 1)


def test_duplicate_ids_quarantine_every_copy_and_cascade_to_dependent_rows(tmp_path):
    w = _world(tmp_path)
    w.contract("CT1", "CU1")                                      # duplicate contract id
    con, reports, _ = _ingest(w)
    assert _quarantined(con) == [
        ("contracts", 1, "duplicate_id", "contract_id", "CT1"),
        ("contracts", 2, "duplicate_id", "contract_id", "CT1"),
        ("invoices", 1, "unknown_contract", "contract_id", "CT1")]
    assert [(t, r.rows_read, r.rows_loaded, r.rows_quarantined) for t, r in reports.items()] == [
        ("customers", 1, 1, 0), ("contracts", 2, 0, 2), ("invoices", 1, 0, 1),
        ("payments", 0, 0, 0), ("suspensions", 0, 0, 0)]


def test_messages_name_file_row_line_and_column(tmp_path):
    w = _world(tmp_path)
    w.invoice("I2", "10.00", "2026-03-01", "2026-13-45")
    con, _, settings = _ingest(w)
    assert quarantine_messages(con) == [
        f"{settings.data_dir / 'invoices.csv'} row 2 (line 3), column due_date: '2026-13-45' invalid_date: "
        "expected a date YYYY-MM-DD -> quarantined from invoices"]


def test_types_are_exact_and_extra_columns_flow_through(tmp_path):
    w = _world(tmp_path)
    w.rows["invoices"][0]["sales_region"] = "north"
    con, _, _ = _ingest(w)
    assert con.execute("select amount, due_date, dunning_paused, sales_region from stg_invoices").fetchall() == [
        (Decimal("100.00"), date(2026, 3, 10), False, "north")]
    assert con.execute("select data_type from information_schema.columns where table_name = 'stg_invoices' "
                       "and column_name = 'amount'").fetchall() == [("DECIMAL(18,2)",)]


def test_parquet_input_is_loaded_like_csv(tmp_path):
    w = _world(tmp_path)
    settings = w.write()
    con = duckdb.connect()
    for name in ("customers", "contracts", "invoices", "payments", "suspensions"):
        src = settings.data_dir / f"{name}.csv"
        con.execute(f"copy (select * from read_csv(?, all_varchar=true)) to '{settings.data_dir / name}.parquet'",
                    [str(src)])
        src.unlink()
    con.close()
    with run_mod.connect(settings.database) as db:
        reports = run_mod.load_inputs(db, settings)[1]
        assert [(r.table, r.rows_loaded) for r in reports][:3] == [("customers", 1), ("contracts", 1), ("invoices", 1)]
        assert db.execute("select amount from stg_invoices").fetchall() == [(Decimal("100.00"),)]


def test_unreadable_file_fails_naming_the_file(tmp_path):
    w = _world(tmp_path)
    settings = w.write()
    (settings.data_dir / "payments.csv").unlink()
    (settings.data_dir / "payments.parquet").write_bytes(b"this is not parquet")
    with run_mod.connect(settings.database) as con, pytest.raises(IngestError, match="payments.parquet: cannot be read"):
        run_mod.load_inputs(con, settings)


def test_missing_required_column_fails_naming_file_and_column(tmp_path):
    w = _world(tmp_path)
    settings = w.write()
    path = settings.data_dir / "customers.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    with run_mod.connect(settings.database) as con, pytest.raises(
            IngestError, match=r"customers.csv: missing required column\(s\) apply_fees"):
        run_mod.load_inputs(con, settings)


def test_quarantined_rows_keep_the_whole_record(tmp_path):
    import json

    w = _world(tmp_path)
    w.invoice("I2", "", "2026-03-01", "2026-03-10").invoice("I3", "1x", "2026-03-01", "2026-03-10")
    con, _, _ = _ingest(w)
    records = {r[0]: json.loads(r[1]) for r in con.execute(
        "select rule, record from quarantine where table_name = 'invoices'").fetchall()}
    assert records["missing_value"]["invoice_id"] == "I2" and records["missing_value"]["amount"] is None
    assert records["invalid_amount"]["invoice_id"] == "I3" and records["invalid_amount"]["amount"] == "1x"
    assert set(records["missing_value"]) == {"_source_file", "_source_row", *w.rows["invoices"][0]}
