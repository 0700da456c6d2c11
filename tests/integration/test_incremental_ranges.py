"""A range computes each day from the day before plus that day's changes (pipeline/warehouse/range_days.py):
a day recomputes exactly the customers something happened to, a day nothing happened runs no model,
and either way the result is the one a whole day gives (the days one by one)."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import pytest

from pipeline.engine import run as run_mod
from pipeline.engine.simulate import simulate
from pipeline.warehouse import catalog, range_days, sql_runner
from pipeline.warehouse.range_days import Computed
from world import World, policy, query

START, END = date(2026, 3, 1), date(2026, 3, 21)
BALANCES = "select * from contract_balances order by as_of, contract_id"
LEDGER = "select * exclude (status_changed_on) from action_ledger order by action_key"
OPEN_RECEIVABLES = "select * from open_receivables order by invoice_id"


def _day(n: int) -> str:
    return (START + timedelta(days=n)).isoformat()


def _quiet_world(root) -> tuple[World, dict[date, set[str]]]:
    """Customers whose invoices fall due after the range: nothing of theirs changes by itself within it,
    so a day's recomputed customers are exactly those with an invoice issued or a payment booked that day."""
    w = World(root, policy([("due_date", 3, 7)], grace_days=2))
    touched: dict[date, set[str]] = {}
    for c in range(12):
        customer = f"CU{c:02d}"
        w.customer(customer).contract(f"CT{c:02d}", customer)
        if c % 3 == 0:  # a second contract: the customer is recomputed whole
            w.contract(f"CT{c:02d}b", customer)
        issued = 1 + (c * 7) % 18
        w.invoice(f"I{c:02d}", f"{100 + c}.00", _day(issued), "2026-05-01", f"CT{c:02d}", customer)
        touched.setdefault(START + timedelta(days=issued), set()).add(customer)
        if c % 2 == 0:  # paid (in part) some days later
            paid = min(issued + 1 + c % 4, 19)
            w.payment(f"P{c:02d}", "40.00", _day(paid), f"CT{c:02d}", invoice_id=f"I{c:02d}")
            touched.setdefault(START + timedelta(days=paid), set()).add(customer)
    w.invoice("I-old", "50.00", "2026-01-01", "2026-01-15", "CT00", "CU00")  # a case open through the range
    w.payment("P-old", "50.00", "2026-03-18", "CT00", invoice_id="I-old")    # ... closed by this payment
    touched.setdefault(date(2026, 3, 18), set()).add("CU00")
    return w, touched


def _simulated(settings, on_day=None):
    results = []
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        run_mod.run_range(con, START, END, settings, mode=run_mod.RunMode.SIMULATE,
                          on_day=lambda r: (results.append(r), on_day and on_day(con, r)))
    return results


def _whole_days(settings):
    """The same days, each computed whole (no RangeDays): what every range day must equal."""
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        for day in run_mod.days(START, END):
            run_mod.plan_day(con, day, run_mod.RunMode.SIMULATE)


def _assert_same_as_whole_days(w: World, root) -> None:
    """The range's ledger, every day's balances and the last day's open receivables equal those of the
    same world's days computed whole."""
    whole = World(root, w.policy_doc)
    whole.rows = w.rows
    _whole_days(whole.write())
    assert query(w.write(), LEDGER) == query(whole.write(), LEDGER)
    assert query(w.write(), BALANCES) == query(whole.write(), BALANCES)
    open_receivables = query(w.write(), OPEN_RECEIVABLES)
    assert open_receivables == query(whole.write(), OPEN_RECEIVABLES)
    assert {r[0] for r in open_receivables} == {END}


