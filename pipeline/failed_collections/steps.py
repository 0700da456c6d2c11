"""The `collections` section of a policy version: the steps after a failed collection.

```yaml
collections:
  counting: {soft: per_transaction, hard: per_mandate, technical: per_transaction}   # the default
  payment_link: "https://pay.example.com/c/{case_key}?amount={amount}"
  steps:
    soft:  [{type: retry, when: after_days, days: 5}, {type: payment_alternative, grace_days: 14}]
    hard:  [{type: notify}, {type: change_mandate, status: suspend}, {type: official_letter}]
```

Each failure type (see `pipeline.failed_collections`) has its own list of steps.
What ends a step decides when the next one runs (`WAITS`):
- `grace`: the step asks the customer to pay by its own due date (the day it ran
  plus `grace_days`); unpaid then, the next step runs;
- `at_once`: the next step runs the same day (change the mandate, notify);
- `retry_result`: a retry collects again; the next step runs when that collection
  is reported failed too (a settled one closes the case), or `result_within_days`
  after the retry when no result has come by then (a lost result must not hold the
  case, and the contract's dunning with it, for ever);
- `final`: a move to another profile ends the workflow.
A new failed transaction that belongs to the case (a per-mandate case, or the same
money again) also triggers the next step at once. After the last step has waited,
the case is `unsettled`.

The models live here rather than in `pipeline.config.policy` to keep that file readable;
`pipeline.config.policy` imports them (so this module cannot import it back: the few
shared field types are repeated below).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.warehouse.ddl import ddl

FAILURE_TYPES = ("soft", "hard", "technical")
# same definitions as pipeline.config.policy (which imports this module)
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)]
Template = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
Handle = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
URL_PLACEHOLDERS = ("case_key", "amount", "currency")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _url_template(value: str | None, *, needs_case_key: bool) -> str | None:
    """A link with placeholders filled in per case; the case key makes it the customer's own."""
    if value is None:
        return None
    if not value.startswith("https://") or re.search(r"\s", value):
        raise ValueError(f"{value!r} must be an https:// address without spaces")
    names = re.findall(r"\{([^{}]*)\}", value)
    unknown = sorted(set(names) - set(URL_PLACEHOLDERS))
    if unknown or value.count("{") != len(names):
        raise ValueError(f"{value!r}: unknown placeholder(s) {', '.join(unknown) or '(unbalanced braces)'}; "
                         "allowed: {case_key}, {amount}, {currency}")
    if needs_case_key and "case_key" not in names:
        raise ValueError(f"{value!r} must contain {{case_key}}: the link has to identify the case")
    return value


def _check_sms_delay(step, needs: str) -> None:
    """A delayed SMS follows the step's own document, within its grace period."""
    if step.sms_delay_days is None:
        return
    if not step.delays_sms:
        raise ValueError(f"sms_delay_days needs {needs}: the SMS is sent later, after the step's own document")
    if step.sms_delay_days >= step.grace_days:
        raise ValueError(f"sms_delay_days ({step.sms_delay_days}) must be shorter than grace_days "
                         f"({step.grace_days}): the SMS belongs to this step")


RETRY_RESULT_DAYS = 10


class RetryStep(_Strict):
    """Collect the failed amount again (soft failures only), counted from the day the step
    becomes due (the failure, for a first step): after `days`, on the first day of the next
    month, or on the first of the next month plus `days`. Exported as a collection request.
    Without a result `result_within_days` after the retry, the next step runs."""

    type: Literal["retry"]
    name: str = Field(default="Retry", min_length=1)
    when: Literal["after_days", "next_month", "next_month_plus_days"] = "after_days"
    days: int = Field(default=0, ge=0, le=90)
    result_within_days: int = Field(default=RETRY_RESULT_DAYS, ge=1, le=60)

    @model_validator(mode="after")
    def _days_fit_when(self) -> "RetryStep":
        if self.when == "next_month" and self.days:
            raise ValueError("when: next_month takes no days (use next_month_plus_days)")
        if self.when != "next_month" and self.days < 1:
            raise ValueError(f"when: {self.when} needs days: 1 or more")
        return self


