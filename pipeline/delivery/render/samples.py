"""Sample documents: deterministic contexts for previews, `dunning templates check` and tests.

Seven customers in seven locales and the three default templates; `sample_context(i)`
gives the i-th letter's full template context, with what every document adds (account,
payment reference and QR code, address lines, salutation, tone: `with_document_parts`) from a
sample sender with an account per currency (`SAMPLE_ORGANIZATION`). The rendering benchmark
(`bench/render.py`) renders the same contexts.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

TEMPLATE_ROOT = Path(__file__).resolve().parents[3] / "templates"

_LOCALES = ["de_DE", "en_GB", "fr_FR", "nl_NL", "da_DK", "de_AT", "en_IE"]
# The sample sender: a German GmbH with an account per currency (CHF in Switzerland: a QR-bill).
SAMPLE_ORGANIZATION = {
    "name": "Acme Energie GmbH",
    "address_lines": ["Hauptstraße 1", "10117 Berlin"],
    "address": {"street": "Hauptstraße", "house_number": "1", "postal_code": "10117", "city": "Berlin",
                "country": "DE"},
    "email": "billing@acme-energie.example",
    "country": "DE",
    "locale": "de_DE",
    "accounts": [
        {"currency": "EUR", "iban": "DE89 3704 0044 0532 0130 00", "bic": "COBADEFFXXX", "bank": "Commerzbank"},
        {"currency": "GBP", "iban": "GB29 NWBK 6016 1331 9268 19", "bic": "NWBKGB2L", "bank": "NatWest"},
        {"currency": "DKK", "iban": "DK50 0040 0440 1162 43", "bic": "NDEADKKK", "bank": "Nordea"},
        {"currency": "CHF", "iban": "CH93 0076 2011 6238 5295 7", "bic": "UBSWCHZH80A", "bank": "UBS Zürich"},
    ],
    "legal": {"registered_office": "Berlin", "register_court": "Amtsgericht Charlottenburg",
              "register_number": "HRB 654321 B", "managing_directors": ["Erika Mustermann", "Max Beispiel"],
              "vat_id": "DE136695976"},
    "pay_now_url": "https://pay.acme-energie.example/p/{reference}?amount={amount}&currency={currency}",
}
# A street line, postal code and city per country, so a sample's address is one its post accepts.
_ADDRESSES = {
    "DE": ("Teststraße {n}", "10115", "Berlin"), "AT": ("Testgasse {n}", "1010", "Wien"),
    "CH": ("Bahnhofstrasse {n}", "8001", "Zürich"), "GB": ("{n} High Street", "SW1A 1AA", "London"),
    "IE": ("{n} Main Street", "D02 X285", "Dublin"), "US": ("{n} Fifth Avenue", "10118", "New York"),
    "FR": ("{n} rue de Rivoli", "75001", "Paris"), "BE": ("Rue Neuve {n}", "1000", "Bruxelles"),
    "NL": ("Damrak {n}", "1012 AB", "Amsterdam"), "DK": ("Nørregade {n}", "1050", "København K"),
}
_TEMPLATES = [(1, "1st reminder", "reminder", "0.00"), (2, "2nd reminder", "notice", "5.00"), (3, "final notice", "final", "15.00")]
_NAMES = ["Müller & Söhne GmbH", "Jane O'Neill", "Societé Générale d'Électricité", "Jan de Vries", "Søren Kierkegaard ApS", "Li Wei", "Anna-Lena Schröder"]


def sample_organization() -> dict[str, Any]:
    """The sample sender as a document's context holds it (the settings' model, dumped)."""
    from pipeline.config.settings import Organization

    return Organization.model_validate(SAMPLE_ORGANIZATION).model_dump()


def sample_context(i: int = 0, as_of: date = date(2026, 5, 10), locale: str | None = None, template: str | None = None,
                   currency: str = "EUR", country: str | None = None) -> dict[str, Any]:
    """A realistic, varied document context (the lead's interface), deterministic in ``i``.

    The customer lives in `country` (default: the locale's territory), at an address its post
    accepts; amounts are in `currency` (the sample sender has accounts in EUR, GBP, DKK and CHF).
    """
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
    country = (country or (locale.split("_")[1] if "_" in locale else "DE")).upper()
    street, postal, city = _ADDRESSES.get(country, _ADDRESSES["DE"])
    customer_id = f"C{i:06d}"
    contract_id = f"CT{i:06d}"
    case_id = f"ct-{contract_id}-{as_of:%Y%m%d}"
    ctx = {
        "action_key": f"{case_id}/L{level_no}/{template or default_template}",
        "case_id": case_id,
        "template_set": "default",
        "template": template or default_template,
        "locale": locale,
        "as_of": as_of,
        "level": {"no": level_no, "name": level_name, "due_date": as_of + timedelta(days=10), "fee": fee},
        "organization": sample_organization(),
        "customer": {
            "customer_id": customer_id,
            "name": _NAMES[i % len(_NAMES)],
            "email": f"customer{i}@example.org",
            "locale": locale,
            "country": country,
            "address_line1": street.format(n=i % 200 + 1),
            "address_line2": "c/o Buchhaltung" if i % 3 == 0 else None,
            "postal_code": postal,
            "city": city,
        },
        "contract": {"contract_id": contract_id, "customer_id": customer_id, "currency": currency, "status": "active"},
        "contracts": [{"contract_id": contract_id, "customer_id": customer_id, "currency": currency,
                       "status": "active"}],
        "invoice": invoices[0],
        "invoices": invoices,
        "courtesy": False,
        "amounts": {"currency": currency, "principal": principal, "fees": fee, "interest": interest,
                    "total": principal + fee + interest},
        # what a failed-collection document adds (pipeline/failed_collections/context.py); unused by dunning
        "collection": _sample_collection(i, as_of, invoices[0], principal, fee),
    }
    return with_document_parts(ctx)


def with_document_parts(ctx: dict[str, Any], channel: str | None = None) -> dict[str, Any]:
    """`ctx` with account, payment, address lines, salutation and tone computed from its current data,
    as `build_contexts` adds them (call again after changing amounts, customer or organization)."""
    from .context import document_parts
    from .formatting import language_of
    from .tone import tone_of

    ctx.update(document_parts(ctx, ctx["organization"], channel=channel, language=language_of(ctx["locale"])))
    ctx["tone"] = tone_of(ctx["invoices"], ctx.get("courtesy", False))
    return ctx


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


