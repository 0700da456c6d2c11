"""How a customer pays a demand: the creditor account, the payment reference, QR codes, a pay-now link.

- **Account** (`choose_account`): the organization's account for the demanded currency, one
  listed for the customer's country first (`organization.accounts` in dunning.yaml). A currency
  without an account has no account: the document is refused (`refusal`), never shown with the
  account of another currency.
- **Payment reference** (`creditor_reference`): one ISO 11649 creditor reference ("RF" + two
  check digits + 20 digits) per case, the same on every document of the case, so a payment made
  from any of its letters or emails is matched to the case (and through the ledger to every
  invoice it demands). The 20 digits are the MD5 of the case id as a number, modulo 10^20: stateless,
  the same in SQL (the macro `payment_reference`, DuckDB's `md5_number`) as here, so a view or an export can
  add the column without a table of issued references. 10^20 values: the chance that any two
  cases share a reference is about 5 in 10^9 among a million cases, 5 in 10^5 among 10^8.
- **EPC QR code** ("GiroCode", EPC069-12 version 002, `epc_payload`): for EUR documents, with
  IBAN, BIC, name, amount and the reference as structured remittance information; a banking app
  scanning it fills in the whole transfer.
- **Swiss QR-bill** (`swiss_qr_bill`, library `qrbill`): for CHF documents paid into a Swiss or
  Liechtenstein account, the payment part with receipt (SPC 0200, SCOR reference = the RF reference).
- **Pay-now link** (`organization.pay_now_url`): the template filled with reference, amount,
  currency, case and customer, URL-quoted; shown in emails.

`payment_parts` builds all of it for one document, once: the email and the letter of that
document use the same images (no cache across documents, none needed: a QR code takes about a
millisecond).
"""

from __future__ import annotations

import base64
import hashlib
import io
from decimal import Decimal
from typing import Any, Mapping
from urllib.parse import quote

REFERENCE_DIGITS = 20
_MODULUS = 10 ** REFERENCE_DIGITS
# The same reference in DuckDB SQL: the macro payment_reference(case_id) of
# sql/schema/027_payment_reference_macro.sql (ledger_with_provenance exports it).
EPC_MAX_AMOUNT = Decimal("999999999.99")


class NoCreditorAccount(ValueError):
    """The organization has no account for a document's currency (and the customer's country)."""


def rf_reference(body: str) -> str:
    """``RF`` + ISO 7064 MOD 97-10 check digits + `body` (1 to 21 letters and digits), as ISO 11649 builds it:
    ``rf_reference("539007547034") == "RF18539007547034"`` (the standard's example)."""
    body = body.replace(" ", "").upper()
    if not (1 <= len(body) <= 21 and body.isascii() and body.isalnum()):
        raise ValueError(f"a creditor reference's body is 1 to 21 letters and digits, not {body!r}")
    number = int("".join(str(int(ch, 36)) for ch in body + "RF00"))
    return f"RF{98 - number % 97:02d}{body}"


def creditor_reference(case_id: str) -> str:
    """The ISO 11649 creditor reference of a case, compact: ``RF`` + 2 check digits + 20 digits
    (the MD5 of the case id as a little-endian number, modulo 10^20, as DuckDB's `md5_number`)."""
    body = int.from_bytes(hashlib.md5(case_id.encode("utf-8")).digest(), "little") % _MODULUS
    return rf_reference(f"{body:0{REFERENCE_DIGITS}d}")


def format_reference(reference: str) -> str:
    """``RF47 1234 5678 ...``: groups of four, as ISO 11649 prints it."""
    compact = reference.replace(" ", "")
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def format_iban(iban: str) -> str:
    compact = iban.replace(" ", "").upper()
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def choose_account(organization: Mapping[str, Any], currency: str, country: str | None) -> dict[str, Any] | None:
    """The account a customer in `country` pays `currency` into: one for that currency and country,
    else one for the currency without countries (else the one account of an old configuration)."""
    accounts = organization.get("accounts") or []
    country = (country or "").upper()
    for account in accounts:
        if account.get("currency") == currency and country in (account.get("countries") or []):
            return dict(account)
    for account in accounts:
        if account.get("currency") == currency and not account.get("countries"):
            return dict(account)
    for account in accounts:
        if account.get("currency") is None:  # one account for every currency (dunning.yaml without accounts)
            return dict(account)
    return None


def account_view(organization: Mapping[str, Any], account: Mapping[str, Any]) -> dict[str, Any]:
    """The `account` of a document's context: holder, IBAN (compact and in groups), BIC, bank, currency."""
    return {"holder": account.get("holder") or organization["name"], "iban": account["iban"],
            "iban_display": format_iban(account["iban"]), "bic": account["bic"], "bank": account["bank"],
            "currency": account.get("currency")}


def no_account_reason(currency: str, country: str | None) -> str:
    where = f" (customer country {country})" if country else ""
    return (f"no creditor account for {currency}{where}: the document would ask for payment into an account "
            f"of another currency; add one to organization.accounts in dunning.yaml")


# --- QR codes ------------------------------------------------------------------------------------