class PaymentAlternativeStep(_Strict):
    """Offer another way to pay: a payment link or the bank-transfer details, by email, SMS or
    both, valid for `grace_days`; admin charges go on top of the link / transfer amount only."""

    type: Literal["payment_alternative"]
    name: str = Field(default="Payment alternative", min_length=1)
    channels: Literal["email", "sms", "email_and_sms"] = "email"
    method: Literal["payment_link", "transfer"] = "payment_link"
    # one reminder template out of several (default: failed_payment_link / failed_payment_transfer)
    template: Template | None = None
    sms_template: Template | None = None  # default: the reminder template's SMS text
    grace_days: int = Field(default=14, ge=1, le=365)
    admin_charges: dict[Currency, Money] = Field(default_factory=dict)
    sms_delay_days: int | None = Field(default=None, ge=1, le=364)

    @property
    def sends_sms(self) -> bool:
        return self.channels != "email"

    @property
    def delays_sms(self) -> bool:
        return self.channels == "email_and_sms"

    @model_validator(mode="after")
    def _sms_delay_within_grace(self) -> "PaymentAlternativeStep":
        _check_sms_delay(self, "channels: email_and_sms")
        return self


class RegisteredMailStep(_Strict):
    """A failed-payment letter by registered mail (proof of delivery), to be paid within `grace_days`."""

    type: Literal["registered_mail"]
    name: str = Field(default="Registered mail", min_length=1)
    template: Template = "failed_payment_notice"
    grace_days: int = Field(default=14, ge=1, le=365)


class OfficialLetterStep(_Strict):
    """A formal letter (the PDF is always kept in the outbox), by email with the letter attached,
    by post or registered post; optionally a payment link, an SMS (delayed) and a merchant copy."""

    type: Literal["official_letter"]
    name: str = Field(default="Official letter", min_length=1)
    template: Template = "failed_payment_formal"
    channel: Literal["email", "letter", "registered_letter"] = "email"
    grace_days: int = Field(default=14, ge=1, le=365)
    admin_charges: dict[Currency, Money] = Field(default_factory=dict)
    payment_link: bool = False  # false: the bank-transfer details
    sms: bool = False
    sms_template: Template | None = None
    sms_delay_days: int | None = Field(default=None, ge=1, le=364)
    notify_merchant: bool = False

    @property
    def delays_sms(self) -> bool:
        return self.sms

    @model_validator(mode="after")
    def _sms_delay_within_grace(self) -> "OfficialLetterStep":
        _check_sms_delay(self, "sms: true")
        return self


class ChangeMandateStep(_Strict):
    """Suspend or cancel the mandate (optionally block the bank account for future mandates),
    exported for write-back (`mandate_changes`); the next step runs at once."""

    type: Literal["change_mandate"]
    name: str = Field(default="Change mandate", min_length=1)
    status: Literal["suspend", "cancel"]
    block_account: bool = False


class NotifyStep(_Strict):
    """Tell the customer and/or the merchant that the collection failed; the next step runs at once."""

    type: Literal["notify"]
    name: str = Field(default="Notify", min_length=1)
    customer: bool = True
    merchant: bool = False
    template: Template = "failed_payment_notice"

    @model_validator(mode="after")
    def _someone(self) -> "NotifyStep":
        if not (self.customer or self.merchant):
            raise ValueError("notify needs customer: true, merchant: true or both")
        return self


class OfferNewMandateStep(_Strict):
    """Ask the customer to sign a new mandate (at `url`, where given), then wait `grace_days`."""

    type: Literal["offer_new_mandate"]
    name: str = Field(default="Offer a new mandate", min_length=1)
    template: Template = "failed_payment_new_mandate"
    url: str | None = None
    grace_days: int = Field(default=14, ge=1, le=365)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _url_template(value, needs_case_key=False)


class MoveToProfileStep(_Strict):
    """Hand the mandate over to another policy (last step only): the case closes, and the
    contract's next case opens under `policy`, which must handle the same failure types."""

    type: Literal["move_to_profile"]
    name: str = Field(default="Move to another profile", min_length=1)
    policy: Handle


