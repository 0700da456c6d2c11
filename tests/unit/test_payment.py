"""Payment made easy and matchable (pipeline/delivery/payment.py): the creditor reference, the EPC QR
code and the Swiss QR-bill, the account per currency and country, and the settings checked at start-up."""

from __future__ import annotations

import base64
import io
from decimal import Decimal

import duckdb
import pytest
import zxingcpp
from PIL import Image
from pydantic import ValidationError
from stdnum import iso11649

from pipeline.config.settings import Organization
from pipeline.delivery.payment import (choose_account, creditor_reference, epc_payload,
                                       format_reference, payment_parts, qr_data_uris, rf_reference)
from pipeline.delivery.render.samples import SAMPLE_ORGANIZATION, sample_organization

ORG = sample_organization()  # EUR (DE), GBP (GB), DKK (DK), CHF (CH) accounts
CUSTOMER = {"customer_id": "CU1", "name": "Jane O'Neill", "country": "DE", "address_line1": "Hauptstr. 1",
            "postal_code": "10115", "city": "Berlin"}


def decode_png_data_uri(uri: str) -> list[str]:
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    return [r.text for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode]


# --- the creditor reference -------------------------------------------------------------------------

def test_rf_check_digits_are_the_standards():
    assert rf_reference("539007547034") == "RF18539007547034"  # ISO 11649's own example
    assert format_reference("RF18539007547034") == "RF18 5390 0754 7034"
    assert iso11649.is_valid("RF18539007547034")
    with pytest.raises(ValueError):
        rf_reference("x" * 22)


def test_a_case_has_one_reference_on_every_document():
    assert creditor_reference("ct-CT1-20260510") == "RF1732031391341547522492"
    assert format_reference(creditor_reference("ct-CT1-20260510")) == "RF17 3203 1391 3415 4752 2492"
    assert creditor_reference("ct-CT1-20260510") != creditor_reference("ct-CT1-20260511")
    for case_id in ("ct-CT1-20260510", "in-I1-20260101", "cc-P000000", "cu-Ä/ß x-EUR-20260101", "x" * 300):
        ref = creditor_reference(case_id)
        assert len(ref) == 24 and ref.startswith("RF") and ref[2:].isdigit()
        assert iso11649.is_valid(ref), ref  # an independent check of the check digits


def test_the_sql_macro_gives_the_same_reference_for_an_export():
    """ledger_with_provenance exports the reference (macro payment_reference) without a table of issued ones."""
    from pipeline.warehouse.ddl import ddl

    ids = ["ct-CT1-20260510", "in-I1-20260101", "cc-P000000", "cu-Ä/ß x-EUR-20260101", "x" * 300, ""] + [
        f"ct-CT{i}-2026{i % 12 + 1:02d}01" for i in range(2000)]
    con = duckdb.connect()
    con.execute(ddl("027_payment_reference_macro.sql"))
    rows = con.execute("select case_id, payment_reference(case_id) from unnest(?) t(case_id)",
                       [ids]).fetchall()
    assert len(rows) == len(ids)
    assert all(ref == creditor_reference(case_id) for case_id, ref in rows)


# --- EPC QR code (GiroCode) -------------------------------------------------------------------------

def test_epc_payload_lines():
    payload = epc_payload(name="Acme Energie GmbH", iban="DE89 3704 0044 0532 0130 00", bic="COBADEFFXXX",
                          amount=Decimal("1234.5"), reference="RF17 3203 1391 3415 4752 2492")
    assert payload.split("\n") == [
        "BCD", "002", "1", "SCT", "COBADEFFXXX", "Acme Energie GmbH", "DE89370400440532013000", "EUR1234.50", "",
        "RF1732031391341547522492"]
    assert not payload.endswith("\n")  # EPC069-12: no line break after the last element
    with pytest.raises(ValueError):
        epc_payload(name="x", iban="DE89370400440532013000", bic=None, amount=Decimal("0.00"), reference="RF18539007547034")


