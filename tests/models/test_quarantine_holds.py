"""A quarantined input row holds what it names from dunning (`intermediate/int_quarantine_holds`).

A row in the quarantine is missing from the day's data: a payment that settled an invoice, a
credit note, a suspension that was meant. Dunning what the other rows show would demand money
already paid, so the contract (customer, invoice) the row names is held like a suspension
(int_dunning_targets.suspended, int_col_active_cases.held) until the row is fixed and ingested
again. These tests run the real pipeline on tiny worlds (tests/world.py) and pin down with exact
actions: the held contract gets nothing while every other customer's actions stay as they were;
each way a row names a target (payment, payment's invoice, credit note, suspension in its scope,
a suspension whose scope or target cannot be read, a global one); customer and invoice scope; a
collection case's steps; the hold's end once the row is fixed; the hold rows naming the
quarantined row; and a range (backfill, simulation) equal to its days computed whole one by one.
"""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from pipeline.engine import run as run_mod
from pipeline.engine.backfill import backfill
from pipeline.engine.simulate import simulate
from pipeline.warehouse.range_days import Computed
from pipeline.warehouse.sql_runner import check_model_tests, run_model
from world import World, actions, policy, query

HOLDS = "intermediate/int_quarantine_holds"
HOLD_COLUMNS = "scope, target_id, customer_id, currency, named_by, table_name, source_row, rule"

# CU2..CU6 owe 20.00..60.00 and are dunned on 2026-03-13 (3 days after the due date); CU7..CU16 paid
OTHERS = [("2026-03-13", f"ct-CT{i}-20260311", 1, "reminder", f"{i}0.00") for i in range(2, 7)]
CT1_DUNNED = [("2026-03-13", "ct-CT1-20260311", 1, "reminder", "100.00")]


def _world(root: Path, *, scope: str = "contract", levels=(("due_date", 3, 7),)) -> World:
    """CU1/CT1 owes I1 (100.00, due 2026-03-10); five customers who did not pay, ten who did (so
    one quarantined payment stays below the 20 % share that stops a live day)."""
    w = World(root, policy(list(levels), scope=scope))
    w.customer("CU1").contract("CT1", "CU1").invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    for i in range(2, 17):
        w.customer(f"CU{i}").contract(f"CT{i}", f"CU{i}").invoice(
            f"I{i}", f"{i}0.00" if i < 7 else "10.00", "2026-03-01", "2026-03-10",
            contract_id=f"CT{i}", customer_id=f"CU{i}")
        if i >= 7:
            w.payment(f"P{i}", "10.00", "2026-03-05", contract_id=f"CT{i}", invoice_id=f"I{i}")
    return w


def _holds(settings) -> list[tuple]:
    """The hold rows as the day's model makes them from the world's quarantine (its column tests hold)."""
    import duckdb

    con = duckdb.connect(str(settings.database))
    try:
        run_model(con, HOLDS, {"as_of": date(2026, 3, 20)})
        assert check_model_tests(con, [HOLDS]) == []
        return con.execute(f"select {HOLD_COLUMNS} from int_quarantine_holds order by all").fetchall()
    finally:
        con.close()


def _quarantined(settings) -> list[tuple]:
    return query(settings, "select table_name, source_row, rule from quarantine order by all")


# --- payments and credit notes ---------------------------------------------------------------------

PAYMENTS = {
    "no_payment": lambda w: None,
    "good": lambda w: w.payment("P1", "100.00", "2026-03-05", invoice_id="I1"),
    "currency_lowercase": lambda w: w.payment("P1", "100.00", "2026-03-05", invoice_id="I1", currency="eur"),
    "duplicate_payment_row": lambda w: (w.payment("P1", "100.00", "2026-03-05", invoice_id="I1"),
                                        w.payment("P1", "100.00", "2026-03-05", invoice_id="I1")),
    "control_character_in_mandate": lambda w: w.payment("P1", "100.00", "2026-03-05", invoice_id="I1",
                                                        mandate_id="M\t1"),
    "invalid_booking_date": lambda w: w.payment("P1", "100.00", "05.03.2026", invoice_id="I1"),
    # the contract named is unknown: the loaded invoice it names places it
    "unknown_contract_known_invoice": lambda w: w.payment("P1", "100.00", "2026-03-05", contract_id="CTX",
                                                          invoice_id="I1"),
}
EXPECTED = {
    "no_payment": CT1_DUNNED + OTHERS,  # the control: CT1 is dunned when nobody paid
    "good": OTHERS,
}
QUARANTINED = {
    "no_payment": [], "good": [],
    "currency_lowercase": [("payments", 11, "currency_mismatch")],
    "duplicate_payment_row": [("payments", 11, "duplicate_id"), ("payments", 12, "duplicate_id")],
    "control_character_in_mandate": [("payments", 11, "control_character")],
    "invalid_booking_date": [("payments", 11, "invalid_date")],
    "unknown_contract_known_invoice": [("payments", 11, "unknown_contract")],
}


