"""The library's layout keeps its promises: no import cycle, no Dagster in the library, no
benchmark code in the product, and every SQL rule file where the map in docs/design.md says."""

from __future__ import annotations

import ast
from pathlib import Path

from pipeline.config.settings import PROJECT_ROOT

LIBRARY = PROJECT_ROOT / "pipeline"


def _module(path: Path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module imported anywhere in the file (inside functions too), resolved to absolute names."""
    own = _module(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in LIBRARY.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        graph[name] = {m for m in _imports(path) if m in files and m != name}
        # importing a package runs its __init__: `from pipeline.x import y` depends on pipeline.x
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_library_has_no_import_cycle_even_inside_functions():
    graph = _graph()
    assert len(graph) > 40
    assert _cycle(graph) is None


def test_a_cycle_is_found_when_there_is_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_library_imports_no_dagster_and_only_the_cli_imports_bench():
    offenders = {}
    for path in LIBRARY.rglob("*.py"):
        bad = {m for m in _imports(path) if m.split(".")[0] == "dagster"
               or (m.split(".")[0] == "bench" and path.name != "cli.py")}
        if bad:
            offenders[_module(path)] = sorted(bad)
    assert offenders == {}


def test_each_folder_of_the_map_exists_with_its_files():
    for folder, files in {
        "sql/seeds": ["ledger_statuses.csv", "action_kinds.csv", "aging_buckets.csv"],
        "sql/schema": ["010_state_tables.sql", "015_timing_macro.sql", "020_levels_done_macro.sql",
                       "025_level_rules_macro.sql", "030_state_views.sql", "_tables.yml"],
        "sql/analytics": ["recovered_after_level.sql", "_models.yml"],
        "pipeline/engine": ["run.py", "backfill.py", "simulate.py"],
        "bench": ["stages.py", "sample_company.py", "render.py", "smtp.py"],
    }.items():
        assert sorted(p.name for p in (PROJECT_ROOT / folder).iterdir() if p.name in files) == sorted(files)
