"""The DDL files of `sql/schema/`: read by the code that creates each object.

The numbered files (`NNN_*.sql`) are the persistent state, run in order on every start by
`pipeline.warehouse.state.create_state_schema`; the others belong to one owner each (policy
tables, quarantine, reason codes, the collection views), which runs them when it needs them.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "sql" / "schema"


@cache
def ddl(name: str) -> str:
    """The text of `sql/schema/<name>`."""
    path = SCHEMA_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"no DDL file {path}")
    return path.read_text(encoding="utf-8")
