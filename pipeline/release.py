"""This release of the code, as one fingerprint: what decides whether objects a database or a file
holds (the state schema's tables, macros and views; the analysts' file) were made by this code."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import duckdb


@cache
def release_fingerprint() -> str:
    """SHA-256 over every module of `pipeline/`, every file of `sql/` and the DuckDB version: what
    makes the SQL objects the pipeline creates. Read once per process."""
    digest = hashlib.sha256(duckdb.__version__.encode())
    project = Path(__file__).resolve().parents[1]
    for path in sorted([*(project / "pipeline").rglob("*.py"), *(project / "sql").rglob("*")]):
        if path.is_file():
            digest.update(path.relative_to(project).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