def test_a_day_recomputes_exactly_the_customers_touched_that_day(tmp_path):
    w, touched = _quiet_world(tmp_path / "range")
    recomputed = {}

    def seen(con, result):
        if result.computed is Computed.SOME:
            recomputed[result.as_of] = {r[0] for r in con.execute(
                "select customer_id from range_recomputed_customers").fetchall()}

    results = _simulated(w.write(), seen)
    by_day = {r.as_of: r for r in results}
    assert by_day[START].computed is Computed.ALL
    # the case of CU00 opens and acts on the first day, so CU00 is looked at again the day after it;
    # every other day, the last one too, is the customers touched that day, or nobody
    acting = {START + timedelta(days=1)}
    assert not touched.get(END)  # the last day recomputes nobody, yet writes everyone's open receivables
    for day in run_mod.days(START + timedelta(days=1), END):
        expected = set(touched.get(day, set()))
        if day in acting:
            expected.add("CU00")
        result = by_day[day]
        if not expected:
            assert result.computed is Computed.NONE, day
            assert result.model_seconds == {} and result.customers_computed == 0
        else:
            assert result.computed is Computed.SOME, day
            assert recomputed[day] == expected, day
            assert result.customers_computed == len(expected)
    assert sum(r.computed is Computed.NONE for r in results) >= 3

    _assert_same_as_whole_days(w, tmp_path / "whole")


def test_a_customer_is_recomputed_on_the_days_its_own_results_name(tmp_path):
    """Nothing is booked in the range, yet the invoice falls due, grace ends, levels come due: each of
    those days recomputes the customer (range_next_changes), and the ledger is the whole days' ledger."""
    w = World(tmp_path / "range", policy([("due_date", 5, 3), ("previous_level", 4, 2, {"EUR": "5.00"})],
                                         grace_days=2, thresholds={"EUR": "1.00"}))
    w.customer("CU1").contract("CT1", "CU1").customer("CU2").contract("CT2", "CU2")
    w.invoice("I1", "120.00", "2026-02-20", "2026-03-04", "CT1", "CU1")
    w.invoice("I2", "80.00", "2026-02-20", "2026-04-30", "CT2", "CU2")  # due after the range: quiet
    results = {r.as_of: r for r in _simulated(w.write())}
    recomputed = sorted(d.day for d, r in results.items() if r.computed is Computed.SOME)
    # due 4 March: overdue from the 5th, past grace on the 7th (the case opens; its levels are known),
    # level 1 on the 9th,
    # level 2 on 9 + 3 (term) + 4 = the 16th; each action also wakes the day after it
    assert recomputed == [5, 7, 9, 10, 16, 17]
    assert all(r.customers_computed == 1 for r in results.values() if r.computed is Computed.SOME)

    _assert_same_as_whole_days(w, tmp_path / "whole")


def test_a_global_change_computes_the_day_whole_and_a_simulation_leaves_nothing_behind(tmp_path):
    w, _ = _quiet_world(tmp_path)
    w.suspension("global", "", "2026-03-05", "2026-03-09")
    settings = w.write()
    days = []
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        simulate(con, settings, settings.policy_file, START, END, name="quiet",
                 on_day=lambda r: days.append((r.as_of, r.computed)))
        temp = {r[0] for r in con.execute("select table_name from duckdb_tables() where temporary "
                                          "union all select view_name from duckdb_views() where temporary").fetchall()}
    kinds = dict(days)
    assert kinds[date(2026, 3, 9)] is Computed.ALL  # the end of a global suspension: everyone may act
    assert kinds[date(2026, 3, 5)] is not Computed.ALL  # its start only holds back what would happen
    narrowed = {t for t, _, _ in range_days.INPUTS} | {t for t, _ in range_days.STATE}
    ranks = {f"range_ranks_{t}" for t, _, _ in range_days.INPUTS}
    assert not temp & (narrowed | ranks | {"range_wake", "range_balances", "range_changes", "range_carried_spans", "range_flushed"})