def test_a_eur_document_gets_the_eur_account_reference_and_a_qr_code_that_decodes_to_them():
    account, payment, refused = payment_parts(ORG, case_id="ct-CT1-20260510", currency="EUR",
                                              amount=Decimal("3721.27"), customer=CUSTOMER, language="de")
    assert refused is None
    assert account == {"holder": "Acme Energie GmbH", "iban": "DE89370400440532013000",
                       "iban_display": "DE89 3704 0044 0532 0130 00", "bic": "COBADEFFXXX", "bank": "Commerzbank",
                       "currency": "EUR"}
    assert payment["reference"] == "RF1732031391341547522492"
    assert payment["reference_display"] == "RF17 3203 1391 3415 4752 2492"
    lines = payment["epc_payload"].split("\n")
    assert (lines[6], lines[7], lines[9]) == ("DE89370400440532013000", "EUR3721.27", "RF1732031391341547522492")
    # the image the email shows decodes to exactly this text (the letter's SVG is the same code)
    assert decode_png_data_uri(payment["epc_qr_png"]) == [payment["epc_payload"]]
    assert payment["epc_qr"].startswith("data:image/svg+xml")
    assert payment["qr_bill"] is None
    assert payment["pay_now_url"] == ("https://pay.acme-energie.example/p/RF1732031391341547522492"
                                      "?amount=3721.27&currency=EUR")


def test_qr_code_data_uris_are_one_code():
    svg, png = qr_data_uris("BCD\n002\n1\nSCT\n\nX\nDE89370400440532013000\nEUR1.00\n\nRF18539007547034")
    assert svg.startswith("data:image/svg+xml") and png.startswith("data:image/png;base64,")
    assert decode_png_data_uri(png) == ["BCD\n002\n1\nSCT\n\nX\nDE89370400440532013000\nEUR1.00\n\nRF18539007547034"]


def test_only_eur_gets_an_epc_qr_code():
    for currency in ("GBP", "DKK"):
        _, payment, refused = payment_parts(ORG, case_id="ct-CT1-20260510", currency=currency,
                                            amount=Decimal("10.00"), customer=CUSTOMER, language="en")
        assert refused is None and payment["epc_qr"] is None and payment["epc_payload"] is None


# --- Swiss QR-bill ----------------------------------------------------------------------------------

def test_a_chf_document_gets_a_swiss_qr_bill_with_iban_amount_and_reference():
    customer = dict(CUSTOMER, country="CH", address_line1="Bahnhofstrasse 1", postal_code="8001", city="Zürich")
    account, payment, refused = payment_parts(ORG, case_id="ct-CT9-20260510", currency="CHF",
                                              amount=Decimal("2399.12"), customer=customer, language="de")
    assert refused is None and account["iban"] == "CH9300762011623852957" and payment["epc_qr"] is None
    fields = payment["qr_bill_payload"].split("\r\n")
    # SPC 0200: header, account, creditor (7), ultimate creditor (7), amount, currency, debtor (7), reference
    assert fields[:4] == ["SPC", "0200", "1", "CH9300762011623852957"]
    assert fields[4:11] == ["S", "Acme Energie GmbH", "Hauptstraße", "1", "10117", "Berlin", "DE"]
    assert fields[18:20] == ["2399.12", "CHF"]
    assert fields[20:27] == ["S", "Jane O'Neill", "Bahnhofstrasse 1", "", "8001", "Zürich", "CH"]
    assert fields[27:29] == ["SCOR", creditor_reference("ct-CT9-20260510")]
    assert fields[-1] == "EPD"
    assert payment["qr_bill"].startswith("data:image/svg+xml;base64,")


# --- which account ----------------------------------------------------------------------------------

