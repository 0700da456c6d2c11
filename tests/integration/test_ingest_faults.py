"""Ingestion never changes a value silently: each input fault is a quarantine rule naming file,
row and column, or a clear stop when the whole file is unusable (docs/ingestion.md).

One test per fault of the issue: a Parquet DECIMAL with 3 decimals, a Parquet TIMESTAMP with a
time of day, dates before year 1 or of year 0, an unmatched quote, a 20-digit amount, two maximal
amounts on one contract, an empty file, a ragged row, control characters in ids.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import duckdb
import pytest

from pipeline.config.input_tables import INPUT_TABLES_BY_NAME, MONEY_LIMIT
from pipeline.config.policy import load_policy_file
from pipeline.warehouse.ingest import IngestError, ingest, quarantine_messages
from world import World, ingest_only, one_invoice_world, policy, query




def _quarantined(con, table="invoices"):
    return con.execute("select source_row, rule, column_name, value from quarantine where table_name = ? "
                       "order by source_row", [table]).fetchall()


def _to_parquet(settings, table: str, **types: str) -> None:
    """Replace `<table>.csv` by a Parquet file, the named columns stored in the given types."""
    src = settings.data_dir / f"{table}.csv"
    cols = INPUT_TABLES_BY_NAME[table].column_names
    select = ", ".join(f'cast("{c}" as {types[c]}) as "{c}"' if c in types else f'"{c}"' for c in cols)
    with duckdb.connect() as con:
        con.execute(f"copy (select {select} from read_csv(?, all_varchar = true)) "
                    f"to '{settings.data_dir / table}.parquet' (format parquet)", [str(src)])
    src.unlink()


# -- Parquet: a DECIMAL with 3 decimals was rounded to 2, a TIMESTAMP lost its time of day ----------

def test_parquet_decimal_with_three_decimals_is_quarantined_not_rounded(tmp_path):
    w = one_invoice_world(tmp_path)
    w.invoice("I2", "12.345", "2026-03-01", "2026-03-10").invoice("I3", "12.340", "2026-03-01", "2026-03-10")
    settings = w.write()
    _to_parquet(settings, "invoices", amount="DECIMAL(18,3)")
    con, reports = ingest_only(settings)
    assert _quarantined(con) == [(2, "invalid_amount", "amount", "12.345")]
    # 12.340 is exactly 12.34: it loads, unchanged
    assert con.execute("select invoice_id, amount from stg_invoices order by 1").fetchall() == [
        ("I1", Decimal("100.00")), ("I3", Decimal("12.34"))]
    assert (reports["invoices"].rows_read, reports["invoices"].rows_loaded) == (3, 2)


def test_parquet_timestamp_with_a_time_of_day_is_quarantined_not_truncated(tmp_path):
    w = one_invoice_world(tmp_path)
    w.invoice("I2", "10.00", "2026-03-01", "2026-03-10 12:30:00")
    w.rows["invoices"][0]["due_date"] = "2026-03-10 00:00:00"  # midnight: the date itself
    settings = w.write()
    _to_parquet(settings, "invoices", due_date="TIMESTAMP")
    con, _ = ingest_only(settings)
    assert _quarantined(con) == [(2, "invalid_date", "due_date", "2026-03-10 12:30:00")]
    assert con.execute("select due_date from stg_invoices").fetchall() == [(date(2026, 3, 10),)]


def test_parquet_timestamp_with_time_zone_for_a_date_stops_naming_file_and_column(tmp_path):
    w = one_invoice_world(tmp_path)
    settings = w.write()
    _to_parquet(settings, "invoices", due_date="TIMESTAMPTZ")
    with pytest.raises(IngestError, match=r"invoices.parquet: column due_date is TIMESTAMP WITH TIME ZONE"):
        ingest_only(settings)


def test_parquet_dates_and_amounts_outside_the_plausible_limits_are_quarantined(tmp_path):
    w = one_invoice_world(tmp_path)
    w.invoice("I2", "10.00", "0001-01-01", "2026-03-10")
    w.invoice("I3", "1000000000000.00", "2026-03-01", "2026-03-10")
    w.invoice("I4", "999999999999.99", "2026-03-01", "2026-03-10")
    settings = w.write()
    _to_parquet(settings, "invoices", invoice_date="DATE", amount="DECIMAL(18,2)")
    con, _ = ingest_only(settings)
    assert _quarantined(con) == [(2, "date_out_of_range", "invoice_date", "0001-01-01"),
                                 (3, "amount_out_of_range", "amount", "1000000000000.00")]


def test_parquet_integer_for_a_boolean_is_quarantined_unless_zero_or_one(tmp_path):
    w = one_invoice_world(tmp_path)
    w.invoice("I2", "10.00", "2026-03-01", "2026-03-10", dunning_paused="2")
    w.rows["invoices"][0]["dunning_paused"] = "1"
    settings = w.write()
    _to_parquet(settings, "invoices", dunning_paused="INTEGER")
    con, _ = ingest_only(settings)
    assert _quarantined(con) == [(2, "invalid_boolean", "dunning_paused", "2")]
    assert con.execute("select dunning_paused from stg_invoices").fetchall() == [(True,)]


# -- dates: negative years, year 0, time of day in text -------------------------------------------

@pytest.mark.parametrize("value,rule", [
    ("-2026-01-01", "invalid_date"),       # DuckDB read it as 2027 BC
    ("0000-01-01", "date_out_of_range"),   # year 0 (1 BC)
    ("0026-03-01", "date_out_of_range"),   # a century typo
    ("9999-12-31", "date_out_of_range"),   # an 'open end' sentinel: leave the field empty instead
    ("12026-03-01", "invalid_date"),
    ("2026-03-01 12:00", "invalid_date"),  # DuckDB dropped the time of day
    ("2026-3-1", "invalid_date"),
    ("2026-02-29", "invalid_date"),
])
def test_dates_load_only_as_plausible_calendar_dates(tmp_path, value, rule):
    w = one_invoice_world(tmp_path)
    w.invoice("I2", "10.00", "2026-03-01", "2026-03-10", voided_on=value)
    con, _ = ingest_only(w.write())
    assert _quarantined(con) == [(2, rule, "voided_on", value)]


def test_the_plausible_date_limits_themselves_load(tmp_path):
    w = one_invoice_world(tmp_path)
    w.invoice("I2", "10.00", "1900-01-01", "2199-12-31")
    con, _ = ingest_only(w.write())
    assert _quarantined(con) == []
    assert con.execute("select invoice_date, due_date from stg_invoices where invoice_id = 'I2'").fetchall() == [
        (date(1900, 1, 1), date(2199, 12, 31))]


# -- amounts: 20 digits stopped the run, two maximal amounts overflowed a daily model ---------------

@pytest.mark.parametrize("value,rule", [
    ("12345678901234567890", "amount_out_of_range"),
    ("-12345678901234567890.00", "amount_out_of_range"),
    ("1000000000000", "amount_out_of_range"),
    ("9999999999999999.99", "amount_out_of_range"),
    ("12.345", "invalid_amount"),
    ("1.005", "invalid_amount"),
    ("12,50", "invalid_amount"),
    ("1,234.50", "invalid_amount"),
    ("1e3", "invalid_amount"),
    ("+5.00", "invalid_amount"),
])
def test_amounts_load_only_exactly_and_within_the_plausible_limit(tmp_path, value, rule):
    w = one_invoice_world(tmp_path)
    w.invoice("I2", value, "2026-03-01", "2026-03-10")
    con, _ = ingest_only(w.write())
    assert _quarantined(con) == [(2, rule, "amount", value)]


def test_amounts_written_with_trailing_zeros_or_leading_zeros_load_unchanged(tmp_path):
    w = one_invoice_world(tmp_path)
    w.invoice("I2", "12.500", "2026-03-01", "2026-03-10").invoice("I3", "007.10", "2026-03-01", "2026-03-10")
    w.invoice("I4", "-999999999999.99", "2026-03-01", "2026-03-10")
    con, _ = ingest_only(w.write())
    assert _quarantined(con) == []
    assert con.execute("select amount from stg_invoices order by invoice_id").fetchall() == [
        (Decimal("100.00"),), (Decimal("12.50"),), (Decimal("7.10"),), (Decimal("-999999999999.99"),)]


def test_two_maximal_amounts_on_one_contract_run_through_the_daily_models(tmp_path):
    """Before: 2 x 9999999999999999.99 overflowed DECIMAL(18,2) in a balance model and stopped the day.
    At the plausible limit the sums of a contract cannot overflow."""
    top = str(MONEY_LIMIT - Decimal("0.01"))
    w = World(tmp_path, policy([("due_date", 1, 0)]))
    w.customer("CU1").contract("CT1", "CU1")
    w.invoice("I1", top, "2026-03-01", "2026-03-10").invoice("I2", top, "2026-03-01", "2026-03-10")
    w.payment("P1", top, "2026-03-05").payment("P2", top, "2026-03-06", invoice_id="I2")
    w.invoice("BIG1", "9999999999999999.99", "2026-03-01", "2026-03-10")
    w.invoice("BIG2", "9999999999999999.99", "2026-03-01", "2026-03-10")
    settings = w.run("2026-03-20", "2026-03-20")
    assert query(settings, "select table_name, source_row, rule from quarantine order by 1, 2") == [
        ("invoices", 3, "amount_out_of_range"), ("invoices", 4, "amount_out_of_range")]
    assert query(settings, "select count(*) from run_log where as_of = '2026-03-20'") == [(1,)]


# -- CSV structure: empty file, ragged rows, quotes, line numbers ---------------------------------

@pytest.mark.parametrize("content", [b"", b"\r\n", b"\xef\xbb\xbf"])
def test_an_empty_file_stops_the_run_saying_it_is_empty(tmp_path, content):
    settings = one_invoice_world(tmp_path).write()
    (settings.data_dir / "payments.csv").write_bytes(content)
    with pytest.raises(IngestError, match=r"payments.csv: the file is empty \(not even a header line\)"):
        ingest_only(settings)


def test_an_empty_parquet_file_stops_the_run_saying_it_is_empty(tmp_path):
    settings = one_invoice_world(tmp_path).write()
    (settings.data_dir / "payments.csv").unlink()
    (settings.data_dir / "payments.parquet").write_bytes(b"")
    with pytest.raises(IngestError, match=r"payments.parquet: the file is empty \(0 bytes\)"):
        ingest_only(settings)


def test_a_byte_order_mark_and_a_tab_delimiter_are_read(tmp_path):
    settings = one_invoice_world(tmp_path).write()
    path = settings.data_dir / "invoices.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b",", b"\t"))
    con, _ = ingest_only(settings)
    assert con.execute("select invoice_id, amount from stg_invoices").fetchall() == [("I1", Decimal("100.00"))]


def test_a_header_only_file_is_a_table_without_rows(tmp_path):
    settings = one_invoice_world(tmp_path).write()
    _, reports = ingest_only(settings)  # the world has no payments: payments.csv is its header line
    assert (settings.data_dir / "payments.csv").read_text().count("\n") == 1
    assert reports["payments"].rows_read == 0


def _append_lines(settings, table, *lines: str) -> None:
    """Lines at the end of the file, ending like the file's lines (CRLF, as csv.writer writes them)."""
    path = settings.data_dir / f"{table}.csv"
    path.write_bytes(path.read_bytes() + "".join(line + "\r\n" for line in lines).encode())


