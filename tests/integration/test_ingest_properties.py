"""The fault suite: generated dirty invoices and payments (random text, control characters,
quotes, many decimals, huge numbers, odd dates, empty fields) through the real ingestion, as CSV
and as Parquet. For every table rows read = rows loaded + rows quarantined; every loaded value
equals its input exactly (Decimal, date, text compare) and is valid by the documented rules
(docs/ingestion.md), checked by an independent Python oracle; every quarantined row names file,
row and column, and a type rule is reported only for a value the oracle rejects too.

Figures of a run (rows tried, loaded, quarantined, values changed) are printed at the end
(`pytest -s`) and written to $INGEST_FAULT_FIGURES when set; docs/ingestion.md quotes one run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections import Counter
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline.config.input_tables import FIRST_DATE, INPUT_TABLES_BY_NAME, LAST_DATE, MONEY_LIMIT
from pipeline.warehouse.ingest import ingest, quarantine_messages

pytestmark = pytest.mark.slow(95)  # long: each worker starts with its share (tests/conftest.py)

FIGURES: Counter = Counter()
EXAMPLES = int(os.environ.get("INGEST_FAULT_EXAMPLES", "80"))  # per test; the default run stays well under 60 s

TRUE, FALSE = {"true", "t", "1", "yes", "y"}, {"false", "f", "0", "no", "n"}
TYPE_RULES = {"invalid_date", "date_out_of_range", "invalid_amount", "amount_out_of_range", "invalid_boolean",
              "control_character", "missing_value"}
ODD_TEXT = ["", " ", "   ", "CT 1", " CT1", "CT1 ", "Vertrag-Ü/ß", "../../etc/passwd", "..", 'a"b', '"', "a,b",
            "a;b", "契約", "x\x00y", "x\ry", "x\ny", "x\r\ny", "\t", "x\x1by", "x\x7fy", "NULL", "\\N", "\ufeffx"]
ODD_AMOUNTS = ["", " ", "0", "-0", "0.00", "12.5", "12.50", " 12.50 ", "12.500", "12.501", "1.005", "-5.00",
               "12,50", "1,234.50", "1.234,50", "1e3", "+5", ".5", "5.", "999999999999.99", "1000000000000",
               "-999999999999.99", "12345678901234567890", "9999999999999999.99", "00000000000000000001.10",
               "NaN", "inf", "١٢", "12 50", "0x10"]
ODD_DATES = ["", " ", "2026-03-01", " 2026-03-01 ", "-2026-01-01", "0000-01-01", "0001-01-01", "1899-12-31",
             "1900-01-01", "2199-12-31", "2200-01-01", "9999-12-31", "12026-01-01", "2026-1-1", "2026-02-29",
             "2024-02-29", "2026-13-45", "20260301", "2026-03-01 12:00", "2026-03-01T00:00", "2026/03/01",
             "01.03.2026", "infinity", "2026-03-01 (BC)"]
ODD_BOOLEANS = ["", "true", "false", "TRUE", "False", "t", "f", "1", "0", "yes", "no", "y", "n", " true ", "2",
                "on", "off", "maybe", "wahr"]

text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)  # control characters too
clean_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=10)
any_text = st.one_of(text, st.sampled_from(ODD_TEXT))
DIRTY = 0.05  # the share of values drawn from the dirty strategies (one row in two has one)


def _mostly(valid, dirty):
    """A valid value, or (one time in twenty) a dirty one."""
    return st.integers(0, 99).flatmap(lambda k: dirty if k < DIRTY * 100 else valid)


def _amount_text(positive: bool):
    low = Decimal("0.01") if positive else -MONEY_LIMIT + Decimal("0.01")
    cents = st.decimals(min_value=low, max_value=MONEY_LIMIT - Decimal("0.01"), places=2)
    small = st.decimals(min_value=low if positive else Decimal(-1000), max_value=Decimal(1000), places=2)
    # written as exporters write them: 12.5, 12.50, 12.500, 0012.50, " 12.50 "
    return st.tuples(st.one_of(cents, small), st.sampled_from(["", "0", "00"]), st.sampled_from(["", " "]),
                     st.booleans()).map(
        lambda t: t[2] + (format(t[0], "f").rstrip("0").rstrip(".") if t[3] and t[0] == t[0].to_integral()
                          else format(t[0], "f") + t[1]) + t[2])


dirty_amounts = st.one_of(
    st.sampled_from(ODD_AMOUNTS),
    st.decimals(allow_nan=False, allow_infinity=False, places=5, min_value=-10**6, max_value=10**6).map(str),
    st.integers(min_value=-10**22, max_value=10**22).map(str),
    text)
dirty_dates = st.one_of(st.sampled_from(ODD_DATES), st.dates().map(date.isoformat), text)
valid_dates = st.dates(FIRST_DATE, LAST_DATE).map(date.isoformat)
valid_booleans = st.sampled_from(sorted(TRUE | FALSE) + ["TRUE", "False", "Yes", "N"])
booleans = _mostly(valid_booleans, st.one_of(st.sampled_from(ODD_BOOLEANS), text))
ids = _mostly(st.from_regex(r"[A-Z]{1,2}-[0-9]{1,4}", fullmatch=True) | clean_text, any_text)
optional_dates = _mostly(st.one_of(st.just(""), valid_dates), dirty_dates)


@st.composite
def invoice(draw):
    issued = draw(st.dates(FIRST_DATE, date(2199, 10, 1)))
    return {
        "invoice_id": draw(ids), "invoice_number": draw(_mostly(clean_text, any_text)),
        "contract_id": draw(_mostly(st.sampled_from(["CT1", "CT 2"]), any_text)),
        "customer_id": draw(_mostly(st.just("CU1"), any_text)),
        "invoice_date": draw(_mostly(st.just(issued.isoformat()), dirty_dates)),
        "due_date": draw(_mostly(st.integers(0, 60).map(lambda k: date.fromordinal(issued.toordinal() + k)
                                                         .isoformat()), dirty_dates)),
        "amount": draw(_mostly(_amount_text(positive=False), dirty_amounts)),
        "currency": draw(_mostly(st.just("EUR"), any_text)),
        "voided_on": draw(optional_dates), "dunning_paused": draw(booleans),
        "period_start": draw(optional_dates), "period_end": draw(optional_dates),
        "scheduled_payment_on": draw(optional_dates),
        "note": draw(any_text),  # a column beyond the contract: flows through unchanged
    }


@st.composite
def payment(draw):
    status = draw(_mostly(st.sampled_from(["settled", "failed", "reversed"]), any_text))
    booked = draw(st.dates(FIRST_DATE, date(2199, 10, 1)))
    reversed_on = date.fromordinal(booked.toordinal() + draw(st.integers(0, 30))).isoformat() \
        if status == "reversed" else ""
    return {
        "payment_id": draw(ids), "contract_id": draw(_mostly(st.sampled_from(["CT1", "CT 2"]), any_text)),
        "invoice_id": draw(_mostly(st.just(""), ids)), "amount": draw(_mostly(_amount_text(positive=True),
                                                                               dirty_amounts)),
        "currency": draw(_mostly(st.just("EUR"), any_text)),
        "booked_on": draw(_mostly(st.just(booked.isoformat()), dirty_dates)), "status": status,
        "reversed_on": draw(_mostly(st.just(reversed_on), dirty_dates)),
        "reason_code": draw(_mostly(st.just(""), any_text)), "mandate_id": draw(_mostly(st.just(""), any_text)),
    }


worlds = st.tuples(st.lists(invoice(), min_size=10, max_size=60), st.lists(payment(), min_size=10, max_size=60))

CUSTOMERS = [{"customer_id": "CU1", "name": "Customer 1", "email": "c@x.example", "locale": "de_DE",
              "country": "DE", "dunning_disabled": "false", "apply_fees": "true"}]
CONTRACTS = [{"contract_id": c, "customer_id": "CU1", "currency": "EUR", "status": "active",
              "started_on": "2024-01-01"} for c in ("CT1", "CT 2")]


# -- the oracle: what the documented rules say about one value ---------------------------------------

class Invalid(Exception):
    pass


def _trimmed(value: str) -> str:
    return value.strip(" ")


def expected(column, value: str | None):
    """The loaded value a written value must give (None: empty); raises Invalid if it must not load."""
    if value is None or _trimmed(value) == "":
        return None
    if column.type == "VARCHAR":
        if re.search(r"[\x00-\x1f\x7f]", value):
            raise Invalid("control_character")
        return value
    t = _trimmed(value)
    if column.type == "DATE":
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", t):
            raise Invalid("invalid_date")
        if not FIRST_DATE.isoformat() <= t <= LAST_DATE.isoformat():  # the year first: 0000-02-30 too
            raise Invalid("date_out_of_range")
        try:
            return date.fromisoformat(t)
        except ValueError:
            raise Invalid("invalid_date") from None
    if column.type == "BOOLEAN":
        if t.lower() in TRUE:
            return True
        if t.lower() in FALSE:
            return False
        raise Invalid("invalid_boolean")
    if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", t):
        raise Invalid("invalid_amount")
    amount = Decimal(t)
    if amount != amount.quantize(Decimal("0.01")):
        raise Invalid("invalid_amount")
    if abs(amount) >= MONEY_LIMIT:
        raise Invalid("amount_out_of_range")
    return amount


def _typed_expected(column, value):
    """The same for a typed (Parquet) value."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.time() != time(0):
            raise Invalid("invalid_date")
        value = value.date()
    if isinstance(value, date):
        if not FIRST_DATE <= value <= LAST_DATE:
            raise Invalid("date_out_of_range")
        return value
    if isinstance(value, Decimal):
        if value != value.quantize(Decimal("0.01")):
            raise Invalid("invalid_amount")
        if abs(value) >= MONEY_LIMIT:
            raise Invalid("amount_out_of_range")
        return value
    if isinstance(value, int) and column.type == "BOOLEAN":
        if value not in (0, 1):
            raise Invalid("invalid_boolean")
        return bool(value)
    return expected(column, value)


