"""The analysts' copy: every documented table and view as Parquet, and a DuckDB file of views over it.

An analyst's open session must never block the pipeline (DuckDB allows one
writing process per file, and a reader locks a file too), and a new export must
never break an analyst's query. So after each run:

1. every table and view of the catalog is written to Parquet in a new folder
   `<analyst_dir>/.tmp-<stamp>/`, fsynced, then renamed to `<stamp>/`;
2. the symlink `current` is switched to it by renaming a new link over it, an
   atomic step: a reader sees the old export or the new one, never half of one;
3. `dunning_analyst.duckdb` (views reading `current/<name>.parquet`, plus the
   table macros of `pipeline.warehouse.analytics` over them) is written as a new file and
   renamed over the old one, unless the file in place is the one it would write (the same
   tables, columns and release, unchanged since: `_write_analyst_db`). The pipeline never
   opens the file an analyst may have open; a session opened earlier keeps its file and, through `current`,
   reads the new data with its next query;
4. export folders older than the previous one are deleted: a query that started
   on the previous export (files it has not opened yet) still finds them until
   the next-but-one publish.

The stamp is `<as_of>-run<run number>` from the run log: deterministic, no clock.
Analysts should open the file read-only (`duckdb -readonly`, `read_only=True`): their
own tables would live in a file the next publish replaces.

The file opens with stock tools, and the folder can be copied elsewhere:

- It is written in DuckDB's storage version `v1.4.0` (STORAGE_VERSION), which
  DuckDB 1.4 and every later release read (the pipeline's own DuckDB would
  otherwise write its newest version, which older CLIs and drivers refuse).
  Its SQL uses nothing newer either; tests open it with the pinned
  `duckdb-cli` 1.4 (`make analyst`).
- No absolute path is stored. Each view reads
  `read_parquet(analyst_dir() || '/current/<name>.parquet')`, and the scalar
  macro `analyst_dir()` is the folder of the database file itself: DuckDB's
  default temp directory of a database file is `<file>.tmp`, beside it, so its
  folder is the file's folder, whatever the working directory (the argument of
  a table function must be a constant; a setting is one). A session that
  attached the file to another database, or set its own temp_directory, names
  the folder with `SET VARIABLE dunning_analyst_dir = '<folder>'` (DIR_VARIABLE),
  which wins.
- Aging buckets are of the ENUM type `aging_buckets` (the seed's order), in
  `aging` as in `aging_as_of`: they sort naturally, not alphabetically.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from datetime import date
from pathlib import Path

import duckdb

from pipeline.config.settings import Settings
from pipeline.durable_files import fsync_path
from pipeline.release import release_fingerprint
from pipeline.warehouse import analytics, catalog
from pipeline.warehouse.state import create_history_macros

ANALYST_DB = "dunning_analyst.duckdb"
# Beside it: what it was written for, so that a publish that would write the same file keeps it.
ANALYST_MARK = ".dunning_analyst.mark"
CURRENT = "current"
# The storage version of the analysts' file: DuckDB 1.4 (LTS) and every later release read it.
STORAGE_VERSION = "v1.4.0"
# A session variable that names the analyst folder where the file's own location cannot be known.
DIR_VARIABLE = "dunning_analyst_dir"
ANALYST_DIR_MACRO = f"""create or replace macro analyst_dir() as coalesce(
    getvariable('{DIR_VARIABLE}'),
    nullif(parse_dirpath(current_setting('temp_directory')), ''),
    '.')"""
_ANALYST_DIR_COMMENT = (
    "The folder of this file, where `current/` with the Parquet files is: the folder of the database's "
    "default temp directory (<file>.tmp, beside the file), or the variable " + DIR_VARIABLE + " when set "
    "(SET VARIABLE " + DIR_VARIABLE + " = '<folder>', for a session that attached this file to another "
    "database). Every view reads <analyst_dir()>/current/<name>.parquet, so the folder may be copied "
    "anywhere.")
# Views of the file whose columns differ from the Parquet's: (select list, order by).
_VIEW_SHAPES = {
    "aging": (f"* replace (cast(bucket as {analytics.BUCKET_TYPE}) as bucket)", "order by currency, bucket"),
}
_EXPORT = re.compile(r"^\d{4}-\d{2}-\d{2}-run\d+(-\d+)?$")
_TMP_PREFIX = ".tmp-"


def exported_names(con) -> list[str]:
    """Catalog tables and views present in the database: the allow-list of names exported."""
    present = {r[0] for r in con.execute(
        "select table_name from information_schema.tables "
        "where table_schema = 'main' and table_catalog = current_database()").fetchall()}
    return [name for name, (kind, _, _) in catalog.CATALOG.items() if kind != "table macro" and name in present]


def run_stamp(con, as_of: date | None = None) -> str:
    """`<as_of>-run<n>`: the day (default: the latest day run) and its latest run number."""
    row = con.execute(
        """select as_of, max(run_number) from run_log
           where as_of = coalesce(?, (select max(as_of) from run_log)) group by as_of""",
        [as_of],
    ).fetchall()
    if not row:
        raise ValueError(f"nothing to publish: no run recorded{f' for {as_of}' if as_of else ''}")
    return f"{row[0][0].isoformat()}-run{row[0][1]}"


def publish(con, settings: Settings, as_of: date | None = None) -> Path:
    """Export for analysts after a run (see the module); returns the new export folder."""
    root = Path(settings.analyst_dir)
    root.mkdir(parents=True, exist_ok=True)
    created = analytics.ensure_analytics(con, replace=False)  # a fresh database's first run
    if created:
        catalog.apply_comments(con, created)
    names = exported_names(con)
    stamp = _free_stamp(root, run_stamp(con, as_of))
    tmp = root / f"{_TMP_PREFIX}{stamp}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    con.execute("begin transaction")  # one snapshot: the files agree with each other
    try:
        for name in names:  # names from the catalog, the file path bound
            con.execute(f'copy (select * from "{name}") to ? (format parquet, compression zstd)',
                        [str(tmp / f"{name}.parquet")])
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")
    _fsync_folder(tmp, files=True)
    folder = root / stamp
    os.rename(tmp, folder)
    previous = _current_target(root)
    _switch_current(root, stamp)
    _write_analyst_db(root, names, _analyst_db_key(con, names))
    _fsync_folder(root)
    _remove_old(root, keep={stamp, previous})
    return folder


def _free_stamp(root: Path, stamp: str) -> str:
    """The stamp, or `<stamp>-2`, `-3`... when that run was published already (e.g. published again
    after a `dunning confirm`): an export folder is never rewritten while it may be read."""
    candidate, n = stamp, 1
    while (root / candidate).exists():
        n += 1
        candidate = f"{stamp}-{n}"
    return candidate


def _current_target(root: Path) -> str | None:
    link = root / CURRENT
    return os.readlink(link) if link.is_symlink() else None


def _switch_current(root: Path, stamp: str) -> None:
    # a relative link, so the analyst folder can be moved as a whole; rename() replaces it atomically
    tmp_link = root / f"{_TMP_PREFIX}{CURRENT}"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(stamp, target_is_directory=True)
    os.replace(tmp_link, root / CURRENT)


# The last analysts' file this process built, by what it was built from (`_analyst_db_key`).
_built_analyst_db: dict[str, bytes] = {}


def _analyst_db_key(con, names: list[str]) -> str:
    """What the analysts' file is made of besides this process's code: the exported names, each one's
    columns and types (a view stores the types it was bound with, so the Parquet's must match), and
    the aging buckets' type (a seed file)."""
    columns = con.execute(
        """select table_name, list(column_name || ' ' || data_type order by ordinal_position)
           from information_schema.columns
           where table_schema = 'main' and table_catalog = current_database()
           group by table_name""").fetchall()
    shapes = dict(columns)
    return json.dumps([analytics.bucket_type_ddl(), [[name, shapes.get(name)] for name in names]])


def _file_mark(path: Path, key: str) -> str:
    """The analysts' file as written for `key`: changed in any way since (an analyst who wrote to it),
    the mark differs."""
    stat = path.stat()
    return json.dumps({"key": key, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino})


def _write_analyst_db(root: Path, names: list[str], key: str) -> None:
    """Build the analysts' DuckDB file next to the old one, then rename it over it.

    The file holds no data, only views, macros and comments: the same key (`_analyst_db_key`, with
    `release_fingerprint`) gives an equivalent file. So the file in place is kept when `ANALYST_MARK`
    says it was written for this key and has not changed since (a run after a run), and otherwise
    the bytes of the last file this process built for the key are written again. Building it took
    0.6-0.7 s of a publish of about 1 s on a small database (writing the bytes again: publish
    0.30-0.33 s).
    """
    key = hashlib.sha256(f"{release_fingerprint()}\0{key}".encode()).hexdigest()
    target, mark = root / ANALYST_DB, root / ANALYST_MARK
    try:
        if mark.read_text(encoding="utf-8") == _file_mark(target, key):
            return
    except (OSError, UnicodeDecodeError):
        pass  # no file or no mark yet: written below
    mark.unlink(missing_ok=True)
    tmp = root / f"{_TMP_PREFIX}{ANALYST_DB}"
    for stale in (tmp, Path(f"{tmp}.wal")):
        stale.unlink(missing_ok=True)
    if key in _built_analyst_db:
        with open(tmp, "wb") as out:
            out.write(_built_analyst_db[key])
    else:
        _build_analyst_db(tmp, root, names)
        _built_analyst_db.clear()
        _built_analyst_db[key] = tmp.read_bytes()
    fsync_path(tmp)
    os.replace(tmp, target)
    tmp_mark = root / f"{_TMP_PREFIX}{ANALYST_MARK}"
    tmp_mark.write_text(_file_mark(target, key), encoding="utf-8")
    os.replace(tmp_mark, mark)


def _build_analyst_db(tmp: Path, root: Path, names: list[str]) -> None:
    acon = duckdb.connect()  # in memory; the file is attached in the storage version older readers know
    try:
        acon.execute(f"attach {_literal(tmp)} as analyst (storage_version '{STORAGE_VERSION}')")
        acon.execute("use analyst")
        # a view is bound when it is created: here analyst_dir() must find the new export
        acon.execute(f"set variable {DIR_VARIABLE} = {_literal(root.absolute())}")
        acon.execute("begin")  # one commit for a few hundred statements (views, macros, comments)
        acon.execute(analytics.bucket_type_ddl())
        acon.execute(ANALYST_DIR_MACRO)
        acon.execute(f"comment on macro analyst_dir is {_literal(_ANALYST_DIR_COMMENT)}")
        for name in names:
            # DDL takes no bound parameters: the name comes from the catalog (a plain identifier)
            columns, order = _VIEW_SHAPES.get(name, ("*", ""))
            acon.execute(f"create view \"{name}\" as select {columns} "
                         f"from read_parquet(analyst_dir() || '/{CURRENT}/{name}.parquet') {order}")
        create_history_macros(acon)  # the status rules and levels_done, which the analytics macros use
        analytics.ensure_analytics(acon, kinds=("macro",))
        catalog.apply_comments(acon, own_transaction=False)
        acon.execute("commit")
        acon.execute("use memory")
        acon.execute("detach analyst")  # checkpoints: the file is complete, no WAL beside it
    finally:
        acon.close()


def _literal(value) -> str:
    """A SQL string literal (for DDL, which takes no bound parameters)."""
    return "'" + str(value).replace("'", "''") + "'"


def _remove_old(root: Path, keep: set[str | None]) -> None:
    for path in root.iterdir():
        if path.is_symlink() or not path.is_dir():
            continue
        if (_EXPORT.match(path.name) and path.name not in keep) or path.name.startswith(_TMP_PREFIX):
            shutil.rmtree(path, ignore_errors=True)


def _fsync_folder(folder: Path, *, files: bool = False) -> None:
    """Make renames durable (and, with `files`, the folder's files): a crash after the switch must not
    leave `current` pointing at files that never reached the disk."""
    if files:
        for path in folder.iterdir():
            fsync_path(path)
    fsync_path(folder)
