"""A small runner for the SQL models in `sql/`.

Each model is one SELECT in one file. The runner materializes it as a temp
table named after the file, binding only the parameters the file mentions
(`$as_of`, ...): values always travel as bound parameters, never formatted
into SQL text.

One day's models are every file in `sql/intermediate`, `sql/collections` and
`sql/marts` (dbt's and SQLMesh's convention: the models say what they read, no
list says in which order they run). `load_daily_models` reads each file's
references with DuckDB's own parser (the tables after FROM and JOIN, in
subqueries too; CTE names are local), and sorts the models so that each runs
after every model it reads, ties broken by path. A reference must name a daily
model, a python model (`PYTHON_MODELS`: a table built in Python, with the
inputs it declares) or a relation the pipeline keeps (`known_relations`);
anything else, a dependency cycle, or a file name that is not a plain
identifier is an error naming the file, raised when the module loads. The
templated identifiers are the file names, which that strict pattern checks.

The models' descriptions, column descriptions and column tests are in the
`_models.yml` beside them (`pipeline.warehouse.catalog`); `check_model_tests` runs the
tests against the materialized tables.
"""

from __future__ import annotations

import heapq
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

import duckdb

from pipeline.warehouse.routing import build_routing_matches
from pipeline.config.input_tables import INPUT_TABLES

SQL_ROOT = Path(__file__).resolve().parents[2] / "sql"

# Folders of one day's models. sql/analytics (the analysts' views and macros), sql/staging
# (ingestion checks), sql/range (a backfill's input narrowing) and sql/schema (DDL) are not.
DAILY_FOLDERS = ("intermediate", "collections", "marts")

# A model's name is its file name and becomes a table name in SQL text: only this shape.
MODEL_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")

# Models in those folders that a day's run does not materialize: `dunning explain` runs them on
# demand after the day's models (pipeline/reporting/explain.py). They are read, checked and sorted like the
# others, and no daily model may read them.
ON_DEMAND_MODELS = frozenset({"case_outlook", "collection_case_outlook"})


class ModelError(ValueError):
    """A daily model that cannot be placed: its file, and what is wrong."""


@dataclass(frozen=True)
class PythonModel:
    """A daily model built in Python: `build(con, as_of)` creates the temp table of its name."""

    build: Callable[..., None]
    inputs: tuple[str, ...]  # every relation it reads: models order it, the others are checked
    folder: str = "intermediate"  # sorts among that folder's files (ties broken by path)


# The routing rules' matches: SQL generated from the policy's criteria (pipeline/warehouse/routing.py).
PYTHON_MODELS: dict[str, PythonModel] = {
    "int_routing_matches": PythonModel(
        build_routing_matches,
        inputs=("int_open_receivables", "stg_contracts", "stg_customers", "stg_invoices", "policy_routing",
                "policy_routing_criteria", "policy_versions", "forced_policy_versions"),
    ),
}

# Relations a model may read that no model makes and no DDL file of sql/schema/ creates (those
# files are read by `known_relations`; the stg_<input> tables come from pipeline/config/input_tables.py).
OTHER_RELATIONS = frozenset({
    # pipeline/warehouse/ledger_rules.py (the seed tables of sql/seeds/)
    "ledger_statuses", "action_kinds",
    # run_daily_models (filled by a backfill under a named version, empty otherwise)
    "forced_policy_versions",
})

_DDL_NAME = re.compile(r"\bcreate\s+(?:or\s+replace\s+)?(?:temp\s+|temporary\s+)?(?:table|view)\s+"
                       r"(?:if\s+not\s+exists\s+)?([a-z_][a-z0-9_]*)", re.IGNORECASE)


def known_relations(sql_root: Path = SQL_ROOT) -> frozenset[str]:
    """Every relation the pipeline keeps or creates before the models run (none of them a model)."""
    names = set(OTHER_RELATIONS) | {f"stg_{t.name}" for t in INPUT_TABLES}
    for path in sorted((sql_root / "schema").glob("*.sql")):
        names.update(n.lower() for n in _DDL_NAME.findall(path.read_text(encoding="utf-8")))
    return frozenset(names)


@dataclass(frozen=True)
class Model:
    key: str  # "<folder>/<name>": the path under sql/ without .sql (a python model: where it sorts)
    name: str  # the temp table it makes
    inputs: tuple[str, ...]  # the daily models it reads (names), which run before it
    reads: tuple[str, ...]  # every relation it reads
    file: Path | None  # its SQL file; None for a python model
    python: PythonModel | None = None
    daily: bool = True  # False: run on demand only (ON_DEMAND_MODELS)


