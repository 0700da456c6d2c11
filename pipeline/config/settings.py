"""Project settings: paths and the sending organization, from `dunning.yaml` and the environment.

Environment variables win over the file so that Dagster resources (wired with
`EnvVar`) and CI can point the same code at other folders without editing it.
"""

from __future__ import annotations

import ipaddress
from decimal import Decimal
import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENV_OVERRIDES = {
    "data_dir": "DUNNING_DATA_DIR",
    "database": "DUNNING_DATABASE",
    "outbox": "DUNNING_OUTBOX",
    "policy_file": "DUNNING_POLICY_FILE",
    "templates": "DUNNING_TEMPLATES",
    "analyst_dir": "DUNNING_ANALYST_DIR",
    "reports_dir": "DUNNING_REPORTS_DIR",
}


class CreditorAccount(BaseModel):
    """A bank account customers pay into: per currency, optionally only for some customer countries.

    IBAN and BIC are checked (schwifty) when the settings load, so a typo stops the start, not a
    customer's payment. Documents show the account of their currency (and the customer's country,
    where one is listed for it) and are refused for a currency without one (docs/design.md).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    currency: str | None = None  # ISO 4217; None only for the single account of an old configuration
    countries: list[str] = Field(default_factory=list)  # customer countries (ISO 3166); empty: every country
    iban: str
    bic: str
    bank: str
    holder: str | None = None  # the account holder as the bank knows it; default: the organization's name

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from babel.numbers import list_currencies

        code = value.strip().upper()
        if code not in list_currencies():
            raise ValueError(f"{value!r} is not an ISO 4217 currency code")
        return code

    @field_validator("countries")
    @classmethod
    def _countries(cls, value: list[str]) -> list[str]:
        from pipeline.delivery.render.addresses import known_country

        bad = [c for c in value if not known_country(c)]
        if bad:
            raise ValueError(f"not ISO 3166 country codes: {', '.join(map(repr, bad))}")
        return [c.strip().upper() for c in value]

    @field_validator("iban")
    @classmethod
    def _iban(cls, value: str) -> str:
        from schwifty import IBAN

        try:
            return IBAN(value).compact
        except Exception as exc:  # schwifty's own exceptions name the problem (checksum, length, ...)
            raise ValueError(f"not a valid IBAN ({exc})") from None

    @field_validator("bic")
    @classmethod
    def _bic(cls, value: str) -> str:
        from schwifty import BIC

        try:
            return str(BIC(value))
        except Exception as exc:
            raise ValueError(f"not a valid BIC ({exc})") from None


class PostalAddress(BaseModel):
    """The organization's address in fields (the creditor of a Swiss QR-bill needs it so)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    street: str
    house_number: str | None = None
    postal_code: str
    city: str
    country: str  # ISO 3166 alpha-2


