"""Deterministic sample company: the five input tables of `pipeline.config.input_tables`.

Why it exists: the demo, the tests and the benchmark all need billing data
that looks like a real subscription business (several currencies, credit
notes, voids, late/partial/failed/reversed payments, suspensions) without
shipping customer data. Same arguments give byte-identical files, so tests
can assert exact numbers and a benchmark run is reproducible.

Randomness is a counter-based hash (splitmix64 of row key + salted stream)
evaluated inside polars expressions: every draw is a pure function of
(seed, table, stream, row), independent of thread count, and there is no
per-row Python loop: 1M contracts generate in ~40 s with ~3 GB peak RSS.

Resulting shape with history_days=365 (measured at 1M contracts):
customers = 0.8 x contracts, ~9.15 invoices and ~8.17 payments per contract,
~10 suspensions per 1000 contracts (at least 7).
Event dates (started_on, ended_on, invoice_date, voided_on, booked_on,
reversed_on, suspension dates) are never after `end`; due_date,
scheduled_payment_on, period_end and billed_until may be, as for any invoice
issued shortly before `end`. Money is generated as integer cents and only
ever becomes DECIMAL(18,2), never a float.
"""

from __future__ import annotations

import zlib
from datetime import date, timedelta
from pathlib import Path
from typing import Callable, Literal, Sequence

import polars as pl

from pipeline.config import input_tables as schema

_U64 = pl.UInt64
_TYPES = {"VARCHAR": pl.String, "DATE": pl.Date, "BOOLEAN": pl.Boolean, schema.MONEY: pl.Decimal(18, 2)}

_LOCALES = ("de_DE", "en_GB", "fr_FR", "nl_NL", "da_DK")
_COUNTRIES = ("DE", "GB", "FR", "NL", "DK")
_CURRENCIES = ("EUR", "GBP", "EUR", "EUR", "DKK")  # by locale index
_PHONE_PREFIX = ("+49155501", "+44770090", "+33639980", "+31612340", "+45201230")  # by locale index
_LOCALE_CUTS = (0.40, 0.60, 0.75, 0.90)  # de 40%, gb 20%, fr 15%, nl 15%, dk 10%
# Eight entries per locale, in _LOCALES order, so index = locale * 8 + k.
_FIRST = (
    "Anna Lukas Sophie Jonas Marie Felix Lea Maximilian",
    "Oliver Amelia George Isla Harry Emily Jack Olivia",
    "Camille Louis Léa Hugo Chloé Jules Manon Gabriel",
    "Daan Emma Sem Julia Lucas Tess Milan Sophie",
    "William Ida Noah Emma Oscar Freja Lucas Clara",
)
_LAST = (
    "Müller|Schmidt|Schneider|Fischer|Weber|Meyer|Wagner|Becker",
    "Smith|Jones|Taylor|Brown|Williams|Wilson|Johnson|Davies",
    "Martin|Bernard|Dubois|Thomas|Robert|Richard|Petit|Durand",
    "de Jong|Jansen|de Vries|van den Berg|Bakker|Visser|Smit|Meijer",
    "Nielsen|Jensen|Hansen|Pedersen|Andersen|Christensen|Larsen|Sørensen",
)
_STREETS = (
    "Hauptstraße|Bahnhofstraße|Gartenweg|Schulstraße|Lindenallee|Bergstraße|Kirchplatz|Am Markt",
    "High Street|Station Road|Church Lane|Victoria Road|Park Avenue|Mill Lane|King Street|Queens Road",
    "rue de la République|avenue Victor Hugo|rue Pasteur|boulevard Voltaire|rue du Moulin"
    "|place de l'Église|rue des Écoles|chemin des Vignes",
    "Kerkstraat|Dorpsstraat|Schoolstraat|Molenweg|Stationsweg|Julianalaan|Nieuwstraat|Prinsengracht",
    "Vestergade|Østergade|Nørregade|Søndergade|Algade|Storegade|Skolevej|Kirkevej",
)
_CITIES = (
    "10115 Berlin|20095 Hamburg|80331 München|50667 Köln|60311 Frankfurt am Main|70173 Stuttgart"
    "|04109 Leipzig|28195 Bremen",
    "SW1A 1AA London|M1 1AE Manchester|B1 1BB Birmingham|LS1 4DY Leeds|BS1 4ST Bristol"
    "|L1 8JQ Liverpool|EH1 1YZ Edinburgh|CF10 1EP Cardiff",
    "75001 Paris|69001 Lyon|13001 Marseille|31000 Toulouse|33000 Bordeaux|59000 Lille|44000 Nantes"
    "|67000 Strasbourg",
    "1012 AB Amsterdam|3011 AD Rotterdam|2511 CV Den Haag|3511 AX Utrecht|5611 AZ Eindhoven"
    "|9711 LM Groningen|6811 CG Arnhem|2311 EZ Leiden",
    "1050 København K|8000 Aarhus C|5000 Odense C|9000 Aalborg|6700 Esbjerg|8900 Randers|6000 Kolding"
    "|7100 Vejle",
)
_COMPANY_SUFFIX = ("GmbH", "Ltd", "SARL", "B.V.", "ApS")
_LINE2 = ("Hinterhaus", "Flat 2", "Bâtiment B", "2e verdieping", "2. sal")
_ASCII = {"ü": "ue", "ö": "oe", "ä": "ae", "ß": "ss", "ø": "oe", "æ": "ae", "å": "aa", "é": "e",
          "è": "e", "ç": "c", "É": "E", " ": "", "'": ""}
