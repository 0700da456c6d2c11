"""`dunning policy diff OLD NEW`: what a policy change changes, and which open cases it touches.

A change never rewrites an open case: each case keeps the version it opened under.
So the diff lists, per policy, versions added and removed, and for versions whose
effective date exists in both files, the keys that differ; then the open cases
whose version is not in the new file (they go on under their old version) and
the open cases per policy that new versions will not touch.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config.policy import PolicyFile, load_policy_file


def _flatten(value, prefix: str = "") -> dict[str, object]:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def diff_files(old: PolicyFile, new: PolicyFile) -> tuple[list[str], set[str]]:
    """Lines describing the change, and the version ids that are in OLD but not in NEW."""
    lines: list[str] = []
    old_by, new_by = {p.handle: p for p in old.policies}, {p.handle: p for p in new.policies}
    for handle in sorted(set(old_by) - set(new_by)):
        lines.append(f"policy {handle}: removed")
    for handle in sorted(set(new_by) - set(old_by)):
        lines.append(f"policy {handle}: added ({len(new_by[handle].versions)} version(s))")
    removed_ids: set[str] = set()
    for handle in sorted(set(old_by) | set(new_by)):
        o, n = old_by.get(handle), new_by.get(handle)
        old_versions = {v.effective_from: (o.version_id(v), v) for v in o.versions} if o else {}
        new_versions = {v.effective_from: (n.version_id(v), v) for v in n.versions} if n else {}
        removed_ids |= {vid for vid, _ in old_versions.values()} - {vid for vid, _ in new_versions.values()}
        for day in sorted(set(old_versions) | set(new_versions)):
            ov, nv = old_versions.get(day), new_versions.get(day)
            if ov and nv and ov[0] == nv[0]:
                continue
            if not nv:
                lines.append(f"policy {handle}: version from {day} removed ({ov[0]})")
            elif not ov:
                lines.append(f"policy {handle}: version from {day} added ({nv[0]})")
            else:
                lines.append(f"policy {handle}: version from {day} changed ({ov[0]} -> {nv[0]})")
                a = _flatten(ov[1].model_dump(mode="json"))
                b = _flatten(nv[1].model_dump(mode="json"))
                for key in sorted(set(a) | set(b)):
                    if a.get(key) != b.get(key):
                        lines.append(f"  {key}: {a.get(key, '(absent)')!r} -> {b.get(key, '(absent)')!r}")
    return lines or ["no change"], removed_ids


def affected_cases(database: Path, removed_ids: set[str]) -> list[str]:
    """Open cases whose version the new file no longer holds; they keep it (nothing is rewritten)."""
    import duckdb

    con = duckdb.connect(str(database), read_only=True)
    try:
        rows = con.execute(
            """select policy_version, count(*), min(case_id) from case_register
               where closed_on is null and policy_version in (select unnest(?))
               group by policy_version order by policy_version""",
            [sorted(removed_ids)],
        ).fetchall()
    finally:
        con.close()
    return [f"{n} open case(s) keep {vid} (e.g. {example}); new cases use the new versions"
            for vid, n, example in rows]


def main(old: Path, new: Path, database: Path | None) -> list[str]:
    lines, removed = diff_files(load_policy_file(old), load_policy_file(new))
    if database is not None and Path(database).exists() and removed:
        lines += affected_cases(database, removed) or ["no open case uses a version the new file drops"]
    return lines