# -- writing, ingesting, checking ------------------------------------------------------------------

def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


def _record(row: dict, columns: list[str]) -> str:
    out = io.StringIO()
    csv.DictWriter(out, fieldnames=columns, restval="").writerow(row)
    return out.getvalue()


BROKEN = {  # a raw line that is no valid row -> the rule it must be quarantined for
    "few": "wrong_column_count", "many": "wrong_column_count", "quote": "invalid_quote", "blank": None}


def _write_csv_with_faults(path: Path, rows: list[dict], columns: list[str], faults) -> tuple[list, list[int]]:
    """The rows as csv.writer writes them, with raw broken lines and blank lines put in between.

    Returns the rows in file order (a dict, or the kind of a broken line) and the line each starts on.
    """
    records: list = list(rows)
    for position, kind in sorted(faults, reverse=True):
        records.insert(min(position, len(records)), kind)
    text, order, lines = _record(dict(zip(columns, columns)), columns), [], []
    for record in records:
        if isinstance(record, dict):
            chunk = _record(record, columns)
        else:
            chunk = {"few": "X1,X2", "many": ",".join(["z"] * (len(columns) + 2)),
                     "quote": 'Q,"ab"c' + "," * (len(columns) - 2), "blank": ""}[record] + "\r\n"
        if record != "blank":
            order.append(record)
            lines.append(len(re.findall(r"\r\n|\r|\n", text)) + 1)
        text += chunk
    path.write_bytes(text.encode("utf-8"))
    return order, lines


