"""The sample-company generator: deterministic, schema-exact, referentially sane."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipeline.config import input_tables as schema
from bench.sample_company import generate_company

END = date(2026, 3, 31)
N = 150
TABLES = [t.name for t in schema.INPUT_TABLES]
MONEY_RE = re.compile(r"^-?\d+\.\d{2}$")
# Dates that record something that happened; due/period/billed dates may lie after END.
EVENT_DATES = {
    "contracts": ["started_on", "ended_on"],
    "invoices": ["invoice_date", "voided_on"],
    "payments": ["booked_on", "reversed_on"],
    "suspensions": ["from_date", "to_date"],
}


def _gen(root: Path, name: str, **kw) -> tuple[Path, dict[str, int]]:
    out = root / name
    return out, generate_company(out, end=END, contracts=N, **kw)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    return {
        "csv": _gen(root, "csv", fmt="csv"),
        "parquet": _gen(root, "parquet", fmt="parquet"),
        "csv_bad": _gen(root, "csv_bad", fmt="csv", bad_rows=True),
        "parquet_bad": _gen(root, "parquet_bad", fmt="parquet", bad_rows=True),
    }


@pytest.fixture(scope="module")
def db(data):
    """The clean parquet output, one DuckDB view per table."""
    con = duckdb.connect()
    out = data["parquet"][0]
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{out / (t + '.parquet')}')")
    return con


def _csv(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)  # every field as text, empty -> null


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_same_arguments_give_byte_identical_files(data, tmp_path, fmt):
    first, counts = data[fmt]
    again = generate_company(tmp_path, end=END, contracts=N, fmt=fmt)
    assert again == counts
    for t in TABLES:
        assert (tmp_path / f"{t}.{fmt}").read_bytes() == (first / f"{t}.{fmt}").read_bytes(), t


def test_other_seed_gives_other_data(data, tmp_path):
    generate_company(tmp_path, end=END, contracts=N, seed=8)
    assert (tmp_path / "invoices.csv").read_bytes() != (data["csv"][0] / "invoices.csv").read_bytes()


def test_returned_counts_match_files(data, db):
    out, counts = data["csv"]
    assert list(counts) == TABLES
    for t in TABLES:
        assert counts[t] == _csv(out / f"{t}.csv").height
        assert counts[t] == db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
    assert counts["customers"] == 120  # 0.8 x contracts
    assert counts["contracts"] == N
    assert 8 * N <= counts["invoices"] <= 11 * N
    assert 7 * N <= counts["payments"] <= 10 * N


def test_csv_columns_and_money_format(data):
    out, _ = data["csv"]
    for table in schema.INPUT_TABLES:
        header = (out / f"{table.name}.csv").read_text(encoding="utf-8").splitlines()[0]
        assert header.split(",") == table.column_names
        df = _csv(out / f"{table.name}.csv")
        for col in table.columns:
            values = df[col.name]
            if col.required:
                assert values.null_count() == 0, (table.name, col.name)
            values = values.drop_nulls()
            if col.type == schema.MONEY:
                assert values.len() > 0
                assert all(MONEY_RE.match(v) for v in values), (table.name, col.name)
            elif col.type == "DATE":
                assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) for v in values), (table.name, col.name)
            elif col.type == "BOOLEAN":
                assert set(values) <= {"true", "false"}, (table.name, col.name)


def test_parquet_columns_and_types_are_the_schema(db):
    for table in schema.INPUT_TABLES:
        got = [(r[0], r[1]) for r in db.execute(f"DESCRIBE {table.name}").fetchall()]
        assert got == [(c.name, c.type) for c in table.columns]


def test_csv_and_parquet_hold_the_same_rows(data, db):
    out, _ = data["csv"]
    for table in schema.INPUT_TABLES:
        types = ", ".join(f"'{c.name}': '{c.type}'" for c in table.columns)
        csv_rows = db.execute(
            f"SELECT * FROM read_csv('{out / (table.name + '.csv')}', header=true, columns={{{types}}})"
        ).fetchall()
        assert csv_rows == db.execute(f"SELECT * FROM {table.name}").fetchall(), table.name


def test_ids_unique_and_sorted(db):
    for table, key in [("customers", "customer_id"), ("contracts", "contract_id"),
                       ("invoices", "invoice_id"), ("invoices", "invoice_number"), ("payments", "payment_id")]:
        n, distinct = db.execute(f"SELECT count(*), count(DISTINCT {key}) FROM {table}").fetchone()
        assert n == distinct, (table, key)
    for table, key in [("customers", "customer_id"), ("contracts", "contract_id"),
                       ("invoices", "invoice_id"), ("payments", "payment_id")]:
        ids = [r[0] for r in db.execute(f"SELECT {key} FROM {table}").fetchall()]
        assert ids == sorted(ids), table
    assert db.execute("SELECT min(invoice_id) FROM invoices").fetchone()[0] == "IN-00000001"
    assert db.execute("SELECT min(payment_id) FROM payments").fetchone()[0] == "PAY-00000001"
    assert db.execute("SELECT min(customer_id), min(contract_id) FROM contracts").fetchone() == (
        "CU-00000001", "CT-00000001")


def test_referential_sanity(db):
    q = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    assert q("SELECT count(*) FROM contracts LEFT JOIN customers USING (customer_id) WHERE name IS NULL") == 0
    # Every invoice's contract exists and belongs to the invoice's customer, same currency.
    assert q("""SELECT count(*) FROM invoices i LEFT JOIN contracts c USING (contract_id)
                WHERE c.customer_id IS DISTINCT FROM i.customer_id OR c.currency IS DISTINCT FROM i.currency""") == 0
    assert q("""SELECT count(*) FROM payments p LEFT JOIN contracts c USING (contract_id)
                WHERE c.currency IS DISTINCT FROM p.currency""") == 0
    # A payment's invoice exists and is on the same contract.
    assert q("""SELECT count(*) FROM payments p LEFT JOIN invoices i USING (invoice_id)
                WHERE p.invoice_id IS NOT NULL AND i.contract_id IS DISTINCT FROM p.contract_id""") == 0
    assert q("SELECT count(*) FROM payments WHERE amount <= 0") == 0
    assert q("SELECT count(*) FROM invoices WHERE due_date < invoice_date OR amount = 0") == 0
    assert q("SELECT count(*) FROM invoices WHERE amount < 0 AND due_date <> invoice_date") == 0
    assert q("""SELECT count(*) FROM invoices i JOIN contracts c USING (contract_id)
                WHERE (c.payment_method = 'direct_debit' AND i.amount > 0)
                      IS DISTINCT FROM (i.scheduled_payment_on IS NOT NULL)""") == 0
    assert q("SELECT count(*) FROM invoices WHERE scheduled_payment_on <> due_date") == 0
    assert q("SELECT count(*) FROM payments WHERE (status = 'reversed') <> (reversed_on IS NOT NULL)") == 0
    assert q("SELECT count(*) FROM payments WHERE status <> 'settled' AND reason_code IS NULL") == 0
    assert q("SELECT count(*) FROM contracts WHERE (status = 'ended') <> (ended_on IS NOT NULL)") == 0
    assert q("SELECT count(*) FROM contracts WHERE ended_on < started_on") == 0
    # Locale, country and currency agree.
    assert q("""SELECT count(*) FROM contracts JOIN customers USING (customer_id)
                WHERE currency <> CASE locale WHEN 'en_GB' THEN 'GBP' WHEN 'da_DK' THEN 'DKK' ELSE 'EUR' END
                   OR country <> right(locale, 2)""") == 0
    for scope, table, key in [("customer", "customers", "customer_id"), ("contract", "contracts", "contract_id"),
                              ("invoice", "invoices", "invoice_id")]:
        assert q(f"""SELECT count(*) FROM suspensions s LEFT JOIN {table} t ON s.target_id = t.{key}
                     WHERE s.scope = '{scope}' AND t.{key} IS NULL""") == 0


def test_a_failed_or_reversed_payment_carries_a_code_of_its_payment_methods_list(db):
    """Card contracts' failures carry card decline codes, the others SEPA reason codes: the sample
    (the demo's, the bench's) has no failure the pipeline has to call unknown and treat as technical."""
    lists = Path(__file__).resolve().parents[2] / "pipeline" / "failed_collections"
    for name in ("card_decline_codes", "sepa_reason_codes"):
        db.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT code, failure_type "
                   f"FROM read_csv('{lists / (name + '.csv')}', all_varchar = true)")
    rows = db.execute("""
        SELECT c.payment_method, p.status, p.reason_code, coalesce(k.failure_type, s.failure_type), count(*)
        FROM payments p JOIN contracts c USING (contract_id)
        LEFT JOIN card_decline_codes k ON c.payment_method = 'card' AND k.code = p.reason_code
        LEFT JOIN sepa_reason_codes s ON c.payment_method <> 'card' AND s.code = p.reason_code
        WHERE p.status <> 'settled'
        GROUP BY ALL ORDER BY ALL""").fetchall()
    assert [r for r in rows if r[3] is None] == []  # every code is in its method's list
    failed = {(method, code) for method, status, code, _, _ in rows if status == "failed"}
    assert {code for method, code in failed if method == "card"} <= {"51", "05", "54", "91"}
    assert {code for method, code in failed if method == "direct_debit"} <= {"AM04", "MS02", "AC04", "MD06"}
    assert {method for method, _ in failed} == {"card", "direct_debit"}  # a bank transfer cannot fail
    reversed_codes = {(method, code) for method, status, code, _, _ in rows if status == "reversed"}
    assert {code for method, code in reversed_codes if method == "card"} == {"R1"}
    assert {code for method, code in reversed_codes if method != "card"} == {"MD06"}
    # all three kinds of failure occur among the card failures
    assert {t for method, status, _, t, _ in rows if method == "card" and status == "failed"} == {
        "soft", "hard", "technical"}


def test_nothing_happens_after_end(db):
    for table, cols in EVENT_DATES.items():
        for col in cols:
            latest = db.execute(f"SELECT max({col}) FROM {table}").fetchone()[0]
            assert latest is None or latest <= END, (table, col)
    assert db.execute("SELECT min(invoice_date) FROM invoices").fetchone()[0] >= date(2025, 4, 1)


def test_the_company_has_every_kind_of_row(db):
    q = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    assert q("SELECT list(DISTINCT currency ORDER BY currency) FROM contracts") == ["DKK", "EUR", "GBP"]
    assert q("SELECT list(DISTINCT locale ORDER BY locale) FROM customers") == [
        "da_DK", "de_DE", "en_GB", "fr_FR", "nl_NL"]
    assert q("SELECT list(DISTINCT status ORDER BY status) FROM payments") == ["failed", "reversed", "settled"]
    assert q("SELECT list(DISTINCT scope ORDER BY scope) FROM suspensions") == [
        "contract", "customer", "global", "invoice"]
    assert q("SELECT count(*) FROM suspensions WHERE scope = 'global'") == 1
    assert q("SELECT count(*) FROM suspensions WHERE to_date IS NULL") > 0
    assert q("SELECT count(*) FROM contracts WHERE status = 'ended'") > 0
    assert q("SELECT count(*) FROM contracts WHERE policy = 'default'") > 0
    assert q("SELECT count(*) FROM invoices WHERE amount < 0") > 0
    assert q("SELECT count(*) FROM invoices WHERE voided_on IS NOT NULL") > 0
    assert q("SELECT count(*) FROM invoices WHERE dunning_paused") > 0
    assert q("SELECT count(*) FROM payments WHERE invoice_id IS NULL") > 0
    assert q("SELECT count(*) FROM payments WHERE mandate_id IS NOT NULL") > 0
    # Unpaid overdue invoices near END, so a 90-day replay has cases to dun.
    assert q("""SELECT count(*) FROM invoices i WHERE amount > 0 AND voided_on IS NULL
                AND due_date BETWEEN DATE '2026-01-01' AND DATE '2026-03-30'
                AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.contract_id = i.contract_id
                                AND p.booked_on > i.invoice_date)""") > 0


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_bad_rows_appends_exactly_six_documented_rows(data, fmt):
    good_dir, good = data[fmt]
    bad_dir, bad = data[f"{fmt}_bad"]
    assert {t: bad[t] - good[t] for t in TABLES} == {
        "customers": 0, "contracts": 0, "invoices": 3, "payments": 3, "suspensions": 0}
    read = _csv if fmt == "csv" else pl.read_parquet
    for t in ["customers", "contracts", "suspensions"]:
        assert (bad_dir / f"{t}.{fmt}").read_bytes() == (good_dir / f"{t}.{fmt}").read_bytes()
    for t in ["invoices", "payments"]:
        b = read(bad_dir / f"{t}.{fmt}")
        assert b.columns == schema.INPUT_TABLES_BY_NAME[t].column_names
        assert set(b.dtypes) == {pl.String}  # broken values only fit in text columns
        g = read(good_dir / f"{t}.{fmt}").cast(pl.String)
        assert b.head(good[t]).equals(g)  # the good rows are untouched and come first
    inv = read(bad_dir / f"invoices.{fmt}").tail(3)
    first_id = read(good_dir / f"invoices.{fmt}")["invoice_id"][0]
    assert inv["invoice_id"].to_list() == ["IN-BAD-0001", "IN-BAD-0002", first_id]
    assert inv["due_date"][0] == "2026-13-45"
    assert inv["due_date"][1] < inv["invoice_date"][1]
    pay = read(bad_dir / f"payments.{fmt}").tail(3)
    assert pay["payment_id"].to_list() == ["PAY-BAD-0001", "PAY-BAD-0002", "PAY-BAD-0003"]
    assert pay["amount"].to_list() == ["12,5x", "10.00", "10.00"]
    assert pay["contract_id"].to_list() == ["CT-00000001", "CT-00000001", "CT-UNKNOWN"]
    contract_currency = _csv(good_dir / "contracts.csv")["currency"][0] if fmt == "csv" else \
        pl.read_parquet(good_dir / "contracts.parquet")["currency"][0]
    assert pay["currency"][0] == contract_currency
    assert pay["currency"][1] == "USD" != contract_currency
