"""The analysts' notebook (notebooks/analyst.py, marimo) on a published copy: its cells run headless, and
its figures are the daily report's, from the same views and macros."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from datetime import date
from decimal import Decimal as D
from pathlib import Path

import duckdb
import pytest

from analytics_world import FIRST_DAY, LAST_DAY, company
from pipeline.config.settings import PROJECT_ROOT
from pipeline.reporting import daily_report
from pipeline.reporting.publish import ANALYST_DB

NOTEBOOK = PROJECT_ROOT / "notebooks" / "analyst.py"
MARIMO = Path(sys.executable).parent / "marimo"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The hand-worked company of tests/analytics_world.py, run live and published; the analyst folder
    copied elsewhere, as an analyst would take it to a laptop."""
    root = tmp_path_factory.mktemp("analyst_notebook")
    settings = company(root / "company").run(FIRST_DAY, LAST_DAY, dispatch=True)
    copy = root / "laptop" / "analyst"
    shutil.copytree(settings.analyst_dir, copy, symlinks=True)
    return settings, copy / ANALYST_DB


@pytest.fixture(scope="module")
def notebook():
    spec = importlib.util.spec_from_file_location("analyst_notebook", NOTEBOOK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def _run(app, db: Path, **overrides) -> dict:
    _, defs = app.run(defs={"db_path": db, **overrides})
    defs["con"].close()
    return defs


def _report(settings, day: date) -> daily_report.ReportData:
    with duckdb.connect(str(settings.database), read_only=True) as con:
        return daily_report.gather(con, day)


def test_today_overdue_highest_level_and_recovery(world, notebook):
    settings, db = world
    defs = _run(notebook, db)
    assert (defs["first_day"], defs["latest_day"]) == (date(2026, 4, 10), date(2026, 5, 5))
    assert (defs["as_of_day"], defs["paid_within_days"]) == (date(2026, 5, 5), 30)  # the controls' defaults
    assert [(r["currency"], r["bucket"], r["receivables"], r["open_amount"]) for r in defs["aging_today"]] == [
        ("EUR", "1-30", 1, D("60.00")), ("EUR", "61-90", 1, D("80.00")),
        ("USD", "not due", 1, D("50.00")), ("USD", "31-60", 1, D("70.00")), ("USD", "over 90", 1, D("300.00"))]
    assert defs["overdue_today"] == [{"currency": "EUR", "receivables": 2, "open_amount": D("140.00")},
                                     {"currency": "USD", "receivables": 2, "open_amount": D("370.00")}]
    assert [(r["case_id"], r["customer_name"], r["contract_id"], r["current_level"], r["current_level_name"],
             r["currency"], r["amount_owed"], r["overdue_amount"], r["fees_total"]) for r in defs["highest_level"]] == [
        ("ct-CT3-20260410", "Customer CU3", "CT3", 2, "Level 2", "USD", D("420.00"), D("370.00"), D("4.00")),
        ("ct-CT4-20260410", "Customer CU4", "CT4", 2, "Level 2", "EUR", D("80.00"), D("80.00"), D("5.00"))]
    assert [(r["level_no"], r["currency"], r["cases_reached"], r["payments"], r["amount_recovered"])
            for r in defs["recovered"]] == [
        (1, "EUR", 4, 1, D("100.00")), (1, "USD", 1, 0, D("0.00")), (2, "EUR", 2, 1, D("205.00")),
        (2, "USD", 1, 0, D("0.00"))]
    # the daily report of the same day: aging, and cash recovered within 30 days after each level
    report = _report(settings, date(2026, 5, 5))
    assert [(r["currency"], r["bucket"], r["receivables"], r["open_amount"]) for r in defs["aging_today"]] == \
        report.aging
    assert [(r["policy_id"], r["level_no"], r["level_name"], r["currency"], r["cases_reached"], r["amount_recovered"])
            for r in defs["recovered"]] == [
        (o["policy_id"], o["level_no"], o["level_name"], o["currency"], o["cases_reached"], o["amount_recovered"])
        for o in report.outcomes]


def test_recovery_within_n_days_is_level_outcomes_for_7_and_14(world, notebook):
    settings, db = world
    report = _report(settings, date(2026, 5, 5))
    for days, column in ((7, "amount_recovered_7_days"), (14, "amount_recovered_14_days")):
        defs = _run(notebook, db, paid_within_days=days)
        assert [r["amount_recovered"] for r in defs["recovered"]] == [o[column] for o in report.outcomes]
    # 3 days: P1 (3 days after CT1's level 1) counts, P2 (4 days after CT2's level 2) does not
    defs = _run(notebook, db, paid_within_days=3)
    assert [(r["level_no"], r["currency"], r["payments"], r["amount_recovered"]) for r in defs["recovered"]] == [
        (1, "EUR", 1, D("100.00")), (1, "USD", 0, D("0.00")), (2, "EUR", 0, D("0.00")), (2, "USD", 0, D("0.00"))]


def test_a_past_day_is_the_daily_report_of_that_day(world, notebook):
    settings, db = world
    defs = _run(notebook, db, as_of_day=date(2026, 4, 20))
    report = _report(settings, date(2026, 4, 20))
    assert [tuple(r.values()) for r in defs["levels_on_day"]] == report.open_levels == [("default", 1, "Level 1", 3)]
    assert [tuple(r.values()) for r in defs["aging_on_day"]] == report.aging == [
        ("EUR", "not due", 1, D("60.00")), ("EUR", "1-30", 1, D("200.00")), ("EUR", "31-60", 1, D("80.00")),
        ("USD", "not due", 1, D("50.00")), ("USD", "31-60", 1, D("70.00")), ("USD", "61-90", 1, D("300.00"))]
    assert defs["key_figures_on_day"] == [
        {k: f[k] for k in ("currency", "policy_id", "cases_opened", "cases_closed", "cases_open", "fees_earned")}
        for f in report.key_figures] == [
        {"currency": "EUR", "policy_id": "default", "cases_opened": 3, "cases_closed": 1, "cases_open": 2,
         "fees_earned": D("0.00")},
        {"currency": "USD", "policy_id": "default", "cases_opened": 1, "cases_closed": 0, "cases_open": 1,
         "fees_earned": D("0.00")}]
    assert [(r["case_id"], r["status"], r["current_level"]) for r in defs["cases_on_day"]] == [
        ("ct-CT1-20260410", "closed", 1), ("ct-CT2-20260410", "open", 1), ("ct-CT3-20260410", "open", 1),
        ("ct-CT4-20260410", "open", 1)]


def test_the_notebook_runs_headless_from_another_directory(world, tmp_path):
    """`marimo export html` runs every cell, as `marimo run` would, and writes what it shows."""
    _, db = world
    out = tmp_path / "analyst.html"
    done = subprocess.run([str(MARIMO), "export", "html", "--no-sandbox", str(NOTEBOOK), "-o", str(out), "--",
                           "--db", str(db)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    html = out.read_text(encoding="utf-8")
    for shown in ("Overdue per currency and bucket, 2026-05-05", "Customer CU3", "420.00", "370.00",
                  "Cash recovered within 30 days after each level", "205.00"):
        assert shown in html, shown
    # headless as a script, and a wrong path is an error, not a quiet stop
    assert subprocess.run([sys.executable, str(NOTEBOOK), "--db", str(db)], cwd=tmp_path, capture_output=True,
                          timeout=300, stdin=subprocess.DEVNULL).returncode == 0
    failed = subprocess.run([sys.executable, str(NOTEBOOK), "--db", str(tmp_path / "missing.duckdb")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert failed.returncode == 1 and f"No analysts' copy at `{tmp_path / 'missing.duckdb'}`" in failed.stderr
