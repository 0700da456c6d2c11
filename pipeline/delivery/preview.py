"""Preview one level's documents without sending anything: `dunning preview`.

Writes ``preview-<policy>-L<n>-<locale>.eml`` (the email exactly as the
outbox would write it, letter attached), ``.pdf`` (the letter) and ``.txt``
(the SMS) into a folder. The context is either sample data with the real
sending organization, or a real case's latest reminder read from the
database (read-only, so a preview never blocks or changes a run); either way
the policy's level decides template set, template and level, and the
argument decides the locale. Same inputs, same bytes.

A step of a failed-collection workflow (`failure_type` and the step's number)
is previewed the same way, as ``preview-<policy>-<type>-S<n>-<locale>.*``: the
step decides the templates (email and SMS), the method (payment link or
transfer details), the pay-by date and the admin charges so far.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipeline.config.policy import DOCUMENT_ACTIONS
from pipeline.config.settings import Settings

# Columns build_contexts reads, as dispatch selects them (minus its status filter).
_CASE_SQL = """
select l.action_key, l.case_id, l.scope, l.target_id, l.contract_id, l.customer_id, l.currency,
       l.level_no, l.level_name, l.template, l.executed_on, l.level_due_date, l.followed_invoice_id,
       l.principal, l.fee, l.fees_total, l.interest, l.amount_demanded, l.channel, p.template_set