Step = Annotated[
    RetryStep | PaymentAlternativeStep | RegisteredMailStep | OfficialLetterStep | ChangeMandateStep | NotifyStep
    | OfferNewMandateStep | MoveToProfileStep,
    Field(discriminator="type"),
]
WAITS = {"retry": "retry_result", "payment_alternative": "grace", "registered_mail": "grace",
         "official_letter": "grace", "change_mandate": "at_once", "notify": "at_once",
         "offer_new_mandate": "grace", "move_to_profile": "final"}
# ledger actions of collection steps that no dunning action expresses
COLLECTION_ACTIONS = ("change_mandate",)


class CollectionSteps(_Strict):
    soft: list[Step] = Field(default_factory=list, max_length=10)
    hard: list[Step] = Field(default_factory=list, max_length=10)
    technical: list[Step] = Field(default_factory=list, max_length=10)

    @field_validator("soft", "hard", "technical")
    @classmethod
    def _order(cls, steps: list, info) -> list:
        for i, step in enumerate(steps):
            if step.type == "retry" and info.field_name != "soft":
                raise ValueError(f"[{i}] retry: only soft failures (insufficient funds) are retried; a "
                                 f"{info.field_name} failure would fail again the same way")
            if step.type == "move_to_profile" and i != len(steps) - 1:
                raise ValueError(f"[{i}] move_to_profile: only the last step may move the mandate "
                                 "(no step runs after it)")
        return steps

    @model_validator(mode="after")
    def _some_steps(self) -> "CollectionSteps":
        if not self.types():
            raise ValueError("give steps for at least one of soft, hard, technical")
        return self

    def types(self) -> list[str]:
        return [t for t in FAILURE_TYPES if getattr(self, t)]


class Counting(_Strict):
    """How a failure type counts its steps: per_transaction (every failed transaction starts at
    step 1) or per_mandate (steps continue across the failed transactions of a mandate). The
    default: per transaction for soft and technical failures, per mandate for hard ones."""

    soft: Literal["per_transaction", "per_mandate"] = "per_transaction"
    hard: Literal["per_transaction", "per_mandate"] = "per_mandate"
    technical: Literal["per_transaction", "per_mandate"] = "per_transaction"


class Collections(_Strict):
    counting: Counting = Field(default_factory=Counting)
    # the payment link's address; {case_key} (required), {amount} and {currency} are filled in
    payment_link: str | None = None
    steps: CollectionSteps

    @field_validator("payment_link")
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        return _url_template(value, needs_case_key=True)

    @model_validator(mode="after")
    def _links_have_an_address(self) -> "Collections":
        for kind in self.steps.types():
            for i, s in enumerate(getattr(self.steps, kind)):
                uses_link = (s.type == "payment_alternative" and s.method == "payment_link") or (
                    s.type == "official_letter" and s.payment_link)
                if uses_link and self.payment_link is None:
                    raise ValueError(f"steps.{kind}[{i}] ({s.type}) sends a payment link: give "
                                     "collections.payment_link, e.g. https://pay.example.com/{case_key}")
        return self


def check_moves(policies) -> None:
    """A move_to_profile names another policy of the file that takes the same failure types.

    The product this follows requires the target profile to have "the same required
    attributes". A policy has no mandate attributes here; what a moved mandate needs from
    its new policy is a workflow for every failure type the old one handled, in every
    version (the one in force on the day of a later failure is not known in advance).
    """
    handles = [p.handle for p in policies]
    by_handle = {p.handle: p for p in policies}
    for p in policies:
        for vi, v in enumerate(p.versions):
            if v.collections is None:
                continue
            needed = set(v.collections.steps.types())
            for kind in v.collections.steps.types():
                for i, s in enumerate(getattr(v.collections.steps, kind)):
                    if s.type != "move_to_profile":
                        continue
                    where = f"policy {p.handle} version {vi}: collections.steps.{kind}[{i}]"
                    if s.policy not in handles or s.policy == p.handle:
                        others = ", ".join(h for h in handles if h != p.handle) or "there is none"
                        raise ValueError(f"{where}: move_to_profile names {s.policy!r}; allowed: another policy "
                                         f"of this file ({others})")
                    for tv in by_handle[s.policy].versions:
                        has = set(tv.collections.steps.types()) if tv.collections else set()
                        if needed - has:
                            raise ValueError(
                                f"{where}: policy {s.policy} cannot take the mandate: its version from "
                                f"{tv.effective_from} has no collections steps for {', '.join(sorted(needed - has))} "
                                "(the target needs the same required attributes: steps for every failure type "
                                "this policy handles)")


