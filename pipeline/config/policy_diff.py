"""`dunning policy diff OLD NEW`: what a policy change changes, which open cases it touches, and its impact.

A change never rewrites an open case: each case keeps the version it opened under.
So the diff lists, per policy, versions added and removed, and for versions whose
effective date exists in both files, the keys that differ, level by level with the
level's number and name as every other report shows them (`L2 "First dunning notice"`);
a version added to a policy is compared with the version before it in the new file
(what changes for cases opening from its day on). Then the open cases whose version is
not in the new file (they go on under their old version).

The impact (`impact`) runs both files through the real daily models over a range of
past days (by default the last 30 computed), each in its own work schema seeded with the
same state before the range (`policy_diff_old`, `policy_diff_new`; the machinery of
`dunning simulate`), and compares the two ledgers (`pipeline.engine.impact`): per level and
currency the documents, letters, postage, fees, contracts ended and open cases, with
differences and totals, and every customer, case and action that differs. The live
tables are never written; the two schemas stay for analysts until the next diff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from pipeline.config.policy import Level, PolicyFile, PolicyVersion, load_policy_file

OLD_SCHEMA = "policy_diff_old"
NEW_SCHEMA = "policy_diff_new"
DEFAULT_DAYS = 30


def _flatten(value, prefix: str = "") -> dict[str, object]:
    """Nested keys as `a.b`, list items numbered from 1 (`actions#1.channel`), as levels are."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value, start=1):
            out.update(_flatten(v, f"{prefix}#{i}"))
        return out
    return {prefix: value}


def level_label(number: int, old: Level | None, new: Level | None) -> str:
    """`L2 "First dunning notice"`, or `L2 "Old" -> "New"` for a renamed level."""
    if old is not None and new is not None and old.name != new.name:
        return f'L{number} "{old.name}" -> "{new.name}"'
    return f'L{number} "{(new or old).name}"'


def _timing(level: Level) -> str:
    return f"{level.timing.after} {'+' if level.timing.days >= 0 else '-'} {abs(level.timing.days)} day(s)"


def version_changes(old: PolicyVersion, new: PolicyVersion) -> list[str]:
    """The keys that differ between two versions, indented: version keys first, then level by level."""
    lines = []
    a = _flatten({k: v for k, v in old.model_dump(mode="json").items() if k != "levels"})
    b = _flatten({k: v for k, v in new.model_dump(mode="json").items() if k != "levels"})
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            lines.append(f"  {key}: {a.get(key, '(absent)')!r} -> {b.get(key, '(absent)')!r}")
    for i in range(max(len(old.levels), len(new.levels))):
        o = old.levels[i] if i < len(old.levels) else None
        n = new.levels[i] if i < len(new.levels) else None
        label = level_label(i + 1, o, n)
        if o is None:
            lines.append(f"  {label}: added ({_timing(n)})")
            continue
        if n is None:
            lines.append(f"  {label}: removed")
            continue
        a, b = _flatten(o.model_dump(mode="json")), _flatten(n.model_dump(mode="json"))
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                lines.append(f"  {label}: {key}: {a.get(key, '(absent)')!r} -> {b.get(key, '(absent)')!r}")
    return lines


@dataclass
class Diff:
    lines: list[str]
    removed_ids: set[str]
    # (policy, effective_from) of every version added, removed or changed: the days the change acts from
    changed_from: list[tuple[str, date]] = field(default_factory=list)


def diff(old: PolicyFile, new: PolicyFile) -> Diff:
    lines: list[str] = []
    changed_from: list[tuple[str, date]] = []
    old_by, new_by = {p.handle: p for p in old.policies}, {p.handle: p for p in new.policies}
    for handle in sorted(set(old_by) - set(new_by)):
        lines.append(f"policy {handle}: removed")
    for handle in sorted(set(new_by) - set(old_by)):
        lines.append(f"policy {handle}: added ({len(new_by[handle].versions)} version(s))")
    # the default takes every contract that names no policy (and no routing rule matches): new cases
    # route elsewhere from the first day, though no version changed
    old_default = next(p.handle for p in old.policies if p.default)
    new_default = next(p.handle for p in new.policies if p.default)
    if old_default != new_default:
        lines.append(f"default policy: {old_default} -> {new_default} (new cases of contracts that name no "
                     "policy route to it)")
    for handle in sorted(set(old_by) & set(new_by)):
        if old_by[handle].name != new_by[handle].name:
            lines.append(f"policy {handle}: name {old_by[handle].name!r} -> {new_by[handle].name!r}")
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
            changed_from.append((handle, day))
            if not nv:
                lines.append(f"policy {handle}: version from {day} removed ({ov[0]})")
            elif not ov:
                lines.append(f"policy {handle}: version from {day} added ({nv[0]})")
                earlier = [d for d in new_versions if d < day]
                if earlier and o is not None:
                    before = max(earlier)
                    lines.append(f"  against the version before it (from {before}):")
                    lines += ["  " + line for line in version_changes(new_versions[before][1], nv[1])]
            else:
                lines.append(f"policy {handle}: version from {day} changed ({ov[0]} -> {nv[0]})")
                lines += version_changes(ov[1], nv[1])
    return Diff(lines or ["no change"], removed_ids, sorted(changed_from))


