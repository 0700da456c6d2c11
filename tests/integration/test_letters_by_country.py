"""Letters from a German company to customers in six countries, through the real pipeline: ingestion
quarantines addresses no letter could carry, every letter is addressed the way its destination's post
wants it, asks for payment into the account of its currency with the case's creditor reference (also in
the EPC QR code and the Swiss QR-bill, read back from the real PDFs), and a letter that would be wrong
(no account for its currency, an undeliverable address) fails alone with the reason."""

from __future__ import annotations

import email
import email.policy
import io
from datetime import date, timedelta
from decimal import Decimal

import pypdfium2
import pytest
import zxingcpp
from pypdf import PdfReader

from pipeline.config.settings import Organization
from pipeline.delivery.payment import creditor_reference, format_reference
from pipeline.engine import run as run_mod
from world import World, policy, query

DAY = date(2026, 6, 1)
ORG = {
    "name": "Nordwind Software GmbH",
    "address_lines": ["Hafenstraße 12", "20457 Hamburg", "Deutschland"],
    "address": {"street": "Hafenstraße", "house_number": "12", "postal_code": "20457", "city": "Hamburg",
                "country": "DE"},
    "email": "billing@nordwind.example",
    "accounts": [
        {"currency": "EUR", "iban": "DE89 3704 0044 0532 0130 00", "bic": "COBADEFFXXX", "bank": "Commerzbank Hamburg"},
        {"currency": "GBP", "iban": "GB29 NWBK 6016 1331 9268 19", "bic": "NWBKGB2L", "bank": "NatWest London"},
        {"currency": "DKK", "iban": "DK50 0040 0440 1162 43", "bic": "NDEADKKK", "bank": "Nordea Danmark"},
        {"currency": "CHF", "iban": "CH93 0076 2011 6238 5295 7", "bic": "UBSWCHZH80A", "bank": "UBS Zürich"},
    ],
    "legal": {"registered_office": "Hamburg", "register_court": "Amtsgericht Hamburg", "register_number": "HRB 123456",
              "managing_directors": ["Jana Nordmann", "Ole Wind"], "vat_id": "DE136695976"},
    "pay_now_url": "https://pay.nordwind.example/pay?ref={reference}&amount={amount}",
}
# customer id: (country, locale, currency, name, address line, postal code, city, days overdue, invoices)
CUSTOMERS = {
    "DE1": ("DE", "de_DE", "EUR", "Müller & Söhne GmbH", "Hauptstraße 5", "10115", "Berlin", 20, 4),
    "GB1": ("GB", "en_GB", "GBP", "Jane O'Neill", "10 Downing Street", "SW1A 2AA", "London", 20, 1),
    "FR1": ("FR", "fr_FR", "EUR", "Société Générale SA", "1 rue de Rivoli", "75001", "Paris", 254, 1),
    "DK1": ("DK", "da_DK", "DKK", "Søren Kierkegaard ApS", "Nørregade 1", "1050", "København K", 20, 1),
    "NL1": ("NL", "nl_NL", "EUR", "de Vries B.V.", "Damrak 1", "1012 AB", "Amsterdam", 20, 1),
    "CH1": ("CH", "de_CH", "CHF", "Anna Keller", "Bahnhofstrasse 1", "8001", "Zürich", 20, 1),
    "US1": ("US", "en_US", "USD", "John Smith", "350 Fifth Avenue", "10118", "New York", 20, 1),  # no USD account
    "GB2": ("GB", "en_GB", "GBP", "Tom Jones", "1 High Street", "10115", "London", 20, 1),  # not a UK postcode
}
ADDRESS_BLOCKS = {
    "DE1": ["Müller & Söhne GmbH", "Hauptstraße 5", "10115 Berlin"],
    "GB1": ["Jane O'Neill", "10 Downing Street", "LONDON", "SW1A 2AA", "VEREINIGTES KÖNIGREICH"],
    "FR1": ["Société Générale SA", "1 rue de Rivoli", "75001 PARIS", "FRANKREICH"],
    "DK1": ["Søren Kierkegaard ApS", "Nørregade 1", "1050 KØBENHAVN K", "DÄNEMARK"],
    "NL1": ["de Vries B.V.", "Damrak 1", "1012 AB AMSTERDAM", "NIEDERLANDE"],
    "CH1": ["Anna Keller", "Bahnhofstrasse 1", "8001 Zürich", "SCHWEIZ"],
}
IBANS = {"EUR": "DE89 3704 0044 0532 0130 00", "GBP": "GB29 NWBK 6016 1331 9268 19", "DKK": "DK50 0040 0440 1162 43",
         "CHF": "CH93 0076 2011 6238 5295 7"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("letters")
    level = {"name": "Erinnerung", "timing": {"after": "due_date", "days": 14}, "payment_term_days": 10,
             "channel": "letter"}
    w = World(root, policy([level]))
    w.settings_overrides["ingestion"] = {"stop_when_quarantined_share_above": 1}
    for cid, (country, locale, currency, name, line1, postal, city, days, n) in CUSTOMERS.items():
        w.customer(cid, name=name, locale=locale, country=country, address_line1=line1, postal_code=postal, city=city)
        w.contract(f"CT-{cid}", cid, currency)
        for k in range(n):
            due = DAY - timedelta(days=days - k)
            w.invoice(f"{cid}-I{k + 1}", f"{100 + 10 * k}.00", (due - timedelta(days=14)).isoformat(), due.isoformat(),
                      contract_id=f"CT-{cid}", customer_id=cid, currency=currency)
    # addresses no letter could carry: quarantined when read
    w.customer("XX1", country="XX", address_line1="1 Main Street", postal_code="123", city="Nowhere")
    w.customer("DE2", address_line1="Gartenweg 3", postal_code="80331", city="")
    # a code as written is what routing and the account per country compare: `de` and ` DE` are none
    w.customer("DE3", country="de", address_line1="Gartenweg 3", postal_code="80331", city="München")
    w.customer("DE4", country=" DE", address_line1="Gartenweg 3", postal_code="80331", city="München")
    settings = w.write().model_copy(update={"organization": Organization.model_validate(ORG)})
    with run_mod.connect(settings.database) as con:
        run_mod.load_inputs(con, settings)
        run_mod.run_range(con, DAY, DAY, settings, mode=run_mod.RunMode.LIVE)
    return settings


def letter(settings, customer_id: str) -> tuple[bytes, dict]:
    [(path, key, case_id, amount)] = query(
        settings, "select document_path, action_key, case_id, amount_demanded from action_ledger "
                  "where customer_id = ? and action = 'reminder'", [customer_id])
    folder = settings.outbox / path
    return (folder / "letter.pdf").read_bytes(), {"key": key, "case_id": case_id, "amount": amount,
                                                  "eml": (folder / "message.eml").read_bytes()}


def lines_of(pdf: bytes) -> list[str]:
    return [line.strip() for page in PdfReader(io.BytesIO(pdf)).pages for line in page.extract_text().split("\n")]


def test_ingestion_quarantines_addresses_no_letter_could_carry(run):
    assert query(run, """select value, rule, column_name, message from quarantine where table_name = 'customers'
                         order by source_row""") == [
        ("XX", "invalid_address", "country", "not an ISO 3166 country code (two capital letters, e.g. DE, GB)"),
        (None, "invalid_address", "city", "the postal address has no city, which a letter to DE needs: fill it "
                                          "in, or leave the whole address empty for a customer reached by email only"),
        ("de", "invalid_address", "country", "not an ISO 3166 country code (two capital letters, e.g. DE, GB)"),
        (" DE", "invalid_address", "country", "not an ISO 3166 country code (two capital letters, e.g. DE, GB)")]
    assert query(run, "select count(*) from stg_customers") == [(len(CUSTOMERS),)]


def test_each_letter_is_addressed_as_its_destination_wants(run):
    for cid, block in ADDRESS_BLOCKS.items():
        lines = lines_of(letter(run, cid)[0])
        start = lines.index(block[0])
        assert lines[start:start + len(block)] == block, cid


def test_each_letter_asks_for_its_currency_account_and_the_case_reference(run):
    for cid, (_, _, currency, *_rest) in CUSTOMERS.items():
        if cid in ("US1", "GB2"):
            continue
        pdf, doc = letter(run, cid)
        text = "\n".join(lines_of(pdf))
        assert f"IBAN {IBANS[currency]}" in text, cid  # in the payment box and the footer
        assert all(f"IBAN {iban}" not in text for c, iban in IBANS.items() if c != currency), cid
        assert format_reference(creditor_reference(doc["case_id"])) in text, cid
        assert "HRB 123456" in text and "DE136695976" in text  # the legal lines in the footer


def test_a_german_reminder_names_all_four_invoices_and_its_qr_code_pays_them(run):
    pdf, doc = letter(run, "DE1")
    message = email.message_from_bytes(doc["eml"], policy=email.policy.default)
    assert message["Subject"] == "Zahlungserinnerung zur Rechnung N-DE1-I1 und 3 weiteren"
    assert message.get_body(("plain",)).get_content().startswith("Sehr geehrte Damen und Herren,\r\n")
    image = pypdfium2.PdfDocument(pdf)[0].render(scale=4).to_pil()
    [payload] = [r.text for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode]
    lines = payload.split("\n")
    assert lines[4:8] == ["COBADEFFXXX", "Nordwind Software GmbH", "DE89370400440532013000", f"EUR{doc['amount']}"]
    assert doc["amount"] == Decimal("460.00")
    assert lines[9] == creditor_reference(doc["case_id"])


def test_the_reference_can_be_exported_from_the_ledger_with_sql(run):
    """The same reference as on the documents, computed by a query: how a view or an export matches payments."""
    rows = query(run, f"select distinct case_id, payment_reference(case_id) from action_ledger")
    assert rows and all(ref == creditor_reference(case_id) for case_id, ref in rows)


def test_a_first_reminder_254_days_late_does_not_suggest_it_was_forgotten(run):
    text = " ".join(" ".join(lines_of(letter(run, "FR1")[0])).split())
    assert "Madame, Monsieur," in text
    assert "oubli" not in text
    assert "La facture suivante est échue depuis 254 jours" in text


def test_a_dutch_company_is_not_greeted_by_name(run):
    _, doc = letter(run, "NL1")
    text = email.message_from_bytes(doc["eml"], policy=email.policy.default).get_body(("plain",)).get_content()
    assert text.startswith("Geachte heer, mevrouw,\r\n") and "Geachte de Vries" not in text


def test_a_swiss_franc_letter_carries_a_qr_bill(run):
    pdf, doc = letter(run, "CH1")
    pages = pypdfium2.PdfDocument(pdf)
    assert len(pages) == 2
    [payload] = [r.text for r in zxingcpp.read_barcodes(pages[1].render(scale=4).to_pil())]
    fields = payload.split("\r\n")
    assert (fields[0], fields[3], fields[18], fields[19], fields[27], fields[28]) == (
        "SPC", "CH9300762011623852957", str(doc["amount"]), "CHF", "SCOR", creditor_reference(doc["case_id"]))


def test_a_letter_that_would_be_wrong_fails_alone_with_its_reason(run):
    failed = query(run, """select customer_id, status, last_error from action_ledger
                           where status <> 'sent' order by customer_id""")
    assert failed == [
        ("GB2", "failed", "DocumentRefused: the postal address cannot be delivered: postal_code: '10115' is not a "
                          "postal code of GB (e.g. EC1Y 8SY)"),
        ("US1", "failed", "DocumentRefused: no creditor account for USD (customer country US): the document would "
                          "ask for payment into an account of another currency; add one to organization.accounts "
                          "in dunning.yaml")]
    assert query(run, "select count(*) from action_ledger where status = 'sent'") == [(6,)]
    assert {r[0] for r in query(run, "select action_key from dispatch_review")} == {
        k for (k,) in query(run, "select action_key from action_ledger where status = 'failed'")}