# Plan prices in cents per currency (EUR, GBP, DKK), eight tiers each.
_PRICES = {
    "EUR": (1990, 2990, 4900, 7900, 9900, 14900, 24900, 49900),
    "GBP": (1690, 2490, 3990, 6900, 8500, 12900, 21900, 42900),
    "DKK": (14900, 22900, 36900, 59900, 74900, 111900, 185900, 372900),
}
# Reason codes of failed and reversed payments, each in the list the pipeline looks it up in
# (`reason_code_list`: card contracts in the card decline codes, all others in the SEPA codes).
# Indexes 0-3 a failed direct debit, 4 a reversal; 5-9 the same for a card (`_payments`).
_REASON_CODES = ("AM04", "MS02", "AC04", "MD06",  # insufficient funds (soft), refused, account closed, refund (hard)
                 "MD06",  # reversed: refund requested by the customer
                 "51", "05", "54", "91",  # no funds, do not honour (soft), expired (hard), issuer down (technical)
                 "R1")  # reversed: the cardholder revoked the recurring payment's authorisation (hard)
_METHODS = ("invoice", "direct_debit", "card")
INVOICE, DIRECT_DEBIT, CARD = range(3)
# Payment behaviour per positive invoice: cumulative cut points of a uniform draw.
ONTIME, LATE, PARTIAL, NO_INVOICE_ID, FAILED, REVERSED, NEVER = range(7)
_BEHAVIOUR_CUTS = (0.71, 0.83, 0.88, 0.93, 0.965, 0.975)  # never paid: 2.5% base


def _words(groups: Sequence[str], sep: str) -> list[str]:
    return [w for g in groups for w in g.split(sep)]