class LegalInfo(BaseModel):
    """What a company letter (and email) must carry, printed in the footer: for a German GmbH
    (section 35a GmbHG) the seat, the register court and number and every managing director."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    registered_office: str | None = None  # "Sitz der Gesellschaft", e.g. Hamburg
    register_court: str | None = None  # e.g. Amtsgericht Hamburg
    register_number: str | None = None  # e.g. HRB 123456
    managing_directors: list[str] = Field(default_factory=list)
    vat_id: str | None = None  # checked with python-stdnum, e.g. DE123456789

    @field_validator("vat_id")
    @classmethod
    def _vat_id(cls, value: str | None) -> str | None:
        if not value:
            return None
        from stdnum import vatin

        if not vatin.is_valid(value):
            raise ValueError(f"{value!r} is not a valid VAT identification number")
        return vatin.compact(value)


_PAY_NOW_FIELDS = {"reference", "amount", "currency", "case_id", "customer_id"}


class Organization(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    address_lines: list[str] = Field(default_factory=list)
    email: str
    # one account for every currency (the configuration before `accounts`); with `accounts`, their first
    iban: str | None = None
    bic: str | None = None
    bank: str | None = None
    # creditor accounts per currency (and customer country): documents show the matching one
    accounts: list[CreditorAccount] = Field(default_factory=list)
    # the sender's country and locale: letters to another country get a country line in this
    # language, and the daily report formats money so; default: the address's country, else the
    # first account's, and that country's main locale
    country: str | None = None
    locale: str | None = None
    address: PostalAddress | None = None
    legal: LegalInfo = Field(default_factory=LegalInfo)
    # a link to pay online, in emails: {reference}, {amount}, {currency}, {case_id}, {customer_id}
    pay_now_url: str | None = None
    # where copies for the merchant go (notify_merchant); the sender address when empty
    merchant_email: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _accounts_country_locale(cls, data):
        if not isinstance(data, dict):
            return data
        data = dict(data)
        legacy = {k: data.get(k) for k in ("iban", "bic", "bank")}
        accounts = list(data.get("accounts") or [])
        if not accounts and any(legacy.values()):
            accounts = [legacy]  # one account for every currency, as before
            data["accounts"] = accounts
        if accounts and not any(legacy.values()):
            first = accounts[0] if isinstance(accounts[0], dict) else accounts[0].model_dump()
            data.update({k: first.get(k) for k in ("iban", "bic", "bank")})
        if not data.get("country"):
            address = data.get("address") or {}
            address = address if isinstance(address, dict) else address.model_dump()
            first = accounts[0] if accounts and isinstance(accounts[0], dict) else (
                accounts[0].model_dump() if accounts else {})
            iban = re.sub(r"\s", "", str(first.get("iban") or ""))
            data["country"] = address.get("country") or iban[:2] or None
        if not data.get("locale") and data.get("country"):
            from babel import Locale

            try:
                data["locale"] = str(Locale.parse(f"und_{str(data['country']).upper()}"))
            except Exception:
                data["locale"] = "en_GB"
        return data

    @field_validator("country")
    @classmethod
    def _sender_country(cls, value: str | None) -> str | None:
        from pipeline.delivery.render.addresses import known_country

        if value is not None and not known_country(value):
            raise ValueError(f"{value!r} is not an ISO 3166 country code")
        return value.upper() if value else value

    @field_validator("locale")
    @classmethod
    def _sender_locale(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from babel import Locale

        try:
            return str(Locale.parse(value.replace("-", "_")))
        except Exception:
            raise ValueError(f"{value!r} is not a locale Babel knows (e.g. de_DE)") from None

    @field_validator("pay_now_url")
    @classmethod
    def _pay_now_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        import string

        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        except ValueError as exc:
            raise ValueError(f"not a link template: {exc}") from None
        if fields - _PAY_NOW_FIELDS:
            raise ValueError(f"unknown placeholders {sorted(fields - _PAY_NOW_FIELDS)}; allowed: "
                             f"{', '.join('{' + f + '}' for f in sorted(_PAY_NOW_FIELDS))}")
        if urlsplit(value.replace("{", "").replace("}", "")).scheme != "https":
            raise ValueError("the pay-now link must be an https:// link")
        return value

    @model_validator(mode="after")
    def _accounts_consistent(self):
        if not self.accounts:
            raise ValueError("no creditor account: set organization.accounts (or iban, bic and bank)")
        seen = set()
        for account in self.accounts:
            for country in account.countries or [None]:
                key = (account.currency, country)
                if key in seen:
                    raise ValueError(f"two accounts for currency {account.currency}"
                                     + (f" and country {country}" if country else ""))
                seen.add(key)
            if account.currency is None and len(self.accounts) > 1:
                raise ValueError("every account in organization.accounts needs its currency")
        swiss = [a for a in self.accounts if a.currency == "CHF" and a.iban[:2] in ("CH", "LI")]
        if swiss and self.address is None:
            raise ValueError("a CHF account in Switzerland or Liechtenstein prints a Swiss QR-bill, whose "
                             "creditor address needs organization.address (street, postal_code, city, country)")
        return self


class SmtpSettings(BaseModel):
    """An SMTP relay. Credentials are read from environment variables, never from the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "starttls"
    username_env: str = "DUNNING_SMTP_USERNAME"
    password_env: str = "DUNNING_SMTP_PASSWORD"
    timeout_seconds: float = Field(default=30.0, gt=0)

    def credentials(self) -> tuple[str | None, str | None]:
        return os.environ.get(self.username_env) or None, os.environ.get(self.password_env) or None


