"""The analysts' copy: Parquet exports switched atomically, a DuckDB file of views that never blocks a run."""

from __future__ import annotations

import os
from datetime import date

import duckdb
import pytest

from pipeline.warehouse import analytics
from pipeline.warehouse import catalog
from pipeline.engine import run as run_mod
from pipeline.reporting.publish import ANALYST_DB, ANALYST_MARK, exported_names, publish
from world import World, policy

DAYS = [date(2026, 5, d) for d in range(15, 21)]
COMMENTS = """select table_name, comment, null as column_name from duckdb_tables() where list_contains($1, table_name)
              union all select view_name, comment, null from duckdb_views() where list_contains($1, view_name)
              union all select table_name, comment, column_name from duckdb_columns()
              where list_contains($1, table_name) and database_name = current_database()
              order by all"""


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path, policy([("due_date", 3, 7), ("previous_level", 3, 7, {"EUR": "5.00"})]))
    w.customer().contract().invoice("I1", "100.00", "2026-04-26", "2026-05-10")
    w.customer("CU2").contract("CT2", "CU2").invoice("I2", "40.00", "2026-04-20", "2026-05-01", "CT2", "CU2")
    w.payment("P1", "40.00", "2026-05-17", "CT2")
    return w


def _run(con, settings, first, last):
    run_mod.run_range(con, first, last, settings, send=False)  # live days, planned, published


def _exports(settings):
    return sorted(p.name for p in settings.analyst_dir.iterdir())


def test_publish_after_each_run_keeps_an_open_analyst_session_working(world):
    settings = world.write()
    root = settings.analyst_dir
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        _run(con, settings, DAYS[0], DAYS[2])
        assert _exports(settings) == [ANALYST_MARK, "2026-05-17-run1", "current", ANALYST_DB]
        assert os.readlink(root / "current") == "2026-05-17-run1"

        # an analyst opens the file (read-write, DuckDB's default: it locks that file) ...
        analyst = duckdb.connect(str(root / ANALYST_DB))
        assert analyst.execute("select count(*) from run_log").fetchall() == [(3,)]
        assert analyst.execute("select case_id, status, current_level from state_as_of('2026-05-17') "
                               "order by 1").fetchall() == [
            ("ct-CT1-20260515", "open", 1), ("ct-CT2-20260515", "closed", 1)]

        # ... and the next run publishes anyway: the pipeline never opens the analyst's file
        _run(con, settings, DAYS[3], DAYS[4])
        assert _exports(settings) == [ANALYST_MARK, "2026-05-17-run1", "2026-05-19-run1", "current", ANALYST_DB]
        # the open session reads the new export through `current` with its next query
        assert analyst.execute("select count(*), max(as_of) from run_log").fetchall() == [(5, date(2026, 5, 19))]
        assert analyst.execute("select case_id, current_level from cases where is_open").fetchall() == \
            con.execute("select case_id, current_level from cases where is_open").fetchall() == [
                ("ct-CT1-20260515", 1)]

        _run(con, settings, DAYS[5], DAYS[5])  # the next-but-one publish removes the first export
        assert _exports(settings) == [ANALYST_MARK, "2026-05-19-run1", "2026-05-20-run1", "current", ANALYST_DB]
        assert analyst.execute("select count(*) from run_log").fetchall() == [(6,)]
        assert analyst.execute("select bucket, open_amount::varchar from aging_as_of('2026-05-20')").fetchall() == \
            [("1-30", "100.00")]
        analyst.close()

        _run(con, settings, DAYS[5], DAYS[5])  # the same day again: a new run number
        assert os.readlink(root / "current") == "2026-05-20-run2"
        publish(con, settings)  # published again without a run: the folder is never rewritten
        assert os.readlink(root / "current") == "2026-05-20-run2-2"
        assert _exports(settings) == [ANALYST_MARK, "2026-05-20-run2", "2026-05-20-run2-2", "current", ANALYST_DB]


def test_parquet_files_hold_every_documented_table_and_view_row_for_row(world):
    settings = world.run("2026-05-15", "2026-05-18", dispatch=True)  # live days publish the copy
    folder = settings.analyst_dir / "current"
    with duckdb.connect(str(settings.database), read_only=True) as con:
        names = exported_names(con)
        live = {n: con.execute(f'select count(*) from "{n}"').fetchall()[0][0] for n in names}
        ledger = con.execute("select * from action_ledger order by action_key").fetchall()
        comments = con.execute(COMMENTS, [names]).fetchall()
    expected = sorted(n for n, (kind, _, _) in catalog.CATALOG.items() if kind != "table macro")
    assert sorted(names) == [n for n in expected if n in live]
    assert {"stg_invoices", "stg_payments", "quarantine", "cases", "key_figures", "level_outcomes",
            "ledger_with_provenance", "aging", "contract_balances"} <= set(names)
    assert sorted(p.stem for p in folder.iterdir()) == sorted(names)
    with duckdb.connect() as mem:
        exported = {n: mem.execute("select count(*) from read_parquet(?)", [str(folder / f"{n}.parquet")])
                    .fetchall()[0][0] for n in names}
    assert exported == live and live["run_log"] == 4 and live["contract_balances"] > 0
    with duckdb.connect(str(settings.analyst_dir / ANALYST_DB), read_only=True) as analyst:
        # same values and types (Parquet keeps DECIMAL(18,2) and DATE)
        assert analyst.execute("select * from action_ledger order by action_key").fetchall() == ledger
        # the documentation travels with the copy: the same comments on every view and column
        assert analyst.execute(COMMENTS, [names]).fetchall() == comments
        macros = analyst.execute("select function_name, comment from duckdb_functions() where "
                                 "function_type = 'table_macro' and database_name = current_database() "
                                 "order by 1").fetchall()
    # the analytics macros, and the macros over the ledger they read (sql/schema/020_levels_done_macro.sql):
    # levels_done, and case_levels_done which state_as_of reads
    assert macros == sorted([(o.name, catalog.CATALOG[o.name][1]) for o in analytics.OBJECTS if o.kind == "macro"]
                            + [(name, catalog.CATALOG[name][1]) for name in ("case_levels_done", "levels_done")])


