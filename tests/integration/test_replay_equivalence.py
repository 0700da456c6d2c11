"""Replay equivalence (SPEC section 9), over generated worlds: running days one by one, one
backfill over the same range, and a simulation with the same policy give the same ledger.

Days one by one are each computed whole; a backfill and a simulation compute each day from the day
before plus that day's changes (pipeline/warehouse/range_days.py): only the customers touched that
day, nobody on a day nothing happens. The worlds book invoices, payments, reversals, voids and
suspensions all over the range, share customers between contracts, and dun in every scope, so the
equivalence covers what that path carries and what it recomputes."""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline.engine import run as run_mod
from pipeline.engine.backfill import backfill
from pipeline.engine.simulate import simulate
from pipeline.warehouse.range_days import Computed
from range_worlds import add_invoice, add_payment, add_suspension, suspensions
from world import World, policy, query

pytestmark = pytest.mark.slow(120)  # long: each worker starts with its share (tests/conftest.py)

START = date(2026, 3, 1)
DAYS = 14
POLICIES = [
    [("due_date", 2, 3), ("previous_level", 1, 3, {"EUR": "5.00"})],
    [("due_date", -2, 0), ("due_date", 3, 2, {"EUR": "2.50"}), ("previous_level", 0, 3)],
]
COLUMNS = ("action_key, executed_on, level_no, action, principal, fee, fees_total, interest, "
           "amount_demanded, policy_version")

invoice = st.tuples(st.integers(1, 400).map(lambda c: f"{c}.{c % 100:02d}"),  # amount
                    st.integers(-10, 8),                                         # due day offset
                    st.none() | st.integers(-5, DAYS + 3),                       # voided on (offset)
                    st.booleans())                                               # billed period runs into the range
# Payments may come before the range and be bound to an invoice (exactly its amount or not),
# settle, fail or be reversed: a range run leaves out the invoices settled before it, and
# these worlds make sure that changes nothing (pipeline/warehouse/range_inputs.py).
payment = st.tuples(st.integers(1, 300).map(lambda c: f"{c}.00"),                # amount
                    st.integers(-20, DAYS),                                      # booked on (offset)
                    st.none() | st.integers(0, 2),                               # bound to invoice n
                    st.booleans(),                                               # exactly its amount
                    st.sampled_from(["settled", "settled", "settled", "reversed", "failed"]),
                    st.integers(0, 12))                                          # reversed after (days)
contract = st.tuples(st.lists(invoice, min_size=1, max_size=3), st.lists(payment, max_size=3))
world = st.tuples(st.lists(contract, min_size=1, max_size=3), st.sampled_from(range(len(POLICIES))),
                  st.sampled_from(["contract", "invoice", "customer"]),
                  st.lists(suspensions(DAYS), max_size=2),
                  st.booleans())                                                 # two contracts share a customer


def _build(root: Path, spec) -> World:
    contracts, which, scope, suspension_rows, shared = spec
    w = World(root, policy(POLICIES[which], scope=scope, thresholds={"EUR": "1.00"}))
    owner = [f"CU{c // 2 if shared else c}" for c in range(len(contracts))]
    for customer in dict.fromkeys(owner):
        w.customer(customer)
    for c, (invoices, payments) in enumerate(contracts):
        w.contract(f"CT{c}", owner[c])
        for i, (amount, due, voided, running) in enumerate(invoices):
            add_invoice(w, START, c, i, owner[c], amount, due, voided, running)
        for p, payment_spec in enumerate(payments):
            add_payment(w, START, c, p, [a for a, *_ in invoices], *payment_spec)
    for row in suspension_rows:
        add_suspension(w, START, owner, len(contracts), *row)
    return w


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(world)
def test_days_one_by_one_a_backfill_and_a_simulation_agree(spec):
    end = START + timedelta(days=DAYS - 1)
    with tempfile.TemporaryDirectory() as tmp:
        daily = _build(Path(tmp) / "daily", spec).write()
        for n in range(DAYS):  # a separate process-like run per day: connect, ingest, one step
            with run_mod.connect(daily.database) as con:
                run_mod.load_inputs(con, daily)
                run_mod.plan_day(con, START + timedelta(days=n), run_mod.RunMode.LIVE)

        once = _build(Path(tmp) / "once", spec).write()
        computed = []
        with run_mod.connect(once.database) as con:
            run_mod.load_inputs(con, once)
            backfill(con, START, end, once, catch_up="none", on_day=lambda r: computed.append(r.computed))
            candidate = Path(tmp) / "same.yaml"
            candidate.write_text(yaml.safe_dump(yaml.safe_load(once.policy_file.read_text())))
            simulate(con, once, candidate, START, end, name="same", on_day=lambda r: computed.append(r.computed))
        # the range path carried days: the first is whole, the others only what changed (or all of it)
        assert len(computed) == 2 * DAYS
        assert any(c is not Computed.ALL for c in computed)

        expected = query(daily, f"select {COLUMNS} from action_ledger order by action_key")
        assert query(once, f"select {COLUMNS} from action_ledger order by action_key") == expected
        assert query(once, f"select {COLUMNS} from sim_same.action_ledger order by action_key") == expected
        cases = "select * exclude (routed_by) from {} order by case_id"
        assert query(once, cases.format("case_register")) == query(daily, cases.format("case_register"))
        assert query(once, cases.format("sim_same.case_register")) == query(daily, cases.format("case_register"))
        balances = "select * from {} order by as_of, contract_id"
        assert query(once, balances.format("contract_balances")) == query(daily, balances.format("contract_balances"))
        assert query(once, balances.format("sim_same.contract_balances")) == query(
            daily, balances.format("contract_balances"))
        # the last day's open receivables: a range recomputes them whole even on a narrowed last day
        receivables = "select * from {} order by invoice_id"
        expected = query(daily, receivables.format("open_receivables"))
        assert query(once, receivables.format("open_receivables")) == expected
        assert query(once, receivables.format("sim_same.open_receivables")) == expected