def test_a_ragged_row_is_quarantined_naming_its_line(tmp_path):
    w = one_invoice_world(tmp_path)
    w.invoice("I2", "10.00", "2026-03-01", "2026-03-10")
    settings = w.write()
    _append_lines(settings, "invoices", "I3,N-I3,CT1,CU1,2026-03-01",            # line 4: too few values
                  "I4,N-I4,CT1,CU1,2026-03-01,2026-03-10,1.00,EUR,,false,,,,x,y",  # line 5: too many
                  "I5,N-I5,CT1,CU1,2026-03-01,2026-03-10,5.00,EUR,,false,,,")      # line 6: fine
    con, reports = ingest_only(settings)
    assert [r[:3] for r in _quarantined(con)] == [(3, "wrong_column_count", None), (4, "wrong_column_count", None)]
    assert con.execute("select invoice_id, _source_row from stg_invoices order by 1").fetchall() == [
        ("I1", 1), ("I2", 2), ("I5", 5)]
    assert (reports["invoices"].rows_read, reports["invoices"].rows_loaded) == (5, 3)
    path = settings.data_dir / "invoices.csv"
    assert quarantine_messages(con) == [
        f"{path} row 3 (line 4): wrong_column_count: 5 values, the header has 13 columns -> quarantined from invoices",
        f"{path} row 4 (line 5): wrong_column_count: 15 values, the header has 13 columns -> quarantined from invoices"]


