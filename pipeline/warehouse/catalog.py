"""Documentation of every table, view and SQL model, read from YAML files beside the SQL.

The texts live in dbt's shape, one file per folder: `sql/<folder>/_models.yml`
beside the models (intermediate, collections, marts: one day's models; range:
the models a range of days runs around them; analytics: the analysts' views and
table macros) and `sql/schema/_tables.yml`
for the tables and views the pipeline keeps. The input tables (`stg_*`) are
documented with their columns in `pipeline/config/input_tables.py`.

An entry has a name, a description, columns (each a name, a description and
optionally tests: `not_null`, `unique`, `accepted_values: {values: [...]}`)
and, outside the daily models, a kind (table, view or table macro). A column
may instead say `same_as: <entry>` (the column of the same name there) or
`same_as: <entry>.<column>`: a text several tables share is written once. An
analytics object generated from a daily model names it in `from_model`.

Applied to the database as COMMENT ON after each run (so any DuckDB client
shows it: `select * from duckdb_columns()`), and rendered to docs/tables.md by
`dunning docs`; a test keeps the committed page in step with the YAML. The
column tests of the daily models run in `pipeline.warehouse.sql_runner.check_model_tests`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.config.input_tables import INPUT_TABLES

SQL_ROOT = Path(__file__).resolve().parents[2] / "sql"
TABLES_FILE = "schema/_tables.yml"
# Folders with a _models.yml: the analysts' objects (in the database), then one day's models (temp tables).
ANALYTICS_FOLDER = "analytics"
DAILY_FOLDERS = ("intermediate", "collections", "marts")
# The models a backfill or simulation runs around the day's (pipeline/warehouse/range_inputs.py, range_days.py).
RANGE_FOLDER = "range"
_MODEL_FOLDERS = (*DAILY_FOLDERS, RANGE_FOLDER)
KINDS = ("table", "view", "table macro")
TESTS = ("not_null", "unique", "accepted_values")
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# the keys an entry may have, per folder (a daily model has no kind: it is a temp table of a run)
_ENTRY_KEYS = {"schema": {"name", "kind", "description", "columns"},
               ANALYTICS_FOLDER: {"name", "kind", "from_model", "description", "columns"}}
_DAILY_ENTRY_KEYS = {"name", "description", "columns"}
_COLUMN_KEYS = {"name", "description", "same_as", "tests"}


class CatalogError(ValueError):
    """A YAML documentation file that cannot be read: the file and the entry."""


@dataclass(frozen=True)
class ColumnDoc:
    name: str
    description: str
    tests: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (test, accepted values)


@dataclass(frozen=True)
class Doc:
    name: str
    kind: str  # table, view, table macro; "model" for a daily model (a temp table of a run)
    description: str
    columns: tuple[ColumnDoc, ...]
    file: Path | None  # the YAML file (None: generated from pipeline/config/input_tables.py)
    model: str | None = None  # the SQL model it is made from: <folder>/<name> under sql/


def _tests(raw, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out = []
    for test in raw or ():
        if test in ("not_null", "unique"):
            out.append((test, ()))
        elif isinstance(test, dict) and list(test) == ["accepted_values"] \
                and isinstance(test["accepted_values"], dict) and list(test["accepted_values"]) == ["values"]:
            out.append(("accepted_values", tuple(str(v) for v in test["accepted_values"]["values"])))
        else:
            raise CatalogError(f"{where}: unknown test {test!r} (known: {', '.join(TESTS)}; "
                               "accepted_values: {values: [...]})")
    return tuple(out)


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read(path: Path, section: str, folder: str) -> list[dict]:
    """One YAML file's entries, checked for shape; `same_as` still unresolved."""
    try:
        # libyaml's safe loader: every process imports the catalog, and the pure-Python one took
        # 0.23 s of that (0.03 s this way); same documents, same errors with line and column
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER) or {}  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as e:
        raise CatalogError(f"{path}: {e}") from None
    if not isinstance(data, dict) or set(data) - {"version", section} or not isinstance(data.get(section), list):
        raise CatalogError(f"{path}: expected a list `{section}:`")
    entries = []
    for raw in data[section]:
        name = raw.get("name") if isinstance(raw, dict) else None
        where = f"{path}: {name if isinstance(name, str) else repr(raw)}"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise CatalogError(f"{where}: needs a name matching {_NAME.pattern}")
        allowed = _ENTRY_KEYS.get(folder, _DAILY_ENTRY_KEYS)
        if set(raw) - allowed:
            raise CatalogError(f"{where}: unknown key(s) {', '.join(sorted(set(raw) - allowed))}")
        if not isinstance(raw.get("description"), str) or not raw["description"].strip():
            raise CatalogError(f"{where}: needs a description")
        kind = raw.get("kind", "model" if folder in _MODEL_FOLDERS else None)
        if folder not in _MODEL_FOLDERS and kind not in KINDS:
            raise CatalogError(f"{where}: kind must be one of {', '.join(KINDS)}")
        model = None if folder == "schema" else raw.get("from_model", f"{folder}/{name}")
        if not isinstance(raw.get("columns") or [], list):
            raise CatalogError(f"{where}: columns must be a list")
        columns = []
        for col in raw.get("columns") or ():
            cname = col.get("name") if isinstance(col, dict) else None
            cwhere = f"{where}, column {cname if isinstance(cname, str) else repr(col)}"
            if not isinstance(cname, str) or not _NAME.fullmatch(cname):
                raise CatalogError(f"{cwhere}: needs a name matching {_NAME.pattern}")
            if set(col) - _COLUMN_KEYS:
                raise CatalogError(f"{cwhere}: unknown key(s) {', '.join(sorted(set(col) - _COLUMN_KEYS))}")
            text = col.get("description", col.get("same_as"))
            if ("description" in col) == ("same_as" in col) or not isinstance(text, str) or not text.strip():
                raise CatalogError(f"{cwhere}: needs a description or same_as (one of them)")
            columns.append({"name": cname, "description": col.get("description"), "same_as": col.get("same_as"),
                            "tests": _tests(col.get("tests"), cwhere), "where": cwhere})
        if len({c["name"] for c in columns}) != len(columns):
            raise CatalogError(f"{where}: a column is listed twice")
        entries.append({"name": name, "kind": kind, "description": raw["description"], "columns": columns,
                        "file": path, "model": model, "where": where})
    return entries


