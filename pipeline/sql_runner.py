"""A small runner for the SQL models in `sql/`.

Each model is one SELECT in one file. The runner materializes it as a temp
table named after the file, binding only the parameters the file mentions
(`$as_of`, ...): values always travel as bound parameters, never formatted
into SQL text. Model names come from the fixed lists below, which are the
allow-list for the identifiers that are templated.
"""

from __future__ import annotations

import re
import time
from datetime import date
from functools import cache
from pathlib import Path

SQL_ROOT = Path(__file__).resolve().parent.parent / "sql"

# One day's models, in dependency order: inputs as of the day, then cases and levels.
DAILY_MODELS: tuple[str, ...] = (
    "intermediate/int_receivable_remainders",
    "intermediate/int_contract_credits",
    "intermediate/int_open_receivables",
    "intermediate/int_contract_balances",
    "intermediate/int_first_levels",
    "intermediate/int_routed_contracts",
    "intermediate/int_suspensions_in_force",
    # failed collections (pipeline.failed_collections): decided before dunning, whose
    # targets wait while a collection case works on their contract (col_dunning_holds)
    *(f"collections/{m}" for m in (
        "col_failures", "col_case_payments", "col_mandate_history", "col_case_progress", "col_case_closures",
        "col_case_openings", "col_active_payments", "col_active_cases", "col_steps_due",
        "planned_collection_actions", "col_dunning_holds")),
    "intermediate/int_dunning_targets",
    "intermediate/int_case_progress",
    "intermediate/int_case_closures",
    "intermediate/int_case_openings",
    "intermediate/int_active_cases",
    "intermediate/int_pending_levels",
    "intermediate/int_catch_up_actions",
    "marts/levels_due",
    "marts/planned_actions",
)

_PARAM = re.compile(r"\$([a-z_]+)")
_COMMENT = re.compile(r"--[^\n]*")


def parameters_of(sql: str) -> set[str]:
    """Named parameters a model uses (comments may mention `$as_of` without using it)."""
    return set(_PARAM.findall(_COMMENT.sub("", sql)))


@cache
def read_model(name: str) -> str:
    path = SQL_ROOT / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"no SQL model {name} at {path}")
    return path.read_text(encoding="utf-8")


def table_name(model: str) -> str:
    return model.rsplit("/", 1)[-1]


def run_model(con, model: str, params: dict) -> float:
    """Materialize one model as a temp table; returns seconds taken."""
    sql = read_model(model)
    wanted = parameters_of(sql)
    missing = wanted - params.keys()
    if missing:
        raise KeyError(f"model {model} needs parameter(s) {sorted(missing)}")
    started = time.perf_counter()
    con.execute(
        f"create or replace temp table {table_name(model)} as {sql}",
        {k: v for k, v in params.items() if k in wanted},
    )
    return time.perf_counter() - started


def run_daily_models(con, as_of: date, models: tuple[str, ...] = DAILY_MODELS, *,
                     live: bool = True) -> dict[str, float]:
    """Run one day's models in order; returns seconds per model.

    `live=False` (a backfill, a simulation): the day plans no catch-up of an earlier backfill.
    """
    from pipeline.routing import build_routing_matches  # generated from the policy's criteria

    # a backfill under a named version fills this; it exists (empty) for every other run
    con.execute("create temp table if not exists forced_policy_versions (policy_version varchar)")
    seconds = {}
    for model in models:
        if model == "intermediate/int_routed_contracts":
            started = time.perf_counter()
            build_routing_matches(con, as_of)
            seconds["int_routing_matches"] = time.perf_counter() - started
        seconds[table_name(model)] = run_model(con, model, {"as_of": as_of, "live": live})
    return seconds
