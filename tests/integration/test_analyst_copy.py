"""The analysts' copy read by an older, independent DuckDB: the CLI the project pins (duckdb-cli 1.4 in
uv.lock, installed by `make setup` into .venv/bin/duckdb), on a copy of the analyst folder somewhere
else, opened from another working directory, with the original folder gone."""

from __future__ import annotations

import csv
import io
import os
import select
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from analytics_world import FIRST_DAY, LAST_DAY, company
from pipeline.engine import run as run_mod
from pipeline.reporting.publish import ANALYST_DB, ANALYST_MARK, exported_names
from pipeline.warehouse.ledger_rules import aging_buckets
from world import World, policy

CLI = Path(sys.executable).parent / "duckdb"  # the duckdb-cli wheel's binary, beside this venv's python
CLI_VERSION = "v1.4.4"  # pyproject.toml: duckdb-cli==1.4.4.post2


def cli(db: Path | str | None, sql: str, *, cwd: Path) -> tuple[int, list[list[str]], str]:
    """Run SQL in the pinned CLI on `db` read-only (None: an in-memory session), without ~/.duckdbrc;
    returns (exit code, CSV rows, stderr)."""
    args = [str(CLI), "-init", "/dev/null", "-csv", "-noheader"]
    args += ["-c", sql] if db is None else ["-readonly", str(db), "-c", sql]
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    return done.returncode, list(csv.reader(io.StringIO(done.stdout))), done.stderr


def text(value) -> str:
    """A value as the CLI's CSV prints it."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The hand-worked company of tests/analytics_world.py, run live and published; then its analyst
    folder is copied to another place (the `current` link copied as a link) and the original is
    moved away, so nothing can still point at it."""
    root = tmp_path_factory.mktemp("analyst_copy")
    settings = company(root / "company").run(FIRST_DAY, LAST_DAY, dispatch=True)
    laptop = root / "laptop" / "dunning"
    shutil.copytree(settings.analyst_dir, laptop, symlinks=True)
    settings.analyst_dir.rename(root / "moved-away")
    elsewhere = root / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    return settings, laptop, elsewhere


def test_the_pinned_cli_is_an_older_duckdb_that_refuses_the_pipelines_own_database(world):
    settings, laptop, elsewhere = world
    assert CLI.is_file(), f"{CLI} missing: `make setup` installs duckdb-cli from uv.lock"
    assert cli(None, "select library_version from pragma_version()", cwd=elsewhere)[:2] == \
        (0, [[CLI_VERSION]])
    code, _, err = cli(settings.database, "select 1", cwd=elsewhere)
    assert code == 1 and "Trying to read a database file with version number" in err


def test_a_copy_of_the_folder_opens_from_another_directory_with_every_view(world):
    settings, laptop, elsewhere = world
    assert sorted(p.name for p in laptop.iterdir()) == [ANALYST_MARK, "2026-05-05-run1", "current", ANALYST_DB]
    relative = os.path.relpath(laptop / ANALYST_DB, elsewhere)  # ../../laptop/dunning/dunning_analyst.duckdb
    assert relative == os.path.join("..", "..", "laptop", "dunning", ANALYST_DB)
    # the folder of the views is the file's own, as given: relative to the directory the CLI runs in
    assert cli(relative, "select analyst_dir()", cwd=elsewhere)[:2] == (0, [[os.path.join("..", "..", "laptop", "dunning")]])
    assert cli(laptop / ANALYST_DB, "select analyst_dir()", cwd=elsewhere)[:2] == (0, [[str(laptop)]])
    assert cli(ANALYST_DB, "select analyst_dir()", cwd=laptop)[:2] == (0, [["."]])
    with duckdb.connect(str(settings.database), read_only=True) as con:
        names = exported_names(con)
        live = [[n, str(con.execute(f'select count(*) from "{n}"').fetchone()[0])] for n in names]
    counts = " union all ".join(f"select '{n}', count(*) from \"{n}\"" for n in names)
    code, rows, err = cli(relative, counts, cwd=elsewhere)
    assert (code, err) == (0, "") and rows == live and len(rows) == 44  # with dispatch_snapshots
    assert dict(map(tuple, rows))["run_log"] == "26" and dict(map(tuple, rows))["action_ledger"] == "8"


def test_aging_buckets_sort_in_the_seeds_order(world):
    _, laptop, elsewhere = world
    assert aging_buckets() == ("not due", "1-30", "31-60", "61-90", "over 90")
    assert cli(laptop / ANALYST_DB, "select unnest(enum_range(null::aging_buckets))", cwd=elsewhere)[1] == \
        [[b] for b in aging_buckets()]
    # sorted by bucket, "not due" comes first, not between 61-90 and over 90
    assert cli(laptop / ANALYST_DB, "select currency, bucket, receivables, open_amount from aging "
                                    "order by currency desc, bucket", cwd=elsewhere)[1] == [
        ["USD", "not due", "1", "50.00"], ["USD", "31-60", "1", "70.00"], ["USD", "over 90", "1", "300.00"],
        ["EUR", "1-30", "1", "60.00"], ["EUR", "61-90", "1", "80.00"]]
    assert cli(laptop / ANALYST_DB, "select bucket, sum(open_amount) from aging_as_of('2026-04-20') "
                                    "group by bucket order by bucket", cwd=elsewhere)[1] == [
        ["not due", "110.00"], ["1-30", "200.00"], ["31-60", "150.00"], ["61-90", "300.00"]]
    # the view's own order: currency, then bucket
    assert cli(laptop / ANALYST_DB, "select currency, bucket from aging", cwd=elsewhere)[1] == [
        ["EUR", "1-30"], ["EUR", "61-90"], ["USD", "not due"], ["USD", "31-60"], ["USD", "over 90"]]


