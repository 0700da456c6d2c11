"""How firmly a document speaks: by how late the oldest demanded invoice is, not by the level alone.

A first reminder about an invoice 254 days overdue must not suggest it was perhaps forgotten;
a reminder a week after the due date may. The templates pick their wording by `tone`:

| tone       | days overdue of the oldest invoice the document demands |
|------------|----------------------------------------------------------|
| `courtesy` | none overdue yet (a courtesy reminder before the due date) |
| `friendly` | 1 to 30: "perhaps overlooked" is fine                      |
| `firm`     | 31 to 60: states how long it is overdue, asks to pay now   |
| `urgent`   | more than 60: no "overlooked", asks to pay at once or to get in touch |
"""

from __future__ import annotations

from typing import Iterable, Mapping

FIRM_FROM_DAYS = 31
URGENT_FROM_DAYS = 61
TONES = ("courtesy", "friendly", "firm", "urgent")


def tone_for(days_overdue: int, courtesy: bool = False) -> str:
    if courtesy or days_overdue <= 0:
        return "courtesy" if courtesy else "friendly"
    if days_overdue >= URGENT_FROM_DAYS:
        return "urgent"
    if days_overdue >= FIRM_FROM_DAYS:
        return "firm"
    return "friendly"


def tone_of(invoices: Iterable[Mapping], courtesy: bool = False) -> str:
    """The tone for a document listing `invoices` (each with `days_overdue`)."""
    days = max((int(i.get("days_overdue") or 0) for i in invoices), default=0)
    return tone_for(days, courtesy)
