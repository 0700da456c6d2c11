"""What the documents say about paying, in all five languages: subjects covering every invoice, the
salutation, the tone by days overdue, account and reference laid out line by line, the pay-now link,
the legal lines, the EPC QR code read back from a real letter PDF, and refused documents."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from decimal import Decimal

import pypdfium2
import pytest
import zxingcpp
from pypdf import PdfReader

from pipeline.delivery.render import LetterRenderer, TemplateSet, format_money
from pipeline.delivery.render.samples import TEMPLATE_ROOT, sample_context, with_document_parts
from pipeline.delivery.render.templates import DocumentRefused

LOCALES = {"de": "de_DE", "en": "en_GB", "fr": "fr_FR", "nl": "nl_NL", "da": "da_DK"}


@pytest.fixture(scope="module")
def templates() -> TemplateSet:
    return TemplateSet(TEMPLATE_ROOT, "default")


@pytest.fixture(scope="module")
def renderer() -> LetterRenderer:
    return LetterRenderer(TEMPLATE_ROOT)


def context(lang: str, template: str = "reminder", *, invoices: int = 1, days_overdue: int = 10,
            name: str = "Jane O'Neill", **kw) -> dict:
    """A sample context with `invoices` invoices, the oldest `days_overdue` days overdue."""
    ctx = sample_context(0, locale=LOCALES[lang], template=template, **kw)
    base = ctx["invoices"][0]
    ctx["invoices"] = [dict(base, invoice_number=f"N-I{k + 1}", due_date=ctx["as_of"] - timedelta(days=days_overdue - k),
                            days_overdue=days_overdue - k, overdue=True) for k in range(invoices)]
    ctx["invoice"] = ctx["invoices"][0]
    ctx["customer"]["name"] = name
    return with_document_parts(ctx)


def pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


# --- subjects name every invoice ---------------------------------------------------------------------

@pytest.mark.parametrize("lang, one, two, four", [
    ("de", "Letzte Mahnung zur Rechnung N-I1: Zahlung bis 20.05.2026",
     "Letzte Mahnung zu den Rechnungen N-I1 und N-I2: Zahlung bis 20.05.2026",
     "Letzte Mahnung zur Rechnung N-I1 und 3 weiteren: Zahlung bis 20.05.2026"),
    ("en", "Final notice: invoice N-I1, payment due by 20 May 2026",
     "Final notice: invoices N-I1 and N-I2, payment due by 20 May 2026",
     "Final notice: invoice N-I1 and 3 more, payment due by 20 May 2026"),
    ("fr", "Dernière relance\xa0: facture N-I1, paiement avant le 20 mai 2026",
     "Dernière relance\xa0: factures N-I1 et N-I2, paiement avant le 20 mai 2026",
     "Dernière relance\xa0: facture N-I1 et 3 autres, paiement avant le 20 mai 2026"),
    ("nl", "Laatste aanmaning: factuur N-I1, betaling uiterlijk 20 mei 2026",
     "Laatste aanmaning: facturen N-I1 en N-I2, betaling uiterlijk 20 mei 2026",
     "Laatste aanmaning: factuur N-I1 en 3 andere, betaling uiterlijk 20 mei 2026"),
    ("da", "Sidste rykker: faktura N-I1, betaling senest 20. maj 2026",
     "Sidste rykker: fakturaer N-I1 og N-I2, betaling senest 20. maj 2026",
     "Sidste rykker: faktura N-I1 og 3 andre, betaling senest 20. maj 2026"),
])
def test_a_final_notice_subject_covers_every_invoice(templates, lang, one, two, four):
    subjects = [templates.render_email(context(lang, "final", invoices=n)).subject for n in (1, 2, 4)]
    assert subjects == [one, two, four]


def test_the_transfer_reference_is_the_cases_not_the_first_invoice(templates):
    ctx = context("de", "final", invoices=4)
    text = templates.render_email(ctx).text
    reference = ctx["payment_details"]["reference_display"]
    assert f"  Verwendungszweck: {reference}\n" in text
    assert re.fullmatch(r"RF\d\d( \d{4}){5}", reference)
    assert "so können wir Ihre Zahlung allen genannten Rechnungen zuordnen" in text


# --- salutation ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("lang, company, person", [
    ("de", "Sehr geehrte Damen und Herren,", "Guten Tag Jan de Vries,"),
    ("en", "Dear Sir or Madam,", "Dear Jan de Vries,"),
    ("fr", "Madame, Monsieur,", "Bonjour Jan de Vries,"),
    ("nl", "Geachte heer, mevrouw,", "Geachte Jan de Vries,"),
    ("da", "Kære kunde,", "Kære Jan de Vries,"),
])
@pytest.mark.parametrize("template", ["reminder", "notice", "final", "failed_payment_notice"])
def test_a_company_is_greeted_neutrally_and_a_person_by_name(templates, lang, company, person, template):
    to_company = templates.render_email(context(lang, template, name="de Vries B.V."))
    to_person = templates.render_email(context(lang, template, name="Jan de Vries"))
    assert to_company.text.split("\n", 1)[0] == company
    assert to_person.text.split("\n", 1)[0] == person
    assert f"<p>{company}</p>" in to_company.html and f"<p>{person}</p>" in to_person.html
    assert "de Vries B.V.," not in to_company.text


def test_names_and_invoice_numbers_are_escaped_in_html(templates):
    ctx = context("de", "final", invoices=2, name="Müller & <b>Söhne</b>")
    ctx["invoices"][1]["invoice_number"] = "<i>N-2</i>"
    mail = templates.render_email(ctx)
    assert "Guten Tag Müller &amp; &lt;b&gt;Söhne&lt;/b&gt;," in mail.html and "<b>Söhne" not in mail.html
    assert "&lt;i&gt;N-2&lt;/i&gt;" in mail.html and "<i>N-2" not in mail.html
    assert "Guten Tag Müller & <b>Söhne</b>," in mail.text
    assert mail.subject == "Letzte Mahnung zu den Rechnungen N-I1 und <i>N-2</i>: Zahlung bis 20.05.2026"


# --- tone by days overdue -----------------------------------------------------------------------------

FORGOTTEN = {"de": "Aufmerksamkeit entgangen", "en": "overlooked", "fr": "oubli", "nl": "aan uw aandacht ontsnapt",
             "da": "forglemmelse"}
URGENT = {"de": "seit 254 Tagen überfällig", "en": "overdue for 254 days", "fr": "échue depuis 254 jours",
          "nl": "al 254 dagen vervallen", "da": "254 dage over forfald"}
FIRM = {"de": "seit 45 Tagen überfällig", "en": "overdue for 45 days", "fr": "échue depuis 45 jours",
        "nl": "al 45 dagen vervallen", "da": "45 dage over forfald"}


@pytest.mark.parametrize("lang", LOCALES)
def test_a_first_reminder_speaks_as_late_as_the_debt_is(templates, lang, renderer):
    friendly = context(lang, days_overdue=10)
    firm = context(lang, days_overdue=45)
    urgent = context(lang, days_overdue=254)
    assert [c["tone"] for c in (friendly, firm, urgent)] == ["friendly", "firm", "urgent"]
    assert FORGOTTEN[lang] in templates.render_email(friendly).text
    for ctx, words in ((firm, FIRM[lang]), (urgent, URGENT[lang])):
        mail = templates.render_email(ctx)
        assert FORGOTTEN[lang] not in mail.text and FORGOTTEN[lang] not in mail.html
        assert words in mail.text
    letter = " ".join(pdf_text(renderer.render(urgent)).split())
    assert URGENT[lang] in letter and FORGOTTEN[lang] not in letter


def test_a_courtesy_reminder_keeps_its_wording(templates):
    ctx = context("en")
    ctx["courtesy"] = True
    for inv in ctx["invoices"]:
        inv.update(overdue=False, days_overdue=0, due_date=ctx["as_of"] + timedelta(days=3))
    with_document_parts(ctx)
    assert ctx["tone"] == "courtesy"
    assert "This is a friendly reminder that the following invoice falls due on 13 May 2026" in \
        templates.render_email(ctx).text


def test_a_notice_for_an_old_debt_says_how_old(templates):
    assert "Die Rechnung ist seit 74 Tagen überfällig." in templates.render_email(
        context("de", "notice", days_overdue=74)).text
    assert "überfällig." not in templates.render_email(context("de", "notice", days_overdue=12)).text.split(
        "Gesamtbetrag")[0].split("\n\n", 3)[-1]


# --- how to pay: account, reference, QR code, link -----------------------------------------------------

def test_iban_bic_and_reference_each_on_a_line_of_their_own(templates, renderer):
    ctx = context("en", currency="GBP", country="GB")
    mail = templates.render_email(ctx)
    assert ("  Account holder: Acme Energie GmbH\n  IBAN:           GB29 NWBK 6016 1331 9268 19\n"
            "  BIC:            NWBKGB2L\n  Bank:           NatWest\n"
            f"  Reference:      {ctx['payment_details']['reference_display']}\n") in mail.text
    assert "<tr><th>IBAN</th><td>GB29 NWBK 6016 1331 9268 19</td></tr>\n    <tr><th>BIC</th><td>NWBKGB2L</td></tr>" \
        in mail.html
    lines = pdf_text(renderer.render(ctx)).split("\n")
    assert "IBAN GB29 NWBK 6016 1331 9268 19" in lines and "BIC NWBKGB2L" in lines
    assert "DE89" not in mail.text  # never the EUR account for a GBP debt


def test_the_pay_now_link_is_in_emails_not_letters(templates, renderer):
    ctx = context("de", "notice")
    link = ctx["payment_details"]["pay_now_url"]
    assert link == (f"https://pay.acme-energie.example/p/{ctx['payment_details']['reference']}"
                    f"?amount={ctx['amounts']['total']}&currency=EUR")
    mail = templates.render_email(ctx)
    assert f"Jetzt online bezahlen: {link}" in mail.text
    assert f'<a href="{link.replace("&", "&amp;")}">Jetzt online bezahlen</a>' in mail.html
    assert "pay.acme-energie.example" not in pdf_text(renderer.render(ctx))
    ctx["organization"] = dict(ctx["organization"], pay_now_url=None)
    with_document_parts(ctx)
    assert "online bezahlen" not in templates.render_email(ctx).text


def test_the_legal_lines_are_in_the_letter_footer_and_the_email(templates, renderer):
    ctx = context("de", "final")
    text = " ".join(pdf_text(renderer.render(ctx)).split())  # the footer's columns wrap their lines
    for line in ("Sitz: Berlin", "Registergericht: Amtsgericht Charlottenburg, HRB 654321 B",
                 "Geschäftsführer: Erika Mustermann, Max Beispiel", "USt-IdNr.: DE136695976",
                 "IBAN DE89 3704 0044 0532 0130 00"):
        assert line in text, line
    assert ("Acme Energie GmbH · Sitz: Berlin · Registergericht: Amtsgericht Charlottenburg, HRB 654321 B · "
            "Geschäftsführer: Erika Mustermann, Max Beispiel · USt-IdNr.: DE136695976") in templates.render_email(ctx).text


def test_the_epc_qr_code_in_the_letter_pdf_decodes_to_iban_amount_and_reference(renderer):
    ctx = context("de", "final", invoices=4)
    pdf = renderer.render(ctx)
    image = pypdfium2.PdfDocument(pdf)[0].render(scale=4).to_pil()
    found = [r.text for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode]
    assert found == [ctx["payment_details"]["epc_payload"]]
    lines = found[0].split("\n")
    assert lines[:4] == ["BCD", "002", "1", "SCT"]
    assert lines[6] == "DE89370400440532013000"
    assert lines[7] == f"EUR{ctx['amounts']['total']}"
    assert lines[9] == ctx["payment_details"]["reference"]


def test_the_swiss_qr_bill_page_decodes_to_the_spc_payload(renderer):
    ctx = context("de", currency="CHF", country="CH")
    pdf = renderer.render(ctx)
    document = pypdfium2.PdfDocument(pdf)
    assert len(document) == 2  # the letter, then the payment part on a page of its own
    found = [r.text for r in zxingcpp.read_barcodes(document[1].render(scale=4).to_pil())]
    assert found == [ctx["payment_details"]["qr_bill_payload"]]
    fields = ctx["payment_details"]["qr_bill_payload"].split("\r\n")
    assert (fields[3], fields[18], fields[19], fields[28]) == (
        "CH9300762011623852957", str(ctx["amounts"]["total"]), "CHF", ctx["payment_details"]["reference"])


# --- refused documents -------------------------------------------------------------------------------

def test_a_document_without_an_account_for_its_currency_is_refused_with_the_reason(templates, renderer):
    ctx = context("en", currency="USD", country="US")
    assert ctx["account"] is None
    reason = ("no creditor account for USD (customer country US): the document would ask for payment into an "
              "account of another currency; add one to organization.accounts in dunning.yaml")
    assert ctx["refused"] == reason
    for render in (templates.render_email, templates.render_sms, templates.render_letter_html, renderer.render):
        with pytest.raises(DocumentRefused, match=re.escape(reason)):
            render(ctx)


def test_a_letter_to_an_undeliverable_address_is_refused_an_email_is_not(templates):
    ctx = sample_context(1, locale="en_GB", template="reminder", currency="GBP")
    ctx["customer"]["postal_code"] = "10115"
    assert with_document_parts(ctx, channel="email")["refused"] is None
    assert with_document_parts(ctx, channel="letter")["refused"] == (
        "the postal address cannot be delivered: postal_code: '10115' is not a postal code of GB (e.g. EC1Y 8SY)")


# --- money ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("amount, currency, locale, text", [
    ("63124.87", "DKK", "en", "DKK\xa063,124.87"),  # CLDR currency spacing: never "DKK63,124.87"
    ("-5", "DKK", "en_GB", "-DKK\xa05.00"),
    ("63124.87", "DKK", "de_DE", "63.124,87\xa0DKK"),
    ("5", "CHF", "en_GB", "CHF\xa05.00"),
    ("5", "USD", "en_GB", "US$5.00"),  # a sign ending in a symbol keeps no space
    ("1234.56", "EUR", "en_GB", "€1,234.56"),
    ("1234.56", "EUR", "nl_NL", "€\xa01.234,56"),
    # never rounded to the currency's minor unit: the ledger's cents of a yen amount stay (review 2026-12-08)
    ("100821.92", "JPY", "en_GB", "JP¥100,821.92"),
    ("100822.00", "JPY", "en_GB", "JP¥100,822"),
    ("0.50", "JPY", "ja_JP", "￥0.5"),
    ("12.345", "BHD", "en_GB", "BHD\xa012.345"),
    ("12.30", "BHD", "en_GB", "BHD\xa012.300"),
])
def test_money_keeps_a_code_and_the_amount_apart(amount, currency, locale, text):
    assert format_money(Decimal(amount), currency, locale) == text