def _input_entries() -> list[dict]:
    return [{
        "name": f"stg_{t.name}", "kind": "table", "file": None, "model": None, "where": "pipeline/config/input_tables.py",
        "description": f"Input {t.name}, typed and validated: rows that broke no rule. {t.doc} "
                       "Extra columns of the source follow as text.",
        "columns": [{"name": name, "description": text, "same_as": None, "tests": (), "where": "pipeline/config/input_tables.py"}
                    for name, text in (
            ("_source_file", "File the row was read from."), ("_source_row", "1-based data row in that file."),
            *((c.name, c.doc) for c in t.columns))],
    } for t in INPUT_TABLES]


def doc_files(sql_root: Path = SQL_ROOT) -> list[tuple[Path, str, str]]:
    """(file, top-level key, folder) of every documentation file, in the order of docs/tables.md."""
    return [(sql_root / TABLES_FILE, "tables", "schema"),
            *((sql_root / folder / "_models.yml", "models", folder)
              for folder in (ANALYTICS_FOLDER, *DAILY_FOLDERS, RANGE_FOLDER))]


def load_docs(sql_root: Path = SQL_ROOT) -> dict[str, Doc]:
    """Every documented table, view, macro and model by name, `same_as` resolved; in file order."""
    entries = _input_entries()
    for path, section, folder in doc_files(sql_root):
        if path.is_file():
            entries += _read(path, section, folder)
    by_name: dict[str, dict] = {}
    for e in entries:
        if e["name"] in by_name:
            raise CatalogError(f"{e['where']}: documented twice (also {by_name[e['name']]['where']})")
        by_name[e["name"]] = e

    def text(entry: dict, column: dict) -> str:
        seen, where = [(entry["name"], column["name"])], column["where"]
        while column["description"] is None:
            table, _, other = column["same_as"].partition(".")
            source = by_name.get(table)
            target = next((c for c in source["columns"] if c["name"] == (other or column["name"])), None) \
                if source else None
            if target is None:
                raise CatalogError(f"{column['where']}: same_as {column['same_as']}: no such documented column")
            if (table, target["name"]) in seen:
                raise CatalogError(f"{where}: same_as goes round in a circle: "
                                   + " -> ".join(".".join(p) for p in (*seen, (table, target["name"]))))
            seen.append((table, target["name"]))
            column = target
        return column["description"]

    return {e["name"]: Doc(e["name"], e["kind"], e["description"],
                           tuple(ColumnDoc(c["name"], text(e, c), c["tests"]) for c in e["columns"]),
                           e["file"], e["model"])
            for e in entries}


DOCS: dict[str, Doc] = load_docs()

