"""Locale-aware formatting of money, dates and numbers for documents.

Customers read amounts and dates the way their locale writes them
(``1.234,56 €`` in Germany, ``€1,234.56`` in the UK), so every template goes
through these helpers instead of ``str()``. Babel's CLDR data does the work;
the output is exactly Babel's, including its non-breaking spaces (U+00A0,
U+202F in French), which keep an amount and its currency sign on one line.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache

from babel import Locale
from babel.dates import format_date as _babel_format_date
from babel.numbers import format_currency, format_decimal

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
    """
    _require(amount, "money")
    if not isinstance(amount, Decimal):
        amount = Decimal(str(amount))
    return format_currency(amount, _require(currency, "currency"), locale=parse_locale(locale))


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
