"""What a document states against its ledger row: the invoices it lists are those open on the day its
level ran (also when it is rendered on a later day), and "a fee of ... for this notice" is the fee the
level charged, not the fees of the case so far."""

from __future__ import annotations

import email
import email.policy
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb

from pipeline.delivery.documents import _PLANNED_SQL, build_contexts, records
from pipeline.engine import run as run_mod
from world import World, policy, query

GB = {"locale": "en_GB", "country": "GB", "postal_code": "SW1A 2AA", "city": "London"}


def _texts(settings) -> dict[str, str]:
    """The plain-text part of every email in the outbox, by action key."""
    out = {}
    for path in sorted(Path(settings.outbox).rglob("message.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        out[msg["X-Dunning-Action-Key"]] = msg.get_body(preferencelist=("plain",)).get_content()
    return out


def test_a_document_rendered_days_after_its_level_lists_what_was_open_that_day(tmp_path):
    """Planned on 17 March (I1 100.00 and I2 200.00 overdue), not sent that day; I1 is paid on 18 March,
    whose run sends it. The document demands 300.00, as its row does, and lists both invoices; before,
    it listed only I2 (what was open on the day of sending) beside the total of 300.00."""
    w = World(tmp_path, policy([("due_date", 7, 7)], scope="contract"))
    w.customer("CU1", **GB).contract("CT1", "CU1")
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    w.invoice("I2", "200.00", "2026-03-01", "2026-03-10")
    w.payment("P1", "100.00", "2026-03-18", invoice_id="I1")
    s = w.write()
    with run_mod.connect(s.database) as con:
        run_mod.load_inputs(con, s)
        run_mod.run_range(con, date(2026, 3, 10), date(2026, 3, 17), s, send=False)
        run_mod.run_range(con, date(2026, 3, 18), date(2026, 3, 18), s, send=True)
    assert query(s, "select action_key, executed_on::varchar, status, principal, amount_demanded "
                    "from action_ledger") == [
        ("ct-CT1-20260311/L1/reminder", "2026-03-17", "sent", Decimal("300.00"), Decimal("300.00"))]
    text = _texts(s)["ct-CT1-20260311/L1/reminder"]
    assert [line for line in text.splitlines() if line.startswith("- Invoice")] == [
        "- Invoice N-I1 of 1 Mar 2026, due 10 Mar 2026 (7 days overdue): €100.00 open of €100.00",
        "- Invoice N-I2 of 1 Mar 2026, due 10 Mar 2026 (7 days overdue): €200.00 open of €200.00"]
    assert "Total due:        €300.00" in text


# L1 charges 5.00; L2 a notice without a fee; L3 a notice charging 2.50 (the case's fees: 5.00, 5.00, 7.50)
NOTICES = [("due_date", 7, 7, {"EUR": "5.00"}),
           {"name": "Notice", "timing": {"after": "previous_level", "days": 3}, "payment_term_days": 7,
            "template": "notice"},
           {"name": "Notice 2", "timing": {"after": "previous_level", "days": 3}, "payment_term_days": 7,
            "template": "notice", "fee": {"EUR": "2.50"}}]


def test_a_notice_states_the_fee_of_its_own_level(tmp_path):
    w = World(tmp_path, policy(NOTICES))
    w.customer("CU1", **GB).contract("CT1", "CU1")
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    s = w.run("2026-03-01", "2026-04-10", dispatch=True)
    texts = _texts(s)
    stated = {key: [line for line in text.splitlines() if "dunning fee of" in line]
              for key, text in texts.items()}
    assert query(s, "select action_key, fee, fees_total from action_ledger order by executed_on") == [
        ("ct-CT1-20260311/L1/reminder", Decimal("5.00"), Decimal("5.00")),
        ("ct-CT1-20260311/L2/reminder", Decimal("0.00"), Decimal("5.00")),
        ("ct-CT1-20260311/L3/reminder", Decimal("2.50"), Decimal("7.50"))]
    assert stated["ct-CT1-20260311/L2/reminder"] == []
    assert stated["ct-CT1-20260311/L3/reminder"] == [
        "In accordance with our terms and conditions, we charge a dunning fee of €2.50 for this notice."]
    assert "Dunning fees:     €7.50" in texts["ct-CT1-20260311/L3/reminder"]  # the case's fees so far


def test_the_level_fee_of_a_document_is_the_level_s_whichever_action_carries_it(tmp_path):
    """The ledger books a level's fee on its first action, here the webhook; the reminder's context
    still has the level's fee (it had 0.00), as `dunning preview` has it from the policy."""
    w = World(tmp_path, policy([{"name": "Reminder", "timing": {"after": "due_date", "days": 7},
                                 "payment_term_days": 7, "fee": {"EUR": "5.00"},
                                 "actions": [{"type": "webhook"}, {"type": "reminder"}]}]))
    w.customer("CU1", **GB).contract("CT1", "CU1")
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    s = w.write()
    with run_mod.connect(s.database) as con:
        run_mod.load_inputs(con, s)
        run_mod.plan_day(con, date(2026, 3, 17), run_mod.RunMode.LIVE)
    assert query(s, "select action, fee, fees_total from action_ledger order by action") == [
        ("reminder", Decimal("0.00"), Decimal("5.00")), ("webhook", Decimal("5.00"), Decimal("5.00"))]
    con = duckdb.connect(str(s.database), read_only=True)
    try:
        [row] = [r for r in records(con, _PLANNED_SQL, [date(2026, 3, 17)]) if r["action"] == "reminder"]
        [ctx] = build_contexts(con, [row], s)
    finally:
        con.close()
    assert (ctx["level"]["fee"], ctx["amounts"]["fees"]) == (Decimal("5.00"), Decimal("5.00"))


def test_a_yen_document_demands_the_ledger_s_amount_to_the_cent(tmp_path):
    """Interest of 10% on ¥100,000 for 30 days is 821.92 (SPEC 4: rounded half-up to the cent), so the
    level demands 100,821.92. The email says so; before (review 2026-12-08) Babel rounded every amount
    to whole yen: "Default interest: JP¥822", "Total due: JP¥100,822", a sum the ledger did not demand."""
    w = World(tmp_path, policy([("due_date", 30, 7)], extra={"interest": {"annual_rate_percent": "10"}}))
    w.customer("CU1", **GB).contract("CT1", "CU1", currency="JPY")
    w.invoice("I1", "100000", "2026-03-01", "2026-03-10", currency="JPY")
    s = w.run("2026-03-01", "2026-04-09", dispatch=True)
    assert query(s, "select action_key, executed_on::varchar, interest, amount_demanded from action_ledger") == [
        ("ct-CT1-20260311/L1/reminder", "2026-04-09", Decimal("821.92"), Decimal("100821.92"))]
    text = _texts(s)["ct-CT1-20260311/L1/reminder"]
    money = [line.strip() for line in text.splitlines() if "JP¥" in line]
    assert money == ["- Invoice N-I1 of 1 Mar 2026, due 10 Mar 2026 (30 days overdue): JP¥100,000 open of JP¥100,000",
                     "Open invoices:    JP¥100,000", "Default interest: JP¥821.92", "Total due:        JP¥100,821.92",
                     "Please transfer JP¥100,821.92 by 16 Apr 2026 to:"]


def test_a_customer_document_names_every_contract_whose_invoices_it_lists(tmp_path):
    """Customer scope (SPEC 3: one document listing every overdue invoice of the customer's contracts in
    one currency): I1 of CT1 and I2 of CT2 in one reminder, whose footer names both contracts, the
    followed one first. Before (review 2026-12-08) it named CT1 only, and a final notice threatened to
    end CT1 alone."""
    w = World(tmp_path, policy([("due_date", 7, 7)], scope="customer"))
    w.customer("CU1", **GB).contract("CT2", "CU1").contract("CT1", "CU1")
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-10", "CT1")
    w.invoice("I2", "200.00", "2026-03-01", "2026-03-11", "CT2")
    s = w.run("2026-03-01", "2026-03-18", dispatch=True)
    assert query(s, "select action_key, contract_id, amount_demanded from action_ledger") == [
        ("cu-CU1-EUR-20260311/L1/reminder", "CT1", Decimal("300.00"))]
    text = _texts(s)["cu-CU1-EUR-20260311/L1/reminder"]
    assert [line for line in text.splitlines() if line.startswith("Customer no.")] == [
        "Customer no. CU1 · Contract CT1, CT2"]
