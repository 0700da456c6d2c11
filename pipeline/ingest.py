"""Ingestion: billing files (CSV or Parquet) into typed, validated DuckDB tables.

Every row read ends up in exactly one place: its `stg_<table>` table or the
`quarantine` table with the rule it broke. Typing is generic (driven by
`pipeline.schema`); the business rules of each table (duplicate ids,
unknown references, currency mismatches, ...) are hand-written SQL in
`sql/staging/<table>_violations.sql` so they can be read and reviewed like
any other model. A file that cannot be read at all stops the run with a
message naming the file: a half-loaded table would be worse than no run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import duckdb

from pipeline.schema import INPUT_TABLES, MONEY, Table
from pipeline.sql_runner import parameters_of, read_model

log = logging.getLogger(__name__)

TYPE_RULES = {  # type -> (rule, what was expected)
    "DATE": ("invalid_date", "a date YYYY-MM-DD"),
    MONEY: ("invalid_amount", "a decimal amount like 1234.50 (at most 2 decimals, point as separator)"),
    "BOOLEAN": ("invalid_boolean", "true or false"),
}

QUARANTINE_DDL = """
create table if not exists quarantine (
    table_name varchar not null, source_file varchar not null, source_row bigint not null,
    rule varchar not null, column_name varchar, value varchar, message varchar not null,
    record json)
"""


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


def discover_files(data_dir: Path, table: str) -> list[Path]:
    """`<table>.csv|parquet`, `<table>_*.csv|parquet` or anything under a `<table>/` folder."""
    data_dir = Path(data_dir)
    found: set[Path] = set()
    for ext in ("csv", "parquet"):
        found.update(data_dir.glob(f"{table}.{ext}"))
        found.update(data_dir.glob(f"{table}_*.{ext}"))
        found.update(data_dir.glob(f"{table}/**/*.{ext}"))
    return sorted(found)


def _describe_file(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[str, dict[str, str]]:
    if path.suffix == ".parquet":
        reader = "read_parquet(?, file_row_number = true)"
    else:
        reader = "read_csv(?, all_varchar = true, header = true)"
    try:
        cols = con.execute(f"describe select * from {reader}", [str(path)]).fetchall()
    except duckdb.Error as exc:
        raise IngestError(f"{path}: cannot be read: {exc}") from exc
    return reader, {name: type_ for name, type_, *_ in cols}


def _raw_select(con, path: Path, table: Table) -> tuple[str, list[str], list[str]]:
    """One file's rows with source file and 1-based row number; checks required columns."""
    reader, cols = _describe_file(con, path)
    missing = [c for c in table.column_names if c not in cols]
    if missing:
        raise IngestError(f"{path}: missing required column(s) {', '.join(missing)} for table {table.name}")
    for column in table.columns:
        if column.type == MONEY and cols[column.name] in ("FLOAT", "DOUBLE"):
            raise IngestError(
                f"{path}: column {column.name} is {cols[column.name]}; money must be DECIMAL or text, never float"
            )
    extras = [c for c in cols if c not in table.column_names and c != "file_row_number"]
    row = "file_row_number + 1" if path.suffix == ".parquet" else "row_number() over ()"
    selected = ", ".join(f'"{c}"' for c in table.column_names + extras)
    return f"select {selected}, ? as _source_file, {row} as _source_row from {reader}", [str(path), str(path)], extras


def _already_typed(column, source_types: dict[str, str]) -> bool:
    """A Parquet column stored in the target type needs no cast and cannot break a type rule."""
    return column.type != "VARCHAR" and source_types.get(column.name) == column.type


def _raw_text(column, source_types: dict[str, str]) -> str:
    name = f'"{column.name}"'
    if source_types.get(column.name) == "VARCHAR":
        return f"nullif(trim({name}), '')"
    return f"cast({name} as varchar)"


def _typed_expr(column, source_types: dict[str, str]) -> str:
    name = f'"{column.name}"'
    if _already_typed(column, source_types):
        return name
    if column.type == "VARCHAR":
        return _raw_text(column, source_types)
    if column.type == MONEY and source_types.get(column.name) == "VARCHAR":
        # DuckDB would round '12.345' silently; money text must match exactly.
        return (f"case when regexp_full_match(trim({name}), '-?[0-9]+([.][0-9]{{1,2}})?') "
                f"then cast(trim({name}) as {MONEY}) end")
    return f"try_cast({name} as {column.type})"


def _violation_expr(table: Table, source_types: dict[str, str]) -> str:
    """First type or missing-value violation of a row as a struct, or NULL."""
    branches = []
    for column in table.columns:
        raw = _raw_text(column, source_types)
        missing = f'"{column.name}" is null' if _already_typed(column, source_types) else f"{raw} is null"
        if column.required:
            branches.append(
                f"when {missing} then {{'rule': 'missing_value', 'column_name': '{column.name}', "
                f"'value': null, 'message': 'required value is empty'}}"
            )
        if column.type in TYPE_RULES and not _already_typed(column, source_types):
            rule, expected = TYPE_RULES[column.type]
            branches.append(
                f"when {raw} is not null and {_typed_expr(column, source_types)} is null then "
                f"{{'rule': '{rule}', 'column_name': '{column.name}', 'value': {raw}, "
                f"'message': 'expected {expected}'}}"
            )
    return "case " + " ".join(branches) + " end"