def relations_read(sql: str, *, con=None) -> set[str]:
    """The tables a SELECT reads (after FROM and JOIN, in subqueries too), without its CTEs' names.

    Parsed by DuckDB (`json_serialize_sql`); table functions (`levels_done($as_of)`,
    `range(...)`) are no tables. A qualified name comes back dotted. Raises ValueError
    with the parser's message.
    """
    tables, ctes = _tables_and_ctes(sql, con)
    return tables - ctes


def _tables_and_ctes(sql: str, con=None) -> tuple[set[str], set[str]]:
    own = con is None
    con = duckdb.connect() if own else con
    try:
        tree = json.loads(con.execute("select json_serialize_sql(?)", [sql]).fetchone()[0])
    finally:
        if own:
            con.close()
    if tree.get("error"):
        raise ValueError(tree.get("error_message", "cannot parse"))
    tables: set[str] = set()
    ctes: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("type") == "BASE_TABLE":
                tables.add(".".join(p for p in (node.get("catalog_name"), node.get("schema_name"),
                                                node.get("table_name")) if p).lower())
            for entry in (node.get("cte_map") or {}).get("map", ()):
                ctes.add(entry["key"].lower())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree["statements"])
    return tables, ctes


def load_daily_models(sql_root: Path = SQL_ROOT, python_models: dict[str, PythonModel] | None = None,
                      known: Iterable[str] | None = None,
                      on_demand: Iterable[str] = ON_DEMAND_MODELS) -> tuple[Model, ...]:
    """The models of the daily folders under `sql_root`, each after every model it reads (ties by
    path); those named in `on_demand` come back with `daily=False`.

    Raises ModelError naming the file: a file name that is no plain identifier or
    is used twice, SQL the parser rejects, a reference to a relation that is neither
    a model nor known, a daily model reading an on-demand one, a dependency cycle.
    """
    python_models = PYTHON_MODELS if python_models is None else python_models
    known = known_relations(sql_root) if known is None else frozenset(known)
    on_demand = frozenset(on_demand)
    files: dict[str, tuple[str, Path]] = {}
    for folder in DAILY_FOLDERS:
        for path in sorted((sql_root / folder).glob("*.sql")):
            name = path.stem
            if not MODEL_NAME.fullmatch(name):
                raise ModelError(f"{path}: a model's file name must match {MODEL_NAME.pattern} (it names a table)")
            if name in files or name in python_models:
                other = files[name][1] if name in files else f"python model {name}"
                raise ModelError(f"{path}: model name {name} is used twice (also {other})")
            if name in known:
                raise ModelError(f"{path}: model name {name} is the name of a table the pipeline keeps")
            files[name] = (f"{folder}/{name}", path)
    models = set(files) | set(python_models)

    nodes: dict[str, Model] = {}
    with duckdb.connect() as con:  # the parser only
        for name, (key, path) in files.items():
            try:
                tables, ctes = _tables_and_ctes(path.read_text(encoding="utf-8"), con)
            except ValueError as e:
                raise ModelError(f"{path}: {e}") from None
            if ctes & models:  # it would hide a read of that model from the order
                raise ModelError(f"{path}: a CTE is named like the model(s) {', '.join(sorted(ctes & models))}")
            reads = tables - ctes
            unknown = sorted(reads - models - known)
            if unknown:
                raise ModelError(f"{path}: reads {', '.join(unknown)}: neither a daily model, a python model "
                                 "(sql_runner.PYTHON_MODELS) nor a table the pipeline keeps (sql_runner.known_relations)")
            if name not in on_demand and reads & on_demand:
                raise ModelError(f"{path}: reads {', '.join(sorted(reads & on_demand))}, which a day's run does "
                                 "not make (sql_runner.ON_DEMAND_MODELS)")
            nodes[name] = Model(key, name, tuple(sorted(reads & models)), tuple(sorted(reads)), path,
                                daily=name not in on_demand)
    for name, pm in python_models.items():
        if not MODEL_NAME.fullmatch(name) or pm.folder not in DAILY_FOLDERS:
            raise ModelError(f"python model {name} ({pm.build.__module__}.{pm.build.__qualname__}): "
                             f"bad name or folder {pm.folder!r}")
        unknown = sorted(set(pm.inputs) - models - known)
        if unknown:
            raise ModelError(f"python model {name} ({pm.build.__module__}.{pm.build.__qualname__}): "
                             f"reads {', '.join(unknown)}: neither a daily model nor a table the pipeline keeps")
        nodes[name] = Model(f"{pm.folder}/{name}", name, tuple(sorted(set(pm.inputs) & models)),
                            tuple(sorted(pm.inputs)), None, pm)
    return _sorted(nodes)


def _describe(model: Model) -> str:
    return str(model.file) if model.file else f"python model {model.name}"