def test_open_cases_name_contract_level_and_amount_owed_today(world):
    _, laptop, elsewhere = world
    assert cli(laptop / ANALYST_DB, "select as_of, case_id, customer_name, contract_id, currency, current_level, "
                                    "current_level_name, open_receivables, amount_owed, overdue_amount, "
                                    "oldest_due_date, fees_total from open_cases", cwd=elsewhere)[1] == [
        # CT3: I3 300.00 (due 02-01) + I5 70.00 (03-15) overdue, I4 50.00 due 05-20
        ["2026-05-05", "ct-CT3-20260410", "Customer CU3", "CT3", "USD", "2", "Level 2", "3", "420.00", "370.00",
         "2026-02-01", "4.00"],
        ["2026-05-05", "ct-CT4-20260410", "Customer CU4", "CT4", "EUR", "2", "Level 2", "1", "80.00", "80.00",
         "2026-02-20", "5.00"],
        ["2026-05-05", "ct-CT5-20260421", "Customer CU5", "CT5", "EUR", "1", "Level 1", "1", "60.00", "60.00",
         "2026-04-20", "0.00"],
    ]


def test_state_as_of_a_day_after_the_last_day_computed_is_an_error(world):
    _, laptop, elsewhere = world
    assert cli(laptop / ANALYST_DB, "select count(*) from state_as_of('2026-05-05')", cwd=elsewhere)[:2] == (0, [["5"]])
    code, rows, err = cli(laptop / ANALYST_DB, "select count(*) from state_as_of('2026-05-06')", cwd=elsewhere)
    assert (code, rows) == (1, [])
    assert "state_as_of(2026-05-06): that day is after the last day computed, 2026-05-05; " \
           "its state is not known yet" in err


def test_every_macro_gives_the_pipelines_rows_in_the_old_client(world):
    settings, laptop, elsewhere = world
    queries = ["select * from state_as_of('2026-04-20')",
               "select * from aging_as_of('2026-04-20')",
               "select * from open_receivables_as_of('2026-04-20') order by invoice_id",
               "select * from key_figures_as_of('2026-04-28')",
               "select * from level_outcomes_as_of('2026-04-27')",
               "select * from recovered_after_level('2026-05-05', 14)",
               "select * from level_outcomes", "select * from key_figures",
               "select * from ledger_with_provenance", "select * from open_cases"]
    with duckdb.connect(str(settings.database), read_only=True) as con:
        expected = [[[text(v) for v in row] for row in con.execute(q).fetchall()] for q in queries]
    got = [cli(laptop / ANALYST_DB, q, cwd=elsewhere) for q in queries]
    assert [(code, err) for code, _, err in got] == [(0, "")] * len(queries)
    assert [rows for _, rows, _ in got] == expected
    assert [len(rows) for rows in expected] == [4, 6, 6, 2, 4, 8, 4, 2, 8, 3]


def test_a_session_that_attached_the_file_names_the_folder_with_a_variable(world):
    _, laptop, elsewhere = world
    attach = f"attach '{laptop / ANALYST_DB}' as analyst (read_only); "
    code, _, err = cli(None, attach + "select count(*) from analyst.run_log", cwd=elsewhere)
    assert code == 1 and 'No files found that match the pattern "./current/run_log.parquet"' in err
    assert cli(None, attach + f"set variable dunning_analyst_dir = '{laptop}'; "
                              "select count(*) from analyst.run_log", cwd=elsewhere)[:2] == (0, [["26"]])


def test_an_open_session_of_the_old_client_reads_each_new_export(tmp_path):
    """The publish semantics hold for the old client too: its session keeps its file, and through
    `current` it reads the next export with its next query; the pipeline is never blocked by it."""
    w = World(tmp_path, policy([("due_date", 3, 7)]))
    w.customer().contract().invoice("I1", "100.00", "2026-04-26", "2026-05-10")
    settings = w.write()
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        run_mod.run_range(con, date(2026, 5, 15), date(2026, 5, 16), settings, send=False)
        session = subprocess.Popen([str(CLI), "-init", "/dev/null", "-readonly", "-csv", "-noheader",
                                    str(settings.analyst_dir / ANALYST_DB)], cwd=tmp_path, text=True,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            def ask(sql: str) -> str:
                session.stdin.write(sql + ";\n")
                session.stdin.flush()
                # one line per answer; an error would go to stderr: never wait for ever
                assert select.select([session.stdout], [], [], 60)[0], f"no answer to {sql}"
                return session.stdout.readline().strip()

            assert ask("select count(*) || ' ' || max(as_of) from run_log") == "2 2026-05-16"
            run_mod.run_range(con, date(2026, 5, 17), date(2026, 5, 18), settings, send=False)
            assert ask("select count(*) || ' ' || max(as_of) from run_log") == "4 2026-05-18"
            assert ask("select string_agg(case_id || ':' || current_level, ',') from cases") == "ct-CT1-20260515:1"
            run_mod.run_range(con, date(2026, 5, 19), date(2026, 5, 19), settings, send=False)
            assert ask("select count(*) from state_as_of('2026-05-19')") == "1"
        finally:
            session.stdin.close()
            session.wait(timeout=60)
    assert (session.returncode, session.stderr.read()) == (0, "")
    assert sorted(p.name for p in settings.analyst_dir.iterdir()) == [ANALYST_MARK,
        "2026-05-18-run1", "2026-05-19-run1", "current", ANALYST_DB]