def _load_table(con, table: Table, files: list[Path], policy_handles: list[str]) -> TableReport:
    typed = f"typed_{table.name}"
    if not files:
        raise IngestError(f"no file for table {table.name} (expected {table.name}.csv or {table.name}.parquet)")
    parts, params, all_extras = [], [], []
    for path in files:
        sql, p, extras = _raw_select(con, path, table)
        parts.append(sql)
        params += p
        all_extras += [e for e in extras if e not in all_extras]
    union = " union all by name ".join(f"({p})" for p in parts)
    source_types = {r[0]: r[1] for r in con.execute(f"describe select * from ({union})", params).fetchall()}
    typed_cols = ", ".join(f'{_typed_expr(c, source_types)} as "{c.name}"' for c in table.columns)
    extra_cols = "".join(f', cast("{e}" as varchar) as "{e}"' for e in all_extras)
    raw_json = "to_json({" + ", ".join(f"'{c}': \"{c}\"" for c in table.column_names + all_extras) + "})"
    con.execute(
        f"""create or replace temp table {typed} as
            select _source_file, _source_row, {typed_cols}{extra_cols},
                   {_violation_expr(table, source_types)} as _type_violation,
                   case when _type_violation is not null then {raw_json} end as _record
            from ({union})""",
        params,
    )
    # Row numbers are fixed now; later steps need no order, and without it DuckDB
    # writes the staging table in parallel.
    con.execute("set preserve_insertion_order = false")
    rule_sql = read_model(f"staging/{table.name}_violations")
    model_params = {"policy_handles": policy_handles} if "policy_handles" in parameters_of(rule_sql) else {}
    con.execute(
        f"""create or replace temp table violations_{table.name} as
            with typed as (select * from {typed} where _type_violation is null)
            select * from ({rule_sql})""",
        model_params,
    )
    con.execute(
        f"""create or replace table stg_{table.name} as
            select * exclude (_type_violation, _record) from {typed} t
            where _type_violation is null
              and not exists (select 1 from violations_{table.name} v
                              where v._source_file = t._source_file and v._source_row = t._source_row)"""
    )
    con.execute("delete from quarantine where table_name = ?", [table.name])
    con.execute(
        f"""insert into quarantine
            select ?, _source_file, _source_row, _type_violation.rule, _type_violation.column_name,
                   _type_violation.value, _type_violation.message, _record
            from {typed} where _type_violation is not null
            union all
            select ?, v._source_file, v._source_row, v.rule, v.column_name, v.value, v.message,
                   to_json(t) from violations_{table.name} v
            join {typed} t using (_source_file, _source_row)
            qualify row_number() over (partition by v._source_file, v._source_row order by v.priority, v.rule) = 1""",
        [table.name, table.name],
    )
    read = con.execute(f"select count(*) from {typed}").fetchall()[0][0]
    loaded = con.execute(f"select count(*) from stg_{table.name}").fetchall()[0][0]
    quarantined = con.execute("select count(*) from quarantine where table_name = ?", [table.name]).fetchall()[0][0]
    con.execute(f"drop table {typed}; drop table violations_{table.name}")
    con.execute("reset preserve_insertion_order")
    report = TableReport(table.name, tuple(str(f) for f in files), read, loaded, quarantined)
    if not report.balanced:  # an invariant, not a data problem: never continue on a leak
        raise RuntimeError(f"ingestion of {table.name} lost rows: {report}")
    return report


def quarantine_messages(con, limit: int = 20) -> list[str]:
    """Human-readable lines naming file, row and column of each quarantined row."""
    rows = con.execute(
        """select source_file, source_row, table_name, column_name, value, rule, message
           from quarantine order by table_name, source_file, source_row limit ?""",
        [limit],
    ).fetchall()
    out = []
    for file, row, table, column, value, rule, message in rows:
        line = f" (line {row + 1})" if file.endswith(".csv") else ""
        col = f", column {column}" if column else ""
        val = f" {value!r}" if value is not None else ""
        out.append(f"{file} row {row}{line}{col}:{val} {rule}: {message} -> quarantined from {table}")
    return out


def ingest(con: duckdb.DuckDBPyConnection, data_dir: Path, policy_handles: list[str]) -> list[TableReport]:
    """Load every input table from `data_dir`; returns one report per table."""
    con.execute(QUARANTINE_DDL)
    reports = []
    for table in INPUT_TABLES:
        report = _load_table(con, table, discover_files(data_dir, table.name), policy_handles)
        reports.append(report)
        if report.rows_quarantined:
            log.warning("%s: %d of %d rows quarantined", table.name, report.rows_quarantined, report.rows_read)
    for line in quarantine_messages(con):
        log.warning(line)
    return reports