@pytest.mark.parametrize("case", list(PAYMENTS))
def test_a_quarantined_payment_holds_its_contract_and_nobody_else(tmp_path, case):
    w = _world(tmp_path)
    PAYMENTS[case](w)
    s = w.run("2026-03-01", "2026-03-20")
    assert _quarantined(s) == QUARANTINED[case]
    # the customer who paid gets no demand; the others' actions are exactly those of the good file
    assert actions(s) == EXPECTED.get(case, OTHERS)
    assert query(s, "select count(*) from case_register where contract_id = 'CT1'") == [(0 if case != "no_payment" else 1,)]


def test_a_payment_naming_two_contracts_holds_both(tmp_path):
    # CT2 named, but I1 is CT1's (invoice_contract_mismatch): which one was paid is a guess
    w = _world(tmp_path)
    w.payment("P1", "100.00", "2026-03-05", contract_id="CT2", invoice_id="I1")
    s = w.run("2026-03-01", "2026-03-20")
    assert _quarantined(s) == [("payments", 11, "invoice_contract_mismatch")]
    assert actions(s) == OTHERS[1:]
    assert _holds(s) == [("contract", "CT1", "CU1", "EUR", "invoice_id", "payments", 11, "invoice_contract_mismatch"),
                         ("contract", "CT2", "CU2", "EUR", "contract_id", "payments", 11, "invoice_contract_mismatch")]


def test_a_quarantined_credit_note_holds_its_contract(tmp_path):
    w = _world(tmp_path)
    w.invoice("C1", "-100.00", "2026-03-02", "2026-03-02")  # credits I1 in full
    good = w.run("2026-03-01", "2026-03-20")
    assert actions(good) == OTHERS
    bad = _world(tmp_path / "bad")
    bad.invoice("C1", "-100.00", "2026-03-02", "2026-02-30")  # no such day
    s = bad.run("2026-03-01", "2026-03-20")
    assert _quarantined(s) == [("invoices", 17, "invalid_date")]
    assert actions(s) == OTHERS
    assert _holds(s) == [("contract", "CT1", "CU1", "EUR", "contract_id", "invoices", 17, "invalid_date")]


def test_an_invoice_whose_contract_does_not_place_it_holds_its_customer(tmp_path):
    w = _world(tmp_path)
    w.contract("CT1B", "CU1").invoice("I1B", "50.00", "2026-03-01", "2026-03-10", contract_id="CT1B")
    w.invoice("C1", "-100.00", "2026-03-02", "2026-03-02", contract_id="CTX")  # unknown contract of CU1
    s = w.run("2026-03-01", "2026-03-20")
    assert _quarantined(s) == [("invoices", 18, "unknown_contract")]
    assert actions(s) == OTHERS  # both of CU1's contracts wait: the credit note could be either's
    assert _holds(s) == [("contract", "CTX", None, None, "contract_id", "invoices", 18, "unknown_contract"),
                         ("customer", "CU1", "CU1", None, "customer_id", "invoices", 18, "unknown_contract")]



def test_the_invoices_of_a_quarantined_contract_hold_no_other_contract_of_its_customer(tmp_path):
    """CT1B is quarantined for its own fault (a policy nobody defined), so its invoice is too (unknown
    contract). Credit never crosses contracts: nothing of CT1B can change what CT1 owes. The invoice
    held all of CU1, as if its contract could have been any of CU1's."""
    w = _world(tmp_path)
    w.contract("CT1B", "CU1", policy="gold").invoice("I1B", "50.00", "2026-03-01", "2026-03-10", contract_id="CT1B")
    s = w.run("2026-03-01", "2026-03-20")
    assert _quarantined(s) == [("contracts", 17, "unknown_policy"), ("invoices", 17, "unknown_contract")]
    assert actions(s) == CT1_DUNNED + OTHERS
    assert _holds(s) == [("contract", "CT1B", None, None, "contract_id", "invoices", 17, "unknown_contract")]


