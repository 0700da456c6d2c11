"""Project settings: paths and the sending organization, from `dunning.yaml` and the environment.

Environment variables win over the file so that Dagster resources (wired with
`EnvVar`) and CI can point the same code at other folders without editing it.
"""

from __future__ import annotations

import ipaddress
from decimal import Decimal
import os
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


class Organization(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    address_lines: list[str] = Field(default_factory=list)
    email: str
    iban: str
    bic: str
    bank: str
    # where copies for the merchant go (notify_merchant); the sender address when empty
    merchant_email: str | None = None


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


class HttpEndpointSettings(BaseModel):
    """A webhook receiver or SMS gateway: signed JSON over HTTPS (HTTP only to loopback)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
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
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise ValueError(f"{url}: use https (plain http only for a loopback address)")
        return url

    def secret(self) -> str:
        value = os.environ.get(self.secret_env)
        if not value:
            raise ValueError(f"environment variable {self.secret_env} (the signing secret for {self.url}) is not set")
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
    # ledger rows marked per transaction while sending
    batch_size: int = Field(default=100, ge=1, le=10_000)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
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