def test_an_unmatched_quote_in_one_row_is_quarantined_not_kept_in_the_value(tmp_path):
    settings = one_invoice_world(tmp_path).write()
    _append_lines(settings, "invoices",
                  'I2,"N-I2"x,CT1,CU1,2026-03-01,2026-03-10,10.00,EUR,,false,,,',   # text after the closing quote
                  'I3,N-I3,CT1,CU1,2026-03-01,2026-03-10,10.00,EUR,,false,,,',
                  'I4,"N-I4,CT1,CU1,2026-03-01,2026-03-10,10.00,EUR,,false,,,')     # never closed, last line
    con, reports = ingest_only(settings)
    assert [r[:3] for r in _quarantined(con)] == [(2, "invalid_quote", "invoice_number"),
                                                  (4, "invalid_quote", "invoice_number")]
    assert con.execute("select invoice_id, invoice_number from stg_invoices order by 1").fetchall() == [
        ("I1", "N-I1"), ("I3", "N-I3")]
    assert reports["invoices"].rows_read == 4


def test_a_row_that_is_not_utf8_is_quarantined(tmp_path):
    settings = one_invoice_world(tmp_path).write()
    path = settings.data_dir / "invoices.csv"
    path.write_bytes(path.read_bytes() + b"I2,N-I2,CT1,CU1,2026-03-01,2026-03-10,10.00,EUR,,false,,,\r\n"
                     + "I3,Müller,CT1,CU1,2026-03-01,2026-03-10,10.00,EUR,,false,,,\r\n".encode("latin-1"))
    con, reports = ingest_only(settings)
    assert [r[:2] for r in _quarantined(con)] == [(3, "invalid_encoding")]
    assert reports["invoices"].rows_loaded == 2


