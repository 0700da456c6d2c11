"""Dunning policies: the versioned configuration finance operations edit.

A policy file (YAML) holds named policies, each a list of versions with an
effective date. A version is identified by a hash of its content, so the
ledger can always say exactly which rules caused an action, and a case keeps
the version in force on the day it opened. Validation errors name the file,
the key path and what is allowed, because the people editing this file are
not the people who wrote the code.

The models are loaded into small DuckDB tables (`policy_versions`,
`policy_levels`, ...) so the SQL models can join policy to data set-based.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.failed_collections.steps import (
    COLLECTION_TABLES_DDL, Collections, check_moves, default_retry_results, load_collections)
from pipeline.warehouse.ledger_rules import templated_actions
from pipeline.warehouse.ddl import ddl

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)]

ANCHORS = ("due_date", "invoice_date", "scheduled_payment_date", "previous_level")
SCOPES = ("contract", "invoice", "customer")
CHANNELS = ("outbox", "manual")


class PolicyError(ValueError):
    """A policy file that cannot be used; the message is meant for the person who edits it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timing(_Strict):
    """When a level is due: `days` after an anchor of the receivable the case follows,
    or after the previous level's own due date (the receivable's due date for level 1)."""

    after: Literal["due_date", "invoice_date", "scheduled_payment_date", "previous_level"]
    days: int = Field(ge=-365, le=3650)

    @property
    def absolute(self) -> bool:
        return self.after != "previous_level"


# Where a document goes. outbox: written to the local outbox only (the embedded default);
# email: SMTP when configured (else the outbox); letter / registered_letter: the daily
# print batch; sms: the SMS gateway (the template's short text); manual: prepared for a
# person to send and confirmed with `dunning confirm`.
Channel = Literal["outbox", "email", "letter", "registered_letter", "sms", "manual"]


class ReminderAction(_Strict):
    """A document from the level's template, through the level's channel unless given here."""

    type: Literal["reminder"]
    channel: Channel | None = None
    template: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")


class SmsAction(_Strict):
    """A short text message through the SMS gateway beside the level's reminder."""

    type: Literal["sms"]
    template: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")


class NotifyMerchantAction(_Strict):
    """A copy of the level's reminder email to the merchant's own address."""

    type: Literal["notify_merchant"]
    template: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")


class WebhookAction(_Strict):
    """An event for another system, alone or beside a reminder on the same day."""

    type: Literal["webhook"]
    event: str = Field(default="payment.escalated", pattern=r"^[a-z][a-z0-9_.]*$")


class EndContractAction(_Strict):
    """End the contract now (credit note for the unused billed days) or when its billed period ends."""

    type: Literal["end_contract"]
    when: Literal["immediately", "end_of_period"]


class KeepActiveAction(_Strict):
    """An explicit final step: the contract stays active, the case stays at this level."""

    type: Literal["keep_active"]


class AttemptPaymentAction(_Strict):
    """A collection request for the overdue amount (exported for the payment provider)."""

    type: Literal["attempt_payment"]


class SetFieldAction(_Strict):
    """Set a field on the customer, the contract or the followed invoice (exported for write-back)."""

    type: Literal["set_field"]
    target: Literal["customer", "contract", "invoice"]
    field: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: str | int | bool | None


class MoveToPolicyAction(_Strict):
    """Hand the item over to another policy (last level only): the case closes and the next
    case for the same item opens under `policy`, from its first level."""

    type: Literal["move_to_policy"]
    policy: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")


Action = Annotated[
    ReminderAction | SmsAction | NotifyMerchantAction | WebhookAction | EndContractAction | KeepActiveAction | AttemptPaymentAction | SetFieldAction
    | MoveToPolicyAction,
    Field(discriminator="type"),
]
ACTION_TYPES = ("reminder", "sms", "notify_merchant", "webhook", "end_contract", "keep_active", "attempt_payment", "set_field",
                "move_to_policy")


class Level(_Strict):
    name: str = Field(min_length=1)
    enabled: bool = True
    timing: Timing
    payment_term_days: int = Field(default=0, ge=0, le=365)
    fee: dict[Currency, Money] = Field(default_factory=dict)
    # the reminder's channel (see Channel); a manual document is prepared for a person to
    # send, confirmed with `dunning confirm` (later levels wait for it and are delayed by it)
    channel: Channel = "outbox"
    template: str = Field(default="reminder", pattern=r"^[a-z][a-z0-9_]*$")
    # what the level does; by default one reminder through `channel` from `template`
    actions: list[Action] = Field(default_factory=lambda: [ReminderAction(type="reminder")], min_length=1)

    @model_validator(mode="after")
    def _one_action_of_each_kind(self) -> "Level":
        kinds = [a.type for a in self.actions]
        dupes = sorted({k for k in kinds if kinds.count(k) > 1})
        if dupes:
            raise ValueError(f"a level runs each action type at most once (repeated: {', '.join(dupes)})")
        if "keep_active" in kinds and "end_contract" in kinds:
            raise ValueError("a level cannot both end the contract and keep it active")
        if "keep_active" in kinds and "move_to_policy" in kinds:
            raise ValueError("a level cannot both keep the case and move it to another policy")
        return self


