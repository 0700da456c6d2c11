"""Ingestion of a table from several files and of odd headers (docs/ingestion.md).

- every file is typed by its own column types: which other files a table has never changes a value
  (DuckDB's common type of two DECIMALs rounded one of them);
- a header name that differs from another only in letter case, or that ingestion uses internally,
  stops the run naming file and column (DuckDB resolves names in any letter case);
- extra columns never meet the names the business rules use internally;
- every copy of a duplicated id is quarantined, also when another copy broke a type rule.
"""

from __future__ import annotations

import csv
from decimal import Decimal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config.input_tables import INPUT_TABLES_BY_NAME
from pipeline.warehouse.ingest import IngestError
from world import ingest_only, one_invoice_world




def _quarantine(con, table):
    return con.execute("select table_name, parse_filename(source_file), source_row, rule, column_name, value "
                       "from quarantine where table_name = ? order by all", [table]).fetchall()


def _payment_sql(payment_id: str, amount: str, amount_type: str) -> str:
    return (f"select '{payment_id}' as payment_id, 'CT1' as contract_id, null::varchar as invoice_id, "
            f"cast('{amount}' as {amount_type}) as amount, 'EUR' as currency, date '2026-03-05' as booked_on, "
            "'settled' as status")


def _write_parquet(path, sql: str) -> None:
    with duckdb.connect() as con:
        con.execute(f"copy ({sql}) to '{path}' (format parquet)")