def _sorted(nodes: dict[str, Model]) -> tuple[Model, ...]:
    """Kahn's algorithm, always taking the ready model with the smallest path."""
    waiting = {name: set(m.inputs) for name, m in nodes.items()}
    readers: dict[str, list[str]] = {name: [] for name in nodes}
    for name, m in nodes.items():
        for dep in m.inputs:
            readers[dep].append(name)
    ready = [(m.key, name) for name, m in nodes.items() if not waiting[name]]
    heapq.heapify(ready)
    order: list[Model] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(nodes[name])
        for reader in readers[name]:
            waiting[reader].discard(name)
            if not waiting[reader]:
                heapq.heappush(ready, (nodes[reader].key, reader))
    if len(order) < len(nodes):
        # walk back along unfinished inputs until a model repeats: that is a cycle
        name = min((n for n in waiting if waiting[n]), key=lambda n: nodes[n].key)
        path = [name]
        while True:
            name = min(waiting[name], key=lambda n: nodes[n].key)
            if name in path:
                cycle = path[path.index(name):] + [name]
                break
            path.append(name)
        cycle.reverse()  # in run order: each model reads the one before it
        raise ModelError("dependency cycle: " + " -> ".join(cycle) + " ("
                         + ", ".join(_describe(nodes[n]) for n in cycle[:-1]) + ")")
    return tuple(order)


@dataclass(frozen=True)
class _Plan:
    loaded: tuple[Model, ...]  # every model, on-demand ones too, in run order
    by_key: dict[str, Model]
    by_name: dict[str, Model]


@cache
def _plan() -> _Plan:
    """The models as `load_daily_models` orders them, made on first use: parsing every model takes
    about a fifth of a second, which a process that runs none (`dunning dispatch`, a render worker,
    `dunning --help`) would otherwise pay on import."""
    loaded = load_daily_models()
    return _Plan(loaded, {m.key: m for m in loaded}, {m.name: m for m in loaded})


# One day's models in run order (python models included), and the SQL ones alone; module
# attributes made on first use (`__getattr__`).
_LAZY = {
    "DAILY_PLAN": lambda: tuple(m for m in _plan().loaded if m.daily),
    "DAILY_ORDER": lambda: tuple(m.key for m in __getattr__("DAILY_PLAN")),
    "DAILY_MODELS": lambda: tuple(m.key for m in __getattr__("DAILY_PLAN") if m.python is None),
}


def __getattr__(name: str):
    if name in _LAZY:
        value = globals().get(name)
        if value is None:
            value = globals()[name] = _LAZY[name]()
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def with_inputs(key: str) -> tuple[str, ...]:
    """The daily model `key` and every daily model it reads, directly or not, in run order."""
    by_name, daily = _plan().by_name, __getattr__("DAILY_PLAN")
    wanted = {key}
    for model in reversed(daily):  # a model comes after everything it reads
        if model.key in wanted:
            wanted.update(by_name[name].key for name in model.inputs)
    return tuple(m.key for m in daily if m.key in wanted)


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
    con.execute(parsed(f"create or replace temp table {table_name(model)} as {sql}"),
                {k: v for k, v in params.items() if k in wanted})
    return time.perf_counter() - started


@cache
def parsed(sql: str) -> duckdb.Statement:
    """`sql` (one statement, its values bound at execution) parsed once per process.

    DuckDB 2.0 takes 2-4 ms to parse one of the larger models, of the 15-25 ms running it takes on
    a day that recomputes a few customers; a range runs each model up to once a day, a test world a
    few hundred times. A parsed statement runs on any connection, as often as needed (DuckDB copies
    it per execution), and still binds against the catalog as it is then.
    """
    statements = duckdb.extract_statements(sql)
    if len(statements) != 1:
        raise ValueError(f"expected one SQL statement, found {len(statements)}")
    return statements[0]


def _with_python_inputs(models: Iterable[str]) -> list[str]:
    """`models` with each python model one of them reads (and is not listed) just before it."""
    models = list(models)
    out: list[str] = []
    listed = set(models)

    plan = _plan()

    def add(key: str) -> None:
        model = plan.by_key.get(key)
        for dep in (plan.by_name[name] for name in (model.inputs if model else ())):
            if dep.python is not None and dep.key not in listed:
                listed.add(dep.key)
                add(dep.key)
        out.append(key)

    for key in models:
        add(key)
    return out


# A folder or model whose guard answers false can produce no row today: it is materialized empty
# instead of being planned and run (a company without failed-collection policies saves about a
# third of a day's model time). Guards are conservative: any collection step in any policy
# version, or any collection case ever opened, runs the folder; any backfill whose catch-up sends
# something runs the catch-up model; any quarantined row of a table that can hold something runs
# the holds (80-90 ms at 1M contracts even on an empty quarantine: it looks up contracts and
# invoices). Each guard is a fixed query of no parameters.
GUARDS = {
    "collections": "select exists (select 1 from policy_collections) "
                   "or exists (select 1 from case_register where scope = 'collection')",
    "int_catch_up_actions": "select exists (select 1 from backfill_runs where catch_up <> 'none')",
    "int_waiting_contracts": "select exists (select 1 from stg_contracts where policy is not null)",
    "int_quarantine_holds": "select exists (select 1 from quarantine "
                            "where table_name in ('invoices', 'payments', 'suspensions'))",
}