class Interest(_Strict):
    """Statutory interest: simple, actual/365, on each overdue invoice's open principal from its
    due date to the day a level is executed, summed over the invoices and rounded half-up to the cent."""

    annual_rate_percent: Annotated[Decimal, Field(gt=0, le=100, max_digits=8, decimal_places=4)]


class Criterion(_Strict):
    """One condition over a customer, contract or invoice field (extra input columns included).

    For contract-scope routing the invoice is the contract's oldest open receivable.
    Values compare as text: booleans as true/false, dates as YYYY-MM-DD.
    """

    field: str = Field(pattern=r"^(customer|contract|invoice)\.[A-Za-z_][A-Za-z0-9_]*$")
    op: Literal["is", "is_not", "in", "not_in", "exists", "not_exists"]
    value: str | bool | int | None = None
    values: list[str | bool | int] | None = None

    @model_validator(mode="after")
    def _operands_fit_the_operator(self) -> "Criterion":
        if self.op in ("is", "is_not") and (self.value is None or self.values is not None):
            raise ValueError(f"op {self.op} takes `value` (one value), not `values`")
        if self.op in ("in", "not_in") and (not self.values or self.value is not None):
            raise ValueError(f"op {self.op} takes `values` (a non-empty list), not `value`")
        if self.op in ("exists", "not_exists") and (self.value is not None or self.values is not None):
            raise ValueError(f"op {self.op} takes no value")
        return self

    def texts(self) -> list[str]:
        raw = [self.value] if self.value is not None else (self.values or [])
        return [("true" if v else "false") if isinstance(v, bool) else str(v) for v in raw]


class Routing(_Strict):
    """Which items this policy takes: all criteria must hold. Lower priority numbers win ties."""

    priority: int = Field(ge=1, le=1000)
    enabled: bool = True
    criteria: list[Criterion] = Field(min_length=1, max_length=5)


def _timing_text(days: int, anchor: str) -> str:
    name = {"due_date": "due", "invoice_date": "invoice date", "scheduled_payment_date": "scheduled payment"}[anchor]
    return f"{name} {'+' if days >= 0 else '-'} {abs(days)} day(s)"