def _write_parquet(path: Path, rows: list[dict], types: dict[str, str]) -> None:
    with duckdb.connect() as con:
        con.execute("create table t (" + ", ".join(f'"{c}" {t}' for c, t in types.items()) + ")")
        if rows:
            con.executemany(f"insert into t values ({', '.join('?' for _ in types)})",
                            [[r.get(c) for c in types] for r in rows])
        con.execute(f"copy t to '{path}' (format parquet)")


def _columns(table: str, rows: list[dict]) -> list[str]:
    return INPUT_TABLES_BY_NAME[table].column_names + sorted({k for r in rows for k in r}
                                                             - set(INPUT_TABLES_BY_NAME[table].column_names))


def _check(con, reports, written: dict[str, tuple[Path, list]], typed: bool,
           lines: dict[str, list[int]] | None = None) -> None:
    for report in reports:
        assert report.balanced, report
    rules_seen = Counter()
    for table, (path, rows) in written.items():
        spec = INPUT_TABLES_BY_NAME[table]
        report = next(r for r in reports if r.table == table)
        assert report.rows_read == len(rows), (table, report)
        names = [c.name for c in spec.columns]
        extras = [c for c in _columns(table, [r for r in rows if isinstance(r, dict)]) if c not in names]
        loaded = {r[0]: r[1:] for r in con.execute(
            f"select _source_row, {', '.join(chr(34) + c + chr(34) for c in names + extras)} from stg_{table}"
        ).fetchall()}
        quarantined = {r[0]: r[1:] for r in con.execute(
            "select source_row, source_file, rule, column_name, message from quarantine where table_name = ?",
            [table]).fetchall()}
        assert set(loaded) | set(quarantined) == set(range(1, len(rows) + 1))
        assert not set(loaded) & set(quarantined)
        changed = 0
        for n, row in enumerate(rows, 1):
            check = _typed_expected if typed else expected
            if isinstance(row, str):  # a broken line
                assert n in quarantined and quarantined[n][1] == BROKEN[row], (table, n, row, quarantined.get(n))
                rules_seen[BROKEN[row]] += 1
                FIGURES["broken lines"] += 1
                continue
            if n in loaded:
                for column, got in zip(spec.columns, loaded[n]):
                    try:
                        want = check(column, row.get(column.name))
                    except Invalid as why:
                        pytest.fail(f"{table} row {n} loaded {column.name}={row.get(column.name)!r} as {got!r}, "
                                    f"which the rules reject ({why})")
                    changed += want != got or type(want) is not type(got)
                for column, got in zip(extras, loaded[n][len(names):]):
                    changed += (row.get(column) or None) != got
            else:
                file, rule, column, message = quarantined[n]
                rules_seen[rule] += 1
                assert file == str(path) and rule and message
                assert column or rule == "wrong_column_count", (table, n, rule)
                if rule in TYPE_RULES:  # the oracle rejects this column for this reason
                    spec_column = next(c for c in spec.columns if c.name == column)
                    if rule == "missing_value":
                        assert spec_column.required and check(spec_column, row.get(column)) is None
                    else:
                        with pytest.raises(Invalid, match=rule):
                            check(spec_column, row.get(column))
        FIGURES["changed"] += changed
        assert changed == 0, f"{table}: {changed} value(s) changed"
        FIGURES["rows tried"] += len(rows)
        FIGURES["loaded"] += len(loaded)
        FIGURES["quarantined"] += len(quarantined)
    messages = quarantine_messages(con, limit=10_000)
    rows = con.execute("select source_file, source_row, column_name from quarantine "
                       "order by table_name, source_file, source_row").fetchall()
    assert len(messages) == len(rows)
    for message, (file, row, column) in zip(messages, rows):
        assert message.startswith(f"{file} row {row}") and (column is None or f", column {column}:" in message)
        table = Path(file).stem
        if lines and table in lines:  # the line the row starts on, blank lines and values spanning lines counted
            assert message.startswith(f"{file} row {row} (line {lines[table][row - 1]})"), message
    FIGURES.update({f"rule {k}": v for k, v in rules_seen.items()})


