"""The product's promises (`pipeline.engine.checks`) as Dagster asset checks.

A check is evaluated inside the step that makes its asset, in the same DuckDB
connection, so it sees exactly what the step wrote (and the temp tables the
promise needs: rows read, the dispatched rows before the run, the outbox
folders). A blocking check that fails fails its step after the step's
materializations are recorded, so nothing downstream runs: a broken promise on
the state stops the documents step, which is the only one that sends.
"""

from __future__ import annotations

import dagster as dg

from pipeline.engine import checks as promises


def check_spec(name: str, asset: dg.AssetKey | str, *, blocking: bool, description: str | None = None,
               ) -> dg.AssetCheckSpec:
    text = description or promises.PROMISES[name].description
    return dg.AssetCheckSpec(name, asset=asset, blocking=blocking,
                             description=text + (" Blocking: a failure stops the day before anything is sent."
                                                 if blocking else ""))


def check_result(con, name: str, asset: dg.AssetKey | str, *, severity=dg.AssetCheckSeverity.ERROR,
                 **params) -> dg.AssetCheckResult:
    """Evaluate promise `name` (`params`: its bound values) into a check result of `asset`."""
    rows = promises.violations(con, name, **params)
    message = promises.failure_message(name, rows)
    return dg.AssetCheckResult(
        asset_key=asset, check_name=name, passed=not rows, severity=severity,
        description=message,
        metadata={"violations": len(rows),
                  "first_violations": dg.MetadataValue.md(
                      "\n".join(f"- {promises.PROMISES[name].describe(r)}" for r in rows[:20]) or "none")})
