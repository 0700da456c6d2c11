"""Postal addresses by country (pipeline/delivery/render/addresses.py): the recipient block in the
destination's order, the country line in the sender's language, what makes an address undeliverable,
and whether a customer is a company."""

from __future__ import annotations

import pytest

from pipeline.delivery.render.addresses import address_problem, country_name, is_company, postal_lines

FROM_GERMANY = {"sender_country": "DE", "sender_locale": "de_DE"}


def customer(country, line1, postal_code, city, name="Jane O'Neill", line2=None, **extra):
    return {"name": name, "country": country, "address_line1": line1, "address_line2": line2,
            "postal_code": postal_code, "city": city, **extra}


@pytest.mark.parametrize("recipient, company, lines", [
    # domestic: no country line, the town as written (DIN 5008)
    (customer("DE", "Hauptstraße 5", "10115", "Berlin", line2="c/o Buchhaltung"), False,
     ["Jane O'Neill", "Hauptstraße 5", "c/o Buchhaltung", "10115 Berlin"]),
    # UK: post town and postcode on lines of their own, after the street, in capitals
    (customer("GB", "10 Downing Street", "sw1a 2aa", "London"), False,
     ["Jane O'Neill", "10 Downing Street", "LONDON", "SW1A 2AA", "VEREINIGTES KÖNIGREICH"]),
    # France: the company first, postcode and town in capitals
    (customer("FR", "1 rue de Rivoli", "75001", "Paris", name="Société Générale SA"), True,
     ["Société Générale SA", "1 rue de Rivoli", "75001 PARIS", "FRANKREICH"]),
    (customer("DK", "Nørregade 1", "1050", "København K", name="Søren Kierkegaard ApS"), True,
     ["Søren Kierkegaard ApS", "Nørregade 1", "1050 KØBENHAVN K", "DÄNEMARK"]),
    (customer("NL", "Damrak 1", "1012 ab", "Amsterdam", name="de Vries B.V."), True,
     ["de Vries B.V.", "Damrak 1", "1012 AB AMSTERDAM", "NIEDERLANDE"]),
    # Switzerland: no "CH-" before the postal code (the country line says it), the town as written
    (customer("CH", "Bahnhofstrasse 1", "8001", "Zürich"), False,
     ["Jane O'Neill", "Bahnhofstrasse 1", "8001 Zürich", "SCHWEIZ"]),
])
def test_address_blocks_from_a_german_sender(recipient, company, lines):
    assert is_company(recipient) is company
    assert postal_lines(recipient, company=company, **FROM_GERMANY) == lines


def test_the_country_line_is_in_the_senders_language_and_absent_at_home():
    uk = {"sender_country": "GB", "sender_locale": "en_GB"}
    assert postal_lines(customer("DE", "Hauptstraße 5", "10115", "Berlin"), **uk)[-1] == "GERMANY"
    assert postal_lines(customer("DK", "Nørregade 1", "1050", "København K"), **uk)[-1] == "DENMARK"
    # a UK sender writing at home: still the post town and postcode in capitals (Royal Mail's own rule)
    assert postal_lines(customer("GB", "10 Downing Street", "SW1A 2AA", "London"), **uk) == [
        "Jane O'Neill", "10 Downing Street", "LONDON", "SW1A 2AA"]
    assert country_name("GB", "fr_FR") == "ROYAUME-UNI"
    assert country_name("DE", "nl_NL") == "DUITSLAND"


def test_an_empty_field_leaves_no_stray_separator():
    # the US format is "CITY, STATE ZIP"; there is no state column
    assert postal_lines(customer("US", "350 Fifth Avenue", "10118", "New York"), **FROM_GERMANY) == [
        "Jane O'Neill", "350 Fifth Avenue", "NEW YORK 10118", "VEREINIGTE STAATEN"]


@pytest.mark.parametrize("recipient, formats, problem", [
    (customer("GB", "1 High St", "10115", "London"), True,
     ("postal_code", "'10115' is not a postal code of GB (e.g. EC1Y 8SY)")),
    (customer("GB", "1 High St", "10115", "London"), False, None),  # ingestion loads it (letters refused)
    (customer("GB", "1 High St", "SW1A 1AA", None), False,
     ("city", "the address has no city, which a letter to GB needs")),
    (customer("DE", None, "10115", "Berlin"), False,
     ("address_line1", "the address has no street line, which a letter to DE needs")),
    (customer("DE", "Hauptstr. 1", None, "Berlin"), False,
     ("postal_code", "the address has no postal code, which a letter to DE needs")),
    (customer("XX", "1 Main St", "123", "Nowhere"), False,
     ("country", "'XX' is not an ISO 3166 country code (two letters, e.g. DE, GB)")),
    (customer("DE", None, None, None), False, None),  # no address at all: a customer reached by email
    (customer("DE", None, None, None), True, ("address_line1", "no postal address")),
    (customer("IE", "1 Main Street", None, "Dublin"), True, None),  # Ireland does not require its Eircode
    (customer("NL", "Damrak 1", "1012 AB", "Amsterdam"), True, None),
])
def test_what_makes_an_address_undeliverable(recipient, formats, problem):
    assert address_problem(recipient, formats=formats) == problem


@pytest.mark.parametrize("name, extra, company", [
    ("de Vries B.V.", {}, True),
    ("Müller & Söhne GmbH", {}, True),
    ("Nordwind Software GmbH & Co. KG", {}, True),
    ("Søren Kierkegaard ApS", {}, True),
    ("Acme Ltd.", {}, True),
    ("Société d'Électricité", {}, True),
    ("Stichting Het Groene Hart", {}, True),
    ("Jan de Vries", {}, False),
    ("Jane O'Neill", {}, False),
    ("AS Jensen", {}, False),  # a legal form is never the first word
    ("Jan de Vries", {"customer_type": "company"}, True),  # an input column says it
    ("Holding Müller", {"customer_type": "person"}, False),
    ("Jan de Vries", {"is_company": "true"}, True),
])
def test_company_or_person(name, extra, company):
    assert is_company({"name": name, **extra}) is company