_USERINFO_RE = re.compile(r"(?<=//)[^/?#@\s]*@")
# query parameters whose values are credentials often enough to never print them
_SECRET_PARAM_RE = re.compile(
    r"(?i)([?&;](?:[^=&;#\s]*(?:token|key|secret|passw|pwd|sig|auth|credential|session))[^=&;#\s]*=)[^&;#\s]*")


def redact_url(url: str) -> str:
    """The URL fit for a message or log: `user:password@` becomes `***@`, token-like query values `***`.

    Works on text that is not a valid URL too (a mistake in the settings is what gets printed).
    """
    return _SECRET_PARAM_RE.sub(r"\1***", _USERINFO_RE.sub("***@", str(url)))


class HttpEndpointSettings(BaseModel):
    """A webhook receiver or SMS gateway: signed JSON over HTTPS (HTTP only to loopback)."""

    # errors never echo the URL as given: it may carry credentials (the messages redact it)
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    url: str
    secret_env: str
    timeout_seconds: float = Field(default=10.0, gt=0)
    attempts_per_run: int = Field(default=3, ge=1, le=10)
    backoff_seconds: float = Field(default=0.5, ge=0)

    @field_validator("url")
    @classmethod
    def _https_or_loopback(cls, url: str) -> str:
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not host or (parts.scheme != "https" and not (parts.scheme == "http" and loopback)):
            raise ValueError(f"{redact_url(url)}: use https://host/... (plain http only for a loopback address)")
        return url

    def secret(self) -> str:
        value = os.environ.get(self.secret_env)
        if not value:
            raise ValueError(f"environment variable {self.secret_env} (the signing secret for "
                             f"{redact_url(self.url)}) is not set")
        return value