def step_actions(step) -> list[tuple[str, str, str | None, int, dict]]:
    """The ledger actions of a step, in order: (action, channel, template, delay_days, params)."""
    t = step.type
    if t == "retry":
        return [("attempt_payment", "attempt_payment", None, 0, {})]
    if t == "payment_alternative":
        default = "failed_payment_link" if step.method == "payment_link" else "failed_payment_transfer"
        template = step.template or default
        out = []
        if step.channels != "sms":
            out.append(("reminder", "email", template, 0, {"method": step.method}))
        if step.sends_sms:
            out.append(("sms", "sms", step.sms_template or template, step.sms_delay_days or 0, {"method": step.method}))
        return out
    if t == "registered_mail":
        return [("reminder", "registered_letter", step.template, 0, {"method": "transfer"})]
    if t == "official_letter":
        method = "payment_link" if step.payment_link else "transfer"
        out = [("reminder", step.channel, step.template, 0, {"method": method})]
        if step.sms:
            out.append(("sms", "sms", step.sms_template or step.template, step.sms_delay_days or 0, {"method": method}))
        if step.notify_merchant:
            out.append(("notify_merchant", "email", step.template, 0, {"method": method}))
        return out
    if t == "change_mandate":
        return [("change_mandate", "change_mandate", None, 0, {"status": step.status,
                                                                "block_account": step.block_account})]
    if t == "notify":
        out = [("reminder", "email", step.template, 0, {"method": "transfer"})] if step.customer else []
        if step.merchant:
            out.append(("notify_merchant", "email", step.template, 0, {"method": "transfer"}))
        return out
    if t == "offer_new_mandate":
        return [("reminder", "email", step.template, 0, {"url": step.url})]
    return [("move_to_policy", "move_to_policy", None, 0, {"policy": step.policy})]


COLLECTION_TABLES_DDL = ddl("collection_policy_tables.sql")  # sql/schema/collection_policy_tables.sql


def default_retry_results(con) -> None:
    """Retries registered by a release without `result_within_days` take its default.

    A key left at its default is not part of a version's id, so a policy file that never
    named it keeps its versions; their retries get the default like new ones would.
    """
    con.execute("update policy_collection_steps set result_days = ? where step_type = 'retry' and result_days is null",
                [RETRY_RESULT_DAYS])


def load_collections(con, version_id: str, collections: Collections) -> None:
    """Register one version's collection steps in the policy tables (all values bound)."""
    for kind in collections.steps.types():
        steps = getattr(collections.steps, kind)
        con.execute("insert into policy_collections values (?, ?, ?, ?, ?)",
                    [version_id, kind, getattr(collections.counting, kind), len(steps), collections.payment_link])
        for no, step in enumerate(steps, start=1):
            params = step.model_dump(mode="json", exclude={"type", "name", "admin_charges"})
            con.execute(
                "insert into policy_collection_steps values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [version_id, kind, no, step.type, step.name, WAITS[step.type], getattr(step, "grace_days", 0),
                 getattr(step, "when", None), getattr(step, "days", None), json.dumps(params, sort_keys=True),
                 getattr(step, "result_within_days", None)])
            for action_no, (action, channel, template, delay, action_params) in enumerate(step_actions(step), 1):
                con.execute("insert into policy_collection_step_actions values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [version_id, kind, no, action_no, action, channel, template, delay,
                             json.dumps(action_params, sort_keys=True)])
            for ccy, charge in sorted(getattr(step, "admin_charges", {}).items()):
                con.execute("insert into policy_collection_charges values (?, ?, ?, ?, ?)",
                            [version_id, kind, no, ccy, charge])