def diff_files(old: PolicyFile, new: PolicyFile) -> tuple[list[str], set[str]]:
    """Lines describing the change, and the version ids that are in OLD but not in NEW."""
    d = diff(old, new)
    return d.lines, d.removed_ids


def affected_cases(database: Path, removed_ids: set[str], con=None) -> list[str]:
    """Open cases whose version the new file no longer holds; they keep it (nothing is rewritten)."""
    import duckdb

    own = con is None
    if own:
        con = duckdb.connect(str(database), read_only=True)
    try:
        rows = con.execute(
            """select policy_version, count(*), min(case_id) from case_register
               where closed_on is null and policy_version in (select unnest(?::varchar[]))
               group by policy_version order by policy_version""",
            [sorted(removed_ids)],
        ).fetchall()
    finally:
        if own:
            con.close()
    return [f"{n} open case(s) keep {vid} (e.g. {example}); new cases use the new versions"
            for vid, n, example in rows]


def main(old: Path, new: Path, database: Path | None) -> list[str]:
    lines, removed = diff_files(load_policy_file(old), load_policy_file(new))
    if database is not None and Path(database).exists() and removed:
        lines += affected_cases(database, removed) or ["no open case uses a version the new file drops"]
    return lines


# ---------------------------------------------------------------------------------------------
# impact: both files through the daily models over past days


def latest_day(database: Path) -> date | None:
    """The last day computed in `database` (its run log), read without a write lock; None if none."""
    import duckdb

    if not Path(database).is_file():
        return None
    con = duckdb.connect(str(database), read_only=True)
    try:
        exists = con.execute("select count(*) from duckdb_tables() where schema_name = 'main' "
                             "and table_name = 'run_log'").fetchall()[0][0]
        return con.execute("select max(as_of) from run_log").fetchall()[0][0] if exists else None
    finally:
        con.close()


def last_days(latest: date, days: int) -> tuple[date, date]:
    """The `days` days ending on `latest`."""
    if days < 1:
        raise ValueError(f"--days must be at least 1, not {days}")
    return latest - timedelta(days=days - 1), latest


def range_notes(d: Diff, start: date, end: date) -> list[str]:
    """What the range cannot show: versions acting from a day after its start, open cases keeping theirs."""
    notes = [f"Cases open before {start} keep the policy version they opened under (as they would live): "
             "only cases opening in the range meet a changed version."]
    for handle, day in d.changed_from:
        if day > end:
            notes.append(f"policy {handle}: the version from {day} takes effect after the range; "
                         "the impact cannot show it (choose a range from that day with --from/--to)")
        elif day > start:
            notes.append(f"policy {handle}: the version from {day} acts from that day only")
    return notes


def impact(con, settings, old: PolicyFile, new: PolicyFile, start: date, end: date, *, on_day=None):
    """Run OLD and NEW over start..end in their work schemas (inputs loaded) and compare them."""
    from pipeline.engine.impact import compare
    from pipeline.engine.simulate import run_policy

    for schema, policies in ((OLD_SCHEMA, old), (NEW_SCHEMA, new)):
        run_policy(con, schema, policies, start, end,
                   on_day=(lambda r, s=schema: on_day(s, r)) if on_day else None)
    return compare(con, OLD_SCHEMA, NEW_SCHEMA, start, end, settings, labels=("old", "new"))


def impact_markdown(result, notes: list[str], *, limit: int | None = None, where: str | None = None) -> str:
    """The impact section of the report (complete unless `limit` caps the lists of customers, cases, actions)."""
    from pipeline.engine.impact import markdown_sections

    out = [f"## Impact from {result.start} to {result.end} ({(result.end - result.start).days + 1} days)", "",
           "old and new: the same days computed by the daily models under each file, in the work schemas "
           f"{OLD_SCHEMA} and {NEW_SCHEMA}, from the same state before {result.start}; the live tables are "
           "not touched. Every figure is a mechanical consequence: what each policy does to the same "
           "invoices, payments and suspensions. Payments after a level are not compared: customers paid "
           "under the policy actually in force, which says nothing about how they would answer either file.", ""]
    out += [f"- {note}" for note in notes]
    out += [""] + markdown_sections(result, limit=limit, where=where)
    return "\n".join(out) + "\n"


def markdown(old: Path, new: Path, lines: list[str], result, notes: list[str]) -> str:
    """The complete report: the changes, then the impact with every customer, case and action."""
    head = [f"# Policy diff: {old} -> {new}", "", "## Changes", "", "```text", *lines, "```", ""]
    return "\n".join(head) + "\n" + impact_markdown(result, notes)


def write_report(path: Path, text: str, result) -> list[Path]:
    """The Markdown report at `path`, the tables beside it (`<stem>.<table>.csv` and `.parquet`)."""
    from pipeline.durable_files import atomic_write
    from pipeline.engine.impact import write_tables

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode("utf-8"), fsync=False)
    return [path, *write_tables(result, path.with_suffix("") if path.suffix else path)]
