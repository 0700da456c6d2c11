"""Locale-aware formatting of money, dates and numbers for documents.

Customers read amounts and dates the way their locale writes them
(``1.234,56 €`` in Germany, ``€1,234.56`` in the UK), so every template goes
through these helpers instead of ``str()``. Babel's CLDR data does the work;
the output is exactly Babel's, including its non-breaking spaces (U+00A0,
U+202F in French), which keep an amount and its currency sign on one line.
"""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache

from babel import Locale
from babel.dates import format_date as _babel_format_date
from babel.numbers import format_currency, format_decimal, get_currency_symbol

DEFAULT_LOCALE = "en_GB"


@lru_cache(maxsize=256)
def parse_locale(locale: str | None) -> Locale:
    """``de_DE`` / ``de-DE`` / ``de`` -> Babel Locale; empty -> the default.

    Cached because Locale.parse loads CLDR data and templates call the
    filters many times per document.
    """
    if not locale:
        locale = DEFAULT_LOCALE
    return Locale.parse(str(locale).replace("-", "_"))


def language_of(locale: str | None) -> str:
    """The language part of a locale (``de_DE`` -> ``de``), used to pick templates."""
    return parse_locale(locale).language


def _require(value, what: str):
    # None usually means a missing column; fail loudly instead of printing "None".
    if value is None:
        raise ValueError(f"cannot format {what}: value is None")
    return value


def format_money(amount: Decimal | int | str, currency: str, locale: str | None) -> str:
    """``format_money(Decimal('1234.56'), 'EUR', 'de_DE') == '1.234,56\\xa0€'``.

    Amounts are Decimals; floats are accepted by Babel but would carry binary
    rounding, so strings and ints are converted through Decimal first.

    A document states the ledger's amount exactly: an amount finer than its currency's minor unit (the
    ledger keeps cents, interest of a yen amount has them) keeps its digits (``JP¥100,821.92``) instead
    of Babel rounding it to the currency's own (``JP¥100,822``: the document demanded a sum the ledger
    did not, review 2026-12-08). An amount the minor unit holds prints as usual (``JP¥100,822``).
    """
    _require(amount, "money")
    if not isinstance(amount, Decimal):
        amount = Decimal(str(amount))
    loc = parse_locale(locale)
    return _currency_spacing(format_currency(amount, _require(currency, "currency"), locale=loc,
                                             decimal_quantization=False),
                             get_currency_symbol(currency, locale=loc))


def _is_symbol_or_space(char: str) -> bool:
    return unicodedata.category(char)[0] in "SZ"


def _currency_spacing(text: str, symbol: str) -> str:
    """CLDR's currency spacing, which Babel leaves out: a currency sign that ends (or starts) with a
    letter, next to a digit, gets a no-break space between them (``DKK 63,124.87``, not
    ``DKK63,124.87``); a sign such as ``€`` or ``US$`` stays where the locale puts it."""
    at = text.find(symbol) if symbol else -1
    if at < 0:
        return text
    end = at + len(symbol)
    if end < len(text) and text[end].isdigit() and not _is_symbol_or_space(symbol[-1]):
        text = text[:end] + "\xa0" + text[end:]
    if at > 0 and text[at - 1].isdigit() and not _is_symbol_or_space(symbol[0]):
        text = text[:at] + "\xa0" + text[at:]
    return text


def format_date(d: date | datetime, locale: str | None, fmt: str = "medium") -> str:
    """Medium (``10.05.2026``, ``10 May 2026``) by default; ``fmt='long'`` spells the month."""
    _require(d, "date")
    if isinstance(d, datetime):
        d = d.date()
    return _babel_format_date(d, format=fmt, locale=parse_locale(locale))


def format_number(value: Decimal | int | float, locale: str | None, fmt: str | None = None) -> str:
    """Grouped decimal number in the locale's style (``1.234,5`` in German)."""
    _require(value, "number")
    return format_decimal(value, format=fmt, locale=parse_locale(locale))