def _write_csv(path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


# -- every file is typed by its own types ----------------------------------------------------------

@pytest.mark.parametrize("type_a,amount_a,type_b,amount_b,loaded,quarantined", [
    # DuckDB's common type DECIMAL(38,0) rounded 12.50 to 13.00
    ("DECIMAL(38,0)", "100", "DECIMAL(18,2)", "12.50",
     [("P1", Decimal("100.00")), ("P2", Decimal("12.50"))], []),
    # the common type DECIMAL(38,2) rounded 12.345 to 12.35 before the check for more than 2 decimals
    ("DECIMAL(38,2)", "100.00", "DECIMAL(18,3)", "12.345",
     [("P1", Decimal("100.00"))], [("payments", "payments_b.parquet", 1, "invalid_amount", "amount", "12.345")]),
    ("DECIMAL(38,2)", "100.00", "DECIMAL(18,3)", "12.340",
     [("P1", Decimal("100.00")), ("P2", Decimal("12.34"))], []),
    # text beside a decimal: the text is checked as text, the decimal as a decimal
    ("VARCHAR", "7.50", "DECIMAL(38,4)", "2.1250",
     [("P1", Decimal("7.50"))], [("payments", "payments_b.parquet", 1, "invalid_amount", "amount", "2.1250")]),
])
def test_parquet_files_of_one_table_are_each_typed_by_their_own_types(tmp_path, type_a, amount_a, type_b, amount_b,
                                                                        loaded, quarantined):
    settings = one_invoice_world(tmp_path).write()
    (settings.data_dir / "payments.csv").unlink()
    _write_parquet(settings.data_dir / "payments_a.parquet", _payment_sql("P1", amount_a, type_a))
    _write_parquet(settings.data_dir / "payments_b.parquet", _payment_sql("P2", amount_b, type_b))
    con, reports = ingest_only(settings)
    assert con.execute("select payment_id, amount from stg_payments order by 1").fetchall() == loaded
    assert _quarantine(con, "payments") == quarantined
    assert (reports["payments"].rows_read, reports["payments"].rows_loaded) == (2, len(loaded))


def test_a_parquet_file_and_a_csv_file_of_one_table_keep_their_values(tmp_path):
    w = one_invoice_world(tmp_path)
    w.payment("P1", "10.10", "2026-03-05")
    settings = w.write()
    _write_parquet(settings.data_dir / "payments_b.parquet", _payment_sql("P2", "100", "DECIMAL(38,0)"))
    con, _ = ingest_only(settings)
    assert con.execute("select payment_id, amount, invoice_id from stg_payments order by 1").fetchall() == [
        ("P1", Decimal("10.10"), None), ("P2", Decimal("100.00"), None)]
    assert _quarantine(con, "payments") == []


# -- header names ----------------------------------------------------------------------------------

PAYMENT_HEADER = INPUT_TABLES_BY_NAME["payments"].column_names
PAYMENT_ROW = ["P1", "CT1", "", "100.00", "EUR", "2026-03-05", "settled", "", "", ""]


@pytest.mark.parametrize("header,row,message", [
    # Invoice_ID was read as invoice_id's absent column: its values were lost
    (["Invoice_ID" if c == "invoice_id" else c for c in PAYMENT_HEADER], ["P1", "CT1", "I1", *PAYMENT_ROW[3:]],
     "payments.csv: column Invoice_ID differs from the column invoice_id of table payments only in letter case: "
     "name it invoice_id"),
    (["Amount" if c == "amount" else c for c in PAYMENT_HEADER], PAYMENT_ROW,
     "payments.csv: column Amount differs from the column amount of table payments only in letter case: "
     "name it amount"),
    # an extra Amount beside amount stopped with a raw BinderException naming no file
    ([*PAYMENT_HEADER, "Amount"], [*PAYMENT_ROW, "1"],
     "payments.csv: columns amount and Amount differ only in letter case, and column names are not case-sensitive"),
    ([*PAYMENT_HEADER, "note", "NOTE"], [*PAYMENT_ROW, "a", "b"],
     "payments.csv: columns note and NOTE differ only in letter case"),
])
def test_a_csv_header_name_differing_only_in_letter_case_stops_naming_file_and_column(tmp_path, header, row,
                                                                                      message):
    settings = one_invoice_world(tmp_path).write()
    _write_csv(settings.data_dir / "payments.csv", header, [row])
    with pytest.raises(IngestError) as exc:
        ingest_only(settings)
    assert str(exc.value).startswith(f"{settings.data_dir / message}")


@pytest.mark.parametrize("names,message", [
    (["payment_id", "contract_id", "Invoice_ID", "amount", "currency", "booked_on", "status"],
     "payments.parquet: column Invoice_ID differs from the column invoice_id of table payments only in letter "
     "case: name it invoice_id"),
    (["payment_id", "contract_id", "amount", "currency", "booked_on", "status", "Amount"],
     "payments.parquet: columns amount and Amount differ only in letter case"),
])
def test_a_parquet_column_name_differing_only_in_letter_case_stops_naming_file_and_column(tmp_path, names,
                                                                                          message):
    settings = one_invoice_world(tmp_path).write()
    (settings.data_dir / "payments.csv").unlink()
    values = {"payment_id": "P1", "contract_id": "CT1", "Invoice_ID": "I1", "amount": "10.00", "currency": "EUR",
              "booked_on": "2026-03-05", "status": "settled", "Amount": "1"}
    # pyarrow: DuckDB itself would rename the second column Amount_1 when writing
    pq.write_table(pa.table({n: [values[n]] for n in names}), settings.data_dir / "payments.parquet")
    with pytest.raises(IngestError) as exc:
        ingest_only(settings)
    assert str(exc.value).startswith(f"{settings.data_dir / message}")


def test_extra_columns_of_two_files_differing_only_in_letter_case_stop_naming_the_file(tmp_path):
    w = one_invoice_world(tmp_path)
    w.payment("P1", "10.00", "2026-03-05", note="a")
    settings = w.write()
    _write_csv(settings.data_dir / "payments_b.csv", [*PAYMENT_HEADER, "Note"], [["P2", *PAYMENT_ROW[1:], "b"]])
    with pytest.raises(IngestError) as exc:
        ingest_only(settings)
    assert str(exc.value).startswith(
        f"{settings.data_dir / 'payments_b.csv'}: column Note differs from column note of another file of the "
        "table only in letter case")


@pytest.mark.parametrize("name", ["_source_file", "_source_row", "_type_fault", "_violation", "_record",
                                  "file_row_number", "_Source_File"])
def test_a_csv_column_named_like_an_internal_column_stops_naming_file_and_column(tmp_path, name):
    settings = one_invoice_world(tmp_path).write()
    # the values of such a column became the file name in quarantine messages, or a raw DuckDB error
    _write_csv(settings.data_dir / "payments.csv", [*PAYMENT_HEADER, name],
               [[*PAYMENT_ROW, "7"], ["P2", "CT1", "", "1x", *PAYMENT_ROW[4:], "8"]])
    with pytest.raises(IngestError) as exc:
        ingest_only(settings)
    assert str(exc.value) == (
        f"{settings.data_dir / 'payments.csv'}: column {name} has a name ingestion uses internally "
        "(_source_file, _source_row, _type_fault, _violation, _record, file_row_number, in any letter case): "
        "rename or remove it")


def test_a_parquet_column_named_file_row_number_stops_naming_file_and_column(tmp_path):
    settings = one_invoice_world(tmp_path).write()
    (settings.data_dir / "payments.csv").unlink()
    _write_parquet(settings.data_dir / "payments.parquet",
                   _payment_sql("P1", "10.00", "DECIMAL(18,2)") + ", 3 as file_row_number")
    with pytest.raises(IngestError) as exc:
        ingest_only(settings)
    assert str(exc.value).startswith(
        f"{settings.data_dir / 'payments.parquet'}: column file_row_number has a name ingestion uses internally")


@pytest.mark.parametrize("name", ["contract_currency", "invoice_known", "contract_known", "v", "s", "t", "row",
                                  "priority", "rule", "c"])
def test_extra_columns_named_like_the_rules_own_names_flow_through_without_changing_them(tmp_path, name):
    w = one_invoice_world(tmp_path)
    # contract_currency = USD made a matching EUR payment a currency_mismatch; v, s, invoice_known: raw errors
    w.payment("P1", "10.00", "2026-03-05", invoice_id="I1", **{name: "USD"})
    w.payment("P2", "1x", "2026-03-05", **{name: "7"})
    w.payment("P3", "10.00", "2026-03-05", currency="USD", **{name: "EUR"})
    w.rows["customers"][0][name] = "true"
    settings = w.write()
    con, reports = ingest_only(settings)
    assert con.execute(f'select payment_id, amount, "{name}" from stg_payments').fetchall() == [
        ("P1", Decimal("10.00"), "USD")]
    assert _quarantine(con, "payments") == [
        ("payments", "payments.csv", 2, "invalid_amount", "amount", "1x"),
        ("payments", "payments.csv", 3, "currency_mismatch", "currency", "USD")]
    assert con.execute(f'select customer_id, "{name}" from stg_customers').fetchall() == [("CU1", "true")]
    assert (reports["payments"].rows_read, reports["payments"].rows_loaded) == (3, 1)


# -- duplicate ids ---------------------------------------------------------------------------------

def test_a_duplicate_id_quarantines_the_copy_that_passed_when_another_broke_a_type_rule(tmp_path):
    settings = one_invoice_world(tmp_path).write()
    header = INPUT_TABLES_BY_NAME["invoices"].column_names
    _write_csv(settings.data_dir / "invoices_b.csv", header,
               [["I1", "N1", "CT1", "CU1", "2026-03-01", "2026-03-10", "1x", "EUR", "", "false", "", "", ""]])
    con, reports = ingest_only(settings)
    assert con.execute("select invoice_id from stg_invoices").fetchall() == []
    assert _quarantine(con, "invoices") == [
        ("invoices", "invoices.csv", 1, "duplicate_id", "invoice_id", "I1"),
        ("invoices", "invoices_b.csv", 1, "invalid_amount", "amount", "1x")]
    r = reports["invoices"]
    assert (r.rows_read, r.rows_loaded, r.rows_quarantined) == (2, 0, 2)


def test_a_duplicate_id_counts_a_copy_quarantined_by_a_value_rule_or_a_parquet_type_rule(tmp_path):
    w = one_invoice_world(tmp_path)
    w.payment("P1", "10.00", "2026-03-05").payment("P1", "10.00", "2026-03-05", status="")  # missing_value
    w.payment("P2", "10.00", "2026-03-05").payment("P3", "10.00", "2026-03-05")
    settings = w.write()
    _write_parquet(settings.data_dir / "payments_b.parquet", _payment_sql("P2", "1.005", "DECIMAL(18,3)"))
    con, reports = ingest_only(settings)
    assert con.execute("select payment_id from stg_payments").fetchall() == [("P3",)]
    assert _quarantine(con, "payments") == [
        ("payments", "payments.csv", 1, "duplicate_id", "payment_id", "P1"),
        ("payments", "payments.csv", 2, "missing_value", "status", None),
        ("payments", "payments.csv", 3, "duplicate_id", "payment_id", "P2"),
        ("payments", "payments_b.parquet", 1, "invalid_amount", "amount", "1.005")]
    assert (reports["payments"].rows_read, reports["payments"].rows_loaded) == (5, 1)
