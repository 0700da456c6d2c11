"""Code versions that follow what decides an asset's content: its SQL (and the policy file).

Dagster marks an asset stale when its code version changes. Each table asset's
version is a hash of the SQL files it is made from: the daily models that write
it and every model they read (the order `pipeline/warehouse/sql_runner.py`
derives from the files), the DDL that creates it, the macros those files call
(found by name in `sql/schema/`), and the seed files behind the ledger-rule
macros (`status_is_*`, `action_is_*`, `aging_bucket`). The state the policy
decides (cases, the ledger, documents) also hashes the policy file, so a policy
edit shows up in the UI as stale state, with no release of Python code.
Computed when the definitions load (they are read again on every reload).
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from pipeline.config.settings import PROJECT_ROOT, Settings
from pipeline.warehouse.sql_runner import DAILY_PLAN

SQL_ROOT = PROJECT_ROOT / "sql"
_MACRO = re.compile(r"\bcreate\s+(?:or\s+replace\s+)?(?:temp\s+)?macro\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)
_RELATION = re.compile(r"\bcreate\s+(?:or\s+replace\s+)?(?:table|view)\s+(?:if\s+not\s+exists\s+)?([a-z_][a-z0-9_]*)",
                       re.IGNORECASE)
# macros generated from the seeds by pipeline/warehouse/ledger_rules.py: name prefix -> seed file
SEED_MACROS = {"status_is_": "seeds/ledger_statuses.csv", "action_is_": "seeds/action_kinds.csv",
               "aging_bucket": "seeds/aging_buckets.csv"}


def _digest(paths: Iterable[Path]) -> str:
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


def _template_files(subfolder: str) -> list[Path]:
    """The templates a deployment renders with (settings), else the project's own."""
    try:
        root = Path(Settings.load().templates)
    except Exception:
        root = PROJECT_ROOT / "templates"
    folder = root / subfolder if (root / subfolder).is_dir() else PROJECT_ROOT / "templates" / subfolder
    return sorted(p for p in folder.rglob("*") if p.is_file())


@cache
def _schema_index() -> tuple[dict[str, Path], dict[str, Path]]:
    """(macro name -> file, table or view name -> file) over sql/schema/ and sql/analytics/."""
    macros: dict[str, Path] = {}
    relations: dict[str, Path] = {}
    for path in sorted(SQL_ROOT.glob("schema/*.sql")):
        text = path.read_text(encoding="utf-8")
        macros.update((m.lower(), path) for m in _MACRO.findall(text))
        relations.update((r.lower(), path) for r in _RELATION.findall(text))
    for path in sorted(SQL_ROOT.glob("analytics/*.sql")):  # one view or table macro per file, named by it
        macros.setdefault(path.stem, path)
    return macros, relations


def with_called_macros(paths: Iterable[Path]) -> list[Path]:
    """`paths` plus the files of every macro they call (transitively) and the seeds of the
    ledger-rule macros, sorted and without repeats."""
    macros, _ = _schema_index()
    out: set[Path] = set()
    todo = list(paths)
    while todo:
        path = todo.pop()
        if path in out:
            continue
        out.add(path)
        if path.suffix not in (".sql", ".py"):
            continue
        text = path.read_text(encoding="utf-8")
        for name, file in macros.items():
            if file not in out and re.search(rf"\b{name}\s*\(", text):
                todo.append(file)
        for prefix, seed in SEED_MACROS.items():
            if re.search(rf"\b{prefix}", text):
                todo.append(SQL_ROOT / seed)
    return sorted(out)


def model_closure(names: Iterable[str]) -> set[str]:
    """The daily models `names` and every daily model they read, transitively."""
    by_name = {m.name: m for m in DAILY_PLAN}
    out: set[str] = set()
    todo = [n for n in names if n in by_name]
    while todo:
        name = todo.pop()
        if name not in out:
            out.add(name)
            todo.extend(by_name[name].inputs)
    return out


def model_files(names: Iterable[str]) -> list[Path]:
    """The files of `names` and of every model they read (a python model: its module)."""
    by_name = {m.name: m for m in DAILY_PLAN}
    files = []
    for name in model_closure(names):
        model = by_name[name]
        files.append(model.file if model.file is not None else Path(inspect.getsourcefile(model.python.build)))
    return files


def relation_files(names: Iterable[str]) -> list[Path]:
    """The DDL files of sql/schema/ that create these tables or views."""
    _, relations = _schema_index()
    return [relations[n] for n in names if n in relations]


def version_of(*, models: Iterable[str] = (), relations: Iterable[str] = (), files: Iterable[Path] = (),
               policy: bool = False) -> str:
    """The hash of everything an asset is made from (see the module)."""
    paths = with_called_macros([*model_files(models), *relation_files(relations), *files])
    return _digest([*paths, *(_policy_file() if policy else [])])


def template_version(subfolder: str, *, files: Iterable[Path] = (), policy: bool = False) -> str:
    """Documents and the report: their templates, the code and SQL that fill them."""
    paths = with_called_macros(list(files))
    return _digest([*paths, *_template_files(subfolder), *(_policy_file() if policy else [])])


def state_version() -> str:
    """Every model, DDL, macro and seed of the day's step, and the policy file: the version of the
    day's step as a whole (the assets carry the finer versions above)."""
    # the models, the DDL and macros, and the seeds that give statuses and action kinds their meaning
    models = sorted(p for p in [*SQL_ROOT.rglob("*.sql"), *SQL_ROOT.glob("seeds/*.csv")] if "staging" not in p.parts)
    return _digest(models + _policy_file())