class Experiment(_Strict):
    """Champion/challenger: a stable share of the new cases this version would take go to the
    challenger policy instead. Which ones: the MD5 of `<name>/<case target>` (contract, invoice, or
    customer-currency), read as a little-endian number, modulo 100, below `share_percent`. The
    same case lands in the same arm on every run, re-run and backfill. Cases routed here by their
    contract's explicit handle or by a move stay with this policy (they were not chosen by rule)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    challenger: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    share_percent: int = Field(ge=1, le=99)


class PolicyVersion(_Strict):
    effective_from: date
    # contract: the contract as a whole; invoice: each invoice; customer: all of a customer's
    # contracts in one currency together, one document listing every overdue invoice
    scope: Literal["contract", "invoice", "customer"] = "contract"
    grace_days: int = Field(default=0, ge=0, le=365)
    thresholds: dict[Currency, Money] = Field(default_factory=dict)
    template_set: str = Field(default="default", pattern=r"^[A-Za-z0-9_-]+$")
    interest: Interest | None = None
    routing: Routing | None = None
    levels: list[Level] = Field(min_length=1, max_length=20)
    # steps after a failed collection (pipeline.failed_collections); None keeps existing hashes
    collections: Collections | None = None
    # champion/challenger: a hashed share of new cases goes to another policy (None keeps hashes)
    experiment: Experiment | None = None

    @model_validator(mode="after")
    def _level_names_unique(self) -> "PolicyVersion":
        names = [lv.name for lv in self.levels]
        if len(set(names)) != len(names):
            raise ValueError("level names must be unique within a version")
        final_kinds = {"keep_active", "move_to_policy"}
        for i, level in enumerate(self.levels[:-1]):
            for kind in sorted(final_kinds & {a.type for a in level.actions}):
                raise ValueError(f"levels[{i}] (L{i + 1} \"{level.name}\"): {kind} is a final step: only the last level may use it")
        self._levels_in_order()
        return self

    def _levels_in_order(self) -> None:
        """Levels run in policy order, one a day, each at most once: a level timed from the same anchor
        as an earlier enabled level must come later, or it could never run on its day (L1 at due + 10,
        L2 at due - 2 would send L2 first, or skip L1). A first level timed after the "previous level"
        counts from the due date (SPEC 4). Levels on different anchors (invoice date, due date) are
        not compared: their order depends on each invoice's terms."""
        latest: dict[str, tuple[int, Level]] = {}  # anchor -> the latest enabled level timed from it
        first = True
        for i, level in enumerate(self.levels):
            if not level.enabled:
                continue
            anchor = "due_date" if first and level.timing.after == "previous_level" else level.timing.after
            first = False
            if anchor == "previous_level":
                continue
            if anchor in latest:
                j, earlier = latest[anchor]
                if level.timing.days <= earlier.timing.days:
                    raise ValueError(
                        f"levels[{i}] (L{i + 1} \"{level.name}\") at {_timing_text(level.timing.days, anchor)} does "
                        f"not come after levels[{j}] (L{j + 1} \"{earlier.name}\") at "
                        f"{_timing_text(earlier.timing.days, anchor)}: levels run in "
                        "order, so a later level timed from the same anchor needs more days")
            latest[anchor] = (i, level)

    def content_hash(self) -> str:
        """Hash of the canonical JSON of this version: same content, same id.

        Values left at their defaults are not hashed, so a new optional key in a later
        release does not change the id of versions that open cases refer to.
        """
        canonical = json.dumps(self.model_dump(mode="json", exclude_defaults=True), sort_keys=True,
                               separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


class Policy(_Strict):
    handle: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    name: str = ""
    default: bool = False
    versions: list[PolicyVersion] = Field(min_length=1)

    @field_validator("versions")
    @classmethod
    def _dates_increase(cls, versions: list[PolicyVersion]) -> list[PolicyVersion]:
        dates = [v.effective_from for v in versions]
        if dates != sorted(dates) or len(set(dates)) != len(dates):
            raise ValueError("versions must have distinct effective_from dates in increasing order")
        return versions

    def version_id(self, version: PolicyVersion) -> str:
        return f"{self.handle}@{version.content_hash()}"


class PolicyFile(_Strict):
    policies: list[Policy] = Field(min_length=1)

    @model_validator(mode="after")
    def _exactly_one_default(self) -> "PolicyFile":
        handles = [p.handle for p in self.policies]
        dupes = sorted({h for h in handles if handles.count(h) > 1})
        if dupes:
            raise ValueError(f"duplicate policy handle(s): {', '.join(dupes)}")
        defaults = [p.handle for p in self.policies if p.default]
        if len(defaults) != 1:
            raise ValueError(
                f"exactly one policy must have `default: true` (found {len(defaults)}: {defaults or 'none'})"
            )
        for p in self.policies:
            for vi, v in enumerate(p.versions):
                for a in (a for lv in v.levels for a in lv.actions if a.type == "move_to_policy"):
                    if a.policy not in handles or a.policy == p.handle:
                        raise ValueError(
                            f"policy {p.handle} version {vi}: move_to_policy names {a.policy!r}; allowed: another "
                            f"policy of this file ({', '.join(h for h in handles if h != p.handle)})")
            for vi, v in enumerate(p.versions):
                if v.experiment and (v.experiment.challenger not in handles or v.experiment.challenger == p.handle):
                    raise ValueError(
                        f"policy {p.handle} version {vi}: experiment {v.experiment.name} names challenger "
                        f"{v.experiment.challenger!r}; allowed: another policy of this file "
                        f"({', '.join(h for h in handles if h != p.handle)})")
            if p.default and any(v.routing for v in p.versions):
                raise ValueError(f"policy {p.handle} is the default: it takes whatever no rule routes, "
                                 "so it has no routing rules")
        check_moves(self.policies)
        return self

    @property
    def default_handle(self) -> str:
        return next(p.handle for p in self.policies if p.default)

    @property
    def handles(self) -> list[str]:
        return [p.handle for p in self.policies]


def json_schema() -> str:
    """The policy file's JSON Schema, generated from the models, for editors to validate and complete."""
    schema = PolicyFile.model_json_schema()
    schema["title"] = "Dunning policy file"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _PolicyLoader(yaml.SafeLoader):
    """YAML without implicit timestamps: a date stays text until the model reads it, so an
    impossible one (2020-13-01) is an error naming its key, not a traceback from the YAML parser."""


_PolicyLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

FLOAT_MONEY = ("write this number as a quoted string such as \"5.00\": money and rates are exact decimals, "
               "and YAML reads an unquoted number with a decimal point as a binary float")


def binary_floats(value, loc: tuple = ()) -> list[tuple]:
    """Paths of binary floats anywhere in a policy document: no policy field needs one, and an
    amount written 5.10 would be read as a float. The same rule for policy files and scenarios."""
    if isinstance(value, float):
        return [loc]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in binary_floats(v, loc + (k,))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in binary_floats(v, loc + (i,))]
    return []