def test_a_row_holds_the_id_it_names_as_written(tmp_path):
    """Ids load exactly as written (docs/ingestion.md, Values): `CT1 ` is another contract than `CT1`. A
    quarantined payment of `CT1 ` held `CT1` (the holds trimmed the id), so `CT1 ` was dunned for what
    it had paid and `CT1` not at all."""
    w = _world(tmp_path)
    w.contract("CT1 ", "CU1").invoice("I1S", "50.00", "2026-03-01", "2026-03-10", contract_id="CT1 ")
    w.payment("P1", "50.001", "2026-03-05", contract_id="CT1 ", invoice_id="I1S")
    s = w.run("2026-03-01", "2026-03-20")
    assert _quarantined(s) == [("payments", 11, "invalid_amount")]
    assert actions(s) == CT1_DUNNED + OTHERS
    assert _holds(s) == [("contract", "CT1 ", "CU1", "EUR", "contract_id", "payments", 11, "invalid_amount")]


@pytest.mark.parametrize("bad", ["amount_typo", "duplicate_id"])
def test_a_quarantined_row_holds_nothing_before_its_own_date(tmp_path, bad):
    """Rows dated after a day are invisible when computing it (SPEC 3), so a quarantined payment booked
    in April cannot change March: it held CT1 on every day, and a backfill of March called the
    reminder of 13 March wrong."""
    w = _world(tmp_path)
    w.payment("P1", "100.001" if bad == "amount_typo" else "100.00", "2026-04-01", invoice_id="I1")
    if bad == "duplicate_id":
        w.payment("P1", "100.00", "2026-04-01", invoice_id="I1")
    s = w.run("2026-03-01", "2026-03-20")
    assert [rule for _, _, rule in _quarantined(s)] == (
        ["invalid_amount"] if bad == "amount_typo" else ["duplicate_id", "duplicate_id"])
    assert actions(s) == CT1_DUNNED + OTHERS
    assert _holds(s) == []  # on 20 March; from 1 April on, CT1 is held
    import duckdb

    con = duckdb.connect(str(s.database))
    try:
        run_model(con, HOLDS, {"as_of": date(2026, 4, 1)})
        assert con.execute("select scope, target_id, held_from::varchar from int_quarantine_holds").fetchall() == [
            ("contract", "CT1", "2026-04-01")] * (1 if bad == "amount_typo" else 2)
    finally:
        con.close()


@pytest.mark.parametrize("bad", ["from_date_unreadable", "booked_in_another_century"])
def test_a_row_whose_own_date_cannot_be_trusted_holds_on_every_day(tmp_path, bad):
    """A suspension whose from_date is unreadable names a to_date, the day dunning resumes: it held CU1
    only from that day, not during the suspension. A payment quarantined because its booking date is out
    of range (a typo in the year, perhaps) may have been meant for any day."""
    w = _world(tmp_path)
    if bad == "from_date_unreadable":
        w.suspension("customer", "CU1", "2026-03-0x", "2026-03-31")
    else:
        w.payment("P1", "100.00", "2226-03-05", invoice_id="I1")
    s = w.run("2026-03-01", "2026-03-20")
    assert [rule for _, _, rule in _quarantined(s)] == (
        ["invalid_date"] if bad == "from_date_unreadable" else ["date_out_of_range"])
    assert actions(s) == OTHERS


def test_a_line_the_csv_reader_rejects_holds_what_its_leading_values_name(tmp_path):
    """An unquoted comma in the last column gives the line one value too many: it is quarantined as
    wrong_column_count. Its record kept only the line, so it named nothing and held nothing: CT1 was
    dunned for the invoice this payment had paid."""
    w = _world(tmp_path)
    s = w.write()
    with open(s.data_dir / "payments.csv", "a", encoding="utf-8", newline="") as fh:
        fh.write("P1,CT1,I1,100.00,EUR,2026-03-05,settled,,note, paid by transfer,M1\r\n")  # the writer's line ends
    with run_mod.connect(s.database) as con:
        run_mod.load_inputs(con, s)
        run_mod.run_range(con, date(2026, 3, 1), date(2026, 3, 20), s, mode=run_mod.RunMode.SIMULATE)
    assert _quarantined(s) == [("payments", 11, "wrong_column_count")]
    # by position: the leading values are the ids; those after the stray comma are shifted
    assert query(s, "select record ->> 'contract_id', record ->> 'invoice_id', record ->> 'reason_code', "
                    "record ->> 'mandate_id' from quarantine") == [("CT1", "I1", "note", " paid by transfer")]
    assert actions(s) == OTHERS
    assert _holds(s) == [("contract", "CT1", "CU1", "EUR", "contract_id", "payments", 11, "wrong_column_count")]