class _Rng:
    """Uniform draws as polars expressions: pure functions of (seed, table, stream, key)."""

    def __init__(self, seed: int, table: str):
        self.base = (seed * 0x9E3779B97F4A7C15 + zlib.crc32(table.encode()) * 0xD1B54A32D192ED03) & (2**64 - 1)

    def u(self, key: pl.Expr, stream: int) -> pl.Expr:
        salt = (self.base + stream * 0x632BE59BD9B4E019) & (2**64 - 1)
        x = key.cast(_U64) * pl.lit(0x9E3779B97F4A7C15, _U64) + pl.lit(salt, _U64)
        # splitmix64 finalizer; `// 2**k` on UInt64 is a logical right shift, `*` wraps.
        x = (x ^ (x // pl.lit(2**30, _U64))) * pl.lit(0xBF58476D1CE4E5B9, _U64)
        x = (x ^ (x // pl.lit(2**27, _U64))) * pl.lit(0x94D049BB133111EB, _U64)
        x = x ^ (x // pl.lit(2**31, _U64))
        return (x // pl.lit(2**11, _U64)).cast(pl.Float64) / float(2**53)

    def int(self, key: pl.Expr, stream: int, lo: int | pl.Expr, hi: int | pl.Expr) -> pl.Expr:
        """Integer uniform in [lo, hi], both inclusive."""
        return (self.u(key, stream) * (hi - lo + 1)).floor().cast(pl.Int64) + lo


def _bucket(u: pl.Expr, cuts: Sequence[float]) -> pl.Expr:
    return pl.sum_horizontal([(u >= c).cast(pl.Int32) for c in cuts])


def _pick(values: Sequence, idx: pl.Expr) -> pl.Expr:
    return idx.replace_strict(dict(enumerate(values)), return_dtype=pl.String)


def _days(d: pl.Expr | date, n: pl.Expr | int) -> pl.Expr:
    d = pl.lit(d) if isinstance(d, date) else d
    return d + pl.duration(days=n)


def _id(prefix: str, n: pl.Expr, width: int = 8) -> pl.Expr:
    return pl.lit(prefix) + (n + 1).cast(pl.String).str.zfill(width)


def _money(cents: str) -> pl.Expr:
    # Exact: integer cents -> DECIMAL(18,2) holding the cent count, then /100 at scale 2.
    return (pl.col(cents).cast(pl.Decimal(18, 2)) / 100).cast(pl.Decimal(18, 2))


def _conform(df: pl.DataFrame, table: schema.Table) -> pl.DataFrame:
    """Exactly the schema's columns, in order, with the schema's types."""
    return df.select(pl.col(c.name).cast(_TYPES[c.type]) for c in table.columns)


def write_table(df: pl.DataFrame, path: Path, fmt: Literal["csv", "parquet"]) -> None:
    """CSV: ISO dates, 2-decimal money, true/false, empty = NULL. Parquet: typed columns."""
    if fmt == "csv":
        df.write_csv(path, null_value="")
    elif fmt == "parquet":
        df.write_parquet(path, compression="zstd", statistics=True)
    else:
        raise ValueError(f"unknown format {fmt!r}")


def _customers(n: int, rng: _Rng) -> pl.DataFrame:
    k = pl.col("k")
    first = _pick(_words(_FIRST, " "), pl.col("loc") * 8 + rng.int(k, 2, 0, 7))
    last = _pick(_words(_LAST, "|"), pl.col("loc") * 8 + rng.int(k, 3, 0, 7))
    city = _pick(_words(_CITIES, "|"), pl.col("loc") * 8 + rng.int(k, 4, 0, 7))
    street = _pick(_words(_STREETS, "|"), pl.col("loc") * 8 + rng.int(k, 5, 0, 7))
    house = rng.int(k, 6, 1, 120).cast(pl.String)
    company = rng.u(k, 7) < 0.15
    mail_local = pl.when(company).then(pl.lit("accounts.") + last).otherwise(first + "." + last)
    domain = pl.when(pl.col("loc") == 0).then(pl.lit("example.de")).otherwise(
        _pick(("example.com", "example.org", "example.net"), rng.int(k, 8, 0, 2)))
    # Postal code is everything before the city name; GB and NL codes contain a space.
    pc_len = pl.when(pl.col("loc") == 1).then(city.str.find(" [A-Z][a-z]")) \
        .when(pl.col("loc") == 3).then(pl.lit(7)).otherwise(city.str.find(" "))
    return (
        pl.DataFrame({"k": pl.int_range(n, eager=True)})
        .with_columns(loc=_bucket(rng.u(k, 1), _LOCALE_CUTS))
        .with_columns(
            customer_id=_id("CU-", k),
            name=pl.when(company).then(last + " " + _pick(_COMPANY_SUFFIX, pl.col("loc"))).otherwise(first + " " + last),
            email=pl.when(rng.u(k, 9) < 0.03).then(None).otherwise(
                mail_local.str.replace_many(_ASCII).str.to_lowercase() + k.cast(pl.String) + "@" + domain),
            # mobile numbers in the reserved fiction ranges where a country has one; 30% have none
            phone=pl.when(rng.u(k, 13) < 0.30).then(None).otherwise(
                _pick(_PHONE_PREFIX, pl.col("loc")) + (k % 10_000).cast(pl.String).str.zfill(4)),
            locale=_pick(_LOCALES, pl.col("loc")),
            country=_pick(_COUNTRIES, pl.col("loc")),
            # GB and FR write the house number first.
            address_line1=pl.when(pl.col("loc").is_in([1, 2])).then(house + " " + street).otherwise(street + " " + house),
            address_line2=pl.when(rng.u(k, 10) < 0.1).then(_pick(_LINE2, pl.col("loc"))),
            postal_code=city.str.slice(0, pc_len),
            city=city.str.slice(pc_len + 1),
            dunning_disabled=rng.u(k, 11) < 0.02,
            apply_fees=rng.u(k, 12) >= 0.10,
        )
    )


def _contracts(n: int, customers: pl.DataFrame, ws: date, end: date, rng: _Rng, any_start_day: bool) -> pl.DataFrame:
    k = pl.col("k")
    n_cust = customers.height
    window = (end - ws).days
    # 88% started before the window (up to 3 years), 12% inside it; day clamped to 1..28 so
    # monthly anniversaries never fall on a missing day, unless `any_start_day` (see generate_company).
    raw_start = pl.when(rng.u(k, 1) < 0.88).then(_days(ws, -rng.int(k, 2, 1, 3 * 365))) \
        .otherwise(_days(ws, rng.int(k, 3, 0, max(window - 14, 0))))
    start = raw_start if any_start_day else \
        pl.date(raw_start.dt.year(), raw_start.dt.month(), raw_start.dt.day().clip(upper_bound=28))
    end_lo = pl.max_horizontal(_days(pl.col("started_on"), 30), pl.lit(ws))
    span = (pl.lit(end) - end_lo).dt.total_days()
    ended = (rng.u(k, 4) < 0.15) & (span >= 0)
    price_idx = rng.int(k, 8, 0, 7)
    price = pl.when(pl.col("loc") == 1).then(_pick(_PRICES["GBP"], price_idx)) \
        .when(pl.col("loc") == 4).then(_pick(_PRICES["DKK"], price_idx)) \
        .otherwise(_pick(_PRICES["EUR"], price_idx))
    # The first 80% of contracts give every customer one; the rest go to random customers.
    df = pl.DataFrame({"k": pl.int_range(n, eager=True)}).with_columns(
        cust=pl.when(k < n_cust).then(k).otherwise(rng.int(k, 0, 0, n_cust - 1)))
    df = df.join(customers.select(pl.col("k").alias("cust"), "loc"), on="cust", how="left").sort("k")
    return df.with_columns(
        started_on=start,
        method=_bucket(rng.u(k, 5), (0.45, 0.85)),  # index into _METHODS
        policy=pl.when(rng.u(k, 6) < 0.03).then(pl.lit("default")),
        yearly=rng.u(k, 7) < 0.15,
        term=pl.when(rng.u(k, 9) < 0.2).then(30).otherwise(14),
        price_cents=price.cast(pl.Int64),
    ).with_columns(
        ended_on=pl.when(ended).then(end_lo + pl.duration(days=(rng.u(k, 10) * (span + 1)).floor().cast(pl.Int64))),
    ).with_columns(
        contract_id=_id("CT-", k),
        customer_id=_id("CU-", pl.col("cust")),
        currency=_pick(_CURRENCIES, pl.col("loc")),
        payment_method=_pick(_METHODS, pl.col("method")),
        status=pl.when(pl.col("ended_on").is_null()).then(pl.lit("active")).otherwise(pl.lit("ended")),
    )


def _periods(c: pl.DataFrame, ws: date, end: date, yearly: bool) -> pl.DataFrame:
    """One row per billing period starting inside [ws, min(end, ended_on)].

    Period j starts on the j-th anniversary of started_on (polars clamps the 31st to a shorter
    month's last day) and ends the day before the next one, so periods always join up."""
    s, unit = pl.col("started_on"), ("y" if yearly else "mo")
    last = pl.min_horizontal(pl.lit(end), pl.col("ended_on"))
    if yearly:
        k0 = (ws.year - s.dt.year()) + ((s.dt.month() * 100 + s.dt.day()) < ws.month * 100 + ws.day).cast(pl.Int32)
        k1 = last.dt.year() - s.dt.year()  # the last anniversary that may be <= last
    else:
        k0 = (ws.year - s.dt.year()) * 12 + (ws.month - s.dt.month()) + (s.dt.day() < ws.day).cast(pl.Int32)
        k1 = (last.dt.year() - s.dt.year()) * 12 + (last.dt.month() - s.dt.month())

    def anniversary(j: pl.Expr) -> pl.Expr:
        return s.dt.offset_by(pl.format("{}" + unit, j))

    j = pl.col("j")
    return (
        c.filter(pl.col("yearly") == yearly)
        .with_columns(j=pl.int_ranges(k0.clip(lower_bound=0), (k1 + 1).clip(lower_bound=0), dtype=pl.Int64))
        .explode("j").filter(j.is_not_null())
        .with_columns(invoice_date=anniversary(j))
        .filter(pl.col("invoice_date") <= last)
        .with_columns(period_end=pl.min_horizontal(anniversary(j + 1) - pl.duration(days=1), pl.col("ended_on")))
        .drop("started_on", "ended_on", "j")
    )


def _invoices(c: pl.DataFrame, ws: date, end: date, rng: _Rng) -> pl.DataFrame:
    """Invoices with integer keys only (k = contract, cust, loc, method); strings come at output."""
    # Only numeric columns are exploded: at 1M contracts this frame has ~9M rows.
    c = c.select("k", "cust", "loc", "method", "term", "price_cents", "yearly", "started_on", "ended_on")
    p = pl.concat([_periods(c, ws, end, False), _periods(c, ws, end, True)])
    r = pl.col("r")  # row key for draws; the order above is deterministic
    p = p.with_columns(r=pl.int_range(pl.len())).with_columns(
        amount_cents=pl.col("price_cents") * pl.when(pl.col("yearly")).then(10).otherwise(1)
        + pl.when(rng.u(r, 1) < 0.15).then(rng.int(r, 2, 100, 5000)).otherwise(0),  # usage add-on
        due_date=_days(pl.col("invoice_date"), pl.col("term")),
        voided_on=pl.when(rng.u(r, 3) < 0.01).then(_days(pl.col("invoice_date"), rng.int(r, 4, 1, 5))),
        dunning_paused=rng.u(r, 5) < 0.01,
        period_start=pl.col("invoice_date"),
        credit=pl.lit(False),
    ).with_columns(voided_on=pl.when(pl.col("voided_on") <= end).then(pl.col("voided_on")))
    # Credit notes: partial refund (10..50%) of ~2% of invoices, issued 3..20 days later, due at once.
    cn = p.filter((rng.u(r, 6) < 0.02) & pl.col("voided_on").is_null()).with_columns(
        invoice_date=_days(pl.col("invoice_date"), rng.int(r, 7, 3, 20)),
        amount_cents=-(pl.col("amount_cents") * rng.int(r, 8, 10, 50) // 100),
        dunning_paused=pl.lit(False), credit=pl.lit(True),
    ).with_columns(due_date=pl.col("invoice_date")).filter(pl.col("invoice_date") <= end)
    # Ids in issue order, so "sorted by id" is also chronological.
    return (pl.concat([p, cn]).drop("r", "price_cents", "yearly")
            .sort("invoice_date", "k", "credit", "period_start").with_columns(i=pl.int_range(pl.len())))


def _invoice_strings(inv: pl.DataFrame) -> pl.DataFrame:
    seq = pl.int_range(1, pl.len() + 1).over(pl.col("invoice_date").dt.year())
    return _conform(inv.with_columns(
        invoice_id=_id("IN-", pl.col("i")),
        invoice_number=pl.format("INV-{}-{}", pl.col("invoice_date").dt.year(), seq.cast(pl.String).str.zfill(6)),
        contract_id=_id("CT-", pl.col("k")),
        customer_id=_id("CU-", pl.col("cust")),
        currency=_pick(_CURRENCIES, pl.col("loc")),
        amount=_money("amount_cents"),
        scheduled_payment_on=pl.when((pl.col("method") == DIRECT_DEBIT) & ~pl.col("credit")).then(pl.col("due_date")),
    ), schema.INVOICES)


def _payments(inv: pl.DataFrame, end: date, rng: _Rng) -> pl.DataFrame:
    """Payment attempts with integer keys (k, loc, inv = invoice row i); strings come at output."""
    i, method = pl.col("i"), pl.col("method")
    b = _bucket(rng.u(i, 1), _BEHAVIOUR_CUTS)
    b = pl.when((b == FAILED) & (method == INVOICE)).then(LATE).otherwise(b)  # bank transfers cannot fail
    # More never-paid invoices near `end`, so a 90-day replay opens many cases at several levels.
    recent = pl.col("due_date") > end - timedelta(days=120)
    b = pl.when(recent & (rng.u(i, 2) < 0.17)).then(NEVER).otherwise(b)
    pos = (inv.filter(~pl.col("credit") & pl.col("voided_on").is_null())
           .select("i", "k", "loc", "method", "term", "invoice_date", "due_date", "amount_cents")
           .with_columns(b=b).filter(pl.col("b") != NEVER))
    beh, due, idate = pl.col("b"), pl.col("due_date"), pl.col("invoice_date")
    on_time = pl.when(method == DIRECT_DEBIT).then(due).when(method == CARD).then(idate) \
        .otherwise(_days(idate, rng.int(i, 3, 0, pl.col("term"))))
    part1 = pl.col("amount_cents") * rng.int(i, 4, 20, 80) // 100
    reversed_on = _days(pl.col("booked_on"), rng.int(i, 6, 2, 10))
    first = pos.with_columns(
        seq=pl.lit(0),
        booked_on=pl.when(beh == LATE).then(_days(due, rng.int(i, 5, 5, 60)))
        .when(beh == FAILED).then(pl.when(method == CARD).then(idate).otherwise(due)).otherwise(on_time),
        cents=pl.when(beh == PARTIAL).then(part1).otherwise(pl.col("amount_cents")),
        inv=pl.when(beh != NO_INVOICE_ID).then(i),
        mandate=beh.is_in([ONTIME, FAILED, REVERSED]) & (method == DIRECT_DEBIT),
    ).with_columns(
        # A reversal booked after `end` has not happened yet: the payment is still settled.
        reversed_on=pl.when((beh == REVERSED) & (reversed_on <= end)).then(reversed_on),
    ).with_columns(
        status=pl.when(beh == FAILED).then(1).when(pl.col("reversed_on").is_not_null()).then(2).otherwise(0),
        reason=pl.when(beh == FAILED).then(rng.int(i, 7, 0, 3)).when(pl.col("reversed_on").is_not_null()).then(4)
        + pl.when(method == CARD).then(5).otherwise(0),
    )
    # Follow-ups: rest of a partial (60%), retry after a failure (75%), re-payment after a reversal (50%).
    u = rng.u(i, 8)
    follow = first.filter(((beh == PARTIAL) & (u < 0.6)) | ((beh == FAILED) & (u < 0.75))
                          | ((pl.col("status") == 2) & (u < 0.5))).with_columns(
        seq=pl.lit(1),
        booked_on=pl.when(beh == PARTIAL).then(_days(due, rng.int(i, 9, 10, 90)))
        .when(beh == FAILED).then(_days(pl.col("booked_on"), rng.int(i, 10, 3, 10)))
        .otherwise(_days(pl.col("reversed_on"), rng.int(i, 11, 5, 30))),
        cents=pl.when(beh == PARTIAL).then(pl.col("amount_cents") - part1).otherwise(pl.col("amount_cents")),
        mandate=(beh == FAILED) & (method == DIRECT_DEBIT),
        status=pl.lit(0), reversed_on=pl.lit(None, pl.Date), reason=pl.lit(None, pl.Int64),
    )
    cols = ["i", "seq", "k", "loc", "inv", "cents", "booked_on", "status", "reversed_on", "reason", "mandate"]
    pay = pl.concat([first.select(cols), follow.select(cols)]).filter(pl.col("booked_on") <= end)
    return pay.sort("booked_on", "i", "seq").with_columns(p=pl.int_range(pl.len()))


def _payment_strings(pay: pl.DataFrame) -> pl.DataFrame:
    return _conform(pay.with_columns(
        payment_id=_id("PAY-", pl.col("p")),
        contract_id=_id("CT-", pl.col("k")),
        invoice_id=pl.when(pl.col("inv").is_not_null()).then(_id("IN-", pl.col("inv"))),
        amount=_money("cents"),
        currency=_pick(_CURRENCIES, pl.col("loc")),
        status=_pick(("settled", "failed", "reversed"), pl.col("status")),
        reason_code=pl.when(pl.col("reason").is_not_null()).then(_pick(_REASON_CODES, pl.col("reason"))),
        mandate_id=pl.when(pl.col("mandate")).then(_id("MNDT-", pl.col("k"))),
    ), schema.PAYMENTS)


def _suspensions(cust: pl.DataFrame, con: pl.DataFrame, inv: pl.DataFrame, pay: pl.DataFrame,
                 end: date, rng: _Rng) -> pl.DataFrame:
    g_from = end - timedelta(days=20 + rng.base % 60)
    rows = [pl.DataFrame({"scope": ["global"], "target_id": [None], "from_date": [g_from],
                          "to_date": [g_from + timedelta(days=4)]}, schema_overrides={"target_id": pl.String})]
    # Invoice-scope suspensions target invoices that are actually overdue and never paid.
    unpaid = inv.filter(~pl.col("credit") & (pl.col("due_date") < end)
                        & ~pl.col("i").is_in(pay["inv"].drop_nulls().unique().implode()))
    if unpaid.height == 0:
        unpaid = inv
    unpaid = unpaid.select(invoice_id=_id("IN-", pl.col("i")))
    for stream, (scope, df, key) in enumerate(
            [("customer", cust, "customer_id"), ("contract", con, "contract_id"),
             ("invoice", unpaid, "invoice_id")], start=1):
        n = max(2, df.height // 300)
        r = pl.col("r")
        rows.append(
            df.select(pl.col(key).alias("target_id"), r=pl.int_range(pl.len()))
            .with_columns(h=rng.u(r, stream * 10)).sort("h", "r").head(n)
            .with_columns(scope=pl.lit(scope), from_date=_days(end, -rng.int(r, stream * 10 + 1, 8, 90)))
            .with_columns(to_date=pl.when(rng.u(r, stream * 10 + 2) >= 0.3).then(
                pl.min_horizontal(_days(pl.col("from_date"), rng.int(r, stream * 10 + 3, 7, 30)), pl.lit(end))))
            .select("scope", "target_id", "from_date", "to_date"))
    return pl.concat(rows).sort("scope", "target_id", "from_date", nulls_last=False)


def _bad_invoices(inv: pl.DataFrame, con: pl.DataFrame, end: date) -> pl.DataFrame:
    """Three broken invoice rows (as text): bad date, due before issue, duplicate id."""
    base = inv.head(1).cast(pl.String).row(0, named=True)
    d = (end - timedelta(days=10)).isoformat()
    rows = [
        base | {"invoice_id": "IN-BAD-0001", "invoice_number": "INV-BAD-0001", "invoice_date": d,
                "due_date": "2026-13-45"},
        base | {"invoice_id": "IN-BAD-0002", "invoice_number": "INV-BAD-0002", "invoice_date": d,
                "due_date": (end - timedelta(days=20)).isoformat()},
        base | {"invoice_number": "INV-DUP-0001"},  # same invoice_id as the first invoice
    ]
    return pl.DataFrame(rows, schema={c: pl.String for c in inv.columns})


def _bad_payments(pay: pl.DataFrame, con: pl.DataFrame, end: date) -> pl.DataFrame:
    """Three broken payment rows (as text): bad amount, wrong currency, unknown contract."""
    c = con.row(0, named=True)
    base = {col: None for col in pay.columns} | {
        "contract_id": c["contract_id"], "currency": c["currency"], "amount": "10.00",
        "booked_on": (end - timedelta(days=3)).isoformat(), "status": "settled"}
    rows = [
        base | {"payment_id": "PAY-BAD-0001", "amount": "12,5x"},
        base | {"payment_id": "PAY-BAD-0002", "currency": "USD"},  # no contract is in USD
        base | {"payment_id": "PAY-BAD-0003", "contract_id": "CT-UNKNOWN", "currency": "EUR"},
    ]
    return pl.DataFrame(rows, schema={col: pl.String for col in pay.columns})


_BAD_ROWS = {"invoices": _bad_invoices, "payments": _bad_payments}


def generate_company(out_dir: Path, *, end: date, contracts: int = 400, seed: int = 7,
                     fmt: Literal["csv", "parquet"] = "csv", history_days: int = 365,
                     bad_rows: bool = False, any_start_day: bool = False,
                     progress: Callable[[str], None] | None = None) -> dict[str, int]:
    """Write customers/contracts/invoices/payments/suspensions.<fmt> into out_dir; return row counts.

    Ids: CU-00000001, CT-00000001, IN-00000001 (in issue order), PAY-00000001 (in booking
    order); invoice numbers INV-<year>-<seq>. With bad_rows=True, 3 broken invoices and
    3 broken payments are appended; in Parquet those two tables are then all-text columns,
    because an unparsable date or amount cannot be stored in a DATE/DECIMAL column.

    Contracts start on days 1..28 of a month, so nothing is invoiced on the 29th-31st. With
    any_start_day=True they start on any day (a monthly invoice of a contract started on the
    31st falls on a shorter month's last day), so every day issues invoices; `dunning bench`
    uses it, since its steady day (END, the 30th) must issue invoices like any other day. The
    default keeps the files the tests know. `progress(text)`, if given, hears each step.
    """
    say = progress or (lambda text: None)
    if contracts < 1 or history_days < 30:
        raise ValueError("need contracts >= 1 and history_days >= 30")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ws = end - timedelta(days=history_days - 1)  # first day of the window
    say(f"customers and contracts ({contracts:,} contracts)")
    cust = _customers(max(1, round(contracts * 0.8)), _Rng(seed, "customers"))
    con = _contracts(contracts, cust, ws, end, _Rng(seed, "contracts"), any_start_day)
    say("invoices")
    inv = _invoices(con, ws, end, _Rng(seed, "invoices"))
    say(f"payments (for {inv.height:,} invoices)")
    pay = _payments(inv, end, _Rng(seed, "payments"))
    # billed_until = end of the last billed period (ended contracts without one: ended_on).
    billed = inv.filter(~pl.col("credit")).group_by("k").agg(billed_until=pl.col("period_end").max())
    con = con.join(billed, on="k", how="left").with_columns(
        billed_until=pl.col("billed_until").fill_null(pl.col("ended_on"))).sort("k")
    sus = _suspensions(cust, con, inv, pay, end, _Rng(seed, "suspensions"))

    counts: dict[str, int] = {}

    def emit(name: str, df: pl.DataFrame) -> None:
        if bad_rows and name in _BAD_ROWS:
            df = pl.concat([df.cast(pl.String), _BAD_ROWS[name](df, con, end)])
        say(f"writing {name}.{fmt} ({df.height:,} rows)")
        write_table(df, out_dir / f"{name}.{fmt}", fmt)
        counts[name] = df.height

    emit("customers", _conform(cust, schema.CUSTOMERS))
    emit("contracts", _conform(con, schema.CONTRACTS))
    emit("suspensions", _conform(sus, schema.SUSPENSIONS))
    # The two big tables get their string columns one at a time, to bound peak memory.
    emit("invoices", _invoice_strings(inv))
    del inv
    emit("payments", _payment_strings(pay))
    return {t.name: counts[t.name] for t in schema.INPUT_TABLES}