class ChannelSettings(BaseModel):
    """Real channels; each one left out falls back to the local outbox (the embedded default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    email: SmtpSettings | None = None
    webhook: HttpEndpointSettings | None = None
    sms: HttpEndpointSettings | None = None
    # the daily print batches for the print-and-mail partner (default: <outbox>/print)
    print_folder: Path | None = None
    # original invoice PDFs, attached to emails when `<invoice_number>.pdf` is found here
    invoice_pdf_dir: Path | None = None


class DispatchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # a failed send is tried again on later runs until it has been tried this often
    max_attempts: int = Field(default=3, ge=1, le=20)
    # nothing is sent while the newest visible payment is older than this many days
    # (stale payment data would dun customers who have paid); null turns the gate off
    max_payment_age_days: int | None = Field(default=3, ge=0)
    # messages handed over per durable (fsynced) journal line: one fsync per this many (journal.py)
    batch_size: int = Field(default=64, ge=1, le=10_000)
    # a day's documents are rendered and sent in this many shards, by a hash of the case; `dunning
    # dispatch` runs them up to `render_workers` at a time, Dagster as one step each (docs/scaling.md)
    shards: int = Field(default=1, ge=1, le=4096)


class IngestionSettings(BaseModel):
    """When quarantined input rows stop a live day before planning (docs/ingestion.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # a live day stops before anything is planned or sent when more than this share of a table's rows
    # read was quarantined (0.2: one row in five); 1 never stops
    stop_when_quarantined_share_above: float = Field(default=0.2, ge=0, le=1)
    # the same per input table, overriding the share above, e.g. {suspensions: 0.5}
    per_table: dict[str, float] = Field(default_factory=dict)

    @field_validator("per_table")
    @classmethod
    def _known_tables_and_shares(cls, value: dict[str, float]) -> dict[str, float]:
        from pipeline.config.input_tables import INPUT_TABLES_BY_NAME

        for table, share in value.items():
            if table not in INPUT_TABLES_BY_NAME:
                raise ValueError(f"unknown input table {table!r}; allowed: {', '.join(INPUT_TABLES_BY_NAME)}")
            if not 0 <= share <= 1:
                raise ValueError(f"{table}: the share must be between 0 and 1, not {share}")
        return value

    def share_limit(self, table: str) -> float:
        return self.per_table.get(table, self.stop_when_quarantined_share_above)


class Settings(BaseModel):
    # the outermost model decides: no error echoes a value as given (a webhook URL may carry credentials)
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    data_dir: Path
    database: Path
    outbox: Path
    policy_file: Path
    templates: Path
    # the analysts' read-only copy (Parquet + a DuckDB file of views) and the daily reports; by
    # default beside the database (var/analyst, var/reports with dunning.yaml), so a test's or a
    # second project's database never publishes into another one's folders
    analyst_dir: Path
    reports_dir: Path
    render_workers: int = Field(default=2, ge=1, le=64)
    # DuckDB's memory limit: beyond it, large steps spill to disk instead of growing
    duckdb_memory_limit: str = Field(default="2.75GB", pattern=r"^[0-9]+(\.[0-9]+)?\s*(MB|GB|MiB|GiB)$")
    organization: Organization
    channels: ChannelSettings = Field(default_factory=ChannelSettings)
    # postage per letter by kind and currency, for the simulation's cost estimate
    postage: dict[str, dict[str, Decimal]] = Field(default_factory=lambda: {
        "letter": {"EUR": Decimal("0.95"), "GBP": Decimal("0.85"), "DKK": Decimal("8.00")},
        "registered_letter": {"EUR": Decimal("3.69"), "GBP": Decimal("3.05"), "DKK": Decimal("45.00")},
    })
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    ingestion: IngestionSettings = Field(default_factory=IngestionSettings)

    @field_validator("postage")
    @classmethod
    def _postage_in_cents(cls, value: dict[str, dict[str, Decimal]]) -> dict[str, dict[str, Decimal]]:
        # the reports' money is DECIMAL(18,2): a rate of a tenth of a cent would be shown, then refused
        # by the report's Parquet columns half-way through writing the report
        for kind, rates in value.items():
            for currency, rate in rates.items():
                if not rate.is_finite() or rate < 0 or rate != rate.quantize(Decimal("0.01")):
                    raise ValueError(f"postage.{kind}.{currency}: {rate} is not an amount in whole cents "
                                     "(at most two decimals, not negative)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _output_folders_beside_database(cls, data):
        if isinstance(data, dict) and data.get("database"):
            for key, folder in (("analyst_dir", "analyst"), ("reports_dir", "reports")):
                if not data.get(key):
                    data = {**data, key: Path(data["database"]).parent / folder}
        return data

    @property
    def print_folder(self) -> Path:
        return self.channels.print_folder or self.outbox / "print"

    @property
    def journal_path(self) -> Path:
        """The dispatch journal beside the database: what was handed to a channel, line by line."""
        return Path(f"{self.database}.dispatch-journal")

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides) -> "Settings":
        """Read `dunning.yaml` (or DUNNING_CONFIG), apply env overrides, then keyword overrides."""
        path = Path(config_file or os.environ.get("DUNNING_CONFIG") or PROJECT_ROOT / "dunning.yaml")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for key, env in ENV_OVERRIDES.items():
            if os.environ.get(env):
                data[key] = os.environ[env]
        data.update({k: v for k, v in overrides.items() if v is not None})
        for key in ENV_OVERRIDES:
            if key in data:
                p = Path(data[key])
                data[key] = p if p.is_absolute() else (path.parent / p).resolve()
        channels = data.get("channels") or {}
        for key in ("print_folder", "invoice_pdf_dir"):
            if channels.get(key):
                p = Path(channels[key])
                channels[key] = p if p.is_absolute() else (path.parent / p).resolve()
        return cls.model_validate(data)