def test_a_failed_day_leaves_no_narrowed_relation_behind(tmp_path, monkeypatch):
    w, _ = _quiet_world(tmp_path)
    settings = w.write()

    def boom(con, as_of, *a, **kw):
        if as_of == date(2026, 3, 8):
            con.execute("select * from no_such_table")  # fails inside the day's transaction
        return real(con, as_of, *a, **kw)

    real = run_mod.run_daily_models
    monkeypatch.setattr(run_mod, "run_daily_models", boom)
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        with pytest.raises(duckdb.CatalogException):
            run_mod.run_range(con, START, END, settings, mode=run_mod.RunMode.SIMULATE)
        shadows = con.execute("select count(*) from duckdb_views() where temporary and view_name in "
                              "('stg_invoices', 'stg_payments', 'case_register', 'action_ledger')").fetchall()[0][0]
        assert shadows == 0
        # the schema's own tables are what is written, and the days before the failure are there
        assert con.execute("select max(as_of) from run_log").fetchall()[0][0] == date(2026, 3, 7)
        # with every balance of theirs: the carried ones of the days before the next write (every
        # FLUSH_DAYS days) are written when the range stops
        assert range_days.FLUSH_DAYS > 7
        kept = con.execute(BALANCES).fetchall()
    monkeypatch.setattr(run_mod, "run_daily_models", real)
    whole = World(tmp_path / "whole", w.policy_doc)
    whole.rows = w.rows
    _whole_days(whole.write())
    expected = [r for r in query(whole.write(), BALANCES) if r[0] <= date(2026, 3, 7)]
    assert {r[0] for r in expected} == set(run_mod.days(START, date(2026, 3, 7)))
    assert kept == expected


@pytest.mark.parametrize("every", [1, 3])
def test_the_carried_balances_are_the_same_however_often_they_are_written(tmp_path, monkeypatch, every):
    monkeypatch.setattr(range_days, "FLUSH_DAYS", every)
    w, _ = _quiet_world(tmp_path / "range")
    results = _simulated(w.write())
    assert sum(r.computed is Computed.NONE for r in results) >= 3  # days whose balances are all carried
    _assert_same_as_whole_days(w, tmp_path / "whole")


def test_a_busy_day_inside_the_range_is_computed_whole_and_ends_every_carried_row(tmp_path, monkeypatch):
    """A day that recomputes more than WHOLE_DAY_SHARE of the customers runs whole: the rows carried
    up to the day before end there, and the next days carry from the whole day's rows."""
    monkeypatch.setattr(range_days, "WHOLE_DAY_MIN_CUSTOMERS", 0)
    monkeypatch.setattr(range_days, "WHOLE_DAY_SHARE", 1 / 12)  # more than one of the 12 customers
    w, touched = _quiet_world(tmp_path / "range")
    results = {r.as_of: r for r in _simulated(w.write())}
    busy = {day for day, customers in touched.items() if len(customers) > 1 and START < day < END}
    assert busy  # days on which two customers are touched (CU00 is recomputed the day after it acts)
    inner_whole = {day for day, r in results.items() if r.computed is Computed.ALL and START < day < END}
    assert busy <= inner_whole
    assert any(r.computed is Computed.NONE for day, r in results.items() if day > min(inner_whole))
    _assert_same_as_whole_days(w, tmp_path / "whole")


def test_the_range_models_are_documented_and_end_in_final():
    folder = sql_runner.SQL_ROOT / "range"
    files = {p.stem for p in folder.glob("*.sql")}
    documented = {d.name for d in catalog.MODEL_DOCS.values() if d.model.startswith("range/")}
    assert files == documented
    for name in files:
        sql = (folder / f"{name}.sql").read_text(encoding="utf-8")
        assert "final as (" in sql and sql.rstrip().endswith("select * from final"), name


