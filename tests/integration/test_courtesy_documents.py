"""A courtesy reminder, rendered live: the invoice falling due with its dates and amount, in the
courtesy wording, beside an ordinary overdue reminder of another customer (issue 12, item 1:
rendering it used to crash on an invoice row without dates and stop the day for everybody)."""

from __future__ import annotations

import email
from datetime import date
from decimal import Decimal
from email import policy as email_policy

from world import World, policy, query


def _plain_texts(outbox_day) -> dict[str, str]:
    """The plain-text body of every email written for the day, by the customer it is addressed to."""
    out = {}
    for path in sorted(outbox_day.rglob("message.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email_policy.default)
        out[msg["To"].addresses[0].username] = msg.get_body(preferencelist=("plain",)).get_content()
    return out


def test_a_courtesy_reminder_lists_the_invoice_falling_due_and_the_day_goes_on(tmp_path):
    # invoice scope: a courtesy reminder 3 days before the due date (term 7), then 10 days after it
    w = World(tmp_path, policy([("due_date", -3, 7), ("due_date", 10, 7)], scope="invoice"))
    w.customer("CU1", locale="en_GB").contract("CT1", "CU1")
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-10", contract_id="CT1", customer_id="CU1")
    w.customer("CU2", locale="en_GB").contract("CT2", "CU2")
    w.invoice("I2", "50.00", "2026-02-01", "2026-02-10", contract_id="CT2", customer_id="CU2")
    settings = w.run("2026-03-07", "2026-03-07", dispatch=True)

    assert query(settings, "select action_key, status, principal, demands_due_by from action_ledger "
                           "where action <> 'level_skipped' order by action_key") == [
        ("in-I1-20260307/L1/reminder", "sent", Decimal("100.00"), date(2026, 3, 14)),  # 7 Mar + 7 days
        ("in-I2-20260307/L2/reminder", "sent", Decimal("50.00"), date(2026, 3, 6)),    # what is overdue
    ]
    texts = _plain_texts(settings.outbox / "2026-03-07")
    assert sorted(texts) == ["CU1", "CU2"]
    courtesy = texts["CU1"]
    assert "This is a friendly reminder that the following invoice falls due on 10 Mar 2026." in courtesy
    assert "- Invoice N-I1 of 1 Mar 2026, due 10 Mar 2026: €100.00 open of €100.00" in courtesy
    assert "overdue" not in courtesy
    overdue = texts["CU2"]
    assert "According to our records, the following invoice is still open." in overdue
    assert "due 10 Feb 2026 (25 days overdue)" in overdue


def test_a_contract_courtesy_reminder_lists_only_what_falls_due(tmp_path):
    # contract scope, courtesy 3 days before I1's due date, term 0: I2, due three weeks later, is not demanded
    w = World(tmp_path, policy([("due_date", -3, 0), ("due_date", 7, 0)], scope="contract"))
    w.customer("CU1", locale="de_DE").contract("CT1", "CU1")
    w.invoice("I1", "100.00", "2026-03-01", "2026-03-10")
    w.invoice("I2", "200.00", "2026-03-05", "2026-03-31")
    settings = w.run("2026-03-07", "2026-03-07", dispatch=True)
    assert query(settings, "select action_key, principal, amount_demanded, demands_due_by from action_ledger") == [
        ("ct-CT1-20260307/L1/reminder", Decimal("100.00"), Decimal("100.00"), date(2026, 3, 10))]
    text = _plain_texts(settings.outbox / "2026-03-07")["CU1"]
    assert "wir möchten Sie freundlich daran erinnern, dass die folgende Rechnung am 10.03.2026 fällig wird." in text
    assert "N-I1" in text and "N-I2" not in text
    assert "überfällig" not in text