# The database's objects: name -> (kind, description, {column: description}); the daily models
# are temp tables of a run, documented apart (MODEL_DOCS).
CATALOG: dict[str, tuple[str, str, dict[str, str]]] = {
    name: (d.kind, d.description, {c.name: c.description for c in d.columns})
    for name, d in DOCS.items() if d.kind != "model"
}
MODEL_DOCS: dict[str, Doc] = {name: d for name, d in DOCS.items() if d.kind == "model"}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def apply_comments(con, names=None, *, own_transaction: bool = True) -> None:
    """COMMENT ON every documented table, view, table macro and column present in the database
    (or only those in `names`), unless it already carries that very comment.

    Every run ends here (`publish_day`), mostly on a database whose comments are already set: a
    statement per comment took a quarter of a second each time (314 columns), reading them first
    costs two queries. The statements still needed go to DuckDB in one call, in one transaction
    (`own_transaction`; False for a caller that has one open): each COMMENT ON committed on its
    own cost a commit each. A run still needs about 320 of them, since loading the inputs
    replaces the input tables and the analysts' views (their comments go with them): 0.24-0.26 s
    in autocommit, 0.11-0.13 s in one transaction (measured twice each on a small database). With
    nothing to apply it costs its catalog reads: 80 ms, 35 ms since it lists DuckDB's functions once.

    DuckDB's COMMENT ON takes no bound parameters, so the text is quoted here; it
    comes only from the documentation files, never from data.
    """
    present = {name: kind for name, kind in con.execute(
        "select table_name, case table_type when 'VIEW' then 'view' else 'table' end "
        "from information_schema.tables where table_schema = 'main'").fetchall()}
    # what this database's objects say already (column None: the object's own comment)
    said: dict[tuple[str, str | None], str | None] = dict(((name, None), comment) for name, comment in con.execute(
        """select table_name, comment from duckdb_tables() where schema_name = 'main' and database_name = current_database()
           union all
           select view_name, comment from duckdb_views() where schema_name = 'main' and database_name = current_database()"""
    ).fetchall())
    # a table macro takes a comment itself; its columns exist only when it is called. One read of
    # duckdb_functions(), which lists all of DuckDB's functions (25 ms).
    for name, comment in con.execute(
            "select function_name, comment from duckdb_functions() where function_type = 'table_macro' "
            "and schema_name = 'main' and database_name = current_database()").fetchall():
        present[name] = "macro table"
        said[(name, None)] = comment
    actual: dict[str, set[str]] = {}  # one query: each one binds every view (~3 ms)
    for table, column in con.execute(
            "select table_name, column_name from information_schema.columns where table_schema = 'main'").fetchall():
        actual.setdefault(table, set()).add(column)
    said.update(((table, column), comment) for table, column, comment in con.execute(
        """select table_name, column_name, comment from duckdb_columns()
           where schema_name = 'main' and database_name = current_database()""").fetchall())
    statements = []
    for name, (kind, description, columns) in CATALOG.items():
        if name not in present or (names is not None and name not in names):
            continue
        if said.get((name, None)) != description:
            statements.append(f"comment on {present[name]} {name} is {_quote(description)}")
        for column, text in columns.items():
            if column in actual.get(name, ()) and said.get((name, column)) != text:
                statements.append(f'comment on column {name}."{column}" is {_quote(text)}')
    if not statements:
        return
    if not own_transaction:
        con.execute(";\n".join(statements))
        return
    con.execute("begin transaction")
    try:
        con.execute(";\n".join(statements))
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def _test_text(tests) -> str:
    return ", ".join(t if t != "accepted_values" else "accepted values: " + ", ".join(v) for t, v in tests)


def markdown() -> str:
    """docs/tables.md: the reference page analysts read."""
    out = ["# Tables and views in the dunning database", "",
           "Generated by `dunning docs` from `sql/schema/_tables.yml` and the `_models.yml` beside the SQL "
           "models (input tables: `pipeline/config/input_tables.py`); the same text is stored as COMMENT ON in the "
           "database. Names are stable.", ""]
    for name, (kind, description, columns) in CATALOG.items():
        out += [f"## `{name}` ({kind})", "", description, "", "| column | description |", "|---|---|"]
        out += [f"| `{c}` | {d} |" for c, d in columns.items()]
        out.append("")
    out += ["# Daily models", "",
            "One day's SQL models (`sql/intermediate`, `sql/collections`, `sql/marts`), which a run "
            "materializes as temp tables of its connection (not stored in the database) in the order of "
            "their references (`pipeline/warehouse/sql_runner.py`); `dunning explain` reads them. Their column tests "
            "are checked by `pipeline.warehouse.sql_runner.check_model_tests`.", ""]
    daily = {name: d for name, d in MODEL_DOCS.items() if not d.model.startswith(f"{RANGE_FOLDER}/")}
    for name, d in daily.items():
        out += _model_markdown(name, d)
    out += ["# Range models", "",
            "The models a backfill, a simulation or a scenario runs around the daily models (`sql/range`): "
            "which invoices a range can leave out (`pipeline/warehouse/range_inputs.py`), and which customers "
            "each day recomputes and what it carries for the others (`pipeline/warehouse/range_days.py`). "
            "Temp tables of the run's connection, like the daily models.", ""]
    for name, d in MODEL_DOCS.items():
        if name not in daily:
            out += _model_markdown(name, d)
    return "\n".join(out)


def _model_markdown(name: str, d: Doc) -> list[str]:
    return [f"## `{name}` ({d.model})", "", d.description, "", "| column | description | tests |", "|---|---|---|",
            *(f"| `{c.name}` | {c.description} | {_test_text(c.tests)} |" for c in d.columns), ""]
