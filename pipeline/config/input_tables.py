"""The input contract: which tables a source must provide and how each column is typed.

One place defines it so ingestion, the sample generator, the docs and the
tests agree. Types are DuckDB types; money is DECIMAL(18,2), never float.
Columns a source provides beyond these flow through untouched (as text) so
templates and routing criteria can use them.

The plausible limits below are quarantine rules (docs/ingestion.md says why):
a value outside them is a typo or a sentinel, never billing data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

MONEY = "DECIMAL(18,2)"
# |amount| < 10^12 (at most 999,999,999,999.99): DECIMAL(18,2) holds < 10^16, so the daily
# models can sum 10,000 maximal amounts of one contract, customer or currency without overflow.
MONEY_LIMIT = Decimal(10) ** 12
MONEY_LIMIT_DIGITS = 12  # digits before the decimal point, leading zeros aside
# Every date of billing data lies in these years; outside is a typo (0026, 2926) or a sentinel
# (0001-01-01, 9999-12-31: leave such a field empty instead), and every date in the range can be
# printed by the templates and moved by the models' date arithmetic.
FIRST_DATE = date(1900, 1, 1)
LAST_DATE = date(2199, 12, 31)


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # DuckDB type: VARCHAR, DATE, BOOLEAN, DECIMAL(18,2)
    required: bool  # False: the value may be empty (NULL)
    doc: str


@dataclass(frozen=True)
class Table:
    name: str
    key: str | None
    columns: tuple[Column, ...]
    doc: str

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _c(name: str, type_: str, required: bool, doc: str) -> Column:
    return Column(name, type_, required, doc)


CUSTOMERS = Table(
    "customers",
    "customer_id",
    (
        _c("customer_id", "VARCHAR", True, "Unique customer id."),
        _c("name", "VARCHAR", True, "Name printed on documents."),
        _c("email", "VARCHAR", False, "Address reminders are emailed to."),
        _c("phone", "VARCHAR", False, "Mobile number in E.164 form (+4917...), for SMS; the column may be left out."),
        _c("locale", "VARCHAR", True, "Locale for documents, e.g. de_DE, en_GB."),
        _c("country", "VARCHAR", True, "ISO 3166 alpha-2 country code."),
        _c("address_line1", "VARCHAR", False, "First postal address line."),
        _c("address_line2", "VARCHAR", False, "Second postal address line."),
        _c("postal_code", "VARCHAR", False, "Postal code."),
        _c("city", "VARCHAR", False, "City."),
        _c("dunning_disabled", "BOOLEAN", True, "True: no dunning case is ever opened for this customer."),
        _c("apply_fees", "BOOLEAN", True, "False: dunning fees are never charged to this customer."),
    ),
    "One row per customer.",
)

CONTRACTS = Table(
    "contracts",
    "contract_id",
    (
        _c("contract_id", "VARCHAR", True, "Unique contract id."),
        _c("customer_id", "VARCHAR", True, "The customer who owns the contract."),
        _c("currency", "VARCHAR", True, "ISO 4217 currency of every invoice and payment of the contract."),
        _c("status", "VARCHAR", True, "active or ended."),
        _c("started_on", "DATE", True, "First day of the contract."),
        _c("ended_on", "DATE", False, "Last day of an ended contract."),
        _c("billed_until", "DATE", False, "Last day already invoiced."),
        _c("payment_method", "VARCHAR", False, "e.g. invoice, direct_debit, card."),
        _c("policy", "VARCHAR", False, "Explicit dunning policy handle; empty means the default policy."),
    ),
    "One row per contract. Credit never crosses contracts.",
)

INVOICES = Table(
    "invoices",
    "invoice_id",
    (
        _c("invoice_id", "VARCHAR", True, "Unique invoice id."),
        _c("invoice_number", "VARCHAR", True, "Number printed on documents."),
        _c("contract_id", "VARCHAR", True, "The contract billed."),
        _c("customer_id", "VARCHAR", True, "The customer billed (must own the contract)."),
        _c("invoice_date", "DATE", True, "Date of issue; the invoice is invisible before it."),
        _c("due_date", "DATE", True, "Payment due date; overdue from the day after."),
        _c("amount", MONEY, True, "Gross amount; negative for a credit note."),
        _c("currency", "VARCHAR", True, "Must equal the contract's currency."),
        _c("voided_on", "DATE", False, "Day the invoice was voided; it counts for nothing from then on."),
        _c("dunning_paused", "BOOLEAN", True, "True: dunning is paused for this invoice."),
        _c("period_start", "DATE", False, "First day of the billed period."),
        _c("period_end", "DATE", False, "Last day of the billed period."),
        _c("scheduled_payment_on", "DATE", False, "Day an automatic collection is planned."),
    ),
    "One row per invoice or credit note.",
)

PAYMENTS = Table(
    "payments",
    "payment_id",
    (
        _c("payment_id", "VARCHAR", True, "Unique payment id."),
        _c("contract_id", "VARCHAR", True, "The contract credited."),
        _c("invoice_id", "VARCHAR", False, "Invoice the payment settles first; empty: oldest open first."),
        _c("amount", MONEY, True, "Amount paid, positive."),
        _c("currency", "VARCHAR", True, "Must equal the contract's currency."),
        _c("booked_on", "DATE", True, "Booking date; the payment is invisible before it."),
        _c("status", "VARCHAR", True, "settled, failed or reversed."),
        _c("reversed_on", "DATE", False, "For reversed payments: the day the reversal was booked."),
        _c("reason_code", "VARCHAR", False, "Failure or reversal reason, e.g. SEPA AM04."),
        _c("mandate_id", "VARCHAR", False, "Direct-debit mandate."),
    ),
    "One row per payment attempt. Failed payments count for nothing.",
)

SUSPENSIONS = Table(
    "suspensions",
    None,
    (
        _c("scope", "VARCHAR", True, "global, customer, contract or invoice."),
        _c("target_id", "VARCHAR", False, "Id of the customer, contract or invoice; empty for global."),
        _c("from_date", "DATE", True, "First suspended day."),
        _c("to_date", "DATE", False, "Day dunning resumes (not itself suspended); empty: open-ended."),
    ),
    "Periods in which no dunning level is executed. The schedule is not moved.",
)

INPUT_TABLES: tuple[Table, ...] = (CUSTOMERS, CONTRACTS, INVOICES, PAYMENTS, SUSPENSIONS)
INPUT_TABLES_BY_NAME = {t.name: t for t in INPUT_TABLES}
