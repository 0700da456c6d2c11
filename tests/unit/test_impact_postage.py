"""Postage in a policy comparison: one SQL definition for the levels and the cases, a missing rate counted
as 0.00 and noted (pipeline/engine/impact.py), on hand-made ledgers of both sides."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from types import SimpleNamespace

import duckdb

from pipeline.engine import impact

ACTION_COLUMNS = """action_key varchar, case_id varchar, scope varchar, customer_id varchar, contract_id varchar,
    currency varchar, policy_id varchar, level_no integer, level_name varchar, action varchar, channel varchar,
    executed_on date, principal decimal(18,2), fee decimal(18,2), fees_total decimal(18,2),
    interest decimal(18,2), amount_demanded decimal(18,2), is_document boolean, is_letter boolean,
    is_registered boolean, is_termination boolean"""
CASE_COLUMNS = """case_id varchar, scope varchar, customer_id varchar, contract_id varchar, currency varchar,
    policy_id varchar, level_no integer, level_name varchar, closed_on date, close_reason varchar"""


def _letter(key, case, customer, currency, channel, fee):
    return (key, case, "contract", customer, f"CT-{customer}", currency, "default", 2, "Letter", "reminder", channel,
            date(2026, 5, 20), Decimal("100.00"), Decimal(fee), Decimal(fee), Decimal("0.00"), Decimal("100.00"),
            True, True, channel == "registered_letter", False)


def test_postage_of_levels_and_cases_from_the_rates_and_a_missing_rate_noted():
    con = duckdb.connect()
    for side in ("before", "after"):
        con.execute(f"create temp table impact_{side}_actions ({ACTION_COLUMNS})")
        con.execute(f"create temp table impact_{side}_cases ({CASE_COLUMNS})")
    con.executemany("insert into impact_after_actions values (" + ", ".join("?" * 21) + ")", [
        _letter("c2/L2/a", "c2", "CU2", "EUR", "letter", "5.00"),
        _letter("c2/L2/b", "c2", "CU2", "EUR", "registered_letter", "0.00"),
        _letter("c1/L2/a", "c1", "CU1", "GBP", "registered_letter", "2.50")])
    con.executemany("insert into impact_after_cases values (?, 'contract', ?, ?, ?, 'default', 2, 'Letter', "
                    "null, null)", [("c1", "CU1", "CT-CU1", "GBP"), ("c2", "CU2", "CT-CU2", "EUR")])
    settings = SimpleNamespace(postage={"letter": {"EUR": Decimal("0.95")},
                                        "registered_letter": {"EUR": Decimal("3.69")}})

    result = impact._read(con, date(2026, 5, 1), date(2026, 5, 31), settings, ("old", "new"))

    assert [(r.currency, r.after.letters, r.after.registered, r.after.postage, r.after.fees, r.after.open_cases)
            for r in result.levels] == [("EUR", 2, 1, Decimal("4.64"), Decimal("5.00"), 1),
                                        ("GBP", 1, 1, Decimal("0.00"), Decimal("2.50"), 1)]
    assert [(c.case_id, c.after.postage, c.after.fees, c.before.postage) for c in result.cases] == [
        ("c1", Decimal("0.00"), Decimal("2.50"), Decimal("0.00")),
        ("c2", Decimal("4.64"), Decimal("5.00"), Decimal("0.00"))]
    assert [(c.customer_id, c.currency, c.cases, c.after.postage) for c in result.customers] == [
        ("CU1", "GBP", 1, Decimal("0.00")), ("CU2", "EUR", 1, Decimal("4.64"))]
    assert result.notes == ["no postage rate for registered_letter in GBP (setting postage.registered_letter.GBP): "
                            "counted as 0.00"]
