"""Champion/challenger experiments on a generated world: the hashed split, provenance, and the
report's exact figures with their intervals and significance (issue 16)."""

from __future__ import annotations

import hashlib
import math
from datetime import date
from decimal import Decimal

import duckdb
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.reporting.experiments import experiment_report, format_report
from world import World, query

N = 40


def _arm(contract_id: str, share: int = 50) -> str:
    """The split as documented, computed independently of the SQL: MD5 little-endian modulo 100."""
    bucket = int.from_bytes(hashlib.md5(f"early/{contract_id}".encode()).digest(), "little") % 100
    return "challenger" if bucket < share else "champion"


def _world(tmp_path) -> World:
    doc = {"policies": [
        {"handle": "default", "default": True, "versions": [{
            "effective_from": "2020-01-01", "experiment": {"name": "early", "challenger": "early", "share_percent": 50},
            "levels": [{"name": "Reminder", "timing": {"after": "due_date", "days": 10}, "channel": "letter"},
                       {"name": "Notice", "timing": {"after": "previous_level", "days": 10}, "channel": "letter",
                        "fee": {"EUR": "5.00"}}]}]},
        {"handle": "early", "versions": [{
            "effective_from": "2020-01-01",
            "levels": [{"name": "Early reminder", "timing": {"after": "due_date", "days": 2}},
                       {"name": "Notice", "timing": {"after": "previous_level", "days": 10}, "channel": "letter",
                        "fee": {"EUR": "5.00"}}]}]},
    ]}
    w = World(tmp_path, doc)
    w.customer("CU1")
    for n in range(1, N + 1):
        ct = f"CT{n:02d}"
        w.contract(ct, "CU1").invoice(f"I{n:02d}", "100.00", "2026-03-01", "2026-03-10", contract_id=ct)
        # challenger cases: every one pays 4 days after its early reminder (12 March + 4 = 16 March);
        # champion cases: every third (in id order) pays 5 days after its reminder (20 March + 5)
        if _arm(ct) == "challenger":
            w.payment(f"P{n:02d}", "100.00", "2026-03-16", contract_id=ct, invoice_id=f"I{n:02d}")
        elif ct in PAYING_CHAMPIONS:
            w.payment(f"P{n:02d}", "100.00", "2026-03-25", contract_id=ct, invoice_id=f"I{n:02d}")
    return w


CONTRACTS = [f"CT{n:02d}" for n in range(1, N + 1)]
PAYING_CHAMPIONS = [ct for ct in CONTRACTS if _arm(ct) == "champion"][::3]


def test_the_split_is_the_documented_hash_and_the_report_has_exact_figures(tmp_path):
    w = _world(tmp_path)
    settings = w.run("2026-03-11", "2026-04-30")
    arms = {ct: _arm(ct) for ct in (f"CT{n:02d}" for n in range(1, N + 1))}
    challengers = sorted(ct for ct, a in arms.items() if a == "challenger")
    champions = sorted(ct for ct, a in arms.items() if a == "champion")
    assert (len(challengers), len(champions), len(PAYING_CHAMPIONS)) == (23, 17, 6)
    assert query(settings, "select target_id, policy_id, experiment, arm from case_register order by 1") == [
        (ct, "early" if arms[ct] == "challenger" else "default", "early", arms[ct]) for ct in sorted(arms)]
    # provenance: every ledger row says which arm decided its policy
    assert query(settings, "select distinct arm, policy_id from ledger_with_provenance order by 1") == [
        ("challenger", "early"), ("champion", "default")]

    con = duckdb.connect(str(settings.database), read_only=True)
    try:
        [r] = experiment_report(con, date(2026, 4, 30), 14)
    finally:
        con.close()
    champ, chall = r.arms["champion"], r.arms["challenger"]
    assert (r.experiment, r.currency) == ("early", "EUR")
    # challenger: early reminder (email: outbox) on 12 March, paid on 16 March: no notice, no letter
    assert (chall.cases, chall.documents, chall.letters, chall.fees, chall.recovered, chall.paying_cases) == (
        23, 23, 0, Decimal("0.00"), Decimal("2300.00"), 23)
    # champion: letter on 20 March; 6 pay on 25 March, 11 get the notice letter with its fee on 30 March
    assert (champ.cases, champ.documents, champ.letters, champ.fees, champ.recovered, champ.paying_cases) == (
        17, 28, 28, Decimal("55.00"), Decimal("600.00"), 6)
    assert champ.by_level == [(1, 17, Decimal("600.00")), (2, 11, Decimal("0.00"))]
    assert chall.by_level == [(1, 23, Decimal("2300.00"))]
    assert sorted(set(chall.days_to_close)) == [5] and sorted(set(champ.days_to_close)) == [14]
    c = r.comparison
    assert c.mean_difference == pytest.approx(100 - 600 / 17)
    assert c.rate_difference == pytest.approx(1 - 6 / 17)
    # by hand: champion per case 6 x 100.00 and 11 x 0.00, challenger 23 x 100.00 (no variance)
    mean = 600 / 17
    se = math.sqrt((6 * (100 - mean) ** 2 + 11 * mean ** 2) / 16 / 17)
    assert c.mean_interval == pytest.approx((100 - mean - 1.959964 * se, 100 - mean + 1.959964 * se))
    assert c.mean_p == pytest.approx(math.erfc((100 - mean) / se / math.sqrt(2)))
    pooled = 29 / 40
    rate_se = math.sqrt(pooled * (1 - pooled) * (1 / 17 + 1 / 23))
    assert c.rate_p == pytest.approx(math.erfc((1 - 6 / 17) / rate_se / math.sqrt(2)))
    assert c.significant and c.rate_p < 1e-5

    text = format_report([r], date(2026, 4, 30), 14, Decimal("0.95"))
    assert "| challenger | early | 23 | 23 | 0 | 0.00 | 2,300.00 | 23 (100.0%) | 100.00 [100.00, 100.00] | 5.0 | 0.0000 |" in text
    assert "| champion | default | 17 | 28 | 28 | 55.00 | 600.00 | 6 (35.3%) | 35.29 [" in text
    assert "| 14.0 | 0.0443 |" in text  # 28 letters x 0.95 / 600.00
    assert ": significant at 5 %." in text


def test_the_cli_prints_and_writes_the_report(tmp_path):
    w = _world(tmp_path)
    w.run("2026-03-11", "2026-04-30")
    config = w.write_config()
    out = tmp_path / "experiments.md"
    result = CliRunner().invoke(app, ["experiment", "report", "--days", "14", "--letter-cost", "0.95",
                                      "--out", str(out), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.output == out.read_text(encoding="utf-8")
    assert result.output.startswith("# Experiments on 2026-04-30\n")
    bad = CliRunner().invoke(app, ["experiment", "report", "--letter-cost", "0,95", "--config", str(config)])
    assert bad.exit_code == 2 and "--letter-cost: '0,95' is not an amount like 0.95" in bad.output