def _ingest(folder: Path):
    con = duckdb.connect()
    return con, ingest(con, folder, ["default"])


faults = st.lists(st.tuples(st.integers(0, 60), st.sampled_from(sorted(BROKEN))), max_size=4)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], report_multiple_bugs=False)
@given(worlds, faults, faults)
def test_dirty_csv_rows_load_exactly_or_are_quarantined_naming_file_row_and_column(world, invoice_faults,
                                                                                   payment_faults):
    invoices, payments = world
    FIGURES["examples"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_csv(folder / "customers.csv", CUSTOMERS, INPUT_TABLES_BY_NAME["customers"].column_names)
        _write_csv(folder / "contracts.csv", CONTRACTS, INPUT_TABLES_BY_NAME["contracts"].column_names)
        _write_csv(folder / "suspensions.csv", [], INPUT_TABLES_BY_NAME["suspensions"].column_names)
        written, lines = {}, {}
        for table, rows, broken in (("invoices", invoices, invoice_faults), ("payments", payments, payment_faults)):
            path = folder / f"{table}.csv"
            order, lines[table] = _write_csv_with_faults(path, rows, _columns(table, rows), broken)
            written[table] = (path, order)
        con, reports = _ingest(folder)
        _check(con, reports, written, typed=False, lines=lines)


@st.composite
def typed_invoice(draw):
    issued = draw(_mostly(st.dates(FIRST_DATE, date(2199, 10, 1)), st.dates()))
    due = date.fromordinal(min(issued.toordinal() + draw(st.integers(0, 60)), date.max.toordinal()))
    cents = st.decimals(min_value=-MONEY_LIMIT + Decimal("0.01"), max_value=MONEY_LIMIT - Decimal("0.01"), places=2)
    return {
        "invoice_id": draw(ids), "invoice_number": draw(_mostly(clean_text, any_text)), "contract_id": "CT1",
        "customer_id": "CU1", "invoice_date": issued,
        "due_date": draw(_mostly(st.just(datetime.combine(due, time(0))),
                                 st.datetimes().map(lambda t: t.replace(microsecond=0)))),
        "amount": draw(_mostly(cents, st.decimals(allow_nan=False, allow_infinity=False, places=3,
                                                  min_value=-10**15 + 1, max_value=10**15 - 1))),
        "currency": "EUR", "dunning_paused": draw(_mostly(st.integers(0, 1), st.integers(2, 3))),
    }
TYPED = {"invoice_id": "VARCHAR", "invoice_number": "VARCHAR", "contract_id": "VARCHAR", "customer_id": "VARCHAR",
         "invoice_date": "DATE", "due_date": "TIMESTAMP", "amount": "DECIMAL(18,3)", "currency": "VARCHAR",
         "dunning_paused": "INTEGER"}


@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=[HealthCheck.too_slow], report_multiple_bugs=False)
@given(st.lists(typed_invoice(), min_size=10, max_size=60))
def test_typed_parquet_values_load_exactly_or_are_quarantined(invoices):
    """DECIMAL(18,3) amounts, TIMESTAMP due dates, DATEs of any year, integer booleans."""
    FIGURES["examples"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_csv(folder / "customers.csv", CUSTOMERS, INPUT_TABLES_BY_NAME["customers"].column_names)
        _write_csv(folder / "contracts.csv", CONTRACTS, INPUT_TABLES_BY_NAME["contracts"].column_names)
        _write_csv(folder / "suspensions.csv", [], INPUT_TABLES_BY_NAME["suspensions"].column_names)
        _write_csv(folder / "payments.csv", [], INPUT_TABLES_BY_NAME["payments"].column_names)
        path = folder / "invoices.parquet"
        _write_parquet(path, invoices, TYPED)
        con, reports = _ingest(folder)
        _check(con, reports, {"invoices": (path, invoices)}, typed=True)


@pytest.fixture(scope="module", autouse=True)
def _report_figures():
    yield
    if not FIGURES:
        return
    line = ", ".join(f"{k} {v}" for k, v in sorted(FIGURES.items(), key=lambda kv: (kv[0].startswith("rule"), kv[0])))
    print(f"\ningestion fault suite: {line}")
    if os.environ.get("INGEST_FAULT_FIGURES"):
        Path(os.environ["INGEST_FAULT_FIGURES"]).write_text(json.dumps(dict(FIGURES), indent=2, sort_keys=True))