def test_the_analyst_file_stores_no_path_and_is_written_in_storage_version_1_4(world, monkeypatch):
    settings = world.run("2026-05-15", "2026-05-17", dispatch=True)
    analyst_db = settings.analyst_dir / ANALYST_DB
    # no absolute path anywhere in the file (the views used to name <analyst_dir>/current/... in full)
    assert str(settings.analyst_dir).encode() not in analyst_db.read_bytes()
    assert sorted(p.name for p in settings.analyst_dir.iterdir()) == [ANALYST_MARK, "2026-05-17-run1", "current", ANALYST_DB]
    with duckdb.connect(str(analyst_db), read_only=True) as analyst:
        assert analyst.execute("select tags from duckdb_databases() where database_name = current_database()"
                               ).fetchall() == [({"storage_version": "v1.4.0+"},)]
        views = dict(analyst.execute("select view_name, sql from duckdb_views() where not internal").fetchall())
        assert views["run_log"] == ("CREATE VIEW run_log AS SELECT * FROM "
                                    "read_parquet((analyst_dir() || '/current/run_log.parquet'));")
        assert views["aging"] == ("CREATE VIEW aging AS SELECT * REPLACE (CAST(bucket AS aging_buckets) AS bucket) "
                                  "FROM read_parquet((analyst_dir() || '/current/aging.parquet')) "
                                  "ORDER BY currency, bucket;")
        assert all(f"read_parquet((analyst_dir() || '/current/{name}.parquet'))" in sql
                   for name, sql in views.items()) and len(views) == 44  # every table and view of the catalog
        # the folder of the file itself, as the client was given the file
        assert analyst.execute("select analyst_dir()").fetchall() == [(str(settings.analyst_dir),)]
    monkeypatch.chdir(settings.analyst_dir)  # opened by its bare name (this client makes the path absolute)
    with duckdb.connect(ANALYST_DB, read_only=True) as analyst:
        assert analyst.execute("select analyst_dir(), count(*) from run_log").fetchall() == [
            (str(settings.analyst_dir), 3)]


def test_a_file_written_again_from_the_last_build_follows_each_databases_columns(tmp_path):
    """The analysts' file is built once per shape in a process and its bytes written again after
    (publish._write_analyst_db): a database whose input carries an extra column gets a file of its own,
    and each file's views have exactly its database's columns."""
    def published(name: str, **invoice_extra) -> tuple[bytes, list[str]]:
        w = World(tmp_path / name, policy([("due_date", 3, 7)]))
        w.customer().contract().invoice("I1", "100.00", "2026-04-26", "2026-05-10", **invoice_extra)
        settings = w.write()
        with run_mod.connect(settings.database) as con:
            run_mod.load_inputs(con, settings)
            _run(con, settings, date(2026, 5, 15), date(2026, 5, 15))
        analyst_db = settings.analyst_dir / ANALYST_DB
        with duckdb.connect(str(analyst_db), read_only=True) as analyst:
            columns = [r[0] for r in analyst.execute("describe stg_invoices").fetchall()]
            assert analyst.execute("select invoice_id from stg_invoices").fetchall() == [("I1",)]
        return analyst_db.read_bytes(), columns

    plain, plain_columns = published("a")
    again, again_columns = published("b")
    extra, extra_columns = published("c", sales_region="north")
    assert again == plain and again_columns == plain_columns  # the same shape: the same file
    assert extra_columns == plain_columns + ["sales_region"] and extra != plain
    last, last_columns = published("d")
    assert last_columns == plain_columns


def test_a_publish_keeps_the_analysts_file_it_would_write_again_and_replaces_one_changed_since(world, monkeypatch):
    """Views, macros and comments only: a file written for the same tables, columns, code and DuckDB
    is kept (ANALYST_MARK); one an analyst wrote to, or one of another release, is written anew."""
    from pipeline.reporting import publish as publish_mod

    settings = world.write()
    analyst_db = settings.analyst_dir / ANALYST_DB
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        _run(con, settings, DAYS[0], DAYS[0])
        first = analyst_db.stat().st_ino
        publish_mod._built_analyst_db.clear()  # as in a new process: nothing built in this one yet
        _run(con, settings, DAYS[1], DAYS[1])
        assert analyst_db.stat().st_ino == first  # kept: the same file would have been written
        assert os.readlink(settings.analyst_dir / "current") == "2026-05-16-run1"

        os.utime(analyst_db, ns=(0, 0))  # changed since it was written (an analyst's session wrote to it)
        _run(con, settings, DAYS[2], DAYS[2])
        rewritten = analyst_db.stat().st_ino
        assert rewritten != first

        monkeypatch.setattr(publish_mod, "release_fingerprint", lambda: "another release")
        _run(con, settings, DAYS[3], DAYS[3])
        assert analyst_db.stat().st_ino != rewritten
    with duckdb.connect(str(analyst_db), read_only=True) as analyst:
        assert analyst.execute("select count(*), max(as_of) from run_log").fetchall() == [(4, date(2026, 5, 18))]