# --- suspensions ---------------------------------------------------------------------------------

SUSPENSIONS = {
    # the suspension meant, its date unreadable
    "customer_bad_date": (("customer", "CU1", "01.03.2026"), OTHERS, "invalid_date"),
    "contract_bad_date": (("contract", "CT1", "01.03.2026"), OTHERS, "invalid_date"),
    "invoice_bad_date": (("invoice", "I1", "01.03.2026"), OTHERS, "invalid_date"),
    # a global suspension held back means "dun nobody": nobody is dunned
    "global_bad_date": (("global", "", "01.03.2026"), [], "invalid_date"),
    # the scope cannot be read: the id is held in every scope
    "scope_unreadable": (("Customer", "CU1", "2026-03-01"), OTHERS, "invalid_value"),
    # a contract's id given as a customer's: no customer has it; held in every scope
    "target_of_another_scope": (("customer", "CT1", "2026-03-01"), OTHERS, "unknown_target"),
    # no target: the row could be any suspension, a global one included
    "target_missing": (("customer", "", "2026-03-01"), [], "missing_value"),
}


@pytest.mark.parametrize("case", list(SUSPENSIONS))
def test_a_quarantined_suspension_holds_what_it_was_meant_to_suspend(tmp_path, case):
    (scope, target, from_date), expected, rule = SUSPENSIONS[case]
    w = _world(tmp_path)
    w.suspension(scope, target, from_date)
    s = w.run("2026-03-01", "2026-03-20")
    assert _quarantined(s) == [("suspensions", 1, rule)]
    assert actions(s) == expected


def test_the_hold_rows_name_the_quarantined_row(tmp_path):
    w = _world(tmp_path)
    w.payment("P1", "100.00", "2026-03-05", invoice_id="I1", currency="eur")
    w.suspension("contract", "CT3", "01.03.2026").suspension("Contract", "CT4", "2026-03-01")
    w.suspension("global", "", "2026-03-05", "2026-03-01")  # an empty period
    s = w.run("2026-03-01", "2026-03-20")
    files = {t: str(Path(f).name) for t, f in query(s, "select table_name, source_file from quarantine")}
    assert files == {"payments": "payments.csv", "suspensions": "suspensions.csv"}
    assert _holds(s) == [
        ("contract", "CT1", "CU1", "EUR", "contract_id", "payments", 11, "currency_mismatch"),
        ("contract", "CT3", "CU3", "EUR", "target_id", "suspensions", 1, "invalid_date"),
        ("contract", "CT4", "CU4", "EUR", "target_id, any scope", "suspensions", 2, "invalid_value"),
        ("customer", "CT4", "CT4", None, "target_id, any scope", "suspensions", 2, "invalid_value"),
        ("global", "*", None, None, "scope global", "suspensions", 3, "empty_period"),
        ("invoice", "CT4", None, None, "target_id, any scope", "suspensions", 2, "invalid_value"),
    ]
    assert actions(s) == []


# --- customer and invoice scope --------------------------------------------------------------------

def test_a_customer_target_is_held_by_any_held_contract_in_its_currency(tmp_path):
    w = _world(tmp_path, scope="customer")
    w.contract("CT1B", "CU1").invoice("I1B", "50.00", "2026-03-01", "2026-03-12", contract_id="CT1B")
    w.contract("CT1U", "CU1", currency="USD").invoice("I1U", "70.00", "2026-03-01", "2026-03-10",
                                                      contract_id="CT1U", currency="USD")
    w.payment("P1", "50.00", "2026-03-05", contract_id="CT1B", invoice_id="I1B", currency="eur")
    s = w.run("2026-03-01", "2026-03-20")
    # CU1's EUR target follows I1 of CT1, but CT1B is held: no demand in EUR; USD is dunned as usual
    assert actions(s) == [("2026-03-13", "cu-CU1-USD-20260311", 1, "reminder", "70.00")] + [
        ("2026-03-13", f"cu-CU{i}-EUR-20260311", 1, "reminder", f"{i}0.00") for i in range(2, 7)]


