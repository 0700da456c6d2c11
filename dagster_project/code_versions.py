"""Code versions that follow what decides an asset's content: its SQL and the policy file.

Dagster marks an asset stale when its code version changes. The SQL of the
daily step and the policy content are what decide `dunning_state`, so a policy
edit shows up in the UI as stale state, with no release of Python code.
Computed when the definitions load (they are read again on every reload).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.config.settings import PROJECT_ROOT, Settings

SQL_ROOT = PROJECT_ROOT / "sql"


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        name = path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path.name
        h.update(str(name).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _policy_file() -> list[Path]:
    try:
        path = Settings.load().policy_file
    except Exception:  # no readable settings at load time: the SQL alone decides the version
        return []
    return [path] if path.is_file() else []


def ingest_version() -> str:
    return _digest(sorted((SQL_ROOT / "staging").glob("*.sql")) + [PROJECT_ROOT / "pipeline" / "config" / "input_tables.py"])


def state_version() -> str:
    # the models, the DDL and macros, and the seeds that give statuses and action kinds their meaning
    models = sorted(p for p in [*SQL_ROOT.rglob("*.sql"), *SQL_ROOT.glob("seeds/*.csv")] if "staging" not in p.parts)
    return _digest(models + _policy_file())
