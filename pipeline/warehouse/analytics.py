"""The analyst's objects: dunning state, aging and key figures as of any day, and the ledger's provenance.

Everything here is a DuckDB view or table macro defined in `sql/analytics/` (one
object per file) or generated from a daily model, so the database answers the
questions with plain SQL and nothing is stored twice:

* `state_as_of(d)`, `key_figures_as_of(d)`, `level_outcomes_as_of(d)` read the
  case register and the ledger, which are the history;
* `recovered_after_level(d, n)` is the one definition of cash recovered after a
  level (payments booked within n days after it); `level_outcomes_as_of` and
  `dunning simulate` read it, nothing computes recovery a second time;
* `open_cases` is today's worklist: every open case with the customer's name,
  its contract, the level reached and the amount owed on the latest day run;
* `open_receivables_as_of(d)` and `aging_as_of(d)` need each invoice's open
  amount on day d, which only the inputs hold. They are the daily models
  `int_receivable_remainders`, `int_contract_credits` and
  `int_open_receivables` themselves, turned into table macros (`$as_of`
  becomes the macro's parameter, a reference to another model becomes a call
  of its macro): one implementation of the allocation rules, not two.

An aging bucket is of the ENUM type `aging_buckets`, whose values are the
buckets of `sql/seeds/aging_buckets.csv` in the seed's order, so ORDER BY, min()
and max() take them in their natural order (not due, 1-30, ..., over 90), not
alphabetically. `state_as_of` refuses a day after the last day computed
(run_log) with an error that says so: that day's state is not known yet
(`level_outcomes_as_of` reads the cases through it, and refuses it too).

DuckDB binds a view or macro when it is created, so an object is only created
once the tables it reads exist; on a fresh database `ensure_state` runs before
ingestion, and `publish` and `dunning report` call `ensure_analytics(con,
replace=False)` to add what was missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.warehouse.ledger_rules import aging_buckets
from pipeline.warehouse.sql_runner import read_model

# the macro parameter every `$as_of` becomes; no input column has this name (a macro parameter
# shadows a column of the same name)
PARAM = "as_of_day"


@dataclass(frozen=True)
class AnalyticsObject:
    name: str
    kind: str  # "macro" (a table macro whose first parameter is the day) or "view"
    source: str  # SQL file under sql/, without .sql
    needs: tuple[str, ...]  # tables (or views) it reads that are not created here
    params: tuple[str, ...] = ()  # a macro's parameters after the day: `$name` in its SQL file


# Daily models that become macros, and the macro each one becomes: a reference to the model's temp
# table inside another generated macro turns into a call of this macro.
MODEL_MACROS = {
    "int_receivable_remainders": "receivable_remainders_as_of",
    "int_contract_credits": "contract_credits_as_of",
    "int_open_receivables": "open_receivables_as_of",
}

_INPUTS = ("stg_invoices", "stg_payments")
_HISTORY = ("case_register", "action_ledger")

# In creation order: each object only uses ones above it.
OBJECTS: tuple[AnalyticsObject, ...] = (
    AnalyticsObject("receivable_remainders_as_of", "macro", "intermediate/int_receivable_remainders", _INPUTS),
    AnalyticsObject("contract_credits_as_of", "macro", "intermediate/int_contract_credits", _INPUTS),
    AnalyticsObject("open_receivables_as_of", "macro", "intermediate/int_open_receivables", _INPUTS),
    AnalyticsObject("aging_as_of", "macro", "analytics/aging_as_of", _INPUTS),
    AnalyticsObject("state_as_of", "macro", "analytics/state_as_of", (*_HISTORY, "run_log")),
    AnalyticsObject("key_figures_as_of", "macro", "analytics/key_figures_as_of", _HISTORY),
    AnalyticsObject("recovered_after_level", "macro", "analytics/recovered_after_level",
                    (*_HISTORY, "stg_payments", "stg_contracts"), params=("paid_within_days",)),
    AnalyticsObject("level_outcomes_as_of", "macro", "analytics/level_outcomes_as_of",
                    (*_HISTORY, "run_log", "stg_payments", "stg_contracts")),
    AnalyticsObject("key_figures", "view", "analytics/key_figures", (*_HISTORY, "run_log")),
    AnalyticsObject("level_outcomes", "view", "analytics/level_outcomes",
                    (*_HISTORY, "run_log", "stg_payments", "stg_contracts")),
    AnalyticsObject("ledger_with_provenance", "view", "analytics/ledger_with_provenance",
                    (*_HISTORY, "policy_versions", "policy_levels")),
    AnalyticsObject("open_cases", "view", "analytics/open_cases",
                    (*_HISTORY, "cases", "run_log", "open_receivables", "stg_customers")),
)

# The ENUM type of an aging bucket: the seed's buckets in the seed's order.
BUCKET_TYPE = "aging_buckets"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9 -]{0,30}")

_COMMENT = re.compile(r"--[^\n]*")
_MODEL_REF = re.compile(r"\b(" + "|".join(MODEL_MACROS) + r")\b")


def definition(obj: AnalyticsObject) -> str:
    """The CREATE statement of one object, from its SQL file.

    Names are this module's constants; the day is the macro's parameter, so
    nothing from data is ever formatted into the text.
    """
    sql = _COMMENT.sub("", read_model(obj.source)).strip()
    if obj.kind == "view":
        return f"create or replace view {obj.name} as\n{sql}"
    sql = sql.replace("$as_of", f"cast({PARAM} as date)")
    for name in obj.params:  # names are this module's constants
        sql = re.sub(rf"\${name}\b", name, sql)
    sql = _MODEL_REF.sub(lambda m: f"{MODEL_MACROS[m.group(1)]}({PARAM})", sql)
    return f"create or replace macro {obj.name}({', '.join((PARAM, *obj.params))}) as table\n{sql}"


def bucket_type_ddl(*, replace: bool = True) -> str:
    """CREATE TYPE of the aging buckets, in the order of sql/seeds/aging_buckets.csv.

    `replace` (every run) makes a changed seed take effect; DuckDB records no dependency of a
    macro or view on a type it casts to, so the type can be replaced under them.
    """
    buckets = aging_buckets()
    bad = [b for b in buckets if not _BUCKET.fullmatch(b)]
    if bad or len(set(buckets)) != len(buckets):
        raise ValueError(f"sql/seeds/aging_buckets.csv: bucket names must be distinct letters, digits, spaces "
                         f"and -: {bad or buckets}")
    values = ", ".join(f"'{b}'" for b in buckets)  # checked above: no quote can occur
    create = "create or replace type" if replace else "create type if not exists"
    return f"{create} {BUCKET_TYPE} as enum ({values})"


def _existing(con, *, macros: bool) -> set[str]:
    """Tables and views of the main schema of this database (not temp ones), and with `macros` its table
    macros. Listing the macros means listing all of DuckDB's functions (20-30 ms); only a call that
    keeps what exists (`replace=False`) needs them."""
    rows = con.execute(
        """select table_name from information_schema.tables
           where table_schema = 'main' and table_catalog = current_database()"""
        + ("""
           union all
           select function_name from duckdb_functions()
           where function_type = 'table_macro' and schema_name = 'main'
             and database_name = current_database()""" if macros else "")
    ).fetchall()
    return {r[0] for r in rows}


def ensure_analytics(con, *, replace: bool = True, kinds: tuple[str, ...] = ("macro", "view")) -> list[str]:
    """Create the analyst's macros and views whose inputs exist; returns the names created.

    `replace=True` (every run, from `ensure_state`) redefines them all, so a new
    release's SQL takes effect; COMMENT ON is applied after the run. With
    `replace=False` only missing objects are created (their comments are then the
    caller's job: `catalog.apply_comments(con, names)`). `kinds=("macro",)` is for
    the analyst's file, whose views are the published Parquet files.
    """
    con.execute(bucket_type_ddl(replace=replace))  # aging_as_of casts to it (the analysts' copy: aging too)
    existing = _existing(con, macros=not replace)
    if "view" in kinds and "policy_versions" not in existing:
        # The provenance view reads the policy tables, which the policy loader creates with this
        # same idempotent DDL just after ensure_state on a fresh database.
        from pipeline.config.policy import POLICY_TABLES_DDL

        con.execute(POLICY_TABLES_DDL)
        existing |= _existing(con, macros=False)
    created = []
    for obj in OBJECTS:
        if obj.kind not in kinds or (not replace and obj.name in existing):
            continue
        if not all(n in existing for n in obj.needs):
            continue  # a fresh database before its first ingestion: created by a later call
        con.execute(definition(obj))
        existing.add(obj.name)
        created.append(obj.name)
    return created