def test_a_failed_write_after_a_failed_day_is_logged_and_the_day_s_own_error_raised(tmp_path, monkeypatch, caplog):
    w, _ = _quiet_world(tmp_path)
    settings = w.write()
    real = run_mod.run_daily_models

    def boom(con, as_of, *a, **kw):
        if as_of == date(2026, 3, 8):
            con.execute("select * from no_such_table")
        return real(con, as_of, *a, **kw)

    def broken_flush(self, con, through):
        con.execute("select * from no_such_flush_table")

    monkeypatch.setattr(run_mod, "run_daily_models", boom)
    monkeypatch.setattr(range_days.RangeDays, "flush", broken_flush)
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        with pytest.raises(duckdb.CatalogException, match="no_such_table"):
            run_mod.run_range(con, START, END, settings, mode=run_mod.RunMode.SIMULATE)
        # the connection is usable, nothing of the range is left behind, the days before are committed
        assert con.execute("select max(as_of) from run_log").fetchall()[0][0] == date(2026, 3, 7)
        left = con.execute("select count(*) from duckdb_tables() where temporary and table_name like 'range_%'"
                           ).fetchall()[0][0]
        assert left == 0
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR" and r.name == range_days.__name__]
    assert len(errors) == 1
    assert errors[0].startswith("the range stopped after 2026-03-07; the contract balances of its days up to "
                                "then could not be written: Catalog Error")


def test_a_held_collection_case_is_not_recomputed_every_day_and_the_range_equals_its_days(tmp_path):
    """A collection case whose steps are held waits for a dated input (the end of a suspension) or for
    its last step's wait, not for the passing of days: its customer is not recomputed every day (it was,
    for every day of the range, before 2026-12-08). CU1's debit of a paused invoice is refused on the
    3rd: the case is held for good. CU2's is refused on the 3rd too, while its contract is suspended
    until the 10th: held until then, its steps run from the 11th."""
    doc = policy([("due_date", 30, 7)], scope="invoice", extra={"collections": {"steps": {"hard": [
        {"type": "notify", "name": "Notify"}, {"type": "registered_mail", "name": "Registered", "grace_days": 4}]}}})
    w = World(tmp_path / "range", doc)
    for c in ("1", "2"):
        w.customer(f"CU{c}").contract(f"CT{c}", f"CU{c}", payment_method="direct_debit")
    w.invoice("I1", "100.00", "2026-02-20", "2026-03-01", "CT1", "CU1", dunning_paused="true")
    w.invoice("I2", "70.00", "2026-02-20", "2026-03-01", "CT2", "CU2")
    for c in ("1", "2"):
        w.payment(f"P{c}", "100.00" if c == "1" else "70.00", "2026-03-03", f"CT{c}", invoice_id=f"I{c}",
                  status="failed", reason_code="MS02", mandate_id=f"M{c}")
    w.suspension("contract", "CT2", "2026-02-25", "2026-03-10")
    recomputed: dict[str, list[int]] = {"CU1": [], "CU2": []}

    def seen(con, result):
        if result.computed is Computed.SOME:
            for (customer,) in con.execute("select customer_id from range_recomputed_customers").fetchall():
                recomputed[customer].append(result.as_of.day)

    _simulated(w.write(), seen)
    # CU1: overdue from the 2nd, the refusal on the 3rd, the day after its case opened; then nothing
    # (every day to the 21st before). CU2 the same, then the suspension's end on the 10th (both steps
    # run: the notice has no wait), the days its unheld case is worked on, the 14th (its last step's
    # wait ends: it closes unsettled and I2's dunning case opens) and the day after.
    assert recomputed == {"CU1": [2, 3, 4], "CU2": [2, 3, 4, 10, 11, 12, 13, 14, 15]}
    assert query(w.write(), "select case_id, level_no, channel, executed_on from action_ledger order by all") == [
        ("cm-M2-hard-20260303", 1, "email", date(2026, 3, 10)),
        ("cm-M2-hard-20260303", 2, "registered_letter", date(2026, 3, 10))]
    assert query(w.write(), "select case_id, opened_on, closed_on, close_reason from case_register order by all") == [
        ("cm-M1-hard-20260303", date(2026, 3, 3), None, None),
        ("cm-M2-hard-20260303", date(2026, 3, 3), date(2026, 3, 14), "unsettled"),
        ("in-I2-20260314", date(2026, 3, 14), None, None)]
    _assert_same_as_whole_days(w, tmp_path / "whole")
