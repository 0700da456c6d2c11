"""Scenarios: test a dunning policy like code, against the real pipeline.

Finance operations change the dunning policy; before adopting a change they
want to *see* what it does to a handful of well-understood customers: "an
invoice due on 10 May gets reminder 1 on 24 May, ...". A scenario file (YAML)
states exactly that: a few input rows, a policy, a date range and the actions
(optionally balances and cases) expected on each day.

Running a scenario drives the product itself: the rows are written as the
CSV files users deliver, the policy as a policy file, and the same ingestion,
SQL models and ledger as a production run compute every day of the range on a
throw-away DuckDB file. Nothing of the dunning rules is re-implemented here;
this module only prepares inputs and compares what the pipeline recorded with
what the scenario expects, so a scenario that passes proves the product, and
a failing one says precisely which day, case, level and field differ.

See docs/scenarios.md for the file format.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import tempfile
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model, model_validator

from pipeline.config import policy as policy_mod
from pipeline.engine import run as run_mod
from pipeline.failed_collections.steps import COLLECTION_ACTIONS
from pipeline.warehouse.ingest import IngestError
from pipeline.config.input_tables import INPUT_TABLES, MONEY
from pipeline.config.settings import PROJECT_ROOT, DispatchSettings, Settings


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the key."""


# --------------------------------------------------------------------------- YAML


class _ScenarioLoader(yaml.SafeLoader):
    """PyYAML reads YAML 1.1, where `on`, `off`, `yes` and `no` are booleans: the key
    `on:` of an expected action would silently become True. Scenario files use
    YAML 1.2 booleans (true/false only), so `on` stays the word it looks like."""


_ScenarioLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ScenarioLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


# --------------------------------------------------------------------------- value types

_AMOUNT = re.compile(r"-?[0-9]+(\.[0-9]{1,2})?")  # the same rule ingestion applies to money text
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _money_text(value: Any) -> str:
    # YAML reads an unquoted 100.00 as the binary float 100.0: exact money must be text.
    if isinstance(value, float):
        raise ValueError(
            f'money must be a quoted string such as "{value:.2f}", not the number {value!r} '
            "(YAML reads an unquoted amount with a decimal point as a binary float)"
        )
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f'money must be a quoted string such as "100.00", got {value!r}')
    text = str(value).strip()
    if not _AMOUNT.fullmatch(text):
        raise ValueError(f'{text!r} is not an amount like "100.00" (point as separator, at most 2 decimals)')
    return text


def _day(value: Any) -> date:
    # pydantic alone would also take integers (as Unix timestamps) for dates
    if isinstance(value, date) and type(value) is date:
        return value
    if isinstance(value, str) and _ISO_DAY.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}")


def _text(value: Any) -> Any:
    # ids such as `invoice_id: 1001` are read by YAML as integers; they are text in the product
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