def test_a_quote_left_open_that_swallows_later_lines_stops_naming_the_line(tmp_path):
    settings = one_invoice_world(tmp_path).write()
    _append_lines(settings, "invoices",
                  'I2,"N-I2,CT1,CU1,2026-03-01,2026-03-10,10.00,EUR,,false,,,',
                  'I3,N-I3,CT1,CU1,2026-03-01,2026-03-10,10.00,EUR,,false,,,')
    with pytest.raises(IngestError, match=r"invoices.csv line 3, column invoice_number: a quote is opened and "
                                          r"never closed"):
        ingest_only(settings)


def test_a_file_mixing_line_endings_stops_naming_the_first_odd_line(tmp_path):
    settings = one_invoice_world(tmp_path).write()
    path = settings.data_dir / "invoices.csv"
    path.write_bytes(path.read_bytes() + b"I2,N-I2,CT1,CU1,2026-03-01,2026-03-10,10.00,EUR,,false,,,2026-03-20\n"
                     b"I3,N-I3,CT1,CU1,2026-03-01,2026-03-10,10.00,EUR,,false,,,2026-03-20\r\n")
    with pytest.raises(IngestError, match=r"invoices.csv: cannot be read as CSV: a line break that is not the "
                                          r"file's own \(first at line 3\)"):
        ingest_only(settings)


def test_line_numbers_count_lines_of_values_that_span_lines(tmp_path):
    w = one_invoice_world(tmp_path)
    w.rows["invoices"][0]["note"] = "two\nlines"   # an extra column: flows through, spans lines 2-3
    w.invoice("I2", "10.00", "2026-03-01", "2026-13-45", note="")
    settings = w.write()
    con, _ = ingest_only(settings)
    assert con.execute("select note from stg_invoices").fetchall() == [("two\nlines",)]
    assert quarantine_messages(con) == [
        (f"{settings.data_dir / 'invoices.csv'} row 2 (line 4), column due_date: '2026-13-45' invalid_date: "
         "expected a date YYYY-MM-DD -> quarantined from invoices")]


def test_rows_and_lines_stay_right_after_values_spanning_lines_blank_lines_and_rejected_rows(tmp_path):
    w = one_invoice_world(tmp_path)
    w.rows["invoices"][0]["note"] = "two\nlines"                       # row 1, lines 2-3
    settings = w.write()
    _append_lines(settings, "invoices",
                  "",                                                  # line 4: blank, no row
                  "I2,N-I2,CT1",                                       # row 2, line 5: ragged
                  "I3,N-I3,CT1,CU1,2026-03-01,2026-13-45,1.00,EUR,,false,,,,",  # row 3, line 6: bad date
                  "I4,N-I4,CT1,CU1,2026-03-01,2026-03-10,1.00,EUR,,false,,,,")  # row 4, line 7
    con, reports = ingest_only(settings)
    path = settings.data_dir / "invoices.csv"
    assert quarantine_messages(con) == [
        f"{path} row 2 (line 5): wrong_column_count: 3 values, the header has 14 columns -> quarantined from invoices",
        (f"{path} row 3 (line 6), column due_date: '2026-13-45' invalid_date: expected a date YYYY-MM-DD "
         "-> quarantined from invoices")]
    assert con.execute("select invoice_id, _source_row from stg_invoices order by 1").fetchall() == [
        ("I1", 1), ("I4", 4)]
    assert (reports["invoices"].rows_read, reports["invoices"].rows_loaded) == (4, 2)