def test_an_invoice_target_is_held_when_its_contract_is(tmp_path):
    w = _world(tmp_path, scope="invoice")
    w.invoice("I1B", "30.00", "2026-03-01", "2026-03-10")
    w.payment("P1", "100.00", "2026-03-05", invoice_id="I1", currency="eur")
    s = w.run("2026-03-01", "2026-03-20")
    # I1B was not paid, but its contract's data is incomplete: neither invoice of CT1 is dunned
    assert actions(s) == [("2026-03-13", f"in-I{i}-20260311", 1, "reminder", f"{i}0.00") for i in range(2, 7)]


# --- collection cases ------------------------------------------------------------------------------

def _collection_world(root: Path) -> World:
    steps = [{"type": "payment_alternative", "name": "Transfer", "method": "transfer", "grace_days": 5}]
    w = World(root, policy([("due_date", 30, 0)], grace_days=10, extra={"collections": {"steps": {"hard": steps}}}))
    for c in ("1", "2"):
        w.customer(f"CU{c}").contract(f"CT{c}", f"CU{c}", payment_method="direct_debit")
        w.invoice(f"I{c}", "100.00", "2026-03-01", "2026-03-01", contract_id=f"CT{c}", customer_id=f"CU{c}")
        w.payment(f"F{c}", "100.00", "2026-03-03", contract_id=f"CT{c}", invoice_id=f"I{c}", status="failed",
                  reason_code="MS02", mandate_id=f"M{c}")
    return w


def test_a_quarantined_payment_holds_the_steps_of_its_contracts_collection_case(tmp_path):
    good = _collection_world(tmp_path / "good").run("2026-03-01", "2026-03-06")
    both = [("2026-03-03", "cm-M1-hard-20260303", 1, "reminder", "100.00"),
            ("2026-03-03", "cm-M2-hard-20260303", 1, "reminder", "100.00")]
    assert actions(good) == both
    w = _collection_world(tmp_path / "bad")
    w.payment("P1", "100.00", "2026-03-03", contract_id="CT1", invoice_id="I1", currency="eur")  # paid by transfer? (booked on the step's day: a row holds from its own date)
    s = w.run("2026-03-01", "2026-03-06")
    # the case of CT1's failure opens (the failure is loaded) but its step waits; CT2's runs as before
    assert actions(s) == both[1:]
    assert query(s, "select case_id from case_register order by 1") == [("cm-M1-hard-20260303",),
                                                                         ("cm-M2-hard-20260303",)]


# --- the hold ends with the row ----------------------------------------------------------------

def test_once_the_row_is_fixed_and_ingested_again_the_contract_is_dunned(tmp_path):
    w = _world(tmp_path)
    w.payment("P1", "40.00", "2026-03-05", invoice_id="I1", currency="eur")  # a part payment
    s = w.run("2026-03-01", "2026-03-15")
    assert actions(s) == OTHERS
    w.rows["payments"][-1]["currency"] = "EUR"
    s = w.run("2026-03-16", "2026-03-20")
    assert _quarantined(s) == []
    assert _holds(s) == []
    # the level whose day (2026-03-13) has come runs on the first day the contract is free, for what is open
    assert actions(s) == OTHERS + [("2026-03-16", "ct-CT1-20260316", 1, "reminder", "60.00")]


# --- a range equals its days computed whole ----------------------------------------------------

START, DAYS = date(2026, 3, 1), 20
COLUMNS = ("action_key, executed_on, level_no, action, principal, fee, fees_total, interest, "
           "amount_demanded, policy_version")


def _range_world(root: Path, scope: str) -> World:
    w = _world(root, scope=scope, levels=(("due_date", 3, 3), ("previous_level", 4, 3, {"EUR": "5.00"})))
    w.contract("CT1B", "CU1").invoice("I1B", "50.00", "2026-03-05", "2026-03-15", contract_id="CT1B")
    w.payment("P1", "100.00", "2026-03-05", invoice_id="I1", currency="eur")  # CT1 held
    w.payment("P3", "10.00", "2026-03-14", contract_id="CT3", invoice_id="I3")  # a part payment in the range
    # quarantined (a typo in its amount), booked inside the range: CT2 is held from 15 March on only
    w.payment("P2", "20.001", "2026-03-15", contract_id="CT2", invoice_id="I2")
    w.suspension("customer", "CU4", "2026-03-01", "2026-03-16")  # ends inside the range
    w.suspension("customer", "CU5", "01.03.2026")  # quarantined: CU5 held throughout
    for i in range(7, 12):  # good suspensions of customers who paid: the quarantined share stays low
        w.suspension("customer", f"CU{i}", "2026-03-01", "2026-03-04")
    return w


