"""Run one SQL model on a few hand-made rows, in memory, and read back its rows.

A model test builds only what the model reads: `model_db()` is an in-memory database with the
persistent tables and the macros (`create_state_schema`), `input_table` creates one input as a
TEMP table with exactly the columns the model reads, `add_rows` inserts rows (a missing column
is NULL, an unknown one an error), and `model_rows` runs the model with `run_model` and returns
the chosen columns of its rows, in a stated order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date

import duckdb

from pipeline.warehouse.sql_runner import run_model, table_name
from pipeline.warehouse.state import create_state_schema


def model_db() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    create_state_schema(con)
    return con


def input_table(con, name: str, columns: Mapping[str, str], rows: Iterable[Mapping] = ()) -> None:
    """A TEMP input table of these columns (name -> type), with `rows`."""
    con.execute(f"create temp table {name} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
    add_rows(con, name, rows)


def add_rows(con, table: str, rows: Iterable[Mapping]) -> None:
    for row in rows:
        cols = list(row)
        con.execute(f"insert into {table} ({', '.join(cols)}) values ({', '.join('?' for _ in cols)})",
                    [row[c] for c in cols])


def model_rows(con, model: str, as_of: date, columns: Sequence[str], order_by: str, *,
               live: bool = True) -> list[tuple]:
    """Materialize `model` (a key such as "marts/levels_due") for `as_of`; its rows' `columns`."""
    run_model(con, model, {"as_of": as_of, "live": live})
    return con.execute(f"select {', '.join(columns)} from {table_name(model)} order by {order_by}").fetchall()