from action_ledger l
join policy_versions p on p.policy_version = l.policy_version
where l.case_id = ? and l.action = 'reminder'
order by l.executed_on desc, l.level_no desc, l.action_key desc
limit 1
"""


def preview(settings: Settings, policy_name: str, level_no: int, locale: str, out_dir: Path,
            case_id: str | None = None, failure_type: str | None = None) -> list[Path]:
    """Render the level's email, letter and SMS into ``out_dir``; returns the paths (.eml, .pdf, .txt).

    With `failure_type`, `level_no` is a step of that failure type's collection workflow.
    """
    if failure_type is not None:
        if case_id:
            raise ValueError("a collection step is previewed on sample data; --case previews a dunning level")
        return _write(settings, out_dir, *_step_preview(settings, policy_name, failure_type, level_no, _locale(locale)))
    handle, version, level, template = _level(settings, policy_name, level_no)
    locale = _locale(locale)
    ctx = _case_context(settings, case_id) if case_id else _sample_context(settings, version, level_no, locale, template)
    stem = f"preview-{handle}-L{level_no}-{locale}"
    # A key of its own: a preview that reaches a mail relay never looks like the real document.
    ctx.update(action_key=f"preview/{handle}/L{level_no}/{locale}" + (f"/{case_id}" if case_id else ""),
               template_set=version.template_set, template=template, locale=locale)
    ctx["level"] = dict(ctx["level"], no=level_no, name=level.name,
                        fee=level.fee.get(ctx["amounts"]["currency"], Decimal("0.00")))
    return _write(settings, out_dir, stem, ctx, template)


def _write(settings: Settings, out_dir: Path, stem: str, ctx: dict[str, Any], sms_template: str) -> list[Path]:
    """Render the email (letter attached) and the SMS of `ctx` and write them under `stem`."""
    from pipeline.delivery.outbox import build_message, email_policy
    from pipeline.delivery.render.pdf import LetterRenderer
    from pipeline.delivery.render.templates import TemplateSet

    templates = TemplateSet(settings.templates, ctx["template_set"])
    email = templates.render_email(ctx)
    sms = templates.render_sms(dict(ctx, template=sms_template))
    pdf = LetterRenderer(settings.templates).render(ctx)
    eml = build_message(ctx["as_of"], ctx, email, pdf).as_bytes(policy=email_policy())

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.eml", out_dir / f"{stem}.pdf", out_dir / f"{stem}.txt"]
    for path, data in zip(paths, (eml, pdf, (sms + "\n").encode("utf-8"))):
        path.write_bytes(data)
    return paths


def _current_version(settings: Settings, policy_name: str):
    """(handle, current version) of a policy named by handle or name."""
    from pipeline.config.policy import load_policy_file

    policies = load_policy_file(settings.policy_file).policies
    policy = next((p for p in policies if policy_name in (p.handle, p.name)), None)
    if policy is None:
        raise ValueError(f"unknown policy {policy_name!r}; {settings.policy_file} has: "
                         f"{', '.join(p.handle for p in policies)}")
    return policy.handle, max(policy.versions, key=lambda v: v.effective_from)


def _level(settings: Settings, policy_name: str, level_no: int):
    """(handle, current version, level, template) of a policy named by handle or name."""
    handle, version = _current_version(settings, policy_name)
    if not 1 <= level_no <= len(version.levels):
        names = ", ".join(f"{i} {lv.name}" for i, lv in enumerate(version.levels, start=1))
        raise ValueError(f"policy {handle} has no level {level_no}; its levels are: {names}")
    level = version.levels[level_no - 1]
    # A reminder action may name its own template; otherwise the level's applies.
    reminder = next((a for a in level.actions if a.type == "reminder"), None)
    return handle, version, level, (getattr(reminder, "template", None) or level.template)


# the sample failures the templates are checked with (bench/render.py), by failure type
_SAMPLE_FAILURE = {"soft": 0, "hard": 1, "technical": 2}


def _step_preview(settings: Settings, policy_name: str, failure_type: str, step_no: int, locale: str):
    """(stem, context, SMS template) of a collection step on sample data."""
    from urllib.parse import quote

    from pipeline.failed_collections.steps import step_actions
    from pipeline.delivery.render.samples import sample_context, with_document_parts

    handle, version = _current_version(settings, policy_name)
    if failure_type not in _SAMPLE_FAILURE:
        raise ValueError(f"failure type must be one of {', '.join(_SAMPLE_FAILURE)}, not {failure_type!r}")
    steps = getattr(version.collections.steps, failure_type) if version.collections else []
    if not 1 <= step_no <= len(steps):
        names = ", ".join(f"{i} {st.name}" for i, st in enumerate(steps, start=1)) or "none"
        raise ValueError(f"policy {handle} has no {failure_type} collection step {step_no}; its steps are: {names}")
    step = steps[step_no - 1]
    documents = [a for a in step_actions(step) if a[0] in DOCUMENT_ACTIONS]
    if not documents:
        raise ValueError(f"{failure_type} step {step_no} ({step.type}) of policy {handle} sends no document")
    email_template = next((t for a, _, t, _, _ in documents if a != "sms"), documents[0][2])
    sms_template = next((t for a, _, t, _, _ in documents if a == "sms"), email_template)
    params = documents[0][4]

    ctx = sample_context(_SAMPLE_FAILURE[failure_type], locale=locale, template=email_template)
    ctx["organization"] = settings.organization.model_dump()
    amounts, currency, coll = ctx["amounts"], ctx["amounts"]["currency"], ctx["collection"]
    # admin charges add up over the steps of a case (where the customer pays fees)
    charges = sum((st.admin_charges.get(currency, Decimal("0")) for st in steps[:step_no]
                   if hasattr(st, "admin_charges")), Decimal("0.00"))
    pay_by = ctx["as_of"] + timedelta(days=getattr(step, "grace_days", 0))
    total = coll["outstanding"] + charges
    amounts.update(principal=coll["outstanding"], fees=charges, interest=Decimal("0.00"), total=total)
    method = params.get("method")
    link = version.collections.payment_link if method == "payment_link" else params.get("url")
    if link:  # filled in as planned_collection_actions.sql does
        link = (link.replace("{case_key}", quote(coll["case_key"], safe="")).replace("{amount}", f"{total:.2f}")
                .replace("{currency}", currency))
    org = ctx["organization"]
    coll.update(failure_type=failure_type, admin_charges=charges, total=total, method=method, pay_by=pay_by,
                payment_link=link if method == "payment_link" else None,
                new_mandate_url=link if step.type == "offer_new_mandate" else None,
                transfer={"account_holder": org["name"], "iban": org["iban"], "bic": org["bic"], "bank": org["bank"],
                          "reference": coll["case_key"]})
    ctx["level"] = dict(ctx["level"], no=step_no, name=step.name, due_date=pay_by,
                        fee=getattr(step, "admin_charges", {}).get(currency, Decimal("0.00")))
    ctx.update(action_key=f"preview/{handle}/{failure_type}/S{step_no}/{locale}",
               template_set=version.template_set, template=email_template, locale=locale)
    # the real sender's account, the collection case's reference (as build_contexts adds them)
    ctx["case_id"] = coll["case_key"]
    with_document_parts(ctx)
    return f"preview-{handle}-{failure_type}-S{step_no}-{locale}", ctx, sms_template


def _locale(locale: str) -> str:
    from pipeline.delivery.render.formatting import parse_locale

    try:
        # (An empty locale would silently mean the default one.)
        if not re.fullmatch(r"[A-Za-z]{2,3}([_-][A-Za-z0-9]+)*", locale or ""):
            raise ValueError
        return str(parse_locale(locale))  # de-DE -> de_DE
    except Exception:
        raise ValueError(f"unknown locale {locale!r}: Babel cannot parse it (expected e.g. de_DE, en_GB, fr)") from None


def _sample_context(settings: Settings, version, level_no: int, locale: str, template: str) -> dict[str, Any]:
    """Sample data as the policy would send it: this level's fees, due date and the real sender."""
    from pipeline.delivery.render.samples import sample_context, with_document_parts

    ctx = sample_context(0, locale=locale, template=template)
    ctx["organization"] = settings.organization.model_dump()
    amounts, currency = ctx["amounts"], ctx["amounts"]["currency"]
    # Fees are cumulative: every enabled level up to this one charged its own.
    fees = sum((lv.fee.get(currency, Decimal("0")) for lv in version.levels[:level_no] if lv.enabled),
               Decimal("0.00"))
    amounts.update(fees=fees, total=amounts["principal"] + fees + amounts["interest"])
    ctx["level"]["due_date"] = ctx["as_of"] + timedelta(days=version.levels[level_no - 1].payment_term_days)
    # the real sender's account, reference and QR code for these amounts (as build_contexts adds them)
    return with_document_parts(ctx)


def _case_context(settings: Settings, case_id: str) -> dict[str, Any]:
    """The case's latest reminder as dispatch would render it."""
    import duckdb

    from pipeline.delivery.dispatch import build_contexts

    if not Path(settings.database).is_file():
        raise ValueError(f"no database at {settings.database}: run the pipeline first")
    try:
        con = duckdb.connect(str(settings.database), read_only=True)
    except duckdb.Error as exc:
        raise ValueError(f"cannot open {settings.database} read-only: {exc}") from None
    try:
        try:
            cur = con.execute(_CASE_SQL, [case_id])
        except duckdb.Error as exc:  # e.g. a database no day has been run on yet
            raise ValueError(f"cannot read cases from {settings.database}: {exc}") from None
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
        if not rows:
            raise ValueError(f"case {case_id!r} has no reminder in {settings.database}")
        return build_contexts(con, rows, settings)[0]
    finally:
        con.close()