@pytest.mark.parametrize("scope", ["contract", "customer"])
def test_a_range_gives_what_its_days_one_by_one_give(tmp_path, scope):
    end = START + timedelta(days=DAYS - 1)
    daily = _range_world(tmp_path / "daily", scope).write()
    for n in range(DAYS):  # each day computed whole, as a live day is
        with run_mod.connect(daily.database) as con:
            run_mod.load_inputs(con, daily)
            run_mod.plan_day(con, START + timedelta(days=n), run_mod.RunMode.LIVE)

    once = _range_world(tmp_path / "once", scope).write()
    computed = []
    with run_mod.connect(once.database) as con:
        run_mod.load_inputs(con, once)
        backfill(con, START, end, once, catch_up="none", on_day=lambda r: computed.append(r.computed))
        candidate = Path(tempfile.mkdtemp(dir=tmp_path)) / "same.yaml"
        candidate.write_text(yaml.safe_dump(yaml.safe_load(once.policy_file.read_text())))
        simulate(con, once, candidate, START, end, name="same", on_day=lambda r: computed.append(r.computed))
    assert any(c is not Computed.ALL for c in computed)  # the range narrowed days

    expected = query(daily, f"select {COLUMNS} from action_ledger order by action_key")
    # nothing for CU1 (CT1 held; CT1B too in customer scope) nor CU5 (its suspension quarantined)
    keys = [k for k, *_ in expected]
    assert not [k for k in keys if k.startswith(("ct-CT1-", "cu-CU1-", "ct-CT5-", "cu-CU5-"))]
    # CT1B is no contract of a quarantined row: dunned in contract scope (in customer scope CU1-EUR waits)
    assert bool([k for k in keys if k.startswith("ct-CT1B-")]) == (scope == "contract")
    assert [k for k in keys if k.startswith(("ct-CT4-", "cu-CU4-"))]  # dunned once its suspension ended
    # CT2: L1 on 13 March, before its quarantined payment's day; L2 (20 March) held
    assert [k.split("/", 1)[1] for k in keys if k.startswith(("ct-CT2-", "cu-CU2-"))] == ["L1/reminder"]
    assert query(once, f"select {COLUMNS} from action_ledger order by action_key") == expected
    assert query(once, f"select {COLUMNS} from sim_same.action_ledger order by action_key") == expected
    cases = "select * exclude (routed_by) from {} order by case_id"
    assert query(once, cases.format("case_register")) == query(daily, cases.format("case_register"))
    assert query(once, cases.format("sim_same.case_register")) == query(daily, cases.format("case_register"))


def test_explain_shows_a_case_held_by_a_quarantined_row_as_the_ledger_has_it(tmp_path):
    """A case already open when a bad payment row for its contract arrives: its next level waits,
    and `explain` says why, from the same column the day's models decided it by
    (int_dunning_targets.held_by_quarantine, read by case_outlook)."""
    from pipeline.reporting.explain import explain_case

    w = _world(tmp_path, levels=(("due_date", 3, 3), ("previous_level", 2, 3)))
    s = w.run("2026-03-01", "2026-03-15")
    assert [a for a in actions(s) if a[1] == "ct-CT1-20260311"] == [
        ("2026-03-13", "ct-CT1-20260311", 1, "reminder", "100.00")]
    w.payment("P1", "100.00", "2026-03-14", invoice_id="I1", currency="eur")
    s = w.run("2026-03-16", "2026-03-20")
    # level 2 was due on 2026-03-18 (level 1's due date 2026-03-16 + 2): it waits
    assert [a for a in actions(s) if a[1] == "ct-CT1-20260311"] == [
        ("2026-03-13", "ct-CT1-20260311", 1, "reminder", "100.00")]
    assert [a for a in actions(s) if a[1] == "ct-CT2-20260311"] == [
        ("2026-03-13", "ct-CT2-20260311", 1, "reminder", "20.00"),
        ("2026-03-18", "ct-CT2-20260311", 2, "reminder", "20.00")]
    import duckdb

    con = duckdb.connect(str(s.database))
    try:
        e = explain_case(con, "ct-CT1-20260311", date(2026, 3, 20))
        other = explain_case(con, "ct-CT2-20260311", date(2026, 3, 20))
    finally:
        con.close()
    n = e.next_action
    assert (n.level_no, n.scheduled_on, n.runs_on) == (2, date(2026, 3, 18), None)
    assert n.held_by == ["an input row naming it is in the quarantine (see table quarantine): fix the row and "
                      "ingest again"]
    assert other.next_action is None  # CT2 ran its last level