def _idle(con) -> set[str]:
    """The folders and models whose guard says they can produce nothing today."""
    return {name for name, guard in GUARDS.items() if not con.execute(guard).fetchall()[0][0]}


def _temp_tables(con) -> set[str]:
    return {r[0] for r in con.execute("select table_name from duckdb_tables() where temporary").fetchall()}


def empty_model(con, model: str, temp_tables: set[str] | None = None) -> float:
    """Materialize `model` with no rows (same columns); returns seconds taken.

    `temp_tables`: the connection's temp tables, when the caller listed them already.
    """
    started = time.perf_counter()
    name = table_name(model)
    if name in (temp_tables if temp_tables is not None else _temp_tables(con)):
        # made by this connection from the same file: only its rows go
        con.execute(f"delete from {name}")
    else:
        sql = read_model(model)
        con.execute(f"create or replace temp table {name} as select * from ({sql}) limit 0",
                    {k: None for k in parameters_of(sql)})
    return time.perf_counter() - started


def run_daily_models(con, as_of: date, models: tuple[str, ...] | None = None, *,
                     live: bool = True) -> dict[str, float]:
    """Run one day's models in order; returns seconds per model (by table name).

    `models` are keys of `DAILY_ORDER` (the SQL ones: paths under sql/ without .sql; None: all of it);
    a python model that one of them reads runs just before it when not listed.
    `live=False` (a backfill, a simulation: `RunMode.sends`): the day plans no catch-up of an earlier backfill.
    """
    # a backfill under a named version fills this; it exists (empty) for every other run
    con.execute("create temp table if not exists forced_policy_versions (policy_version varchar)")
    seconds = {}
    idle = _idle(con)
    temp_tables = _temp_tables(con) if idle else set()
    by_key = _plan().by_key
    for key in _with_python_inputs(models if models is not None else __getattr__("DAILY_ORDER")):
        model = by_key.get(key)
        if model is not None and model.python is not None:
            started = time.perf_counter()
            model.python.build(con, as_of)
            seconds[model.name] = time.perf_counter() - started
        elif key.split("/", 1)[0] in idle or table_name(key) in idle:
            seconds[table_name(key)] = empty_model(con, key, temp_tables)
        else:
            seconds[table_name(key)] = run_model(con, key, {"as_of": as_of, "live": live})
    return seconds


_ACCEPTED_TESTS = ("not_null", "unique", "accepted_values")


def check_model_tests(con, models: Iterable[str] | None = None) -> list[str]:
    """Run the column tests of `models` (keys or table names; None: `DAILY_ORDER`) from their `_models.yml` against
    the tables they materialized in `con`; returns one line per failure (empty: all pass).

    Table and column names are checked against the docs and the table itself before
    they are quoted into SQL; accepted values travel as a bound parameter.
    """
    from pipeline.warehouse.catalog import MODEL_DOCS

    failures = []
    for model in models if models is not None else __getattr__("DAILY_ORDER"):
        name = table_name(model)
        doc = MODEL_DOCS.get(name)
        if doc is None or not MODEL_NAME.fullmatch(name):
            failures.append(f"{name}: no entry in a _models.yml")
            continue
        columns = {c[0] for c in con.execute(f"describe {name}").fetchall()}
        for column in doc.columns:
            for test, values in column.tests:
                if column.name not in columns:
                    failures.append(f"{name}.{column.name}: {test}: no such column")
                    continue
                c = f'"{column.name}"'
                if test == "not_null":
                    n = con.execute(f"select count(*) from {name} where {c} is null").fetchone()[0]
                    if n:
                        failures.append(f"{name}.{column.name}: not_null: {n} null value(s)")
                elif test == "unique":
                    dups = [r[0] for r in con.execute(
                        f"select cast({c} as varchar) from {name} where {c} is not null "
                        f"group by {c} having count(*) > 1 order by 1 limit 5").fetchall()]
                    if dups:
                        failures.append(f"{name}.{column.name}: unique: duplicated {', '.join(dups)}")
                elif test == "accepted_values":
                    bad = [r[0] for r in con.execute(
                        f"select distinct cast({c} as varchar) from {name} where {c} is not null "
                        f"and not list_contains(?, cast({c} as varchar)) order by 1 limit 5",
                        [list(values)]).fetchall()]
                    if bad:
                        failures.append(f"{name}.{column.name}: accepted_values: unexpected {', '.join(bad)}")
                else:
                    failures.append(f"{name}.{column.name}: unknown test {test!r} (known: {_ACCEPTED_TESTS})")
    return failures