MoneyText = Annotated[str, BeforeValidator(_money_text)]
Money = Annotated[Decimal, BeforeValidator(lambda v: Decimal(_money_text(v)))]
Day = Annotated[date, BeforeValidator(_day)]
Text = Annotated[str, BeforeValidator(_text)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- input rows

# Columns a scenario must give; every other column has a default (below) so a
# scenario shows only what matters to it, like the hand-made worlds in tests/world.py.
REQUIRED_COLUMNS = {
    "customers": ("customer_id",),
    "contracts": ("contract_id",),
    "invoices": ("invoice_id", "amount", "invoice_date", "due_date"),
    "payments": ("payment_id", "amount", "booked_on"),
    "suspensions": ("scope", "from_date"),
}
# Constant defaults; None is an empty cell (NULL). Defaults that depend on other rows
# (an invoice's customer and currency come from its contract, ...) are in _fill_defaults.
DEFAULTS: dict[str, dict[str, Any]] = {
    "customers": {"locale": "de_DE", "country": "DE", "address_line1": "Hauptstr. 1", "postal_code": "10115",
                  "city": "Berlin", "dunning_disabled": False, "apply_fees": True},
    "contracts": {"currency": "EUR", "status": "active", "started_on": date(2020, 1, 1),
                  "payment_method": "invoice"},
    "invoices": {"dunning_paused": False},
    "payments": {"status": "settled"},
    "suspensions": {},
}
_FIELD_TYPES = {"VARCHAR": Text, "DATE": Day, "BOOLEAN": bool, MONEY: MoneyText}


def _row_model(table) -> type[BaseModel]:
    """A strict row model generated from pipeline.config.input_tables, so scenario rows cannot drift from
    the input contract; unknown keys are errors (a typo must not become a silent default),
    real extra columns go under `extra_columns` and flow through like in any input file."""
    fields: dict[str, Any] = {}
    for column in table.columns:
        type_ = _FIELD_TYPES[column.type]
        if column.name in REQUIRED_COLUMNS[table.name]:
            fields[column.name] = (type_, ...)
        else:
            fields[column.name] = (type_ | None, None)
    fields["extra_columns"] = (dict[str, Text | None], Field(default_factory=dict))
    return create_model(f"{table.name.title()}Row", __base__=_Strict, **fields)


ROW_MODELS: dict[str, type[BaseModel]] = {t.name: _row_model(t) for t in INPUT_TABLES}


class Inputs(_Strict):
    customers: list[ROW_MODELS["customers"]] = Field(default_factory=list)  # type: ignore[valid-type]
    contracts: list[ROW_MODELS["contracts"]] = Field(default_factory=list)  # type: ignore[valid-type]
    invoices: list[ROW_MODELS["invoices"]] = Field(default_factory=list)  # type: ignore[valid-type]
    payments: list[ROW_MODELS["payments"]] = Field(default_factory=list)  # type: ignore[valid-type]
    suspensions: list[ROW_MODELS["suspensions"]] = Field(default_factory=list)  # type: ignore[valid-type]


# --------------------------------------------------------------------------- expectations

# The keys that identify a ledger row; expected and actual rows are matched on the ones given.
ACTION_IDENTITY = ("on", "case", "level", "action")
# every action a level can run (pipeline.config.policy), the ones only collection steps record, plus the
# row recording a skipped level
ACTION_KINDS = (*policy_mod.ACTION_TYPES, *COLLECTION_ACTIONS, "level_skipped")


def _detail_value(value: Any) -> Any:
    if isinstance(value, float):  # amounts in details (credit notes, collections) are money too
        raise ValueError(f'write {value!r} as a quoted string such as "{value:.2f}" '
                         "(YAML reads an unquoted number with a decimal point as a binary float)")
    return value.isoformat() if isinstance(value, date) else value  # details hold dates as text


class ActionExpectation(_Strict):
    """One expected ledger row. Only the keys given are compared (`level_due_date: null` is a
    given key: a skipped level has no due date)."""

    on: Day | None = None  # executed_on
    case: Text | None = None
    level: int | None = Field(default=None, ge=1)
    action: Literal[ACTION_KINDS] | None = None  # type: ignore[valid-type]
    level_name: str | None = None
    channel: str | None = None
    status: str | None = None
    scheduled_on: Day | None = None
    level_due_date: Day | None = None
    followed_invoice: Text | None = None
    days_overdue: int | None = None
    principal: Money | None = None
    fee: Money | None = None
    fees_total: Money | None = None
    interest: Money | None = None
    amount_demanded: Money | None = None
    policy: str | None = None  # handle, handle@<effective_from> or the full version id
    # keys of the action's details (webhook event, end_contract effective_on, ...); only those given
    details: dict[str, Annotated[str | int | bool | None, BeforeValidator(_detail_value)]] | None = None

    @model_validator(mode="after")
    def _something_given(self) -> "ActionExpectation":
        if not self.model_fields_set:
            raise ValueError("an expected action needs at least one key (on, case, level, action, ...)")
        return self


class BalanceExpectation(_Strict):
    """The contract's row in contract_balances on one day; no row means nothing open (all 0)."""

    on: Day
    contract: Text
    balance: Money | None = None
    open_amount: Money | None = None
    overdue_amount: Money | None = None
    unapplied_credit: Money | None = None
    oldest_invoice: Text | None = None

    @model_validator(mode="after")
    def _something_checked(self) -> "BalanceExpectation":
        if not self.model_fields_set - {"on", "contract"}:
            raise ValueError("give at least one of balance, open_amount, overdue_amount, unapplied_credit, "
                             "oldest_invoice")
        return self


class CaseExpectation(_Strict):
    case: Text
    opened_on: Day | None = None
    closed_on: Day | None = None
    close_reason: str | None = None
    policy: str | None = None
    level: int | None = None  # the current (last executed) level, 0 before the first
    fees_total: Money | None = None
    failure_type: Literal["soft", "hard", "technical"] | None = None  # collection cases
    counting: Literal["per_transaction", "per_mandate"] | None = None  # collection cases
    arm: Literal["champion", "challenger"] | None = None  # cases of a champion/challenger experiment


class Expect(_Strict):
    actions: list[ActionExpectation] | None = None  # the exact list of ledger rows, when given
    balances: list[BalanceExpectation] = Field(default_factory=list)  # spot checks
    cases: list[CaseExpectation] | None = None  # the exact list of cases, when given

    @model_validator(mode="after")
    def _something_expected(self) -> "Expect":
        if self.actions is None and self.cases is None and not self.balances:
            raise ValueError("give at least one of actions, balances, cases")
        return self


class RunRange(_Strict):
    start: Day = Field(alias="from")
    end: Day = Field(alias="to")

    @model_validator(mode="after")
    def _ordered(self) -> "RunRange":
        if self.end < self.start:
            raise ValueError(f"`to` ({self.end}) is before `from` ({self.start})")
        return self


class Confirmation(_Strict):
    """A person confirms having sent a manual reminder (as `dunning confirm` does)."""

    action: str
    on: Day


class ScenarioFile(_Strict):
    """The scenario file as written; paths are relative to the file."""

    name: str | None = None
    description: str = ""
    policy: policy_mod.PolicyFile | None = None
    policy_file: Path | None = None
    inputs: Inputs | None = None
    inputs_dir: Path | None = None
    run: RunRange
    confirmations: list[Confirmation] = Field(default_factory=list)
    expect: Expect

    @model_validator(mode="after")
    def _one_source_each(self) -> "ScenarioFile":
        if (self.policy is None) == (self.policy_file is None):
            raise ValueError("give exactly one of `policy` (inline) or `policy_file` (a path)")
        if (self.inputs is None) == (self.inputs_dir is None):
            raise ValueError("give exactly one of `inputs` (inline rows) or `inputs_dir` (a folder of CSV files)")
        return self


@dataclass
class Scenario:
    """A loaded scenario, everything resolved: complete input rows, the policy, the expectations."""

    name: str
    path: Path
    spec: ScenarioFile
    tables: dict[str, list[dict[str, Any]]]  # complete rows per input table, ready to write
    origins: dict[str, list[str]]  # where each row came from, to name it in messages
    policy_doc: dict | None  # inline policy as written, or None when policy_path is used
    policy_path: Path | None
    policies: policy_mod.PolicyFile


# --------------------------------------------------------------------------- loading


def _format_loc(loc: Iterable) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _error_lines(where: str, exc: ValidationError, prefix: tuple = ()) -> list[str]:
    lines = []
    for err in exc.errors():
        # pydantic names a failed union member (e.g. `function-before[...]`) in the path: not a key
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and re.fullmatch(r"[a-z-]+\[.*\]", p)))
        key = _format_loc(prefix + loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "literal_error":
            msg = f"got {err.get('input')!r}; allowed: {err['ctx']['expected']}"
        elif err["type"] == "value_error":
            msg = str(err["ctx"]["error"])
        else:
            msg = err["msg"]
        line = f"{where}: {key}: {msg}"
        if line not in lines:  # a union reports the same problem once per member
            lines.append(line)
    return lines


def _resolve(base: Path, path: Path, kind: str, key: str, where: Path) -> Path:
    resolved = (base / path).resolve()
    exists = resolved.is_file() if kind == "file" else resolved.is_dir()
    if not exists:
        raise ScenarioError(f"{where}: {key}: no such {kind}: {resolved}")
    return resolved


def _read_csv_rows(inputs_dir: Path) -> tuple[dict[str, list[dict]], dict[str, list[str]]]:
    """Rows of `<table>.csv` in `inputs_dir` as dicts; an empty cell means "not given" (the default)."""
    tables: dict[str, list[dict]] = {}
    origins: dict[str, list[str]] = {}
    known = {f"{t.name}.csv" for t in INPUT_TABLES}
    strays = sorted(p.name for p in inputs_dir.iterdir() if p.name not in known and not p.name.startswith("."))
    if strays:  # a misspelt file name would otherwise silently mean "no rows"
        raise ScenarioError(f"{inputs_dir}: unexpected file(s) {', '.join(strays)}; "
                            f"expected only {', '.join(sorted(known))}")
    for table in INPUT_TABLES:
        path = inputs_dir / f"{table.name}.csv"
        tables[table.name], origins[table.name] = [], []
        if not path.exists():
            continue
        with open(path, newline="", encoding="utf-8") as fh:
            for number, raw in enumerate(csv.DictReader(fh), start=1):
                row = {k: v for k, v in raw.items() if k is not None and v not in (None, "")}
                extra = {k: row.pop(k) for k in list(row) if k not in table.column_names}
                if extra:
                    row["extra_columns"] = extra
                tables[table.name].append(row)
                origins[table.name].append(f"{path} row {number}")
    return tables, origins


def _validate_rows(tables: dict[str, list[dict]], origins: dict[str, list[str]]) -> dict[str, list[dict]]:
    """Validate CSV rows with the same row models as inline rows; errors name file, row and column."""
    out, lines = {}, []
    for name, rows in tables.items():
        out[name] = []
        for row, origin in zip(rows, origins[name]):
            try:
                out[name].append(ROW_MODELS[name].model_validate(row).model_dump(exclude_unset=True))
            except ValidationError as exc:
                lines += _error_lines(origin, exc)
    if lines:
        raise ScenarioError("\n".join(lines))
    return out


def _key_name(origin: str, key: str, where: Path) -> str:
    """`scenario.yaml: inputs.invoices[0].contract_id` or `.../invoices.csv row 1: contract_id`."""
    return f"{where}: {origin}.{key}" if origin.startswith("inputs.") else f"{origin}: {key}"


def _fill_defaults(tables: dict[str, list[dict]], origins: dict[str, list[str]], where: Path) -> None:
    """Complete every row in place: constant defaults, then those taken from related rows."""
    customers = [r["customer_id"] for r in tables["customers"]]
    contracts: dict[str, dict] = {}
    invoices: dict[str, dict] = {}
    problems: list[str] = []

    def only(ids: list[str], table: str, row_origin: str, key: str) -> str | None:
        if len(ids) == 1:
            return ids[0]
        problems.append(f"{_key_name(row_origin, key, where)}: required when the scenario has "
                        f"{'no' if not ids else 'more than one'} {table[:-1]}")
        return None

    for name in ("customers", "contracts", "invoices", "payments", "suspensions"):
        for row, origin in zip(tables[name], origins[name]):
            for key, value in DEFAULTS[name].items():
                row.setdefault(key, value)
            if name == "customers":
                row.setdefault("name", f"Customer {row['customer_id']}")
                row.setdefault("email", f"{row['customer_id'].lower()}@example.com")
            elif name == "contracts":
                if "customer_id" not in row:
                    row["customer_id"] = only(customers, "customers", origin, "customer_id")
                contracts[row["contract_id"]] = row
            elif name == "invoices":
                if "contract_id" not in row:
                    row["contract_id"] = only(list(contracts), "contracts", origin, "contract_id")
                contract = contracts.get(row["contract_id"], {})
                # an invoice's customer and currency are its contract's (ingestion checks they agree)
                row.setdefault("customer_id", contract.get("customer_id"))
                row.setdefault("currency", contract.get("currency"))
                row.setdefault("invoice_number", row["invoice_id"])
                invoices[row["invoice_id"]] = row
            elif name == "payments":
                if "contract_id" not in row:
                    bound = invoices.get(row.get("invoice_id") or "")
                    row["contract_id"] = (bound["contract_id"] if bound
                                          else only(list(contracts), "contracts", origin, "contract_id"))
                row.setdefault("currency", contracts.get(row["contract_id"], {}).get("currency"))
    if problems:
        raise ScenarioError("\n".join(problems))


def _check_expectations(spec: ScenarioFile, policies: policy_mod.PolicyFile, contracts: set[str],
                        where: Path) -> None:
    """Catch expectations that could never be met, with the key that is wrong."""
    problems = []
    start, end = spec.run.start, spec.run.end
    versions = {p.handle: [v.effective_from for v in p.versions] for p in policies.policies}

    def check_policy(value: str | None, key: str) -> None:
        if value is None:
            return
        handle, _, version = value.partition("@")
        if handle not in versions:
            problems.append(f"{where}: {key}: no policy {handle!r} (policies: {', '.join(versions)})")
        elif version and _ISO_DAY.fullmatch(version) and date.fromisoformat(version) not in versions[handle]:
            problems.append(f"{where}: {key}: policy {handle} has no version effective from {version} "
                            f"(versions: {', '.join(str(d) for d in versions[handle])})")

    for i, a in enumerate(spec.expect.actions or []):
        if a.on is not None and not start <= a.on <= end:
            problems.append(f"{where}: expect.actions[{i}].on: {a.on} is outside the run ({start} to {end})")
        check_policy(a.policy, f"expect.actions[{i}].policy")
    for i, b in enumerate(spec.expect.balances):
        if not start <= b.on <= end:
            problems.append(f"{where}: expect.balances[{i}].on: {b.on} is outside the run ({start} to {end})")
        if b.contract not in contracts:
            problems.append(f"{where}: expect.balances[{i}].contract: no contract {b.contract!r} in the inputs")
    for i, c in enumerate(spec.expect.cases or []):
        check_policy(c.policy, f"expect.cases[{i}].policy")
    if problems:
        raise ScenarioError("\n".join(problems))


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file; raise ScenarioError naming the file and the key."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_ScenarioLoader)  # noqa: S506 (a SafeLoader)
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: (top level): expected a mapping with run, expect, policy and inputs")
    floats = policy_mod.binary_floats(data.get("policy"), ("policy",))  # the policy file's own money rule
    if floats:
        raise ScenarioError("\n".join(f"{path}: {_format_loc(loc)}: {policy_mod.FLOAT_MONEY}" for loc in floats))
    try:
        spec = ScenarioFile.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError("\n".join(_error_lines(str(path), exc))) from None

    base = path.parent
    if spec.policy_file is not None:
        policy_path = _resolve(base, spec.policy_file, "file", "policy_file", path)
        try:
            policies = policy_mod.load_policy_file(policy_path)  # the product's own loader and messages
        except policy_mod.PolicyError as exc:
            raise ScenarioError(f"{path}: policy_file: not a valid policy file:\n{exc}") from None
        policy_doc = None
    else:
        policy_path, policies, policy_doc = None, spec.policy, data["policy"]

    if spec.inputs_dir is not None:
        inputs_dir = _resolve(base, spec.inputs_dir, "folder", "inputs_dir", path)
        raw, origins = _read_csv_rows(inputs_dir)
        tables = _validate_rows(raw, origins)
    else:
        tables = {name: [r.model_dump(exclude_unset=True) for r in getattr(spec.inputs, name)]
                  for name in ROW_MODELS}
        origins = {name: [f"inputs.{name}[{i}]" for i in range(len(rows))] for name, rows in tables.items()}
    _fill_defaults(tables, origins, path)
    _check_expectations(spec, policies, {r["contract_id"] for r in tables["contracts"]}, path)
    return Scenario(name=spec.name or path.stem, path=path, spec=spec, tables=tables, origins=origins,
                    policy_doc=policy_doc, policy_path=policy_path, policies=policies)


# --------------------------------------------------------------------------- running

ORGANIZATION = {"name": "Scenario GmbH", "address_lines": ["Teststr. 1", "10115 Berlin"],
                "email": "billing@scenario.example", "iban": "DE02120300000000202051",
                "bic": "BYLADEM1001", "bank": "Testbank"}


@dataclass
class ScenarioResult:
    name: str
    path: Path
    passed: bool
    differences: list[str] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)  # the actual ledger, in date order
    cases: list[dict[str, Any]] = field(default_factory=list)  # the actual case register


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _write_inputs(scenario: Scenario, data_dir: Path) -> None:
    """One CSV file per table, in the input format users deliver (every column, extras after)."""
    data_dir.mkdir(parents=True)
    for table in INPUT_TABLES:
        rows = scenario.tables[table.name]
        extras = sorted({k for r in rows for k in r.get("extra_columns", {})} - set(table.column_names))
        with open(data_dir / f"{table.name}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(table.column_names + extras)
            for row in rows:
                more = row.get("extra_columns", {})
                writer.writerow([_cell(row.get(c)) for c in table.column_names] + [_cell(more.get(c)) for c in extras])


def _fetch(con, sql: str, params=None) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _quarantined(con, scenario: Scenario) -> list[str]:
    """Rejected input rows, named as the scenario names them: a scenario whose rows do not
    load tests less than it claims, so every rejection is a difference."""
    lines = []
    for r in _fetch(con, "select table_name, source_row, rule, column_name, value, message from quarantine "
                         "order by table_name, source_row"):
        origin = scenario.origins[r["table_name"]][r["source_row"] - 1]
        column = f" column {r['column_name']}" if r["column_name"] else ""
        value = f" {r['value']!r}" if r["value"] is not None else ""
        lines.append(f"input rejected: {origin}{column}{value}: {r['rule']}: {r['message']}")
    return lines


def _run_with_confirmations(con, spec: ScenarioFile, settings: Settings) -> list[str]:
    """Run live, day by day, so manual reminders are prepared; confirm each on its day.

    A confirmation dated D is recorded before day D runs (the run of D sees it), or
    right after the reminder is prepared when both happen on the same day.
    """
    from pipeline.warehouse.state import ConfirmError, confirm_manual

    pending = sorted(spec.confirmations, key=lambda c: (c.on, c.action))
    problems: list[str] = []

    def confirm_due(day: date) -> None:
        for c in [c for c in pending if c.on <= day]:
            try:
                confirm_manual(con, c.action, c.on)
                pending.remove(c)
            except ConfirmError:
                pass  # not prepared yet: tried again after the day's run

    for day in run_mod.days(spec.run.start, spec.run.end):
        confirm_due(day)
        run_mod.run_day(con, day, settings, publish_copy=False)
        confirm_due(day)
    problems += [f"confirmation of {c.action} on {c.on}: no prepared manual reminder with that key" for c in pending]
    return problems


def run_scenario(scenario: Scenario, workdir: Path | str) -> ScenarioResult:
    """Run the real pipeline over the scenario's range in `workdir` and compare with its expectations."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in ("data", "outbox"):  # a reused workdir must not leak an earlier run's files
        shutil.rmtree(workdir / stale, ignore_errors=True)
    database = workdir / "scenario.duckdb"
    for stale in (database, workdir / "scenario.duckdb.wal"):
        stale.unlink(missing_ok=True)
    _write_inputs(scenario, workdir / "data")
    policy_path = scenario.policy_path
    if policy_path is None:
        policy_path = workdir / "policy.yaml"
        policy_path.write_text(yaml.safe_dump(scenario.policy_doc, sort_keys=False), encoding="utf-8")
    settings = Settings(data_dir=workdir / "data", database=database, outbox=workdir / "outbox",
                        policy_file=policy_path, templates=PROJECT_ROOT / "templates", render_workers=1,
                        organization=ORGANIZATION,
                        # scenarios are about policies: payment freshness is not theirs to test
                        dispatch=DispatchSettings(max_payment_age_days=None))
    spec = scenario.spec
    with run_mod.connect(database) as con:
        run_mod.load_inputs(con, settings)
        differences: list[str] = []
        if spec.confirmations:
            differences += _run_with_confirmations(con, spec, settings)
        else:
            # a scenario says what the policy does on its days: recorded, never sent (run mode simulate)
            run_mod.run_range(con, spec.run.start, spec.run.end, settings, mode=run_mod.RunMode.SIMULATE)
        actions = _fetch(con, """
            select executed_on as on, case_id as case, level_no as level, action, level_name, channel, status,
                   scheduled_on, level_due_date, followed_invoice_id as followed_invoice, days_overdue,
                   principal, fee, fees_total, interest, amount_demanded, policy_version as policy, details
            from action_ledger order by executed_on, case_id, level_no, action""")
        for a in actions:  # details is JSON text; amounts in it read as exact decimals
            a["details"] = json.loads(a["details"], parse_float=Decimal) if a["details"] else {}
        cases = _fetch(con, """
            select case_id as case, opened_on, closed_on, close_reason, policy_version as policy,
                   current_level as level, fees_total, failure_type, counting, arm
            from cases order by opened_on, case_id""")
        versions = {r["policy_version"]: (r["policy_id"], r["effective_from"])
                    for r in _fetch(con, "select policy_id, policy_version, effective_from from policy_versions")}
        differences += _quarantined(con, scenario)
        if spec.expect.actions is not None:
            differences += compare_actions(spec.expect.actions, actions, versions)
        differences += _compare_balances(con, spec.expect.balances)
        if spec.expect.cases is not None:
            differences += compare_cases(spec.expect.cases, cases, versions)
    return ScenarioResult(scenario.name, scenario.path, not differences, differences, actions, cases)


# --------------------------------------------------------------------------- comparing


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return str(value)


def _policy_as(expected: str, actual_version: str, versions: dict[str, tuple[str, date]]) -> str:
    """The actual policy version written the way the expectation is written, so the two compare:
    `default` (handle), `default@2026-03-20` (version by effective date) or the full version id."""
    handle, effective_from = versions.get(actual_version, (actual_version.partition("@")[0], None))
    _, at, version = expected.partition("@")
    if not at:
        return handle
    if _ISO_DAY.fullmatch(version):
        return f"{handle}@{effective_from}"
    return actual_version


def _field_differences(prefix: str, expected: BaseModel, actual: dict[str, Any], skip: Iterable[str],
                       versions: dict[str, tuple[str, date]]) -> list[str]:
    lines = []
    for key in type(expected).model_fields:  # in the model's order, so messages read consistently
        if key not in expected.model_fields_set or key in skip:
            continue
        want, got = getattr(expected, key), actual.get(key)
        if key == "details" and want is not None:
            lines += _details_differences(prefix, want, got or {})
            continue
        if key == "policy" and got is not None:
            got = _policy_as(want, got, versions)
        if want != got:
            lines.append(f"{prefix}: expected {key} {_show(want)}, got {_show(got)}")
    return lines


def _details_differences(prefix: str, expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """The given keys of an action's details; numbers compare as exact decimals, dates as text."""
    lines = []
    for key, want in expected.items():
        got = actual.get(key)
        same = want == got
        if not same and want is not None and got is not None and not isinstance(want, bool):
            try:
                same = Decimal(str(want)) == Decimal(str(got))
            except ArithmeticError:
                same = False
        if not same:
            lines.append(f"{prefix}: expected details.{key} {_show(want)}, got {_show(got)}")
    return lines


def _describe(row: dict[str, Any]) -> str:
    """`2026-06-07 in-I1-20260511 level 3 reminder`, from whichever identity keys are known."""
    parts = [str(row["on"]) if row.get("on") else None, row.get("case"),
             f"level {row['level']}" if row.get("level") is not None else None, row.get("action")]
    return " ".join(p for p in parts if p)


def compare_actions(expected: list[ActionExpectation], actual: list[dict[str, Any]],
                    versions: dict[str, tuple[str, date]]) -> list[str]:
    """Differences between the expected and the actual ledger rows.

    An expected row is matched with the first unmatched actual row that agrees on the identity
    keys it gives (on, case, level, action); one that gives none takes the next unmatched row in
    date order. Expectations giving more identity keys are matched first, so a vague one cannot
    take the row a precise one describes. Lines come out in date order, so a level that came a
    day late reads as `missing` then `unexpected` next to each other.
    """
    matched: dict[int, int] = {}  # expected index -> actual index
    taken: set[int] = set()
    order = sorted(range(len(expected)),
                   key=lambda i: -len(expected[i].model_fields_set & set(ACTION_IDENTITY)))
    for i in order:
        exp = expected[i]
        keys = [k for k in ACTION_IDENTITY if k in exp.model_fields_set]
        for j, act in enumerate(actual):
            if j not in taken and all(getattr(exp, k) == act[k] for k in keys):
                matched[i], taken = j, taken | {j}
                break

    found: list[tuple[tuple, str]] = []  # (sort key, line)

    def sort_key(row: dict[str, Any], rank: int) -> tuple:
        return (row.get("on") or date.max, row.get("case") or "", row.get("level") or 0, rank)

    for i, exp in enumerate(expected):
        given = {k: getattr(exp, k) for k in ACTION_IDENTITY if k in exp.model_fields_set}
        if i not in matched:
            what = _describe(given) or f"expected action #{i + 1}"
            found.append((sort_key(given, 0), f"missing: {what}"))
            continue
        act = actual[matched[i]]
        prefix = f"{act['on']} {act['case']} level {act['level']}"
        for line in _field_differences(prefix, exp, act, given, versions):
            found.append((sort_key(act, 1), line))
    for j, act in enumerate(actual):
        if j not in taken:
            found.append((sort_key(act, 2), f"unexpected: {_describe(act)}"))
    return [line for _, line in sorted(found, key=lambda item: item[0])]


def compare_cases(expected: list[CaseExpectation], actual: list[dict[str, Any]],
                  versions: dict[str, tuple[str, date]]) -> list[str]:
    """Differences between the expected and the actual case register (matched by case id)."""
    by_id = {c["case"]: c for c in actual}
    lines = []
    for exp in expected:
        act = by_id.get(exp.case)
        if act is None:
            lines.append(f"missing case: {exp.case}")
        else:
            lines += _field_differences(f"case {exp.case}", exp, act, ("case",), versions)
    wanted = {e.case for e in expected}
    lines += [f"unexpected case: {c['case']} opened {c['opened_on']}" for c in actual if c["case"] not in wanted]
    return lines


def _compare_balances(con, expected: list[BalanceExpectation]) -> list[str]:
    lines = []
    for exp in expected:
        rows = _fetch(con, """
            select balance, open_amount, overdue_amount, unapplied_credit, oldest_invoice_id as oldest_invoice
            from contract_balances where as_of = ? and contract_id = ?""", [exp.on, exp.contract])
        # a contract with nothing open and no credit has no row that day: its amounts are 0
        zero = Decimal("0.00")
        act = rows[0] if rows else {"balance": zero, "open_amount": zero, "overdue_amount": zero,
                                    "unapplied_credit": zero, "oldest_invoice": None}
        lines += _field_differences(f"{exp.on} {exp.contract}", exp, act, ("on", "contract"), {})
    return lines


# --------------------------------------------------------------------------- many scenarios, the terminal


def scenario_paths(paths: Iterable[Path | str]) -> list[Path]:
    """Files as given; a folder stands for its *.yaml and *.yml files, sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted([*p.glob("*.yaml"), *p.glob("*.yml")]) if p.is_dir() else [p]
    return out


def run_scenarios(paths: Iterable[Path | str]) -> list[ScenarioResult]:
    """Load and run each scenario in its own temporary folder. A scenario that cannot be loaded,
    whose inputs cannot be read, or whose run crashes fails with the message (a crash: its type,
    message and where it happened) instead of stopping the others."""
    results = []
    for path in scenario_paths(paths):
        name = path.stem
        try:
            scenario = load_scenario(path)
            name = scenario.name
            with tempfile.TemporaryDirectory(prefix="dunning-scenario-") as workdir:
                results.append(run_scenario(scenario, workdir))
        except (ScenarioError, policy_mod.PolicyError, IngestError) as exc:
            results.append(ScenarioResult(name, path, False, str(exc).splitlines()))
        except Exception as exc:  # noqa: BLE001 - a crash is this scenario's failure, not everyone's
            results.append(ScenarioResult(name, path, False, _crash_lines(exc)))
    return results


def _crash_lines(exc: BaseException) -> list[str]:
    """A crash in a few lines: what was raised, and the innermost frame of the product that raised it."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/pipeline/" in f.filename.replace("\\", "/")]
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    message = str(exc).splitlines() or [""]
    return [f"crashed: {type(exc).__name__}: {message[0]}{where}", *message[1:]]


