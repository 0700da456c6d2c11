"""Routing: explicit handle, rules (earliest next action wins, ties by priority), default."""

from __future__ import annotations

import pytest

from pipeline.warehouse.routing import RoutingError
from world import World, query


def _version(days, routing=None, scope="contract"):
    v = {"effective_from": "2020-01-01", "scope": scope,
         "levels": [{"name": f"After {days}", "timing": {"after": "due_date", "days": days}}]}
    if routing:
        v["routing"] = routing
    return v


def _doc(gold_routing, strict_routing, strict_days=10):
    return {"policies": [
        {"handle": "default", "default": True, "versions": [_version(20)]},
        {"handle": "gold", "versions": [_version(3, gold_routing)]},
        {"handle": "strict", "versions": [_version(strict_days, strict_routing)]},
    ]}


GOLD = {"priority": 2, "criteria": [{"field": "customer.country", "op": "is", "value": "DE"}]}
STRICT = {"priority": 1, "criteria": [{"field": "contract.payment_method", "op": "in", "values": ["invoice", "card"]},
                                      {"field": "contract.segment", "op": "is_not", "value": "public"}]}


def _world(tmp_path, doc):
    w = World(tmp_path, doc)
    w.customer("DE1", country="DE").customer("FR1", locale="fr_FR", country="FR")
    rows = [("C-BOTH", "DE1", "invoice", "", "smb"), ("C-STRICT", "FR1", "card", "", "smb"),
            ("C-EXPLICIT", "DE1", "invoice", "strict", "smb"), ("C-NONE", "FR1", "direct_debit", "", "smb"),
            ("C-PUBLIC", "FR1", "invoice", "", "public")]
    for contract_id, customer_id, method, handle, segment in rows:
        w.contract(contract_id, customer_id, payment_method=method, policy=handle, segment=segment)
        w.invoice(f"I-{contract_id}", "100.00", "2026-03-01", "2026-03-10", contract_id=contract_id,
                  customer_id=customer_id)
    return w


def test_explicit_handle_then_earliest_next_action_then_default(tmp_path):
    s = _world(tmp_path, _doc(GOLD, STRICT)).run("2026-03-11", "2026-04-05")
    assert query(s, "select contract_id, policy_id, routed_by from case_register order by contract_id") == [
        ("C-BOTH", "gold", "rule"),          # matches both; gold acts on day 3, strict on day 10
        ("C-EXPLICIT", "strict", "explicit"),
        ("C-NONE", "default", "default"),
        ("C-PUBLIC", "default", "default"),  # strict excludes the public segment (an extra input column)
        ("C-STRICT", "strict", "rule")]
    assert query(s, "select contract_id, executed_on::varchar, policy_id, routed_by from action_ledger "
                    "order by contract_id") == [
        ("C-BOTH", "2026-03-13", "gold", "rule"), ("C-EXPLICIT", "2026-03-20", "strict", "explicit"),
        ("C-NONE", "2026-03-30", "default", "default"), ("C-PUBLIC", "2026-03-30", "default", "default"),
        ("C-STRICT", "2026-03-20", "strict", "rule")]


def test_same_day_ties_go_to_the_lower_priority_number(tmp_path):
    s = _world(tmp_path, _doc(GOLD, STRICT, strict_days=3)).run("2026-03-11", "2026-03-11")
    assert query(s, "select policy_id from case_register where contract_id = 'C-BOTH'") == [("strict",)]


def test_a_disabled_rule_routes_nothing(tmp_path):
    s = _world(tmp_path, _doc(dict(GOLD, enabled=False), STRICT)).run("2026-03-11", "2026-03-11")
    assert query(s, "select contract_id, policy_id from case_register where contract_id in ('C-BOTH', 'C-STRICT') "
                    "order by 1") == [("C-BOTH", "strict"), ("C-STRICT", "strict")]


def test_exists_and_not_exists(tmp_path):
    gold = {"priority": 1, "criteria": [{"field": "contract.ended_on", "op": "exists"}]}
    strict = {"priority": 2, "criteria": [{"field": "contract.ended_on", "op": "not_exists"},
                                          {"field": "customer.country", "op": "is", "value": "FR"}]}
    w = _world(tmp_path, _doc(gold, strict))
    w.rows["contracts"][0]["ended_on"] = "2026-02-28"
    w.rows["contracts"][0]["status"] = "ended"
    s = w.run("2026-03-11", "2026-03-11")
    assert query(s, "select contract_id, policy_id from case_register order by 1") == [
        ("C-BOTH", "gold"), ("C-EXPLICIT", "strict"), ("C-NONE", "strict"), ("C-PUBLIC", "strict"),
        ("C-STRICT", "strict")]


def test_an_unknown_field_is_an_error_naming_policy_and_field(tmp_path):
    bad = {"priority": 1, "criteria": [{"field": "contract.colour", "op": "is", "value": "red"}]}
    with pytest.raises(RoutingError, match=r"policy version gold@\w+: routing field contract.colour is not a column "
                                           r"of the contract input \(columns: billed_until, contract_id"):
        _world(tmp_path, _doc(bad, STRICT)).run("2026-03-11", "2026-03-11")


def test_an_explicit_policy_without_a_version_in_force_waits_and_every_day_warns(tmp_path, caplog):
    # issue 12, item 4: before g1's first version the contract used to fall through to g2's rule
    from datetime import date

    from pipeline.engine import run as run_mod

    g1 = {"handle": "g1", "versions": [dict(_version(3), effective_from="2026-04-01")]}
    doc = _doc(GOLD, STRICT)
    doc["policies"].append(g1)
    w = World(tmp_path, doc)
    w.customer("DE1", country="DE")
    for contract_id in ("C-G1", "C-G1B"):
        w.contract(contract_id, "DE1", policy="g1", segment="smb")
        w.invoice(f"I-{contract_id}", "100.00", "2026-03-01", "2026-03-10", contract_id=contract_id,
                  customer_id="DE1")
    settings = w.write()
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        march = run_mod.plan_day(con, date(2026, 3, 20), run_mod.RunMode.SIMULATE)
        april = run_mod.plan_day(con, date(2026, 4, 1), run_mod.RunMode.SIMULATE)
    expected = ("2 contract(s) name policy g1, which has no version in force on 2026-03-20: not dunned until its "
                "first version takes effect on 2026-04-01 (C-G1, C-G1B); an explicit policy never falls back "
                "to routing rules or the default")
    assert march.warnings == [expected]
    assert expected in caplog.text
    assert april.warnings == []
    assert query(settings, "select case_id, policy_id, routed_by, opened_on::varchar from case_register "
                           "order by case_id") == [
        ("ct-C-G1-20260401", "g1", "explicit", "2026-04-01"), ("ct-C-G1B-20260401", "g1", "explicit", "2026-04-01")]