def load_policy_file(path: Path) -> PolicyFile:
    """Read and validate a policy file; raise PolicyError naming file, key and what is allowed."""
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_PolicyLoader)  # noqa: S506 (a SafeLoader)
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy file ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    floats = binary_floats(data)
    if floats:
        raise PolicyError("\n".join(f"{path}: {_format_loc(loc)}: {FLOAT_MONEY}" for loc in floats))
    try:
        return PolicyFile.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = _format_loc(err["loc"]) or "(top level)"
            msg = err["msg"]
            if err["type"] == "literal_error":
                msg = f"got {err.get('input')!r}; allowed: {err['ctx']['expected']}"
            elif err["type"] == "extra_forbidden":
                msg = "unknown key"
            lines.append(f"{path}: {key}: {msg}")
        raise PolicyError("\n".join(lines)) from None


DOCUMENT_ACTIONS = templated_actions()  # sql/seeds/action_kinds.csv


def action_channel(action, level: "Level") -> str:
    """The channel a ledger row of this action goes through (dispatch reads it)."""
    if action.type == "reminder":
        return action.channel or level.channel
    return {"sms": "sms", "notify_merchant": "email"}.get(action.type, action.type)


def action_template(action, level: "Level") -> str | None:
    return (action.template or level.template) if action.type in DOCUMENT_ACTIONS else None


POLICY_TABLES_DDL = ddl("policy_tables.sql")  # sql/schema/policy_tables.sql


def load_into_duckdb(con, policies: PolicyFile) -> None:
    """Register the versions of `policies` in the policy tables (all values bound).

    Versions are never deleted: a case keeps the version it opened under even after
    that version was edited or removed from the file. Versions no longer in the file
    get `in_file = false` and are not used for new cases.
    """
    con.execute(POLICY_TABLES_DDL)
    con.execute(COLLECTION_TABLES_DDL)
    default_retry_results(con)
    con.execute("update policy_versions set in_file = false")
    for policy in policies.policies:
        for i, version in enumerate(policy.versions):
            vid = policy.version_id(version)
            nxt = policy.versions[i + 1].effective_from if i + 1 < len(policy.versions) else None
            known = con.execute("select count(*) from policy_versions where policy_version = ?", [vid]).fetchall()[0][0]
            if known:
                con.execute(
                    "update policy_versions set in_file = true, effective_to = ?, is_default = ? where policy_version = ?",
                    [nxt, policy.default, vid],
                )
                continue
            con.execute(
                """insert into policy_versions (policy_id, policy_version, is_default, effective_from, effective_to,
                       scope, grace_days, template_set, interest_rate_percent, spec_json, in_file)
                   values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, true)""",
                [policy.handle, vid, policy.default, version.effective_from, nxt, version.scope,
                 version.grace_days, version.template_set,
                 version.interest.annual_rate_percent if version.interest else None,
                 json.dumps(version.model_dump(mode="json"), sort_keys=True)],
            )
            if version.routing:
                con.execute("insert into policy_routing values (?, ?, ?)",
                            [vid, version.routing.priority, version.routing.enabled])
                for no, c in enumerate(version.routing.criteria, start=1):
                    entity, field = c.field.split(".", 1)
                    con.execute("insert into policy_routing_criteria values (?, ?, ?, ?, ?, ?)",
                                [vid, no, entity, field, c.op, c.texts()])
            for ccy, amount in sorted(version.thresholds.items()):
                con.execute("insert into policy_thresholds values (?, ?, ?)", [vid, ccy, amount])
            for no, level in enumerate(version.levels, start=1):
                con.execute(
                    "insert into policy_levels values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [vid, no, level.name, level.enabled, level.timing.after, level.timing.days,
                     level.payment_term_days, level.channel, level.template],
                )
                for action_no, action in enumerate(level.actions, start=1):
                    params = action.model_dump(mode="json", exclude={"type", "channel", "template"})
                    con.execute(
                        "insert into policy_level_actions values (?, ?, ?, ?, ?, ?, ?)",
                        [vid, no, action_no, action.type, action_channel(action, level),
                         action_template(action, level),
                         json.dumps(params, sort_keys=True)],
                    )
                for ccy, fee in sorted(level.fee.items()):
                    con.execute("insert into policy_level_fees values (?, ?, ?, ?)", [vid, no, ccy, fee])
            if version.experiment:
                con.execute("insert into policy_experiments values (?, ?, ?, ?)",
                            [vid, version.experiment.name, version.experiment.challenger,
                             version.experiment.share_percent])
            if version.collections:
                load_collections(con, vid, version.collections)