def format_results(results: list[ScenarioResult]) -> str:
    lines = []
    for r in results:
        lines.append(f"{'PASS' if r.passed else 'FAIL'}  {r.path}  {r.name}")
        lines += [f"      {d}" for d in r.differences]
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results)} scenario(s): {len(results) - failed} passed, {failed} failed")
    return "\n".join(lines)


def actual_as_yaml(result: ScenarioResult) -> str:
    """The actual ledger as an `expect.actions` block: a starting point for a new scenario,
    to be checked line by line against the policy, never pasted in blindly."""
    keys = ("on", "case", "level", "action", "scheduled_on", "level_due_date", "fee", "fees_total",
            "amount_demanded")

    def value(v: Any) -> str:  # money quoted (exact decimal), the rest as YAML reads it back
        return f'"{v:.2f}"' if isinstance(v, Decimal) else _show(v)

    lines = ["actions:"]
    lines += ["  - {" + ", ".join(f"{k}: {value(a[k])}" for k in keys) + "}" for a in result.actions]
    return "\n".join(lines) + "\n"


def main(paths: list[Path]) -> int:
    """`dunning test-policy SCENARIO...`: print one line per scenario; 0 when all pass, else 1."""
    files = scenario_paths(paths)
    if not files:
        print("no scenario files found in: " + ", ".join(map(str, paths)))
        return 1
    results = run_scenarios(files)
    print(format_results(results))
    return 0 if results and all(r.passed for r in results) else 1
