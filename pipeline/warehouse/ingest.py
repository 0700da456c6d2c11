"""Ingestion: billing files (CSV or Parquet) into typed, validated DuckDB tables.

Every row read ends up in exactly one place: its `stg_<table>` table or the
`quarantine` table with the rule it broke. Typing is generic (driven by
`pipeline.config.input_tables`); the business rules of each table (duplicate ids,
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

from pipeline.config.input_tables import INPUT_TABLES, MONEY, Table
from pipeline.warehouse.sql_runner import parameters_of, read_model
from pipeline.warehouse.ddl import ddl

log = logging.getLogger(__name__)

TYPE_RULES = {  # type -> (rule, what was expected)
    "DATE": ("invalid_date", "a date YYYY-MM-DD"),
    MONEY: ("invalid_amount", "a decimal amount like 1234.50 (at most 2 decimals, point as separator)"),
    "BOOLEAN": ("invalid_boolean", "true or false"),
}

QUARANTINE_DDL = ddl("quarantine.sql")  # sql/schema/quarantine.sql


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
    missing = [c.name for c in table.columns if c.required and c.name not in cols]
    if missing:
        raise IngestError(f"{path}: missing required column(s) {', '.join(missing)} for table {table.name}")
    for column in table.columns:
        if column.type == MONEY and cols[column.name] in ("FLOAT", "DOUBLE"):
            raise IngestError(
                f"{path}: column {column.name} is {cols[column.name]}; money must be DECIMAL or text, never float"
            )
    extras = [c for c in cols if c not in table.column_names and c != "file_row_number"]
    row = "file_row_number + 1" if path.suffix == ".parquet" else "row_number() over ()"
    # an optional column absent from the file is empty for every row of it
    selected = ", ".join(f'"{c}"' if c in cols else f'cast(null as varchar) as "{c}"'
                         for c in table.column_names + extras)
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


def _type_violation_expr(table: Table, source_types: dict[str, str]) -> str | None:
    """First value of a row that does not parse as its column's type, as a struct; None if
    no column can fail (every non-text column is stored in its type already)."""
    branches = []
    for column in table.columns:
        if column.type in TYPE_RULES and not _already_typed(column, source_types):
            rule, expected = TYPE_RULES[column.type]
            raw = _raw_text(column, source_types)
            branches.append(
                f"when {raw} is not null and {_typed_expr(column, source_types)} is null then "
                f"{{'rule': '{rule}', 'column_name': '{column.name}', 'value': {raw}, "
                f"'message': 'expected {expected}'}}"
            )
    return "case " + " ".join(branches) + " end" if branches else None


def _missing_value_expr(table: Table) -> str:
    """First required column left empty, checked on the typed staging row."""
    branches = [
        f"""when "{c.name}" is null then {{'rule': 'missing_value', 'column_name': '{c.name}', """
        "'value': null, 'message': 'required value is empty'}"
        for c in table.columns if c.required
    ]
    return "case " + " ".join(branches) + " end"


def _move_quarantined_out(con, stg: str, table_name: str) -> None:
    con.execute(f"delete from {stg} where (_source_file, _source_row) in "
                "(select (source_file, source_row) from quarantine where table_name = ?)", [table_name])


def _load_table(con, table: Table, files: list[Path], policy_handles: list[str]) -> TableReport:
    """Write the typed rows once into stg_<table>, then move the rows that broke a rule out.

    Rejected rows are few: they are found by a second, light scan of the source
    (type rules) and by the table's business rules, copied to the quarantine and
    deleted from the staging table. The bulk of the data is written exactly once.
    """
    stg = f"stg_{table.name}"
    if not files:
        raise IngestError(f"no file for table {table.name} (expected {table.name}.csv or {table.name}.parquet)")
    parts, params, all_extras = [], [], []
    for path in files:
        sql, p, extras = _raw_select(con, path, table)
        parts.append(sql)
        params += p
        all_extras += [e for e in extras if e not in all_extras]
    source = "(" + " union all by name ".join(f"({p})" for p in parts) + ")"
    source_types = {r[0]: r[1] for r in con.execute(f"describe select * from {source}", params).fetchall()}
    typed_cols = ", ".join(f'{_typed_expr(c, source_types)} as "{c.name}"' for c in table.columns)
    extra_cols = "".join(f', cast("{e}" as varchar) as "{e}"' for e in all_extras)
    raw_json = "to_json({" + ", ".join(f"'{c}': \"{c}\"" for c in table.column_names + all_extras) + "})"
    con.execute(
        f"create or replace table {stg} as select _source_file, _source_row, {typed_cols}{extra_cols} from {source}",
        params,
    )
    read = con.execute(f"select count(*) from {stg}").fetchall()[0][0]
    con.execute("delete from quarantine where table_name = ?", [table.name])
    type_violation = _type_violation_expr(table, source_types)
    if type_violation:  # text sources: the raw value is only in the source, so scan it again
        con.execute(
            f"""insert into quarantine
                select ?, _source_file, _source_row, v.rule, v.column_name, v.value, v.message, {raw_json}
                from (select *, {type_violation} as v from {source})
                where v is not null""",
            [table.name, *params],
        )
        _move_quarantined_out(con, stg, table.name)
    con.execute(
        f"""insert into quarantine
            select ?, row._source_file, row._source_row, v.rule, v.column_name, v.value, v.message, to_json(row)
            from (select s as row, {_missing_value_expr(table)} as v from {stg} s)
            where v is not null""",
        [table.name],
    )
    _move_quarantined_out(con, stg, table.name)
    rule_sql = read_model(f"staging/{table.name}_violations")
    model_params = {"policy_handles": policy_handles} if "policy_handles" in parameters_of(rule_sql) else {}
    con.execute(
        f"""create or replace temp table violations as
            with typed as (select * from {stg})
            select * from ({rule_sql})
            qualify row_number() over (partition by _source_file, _source_row order by priority, rule) = 1""",
        model_params,
    )
    con.execute(
        f"""insert into quarantine
            select ?, v._source_file, v._source_row, v.rule, v.column_name, v.value, v.message, to_json(t)
            from violations v join {stg} t using (_source_file, _source_row)""",
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
