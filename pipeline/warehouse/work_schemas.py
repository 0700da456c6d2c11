"""Work schemas: run the ordinary daily step against a private copy of the state.

A backfill computes into `backfill_work` and a simulation into `sim_<name>`:
DuckDB resolves unqualified names along `search_path`, so with
`search_path = '<schema>,main'` the same models and the same `apply_day`
read and write the schema's state tables while the inputs (`stg_*`) come
from `main`. There is one implementation of a day, whatever it is run for.

A schema is seeded with the state as it stood before its first day: cases
opened before it (closures from that day on undone), ledger rows executed
before it, and a full copy of every other table the state code creates
(policy tables, reference data).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from pipeline.config.policy import POLICY_TABLES_DDL
from pipeline.failed_collections.steps import COLLECTION_TABLES_DDL
from pipeline.warehouse.state import ensure_state

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# state that depends on the day: copied only up to the schema's first day
_DATED = {
    "case_register": "opened_on < $start",
    "action_ledger": "executed_on < $start",
    "contract_balances": "as_of < $start",
    "run_log": "as_of < $start",
    "open_receivables": "false",
    "backfill_runs": "false",
    "backfill_differences": "false",
    # seed tables (pipeline.warehouse.ledger_rules): created whole by ensure_state in the schema
    "ledger_statuses": "false",
    "action_kinds": "false",
}


def checked(schema: str) -> str:
    """The schema name, if it is a safe identifier (it is formatted into SQL)."""
    if not _NAME.match(schema) or schema == "main":
        raise ValueError(f"invalid work schema name {schema!r}: lowercase letters, digits and _ only")
    return schema


@contextmanager
def in_schema(con, schema: str) -> Iterator[None]:
    """Unqualified names resolve to `schema` first, then `main`, inside the block."""
    con.execute(f"set search_path = '{checked(schema)},main'")
    try:
        yield
    finally:
        con.execute("set search_path = 'main'")


def _tables(con, schema: str) -> list[str]:
    return [r[0] for r in con.execute(
        "select table_name from duckdb_tables() where schema_name = ? and not temporary order by 1",
        [schema]).fetchall()]


def seed(con, schema: str, start: date) -> None:
    """(Re)create `schema` holding the state as it stood at the start of `start`."""
    schema = checked(schema)
    con.execute(f"drop schema if exists {schema} cascade")
    con.execute(f"create schema {schema}")
    with in_schema(con, schema):
        ensure_state(con)
        # every policy table, the collection steps' too: a table missing here is not copied below, and
        # a simulation's policy load then creates it empty and skips the versions main already has
        con.execute(POLICY_TABLES_DDL)
        con.execute(COLLECTION_TABLES_DDL)
    in_main = set(_tables(con, "main"))
    for table in _tables(con, schema):
        if table not in in_main:
            continue
        where = _DATED.get(table, "true")  # fixed strings; `table` comes from the catalog of tables
        con.execute(f"insert into {schema}.{table} by name select * from main.{table} where {where}",
                    {"start": start} if "$start" in where else {})
    con.execute(f"""update {schema}.case_register set closed_on = null, close_reason = null
                    where closed_on >= ?""", [start])