def test_the_account_follows_the_currency_and_a_country_account_wins():
    org = Organization.model_validate(dict(SAMPLE_ORGANIZATION, accounts=[
        *SAMPLE_ORGANIZATION["accounts"],
        {"currency": "EUR", "countries": ["AT"], "iban": "AT61 1904 3002 3457 3201", "bic": "BKAUATWW",
         "bank": "Bank Austria"}])).model_dump()
    assert choose_account(org, "EUR", "DE")["iban"] == "DE89370400440532013000"
    assert choose_account(org, "EUR", "AT")["iban"] == "AT611904300234573201"
    assert choose_account(org, "GBP", "GB")["iban"] == "GB29NWBK60161331926819"
    assert choose_account(org, "GBP", "DE")["iban"] == "GB29NWBK60161331926819"
    assert choose_account(org, "DKK", "DK")["iban"] == "DK5000400440116243"
    assert choose_account(org, "USD", "US") is None


def test_a_currency_without_an_account_is_refused_with_the_reason():
    account, payment, refused = payment_parts(ORG, case_id="ct-CT1-20260510", currency="USD",
                                              amount=Decimal("10.00"), customer=dict(CUSTOMER, country="US"),
                                              language="en")
    assert account is None and payment["epc_qr"] is None
    assert refused == ("no creditor account for USD (customer country US): the document would ask for payment "
                       "into an account of another currency; add one to organization.accounts in dunning.yaml")


def test_an_old_configuration_has_one_account_for_every_currency():
    org = Organization.model_validate({"name": "Test GmbH", "email": "b@test.example",
                                       "iban": "DE02120300000000202051", "bic": "BYLADEM1001", "bank": "Testbank"})
    assert org.country == "DE" and org.locale == "de_DE"  # from the account's IBAN
    dump = org.model_dump()
    assert choose_account(dump, "USD", "US")["iban"] == "DE02120300000000202051"
    assert choose_account(dump, "EUR", "DE")["bic"] == "BYLADEM1001"


# --- settings checked at start-up --------------------------------------------------------------------

def _org(**changes) -> dict:
    return {**SAMPLE_ORGANIZATION, **changes}


@pytest.mark.parametrize("changes, message", [
    ({"accounts": [{"currency": "EUR", "iban": "DE00 3704 0044 0532 0130 00", "bic": "COBADEFFXXX", "bank": "x"}]},
     "accounts.0.iban"),
    ({"accounts": [{"currency": "EUR", "iban": "DE89 3704 0044 0532 0130 00", "bic": "COBAXXFF", "bank": "x"}]},
     "accounts.0.bic"),
    ({"accounts": [{"currency": "EUR", "iban": "DE89 3704 0044 0532 0130 00", "bic": "COBADEFFXXX", "bank": "x"},
                   {"currency": "EUR", "iban": "DE02120300000000202051", "bic": "BYLADEM1001", "bank": "y"}]},
     "two accounts for currency EUR"),
    ({"accounts": [{"currency": "EURO", "iban": "DE89370400440532013000", "bic": "COBADEFFXXX", "bank": "x"}]},
     "not an ISO 4217 currency code"),
    ({"address": None}, "creditor address needs organization.address"),
    ({"legal": {"vat_id": "DE123456789"}}, "not a valid VAT identification number"),
    ({"pay_now_url": "https://pay.example/{invoice}"}, "unknown placeholders ['invoice']"),
    ({"pay_now_url": "http://pay.example/{reference}"}, "must be an https:// link"),
    ({"country": "XX"}, "not an ISO 3166 country code"),
])
def test_wrong_account_and_legal_settings_stop_the_start(changes, message):
    with pytest.raises(ValidationError) as err:
        Organization.model_validate(_org(**changes))
    assert message in str(err.value)


def test_the_sample_organization_is_valid_and_derives_nothing_it_was_told():
    org = Organization.model_validate(SAMPLE_ORGANIZATION)
    assert [a.currency for a in org.accounts] == ["EUR", "GBP", "DKK", "CHF"]
    assert org.iban == "DE89 3704 0044 0532 0130 00"  # the first account, for code reading the old fields
    assert (org.country, org.locale) == ("DE", "de_DE")
    assert org.legal.vat_id == "DE136695976"