def epc_payload(*, name: str, iban: str, bic: str | None, amount: Decimal, reference: str) -> str:
    """The EPC QR code's text (EPC069-12 v2.1, version 002, UTF-8, SEPA credit transfer), line by line:
    service tag, version, character set, identification, BIC, name, IBAN, amount, purpose, structured
    reference. The last element is not followed by a line break."""
    amount = Decimal(amount).quantize(Decimal("0.01"))
    if not Decimal("0.01") <= amount <= EPC_MAX_AMOUNT:
        raise ValueError(f"amount {amount} outside what an EPC QR code carries (0.01 to {EPC_MAX_AMOUNT})")
    lines = ["BCD", "002", "1", "SCT", (bic or "").strip(), name.strip()[:70], iban.replace(" ", "").upper(),
             f"EUR{amount}", "", reference.replace(" ", "")]
    return "\n".join(lines)


def _qr(payload: str):
    import segno

    qr = segno.make_qr(payload.encode("utf-8"), error="m", boost_error=False)
    if qr.version > 13:  # EPC069-12: version 13 at most
        raise ValueError(f"EPC QR code too large (version {qr.version})")
    return qr


def qr_data_uris(payload: str) -> tuple[str, str]:
    """(SVG, PNG) data URIs of one QR code, encoded once (choosing the mask is most of the ~7 ms):
    the default letters and emails show the PNG (mail clients show PNG, not SVG, and WeasyPrint
    draws it faster); the SVG is there for custom letter templates that want vectors."""
    qr = _qr(payload)
    return qr.svg_data_uri(scale=4, border=4, omitsize=True), qr.png_data_uri(scale=4, border=4)


def swiss_qr_bill(*, account: Mapping[str, Any], organization: Mapping[str, Any], amount: Decimal,
                  reference: str, customer: Mapping[str, Any], language: str) -> tuple[str, str]:
    """(SPC payload, SVG data URI of the payment part with receipt, 210 x 105 mm) of a Swiss QR-bill."""
    from qrbill import QRBill

    address = organization.get("address") or {}
    creditor = {"name": (account.get("holder") or organization["name"])[:70], "street": address.get("street"),
                "house_num": address.get("house_number"), "pcode": address.get("postal_code"),
                "city": address.get("city"), "country": address.get("country")}
    debtor = None
    if customer.get("postal_code") and customer.get("city") and customer.get("country"):
        debtor = {"name": str(customer.get("name") or "")[:70], "street": customer.get("address_line1") or None,
                  "pcode": str(customer["postal_code"]), "city": str(customer["city"]),
                  "country": str(customer["country"])}
    bill = QRBill(account=account["iban"], creditor=creditor, debtor=debtor, amount=Decimal(amount).quantize(
        Decimal("0.01")), currency="CHF", reference_number=reference,
        language=language if language in ("de", "fr", "it", "en") else "en")
    out = io.StringIO()
    bill.as_svg(out)
    svg = base64.b64encode(out.getvalue().encode("utf-8")).decode("ascii")
    return bill.qr_data(), f"data:image/svg+xml;base64,{svg}"


def pay_now_link(template: str | None, **values: Any) -> str | None:
    if not template:
        return None
    return template.format(**{k: quote(str(v), safe="") for k, v in values.items()})


# --- one document ---------------------------------------------------------------------------------

def payment_parts(organization: Mapping[str, Any], *, case_id: str, currency: str, amount: Decimal,
                  customer: Mapping[str, Any], language: str, qr: bool = True,
                  ) -> tuple[dict[str, Any] | None, dict[str, Any], str | None]:
    """(account, payment, refusal) of one document's context.

    `account` is None and `refusal` says why when there is no account for the currency. `payment`:
    reference (compact), reference_display (in groups), epc_qr (SVG data URI) and epc_qr_png (PNG),
    epc_payload, qr_bill (SVG data URI) and qr_bill_payload, pay_now_url; what does not apply is None.
    `qr=False` leaves the QR codes out (texts only, e.g. an SMS).
    """
    reference = creditor_reference(case_id)
    payment: dict[str, Any] = {"reference": reference, "reference_display": format_reference(reference),
                               "epc_qr": None, "epc_qr_png": None, "epc_payload": None, "qr_bill": None,
                               "qr_bill_payload": None, "pay_now_url": None}
    chosen = choose_account(organization, currency, customer.get("country"))
    if chosen is None:
        return None, payment, no_account_reason(currency, customer.get("country"))
    account = account_view(organization, chosen)
    total = Decimal(amount)
    payment["pay_now_url"] = pay_now_link(organization.get("pay_now_url"), reference=reference, amount=f"{total:.2f}",
                                          currency=currency, case_id=case_id, customer_id=customer.get("customer_id"))
    if not qr or total <= 0:
        return account, payment, None
    if currency == "EUR" and total <= EPC_MAX_AMOUNT:
        payload = epc_payload(name=account["holder"], iban=account["iban"], bic=account["bic"], amount=total,
                              reference=reference)
        svg, png = qr_data_uris(payload)
        payment.update(epc_payload=payload, epc_qr=svg, epc_qr_png=png)
    elif currency == "CHF" and account["iban"][:2] in ("CH", "LI") and organization.get("address"):
        payload, svg = swiss_qr_bill(account=account, organization=organization, amount=total, reference=reference,
                                     customer=customer, language=language)
        payment.update(qr_bill_payload=payload, qr_bill=svg)
    return account, payment, None
