"""Sample documents: deterministic contexts for previews, `dunning templates check` and tests.

Seven customers in seven locales and the three default templates; `sample_context(i)`
gives the i-th letter's full template context. The rendering benchmark (`bench/render.py`)
renders the same contexts.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

TEMPLATE_ROOT = Path(__file__).resolve().parents[3] / "templates"

_LOCALES = ["de_DE", "en_GB", "fr_FR", "nl_NL", "da_DK", "de_AT", "en_IE"]
_TEMPLATES = [(1, "1st reminder", "reminder", "0.00"), (2, "2nd reminder", "notice", "5.00"), (3, "final notice", "final", "15.00")]
_NAMES = ["Müller & Söhne GmbH", "Jane O'Neill", "Societé Générale d'Électricité", "Jan de Vries", "Søren Kierkegaard ApS", "Li Wei", "Anna-Lena Schröder"]
_CITIES = [("10115", "Berlin"), ("SW1A 1AA", "London"), ("75001", "Paris"), ("1012 AB", "Amsterdam"), ("1050", "København K"), ("1010", "Wien"), ("D02 X285", "Dublin")]


def sample_context(i: int = 0, as_of: date = date(2026, 5, 10), locale: str | None = None, template: str | None = None) -> dict[str, Any]:
    """A realistic, varied document context (the lead's interface), deterministic in ``i``."""
    locale = locale or _LOCALES[i % len(_LOCALES)]
    level_no, level_name, default_template, fee = _TEMPLATES[i % len(_TEMPLATES)]
    fee = Decimal(fee)
    n_invoices = 1 + i % 4
    invoices = []
    for k in range(n_invoices):
        inv_date = as_of - timedelta(days=30 * (n_invoices - k) + 14 + i % 9)
        due = inv_date + timedelta(days=14)
        amount = (Decimal("1234.56") + Decimal(i * 37 + k * 101) / 7).quantize(Decimal("0.01"))
        open_amount = amount if k else (amount - Decimal("100.00")).quantize(Decimal("0.01"))
        invoices.append({
            "invoice_number": f"INV-2026-{i:05d}-{k}",
            "invoice_date": inv_date,
            "due_date": due,
            "amount": amount,
            "open_amount": open_amount,
            "days_overdue": (as_of - due).days,
        })
    principal = sum((inv["open_amount"] for inv in invoices), Decimal("0.00"))
    interest = Decimal("0.00") if level_no < 3 else (principal * Decimal("0.0075")).quantize(Decimal("0.01"))
    postal, city = _CITIES[i % len(_CITIES)]
    customer_id = f"C{i:06d}"
    contract_id = f"CT{i:06d}"
    return {
        "action_key": f"ct-{contract_id}-{as_of:%Y%m%d}/L{level_no}/{template or default_template}",
        "template_set": "default",
        "template": template or default_template,
        "locale": locale,
        "as_of": as_of,
        "level": {"no": level_no, "name": level_name, "due_date": as_of + timedelta(days=10), "fee": fee},
        "organization": {
            "name": "Acme Energie GmbH",
            "address_lines": ["Hauptstraße 1", "10117 Berlin"],
            "email": "billing@acme-energie.example",
            "iban": "DE89 3704 0044 0532 0130 00",
            "bic": "COBADEFFXXX",
            "bank": "Commerzbank",
        },
        "customer": {
            "customer_id": customer_id,
            "name": _NAMES[i % len(_NAMES)],
            "email": f"customer{i}@example.org",
            "locale": locale,
            "country": locale[-2:],
            "address_line1": f"Teststraße {i % 200 + 1}",
            "address_line2": "c/o Buchhaltung" if i % 3 == 0 else None,
            "postal_code": postal,
            "city": city,
        },
        "contract": {"contract_id": contract_id, "customer_id": customer_id, "currency": "EUR", "status": "active"},
        "invoice": invoices[0],
        "invoices": invoices,
        "amounts": {"currency": "EUR", "principal": principal, "fees": fee, "interest": interest, "total": principal + fee + interest},
        # what a failed-collection document adds (pipeline/failed_collections/context.py); unused by dunning
        "collection": _sample_collection(i, as_of, invoices[0], principal, fee),
    }


def _sample_collection(i: int, as_of: date, invoice: dict[str, Any], principal: Decimal,
                       charges: Decimal) -> dict[str, Any]:
    """Alternates payment link and transfer, with and without a new-mandate address and a reason code."""
    case_key = f"cc-P{i:06d}"
    failure_type, code, reason = [("soft", "AM04", "Insufficient funds on the debtor account"),
                                  ("hard", "MS02", "Refused by the debtor without a reason"),
                                  ("technical", None, "unknown reason code")][i % 3]
    link = i % 2 == 0
    return {
        "case_key": case_key, "failure_type": failure_type, "reason_code": code, "reason": reason,
        "payment": {"payment_id": f"P{i:06d}", "amount": invoice["amount"], "failed_on": as_of - timedelta(days=3),
                    "mandate_id": f"MD-{i:06d}" if i % 3 != 2 else None},
        "outstanding": principal, "admin_charges": charges, "total": principal + charges,
        "method": "payment_link" if link else "transfer",
        "payment_link": f"https://pay.example.com/c/{case_key}?amount={principal + charges}" if link else None,
        "new_mandate_url": f"https://sign.example.com/{case_key}" if link else None,
        "pay_by": as_of + timedelta(days=14),
        "transfer": {"account_holder": "Acme Energie GmbH", "iban": "DE89 3704 0044 0532 0130 00",
                     "bic": "COBADEFFXXX", "bank": "Commerzbank", "reference": case_key},
    }


