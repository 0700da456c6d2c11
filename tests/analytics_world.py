"""One small company for the analyst's views and the daily report, with every figure worked out by hand.

Policy: level 1 seven days after the due date, level 2 seven days after level 1's own due
date (terms 7 days; level 2 charges EUR 5.00 / USD 4.00). Days run live (documents sent to
the outbox) from 2026-04-10 to 2026-05-05:

| case (opened)   | invoices (due)                                    | levels                 | closed          |
|-----------------|---------------------------------------------------|------------------------|-----------------|
| CT1 EUR (04-10) | I1 100.00 (04-05), paid 04-15                      | L1 04-12 100.00        | 04-15, 3 d after L1 |
| CT2 EUR (04-10) | I2 200.00 (04-01), 205.00 paid 04-28               | L1 04-10, L2 04-24 205.00 | 04-28, 4 d after L2 |
| CT3 USD (04-10) | I3 300.00 (02-01), I5 70.00 (03-15), I4 50.00 (05-20) | L1 04-10 370.00, L2 04-24 374.00 | open |
| CT4 EUR (04-10) | I6 80.00 (02-20)                                   | L1 04-10, L2 04-24 85.00 | open          |
| CT5 EUR (04-21) | I7 60.00 (04-20)                                   | L1 04-27 60.00         | open            |
"""

from __future__ import annotations

from pathlib import Path

from world import World, policy

LEVELS = [("due_date", 7, 7), ("previous_level", 7, 7, {"EUR": "5.00", "USD": "4.00"})]
FIRST_DAY, LAST_DAY = "2026-04-10", "2026-05-05"


def company(root: Path) -> World:
    w = World(root, policy(LEVELS))
    for n in range(1, 6):
        w.customer(f"CU{n}")
    w.contract("CT1", "CU1").contract("CT2", "CU2").contract("CT3", "CU3", currency="USD")
    w.contract("CT4", "CU4").contract("CT5", "CU5")
    w.invoice("I1", "100.00", "2026-03-25", "2026-04-05", "CT1", "CU1")
    w.invoice("I2", "200.00", "2026-03-20", "2026-04-01", "CT2", "CU2")
    w.invoice("I3", "300.00", "2026-01-20", "2026-02-01", "CT3", "CU3", currency="USD")
    w.invoice("I4", "50.00", "2026-04-20", "2026-05-20", "CT3", "CU3", currency="USD")
    w.invoice("I5", "70.00", "2026-03-01", "2026-03-15", "CT3", "CU3", currency="USD")
    w.invoice("I6", "80.00", "2026-02-01", "2026-02-20", "CT4", "CU4")
    w.invoice("I7", "60.00", "2026-04-10", "2026-04-20", "CT5", "CU5")
    w.payment("P1", "100.00", "2026-04-15", "CT1", invoice_id="I1")
    w.payment("P2", "205.00", "2026-04-28", "CT2")  # no invoice: oldest first, 5.00 left as credit
    return w
