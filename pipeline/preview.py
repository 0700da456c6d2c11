"""Preview one level's documents without sending anything: `dunning preview`.

Writes ``preview-<policy>-L<n>-<locale>.eml`` (the email exactly as the
outbox would write it, letter attached), ``.pdf`` (the letter) and ``.txt``
(the SMS) into a folder. The context is either sample data with the real
sending organization, or a real case's latest reminder read from the
database (read-only, so a preview never blocks or changes a run); either way
the policy's level decides template set, template and level, and the
argument decides the locale. Same inputs, same bytes.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipeline.settings import Settings

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
            case_id: str | None = None) -> list[Path]:
    """Render the level's email, letter and SMS into ``out_dir``; returns the paths (.eml, .pdf, .txt)."""
    from pipeline.outbox import build_message, email_policy
    from pipeline.render.pdf import LetterRenderer
    from pipeline.render.templates import TemplateSet

    handle, version, level, template = _level(settings, policy_name, level_no)
    locale = _locale(locale)
    ctx = _case_context(settings, case_id) if case_id else _sample_context(settings, version, level_no, locale, template)
    stem = f"preview-{handle}-L{level_no}-{locale}"
    # A key of its own: a preview that reaches a mail relay never looks like the real document.
    ctx.update(action_key=f"preview/{handle}/L{level_no}/{locale}" + (f"/{case_id}" if case_id else ""),
               template_set=version.template_set, template=template, locale=locale)
    ctx["level"] = dict(ctx["level"], no=level_no, name=level.name,
                        fee=level.fee.get(ctx["amounts"]["currency"], Decimal("0.00")))

    templates = TemplateSet(settings.templates, version.template_set)
    email = templates.render_email(ctx)
    sms = templates.render_sms(ctx)
    pdf = LetterRenderer(settings.templates).render(ctx)
    eml = build_message(ctx["as_of"], ctx, email, pdf).as_bytes(policy=email_policy())

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.eml", out_dir / f"{stem}.pdf", out_dir / f"{stem}.txt"]
    for path, data in zip(paths, (eml, pdf, (sms + "\n").encode("utf-8"))):
        path.write_bytes(data)
    return paths


def _level(settings: Settings, policy_name: str, level_no: int):
    """(handle, current version, level, template) of a policy named by handle or name."""
    from pipeline.policy import load_policy_file

    policies = load_policy_file(settings.policy_file).policies
    policy = next((p for p in policies if policy_name in (p.handle, p.name)), None)
    if policy is None:
        raise ValueError(f"unknown policy {policy_name!r}; {settings.policy_file} has: "
                         f"{', '.join(p.handle for p in policies)}")
    version = max(policy.versions, key=lambda v: v.effective_from)  # the current one
    if not 1 <= level_no <= len(version.levels):
        names = ", ".join(f"{i} {lv.name}" for i, lv in enumerate(version.levels, start=1))
        raise ValueError(f"policy {policy.handle} has no level {level_no}; its levels are: {names}")
    level = version.levels[level_no - 1]
    # A reminder action may name its own template; otherwise the level's applies.
    reminder = next((a for a in level.actions if a.type == "reminder"), None)
    return policy.handle, version, level, (getattr(reminder, "template", None) or level.template)


def _locale(locale: str) -> str:
    from pipeline.render.formatting import parse_locale

    try:
        # (An empty locale would silently mean the default one.)
        if not re.fullmatch(r"[A-Za-z]{2,3}([_-][A-Za-z0-9]+)*", locale or ""):
            raise ValueError
        return str(parse_locale(locale))  # de-DE -> de_DE
    except Exception:
        raise ValueError(f"unknown locale {locale!r}: Babel cannot parse it (expected e.g. de_DE, en_GB, fr)") from None


def _sample_context(settings: Settings, version, level_no: int, locale: str, template: str) -> dict[str, Any]:
    """Sample data as the policy would send it: this level's fees, due date and the real sender."""
    from pipeline.render.bench import sample_context

    ctx = sample_context(0, locale=locale, template=template)
    ctx["organization"] = settings.organization.model_dump()
    amounts, currency = ctx["amounts"], ctx["amounts"]["currency"]
    # Fees are cumulative: every enabled level up to this one charged its own.
    fees = sum((lv.fee.get(currency, Decimal("0")) for lv in version.levels[:level_no] if lv.enabled),
               Decimal("0.00"))
    amounts.update(fees=fees, total=amounts["principal"] + fees + amounts["interest"])
    ctx["level"]["due_date"] = ctx["as_of"] + timedelta(days=version.levels[level_no - 1].payment_term_days)
    return ctx


def _case_context(settings: Settings, case_id: str) -> dict[str, Any]:
    """The case's latest reminder as dispatch would render it."""
    import duckdb

    from pipeline.dispatch import build_contexts

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