def test_semicolon_files_are_read_by_their_header(tmp_path):
    settings = one_invoice_world(tmp_path).write()
    path = settings.data_dir / "invoices.csv"
    path.write_text(path.read_text().replace(",", ";"))
    con, _ = ingest_only(settings)
    assert con.execute("select invoice_id, amount from stg_invoices").fetchall() == [("I1", Decimal("100.00"))]


def test_a_header_naming_a_column_twice_stops(tmp_path):
    settings = one_invoice_world(tmp_path).write()
    path = settings.data_dir / "customers.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0] + ",email"] + [line + ",x" for line in lines[1:]]) + "\n")
    with pytest.raises(IngestError, match=r"customers.csv: column email appears twice in the header"):
        ingest_only(settings)


# -- text: control characters are quarantined, everything else loads unchanged --------------------

@pytest.mark.parametrize("bad,code", [("CT\x001", "U+0000"), ("CT\r1", "U+000D"), ("CT\n1", "U+000A"),
                                      ("CT\t1", "U+0009"), ("CT\x1b1", "U+001B"), ("CT\x7f1", "U+007F")])
def test_ids_with_control_characters_are_quarantined(tmp_path, bad, code):
    w = one_invoice_world(tmp_path)
    w.contract(bad, "CU1")
    settings = w.write()
    con, _ = ingest_only(settings)
    assert _quarantined(con, "contracts") == [(2, "control_character", "contract_id", bad)]
    assert code in con.execute("select message from quarantine").fetchall()[0][0]


def test_ids_with_spaces_non_ascii_dots_and_quotes_load_unchanged(tmp_path):
    ids = ["CT 1", " CT2", "CT3 ", "Vertrag-Ü/ß", "../../etc", 'CT"7"', "CT,8", "契約-9", "CT'10"]
    w = World(tmp_path, policy([("due_date", 1, 0)]))
    w.customer("CU 1")
    for n, contract_id in enumerate(ids):
        w.contract(contract_id, "CU 1").invoice(f"I {n}", "10.00", "2026-03-01", "2026-03-10",
                                                contract_id=contract_id, customer_id="CU 1")
    con, _ = ingest_only(w.write())
    assert _quarantined(con, "contracts") == [] and _quarantined(con) == []
    assert sorted(r[0] for r in con.execute("select contract_id from stg_contracts").fetchall()) == sorted(ids)
    assert sorted(r[0] for r in con.execute("select contract_id from stg_invoices").fetchall()) == sorted(ids)


def test_a_value_of_only_spaces_is_empty(tmp_path):
    w = one_invoice_world(tmp_path)
    w.invoice("I2", "10.00", "2026-03-01", "2026-03-10", voided_on="   ", invoice_number="  ")
    con, _ = ingest_only(w.write())
    assert _quarantined(con) == [(2, "missing_value", "invoice_number", None)]


# -- the sample company loads as before ----------------------------------------------------------

SAMPLE_BAD_ROWS = [  # (table, rule, column): bench/sample_company.py's six bad rows and what they cascade to
    ("invoices", "due_before_invoice_date", "due_date"), ("invoices", "duplicate_id", "invoice_id"),
    ("invoices", "duplicate_id", "invoice_id"), ("invoices", "invalid_date", "due_date"),
    ("payments", "currency_mismatch", "currency"), ("payments", "invalid_amount", "amount"),
    ("payments", "unknown_contract", "contract_id"), ("payments", "unknown_invoice", "invoice_id")]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("bad_rows", [False, True])
def test_the_sample_company_loads_with_only_its_documented_bad_rows_quarantined(tmp_path, fmt, bad_rows):
    from bench.sample_company import generate_company
    from pipeline.config.settings import PROJECT_ROOT

    counts = generate_company(tmp_path, end=date(2026, 3, 31), contracts=60, fmt=fmt, bad_rows=bad_rows)
    con = duckdb.connect()
    reports = ingest(con, tmp_path, load_policy_file(PROJECT_ROOT / "policies" / "default.yaml").handles)
    assert {r.table: r.rows_read for r in reports} == counts
    assert all(r.balanced for r in reports)
    assert con.execute("select table_name, rule, column_name from quarantine order by all").fetchall() == (
        SAMPLE_BAD_ROWS if bad_rows else [])
