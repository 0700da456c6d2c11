"""Render planned live actions into the outbox: the first half of dispatch.

Every document action gets its folder `<outbox>/<day>/<folder_name(key)>/` (message.eml and
letter.pdf, sms.json, or event.json), written atomically. What happens next
depends on the channel:
- the outbox itself, or a channel that is not configured: the folder is the
  delivery, the row is `sent` (the embedded default);
- manual: `prepared` for a person to send, confirmed with `dunning confirm`;
- email, SMS, webhook with a configured transport, and letters: `rendered`,
  handed over by `pipeline.delivery.sending` from exactly these files, so what was sent
  is always on disk for audit.
Rendering is idempotent: a crash before the row is marked only means the same
bytes are written again. Each document is rendered on its own: one that fails
(its data, its template, its PDF, an email address that is not valid) is
marked `failed` with the error, and the others go out.

Two halves, so rendering can run where the database is not (`pipeline.delivery.shards`):
`render_inputs` reads what each document needs from the database (its context),
`render_items` writes the files from that alone.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date
from pathlib import Path

from pipeline.delivery import faults
from pipeline.failed_collections.context import collection_parts
from pipeline.delivery.outbox import Outbox, message_id, recipient
from pipeline.config.policy import DOCUMENT_ACTIONS
from pipeline.config.settings import Settings

# Starting worker processes costs ~2-3 s (each imports WeasyPrint); below this many
# letters one warm in-process renderer is faster than a pool.
PARALLEL_FROM = 24
DOCUMENT_CHANNELS = ("outbox", "email", "letter", "registered_letter", "manual")
_RENDERERS: dict[str, object] = {}
log = logging.getLogger(__name__)

_PLANNED_SQL = """
select l.action_key, l.case_id, l.scope, l.target_id, l.contract_id, l.customer_id, l.currency,
       l.policy_id, l.policy_version, l.level_no, l.level_name, l.action, l.channel, l.template,
       l.executed_on, l.level_due_date, l.followed_invoice_id, l.principal, l.fee, l.fees_total,
       l.interest, l.amount_demanded, l.details, l.status, l.attempts, p.template_set
from action_ledger l
join policy_versions p on p.policy_version = l.policy_version
where (l.status = 'planned' or (l.status = 'rendered' and l.document_path is null))
  and l.dispatch_mode = 'live' and l.executed_on <= ?
  and action_is_document(l.action)
order by l.executed_on, l.action_key
"""
# ('rendered' without a document: a render failure a person sent back with `dunning resolve --as resend`)


# The invoices each action's level demands: the case's receivables (case_covers) open on the day the
# level ran, due on or before the ledger's demands_due_by (NULL in rows from before that column: the
# day before execution, i.e. what was overdue). Days overdue and `overdue` are counted on that day,
# the document's date. `{receivables}` is one of _RECEIVABLES_ON: the `open_receivables` table when it
# holds that day (a document rendered on its own day, nearly all of them), else the same allocation
# recomputed for the day (`open_receivables_as_of`, the daily model as a macro): a document planned on
# one day and rendered on a later one (`--no-dispatch`, a retry, a resend) lists what its ledger row
# demanded, not what is open today.
_DEMANDED_SQL = """
select l.action_key, o.contract_id, o.invoice_id, o.invoice_number, o.invoice_date, o.due_date, o.amount,
       o.open_amount, greatest(cast(l.executed_on - o.due_date as integer), 0) as days_overdue,
       o.due_date < l.executed_on as overdue
from action_ledger l
join {receivables} o
  on o.customer_id = l.customer_id
 and case_covers(l.scope, l.target_id, l.contract_id, l.customer_id, l.currency, l.followed_invoice_id,
                 o.invoice_id, o.contract_id, o.customer_id, o.currency)
where l.action_key in (select unnest($keys))
  and o.due_date <= coalesce(l.demands_due_by, l.executed_on - 1)
order by l.action_key, o.due_date, o.invoice_date, o.invoice_id
"""
_RECEIVABLES_ON = {"latest": "open_receivables", "day": "open_receivables_as_of(cast($day as date))"}


def _demanded(con, actions: list[dict]) -> dict[str, list[dict]]:
    """The invoices each action demands, as open on the day its level ran (_DEMANDED_SQL)."""
    from pipeline.warehouse.analytics import ensure_analytics

    latest = con.execute("select max(as_of) from open_receivables").fetchall()[0][0]
    keys_by_day: dict = defaultdict(list)
    for a in actions:
        keys_by_day[a["executed_on"]].append(a["action_key"])
    out: dict[str, list[dict]] = defaultdict(list)
    for day, keys in sorted(keys_by_day.items()):
        if day == latest:
            rows = records(con, _DEMANDED_SQL.format(receivables=_RECEIVABLES_ON["latest"]), {"keys": sorted(keys)})
        else:
            if not con.execute("select count(*) from duckdb_functions() "
                               "where function_name = 'open_receivables_as_of'").fetchall()[0][0]:
                ensure_analytics(con, replace=False, kinds=("macro",))  # a database's first run has none yet
            rows = records(con, _DEMANDED_SQL.format(receivables=_RECEIVABLES_ON["day"]),
                           {"keys": sorted(keys), "day": day})
        for inv in rows:
            out[inv.pop("action_key")].append(inv)
    return out


def _renderer(template_root):
    """One LetterRenderer per template root per process, reused across days of a range."""
    from pipeline.delivery.render.pdf import LetterRenderer

    key = str(template_root)
    if key not in _RENDERERS:
        _RENDERERS[key] = LetterRenderer(template_root)
    return _RENDERERS[key]


def records(con, sql: str, params: list | dict) -> list[dict]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _by_key(rows: list[dict], key: str) -> dict:
    return {r[key]: {k: v for k, v in r.items() if not k.startswith("_")} for r in rows}


def build_contexts(con, actions: list[dict], settings: Settings) -> list[dict]:
    """Document contexts for ledger rows: customer, contract, the followed invoice and the invoices
    the level demands (the case's open receivables due by the ledger's `demands_due_by`)."""
    if not actions:
        return []
    customers = _by_key(records(con, "select * from stg_customers where customer_id in (select unnest(?))",
                                [sorted({a["customer_id"] for a in actions})]), "customer_id")
    demanded_by_action = _demanded(con, actions)
    contracts = _by_key(records(con, "select * from stg_contracts where contract_id in (select unnest(?))",
                                [sorted({a["contract_id"] for a in actions}
                                        | {i["contract_id"] for rows in demanded_by_action.values() for i in rows})]),
                        "contract_id")
    # paid since the level was planned: the followed invoice as billed, open for what was demanded
    billed = _by_key(records(con, """select invoice_id, contract_id, invoice_number, invoice_date, due_date, amount
                                     from stg_invoices where invoice_id in (select unnest(?))""",
                             [sorted({a["followed_invoice_id"] for a in actions
                                      if a["followed_invoice_id"] and not demanded_by_action.get(a["action_key"])})]),
                     "invoice_id")
    # the fee the level charged, whichever of its actions carries it (planned_actions puts it on the
    # level's first action) and, for a catch-up, as the level recorded it: what "a fee of ... for this
    # notice" states, beside the fees of the case so far (fees_total)
    level_fees = {(c, n): fee for c, n, fee in con.execute(
        "select case_id, level_no, fee from levels_done(date '9999-12-31') where case_id in (select unnest(?))",
        [sorted({a["case_id"] for a in actions})]).fetchall()}
    org = settings.organization.model_dump()
    # failed collections: the failed payment, its reason, the payment link or transfer details
    collections = collection_parts(con, actions, org)
    from pipeline.delivery.render.context import document_parts
    from pipeline.delivery.render.formatting import language_of
    from pipeline.delivery.render.tone import tone_of
    contexts = []
    for a in actions:
        demanded = demanded_by_action.get(a["action_key"], [])
        followed = next((i for i in demanded if i["invoice_id"] == a["followed_invoice_id"]), None)
        if followed is None and demanded:
            followed = demanded[0]
        elif followed is None and a["followed_invoice_id"] in billed:
            inv = billed[a["followed_invoice_id"]]
            followed = dict(inv, open_amount=a["principal"], days_overdue=max((a["executed_on"] - inv["due_date"]).days, 0),
                            overdue=inv["due_date"] < a["executed_on"])
        elif followed is None:
            raise ValueError(f"{a['action_key']}: the invoice it demands ({a['followed_invoice_id']}) is not in the "
                             "inputs any more")
        customer = customers[a["customer_id"]]
        ctx = {
            "action_key": a["action_key"],
            "case_id": a["case_id"],
            "template_set": a["template_set"],
            "template": a["template"],
            "locale": customer["locale"],
            "as_of": a["executed_on"],
            "level": {"no": a["level_no"], "name": a["level_name"], "due_date": a["level_due_date"],
                      "fee": level_fees.get((a["case_id"], a["level_no"]), a["fee"])},
            "organization": org,
            "customer": customer,
            "contract": contracts[a["contract_id"]],
            # every contract the document is about, the followed one first: in customer scope one document
            # lists the invoices of all the customer's contracts in its currency (SPEC 3), and named only the
            # followed one (its footer, a final notice's termination; review 2026-12-08)
            "contracts": [contracts[c] for c in _contract_ids(a["contract_id"], demanded)],
            "invoice": followed,
            "invoices": demanded or [followed],
            # a courtesy reminder: nothing it lists is overdue yet, it is about what falls due
            "courtesy": bool(demanded) and not any(i["overdue"] for i in demanded),
            "amounts": {"currency": a["currency"], "principal": a["principal"], "fees": a["fees_total"],
                        "interest": a["interest"], "total": a["amount_demanded"]},
        }
        if a["action_key"] in collections:
            part = collections[a["action_key"]]
            ctx.update(collection=part["collection"], invoice=part["invoice"], invoices=[part["invoice"]])
        # who pays where (account, reference, QR codes, pay-now link), how the letter is addressed,
        # how firmly it speaks; a document it would be wrong to send is refused when rendered
        ctx.update(document_parts(ctx, org, channel=a.get("channel"), language=language_of(customer["locale"])))
        ctx["tone"] = tone_of(ctx["invoices"], ctx["courtesy"])
        if a.get("action") == "notify_merchant":
            ctx["recipient"] = {"name": org["name"], "email": org.get("merchant_email") or org["email"]}
            ctx["subject_prefix"] = f"[{customer['customer_id']}] "
        contexts.append(ctx)
    return contexts


def _contract_ids(followed: str, invoices: list[dict]) -> list[str]:
    """The contract of the followed receivable, then those of the other listed invoices in id order."""
    return [followed, *sorted({i["contract_id"] for i in invoices} - {followed})]


def _configured(channel: str, settings: Settings) -> bool:
    """True if the channel hands documents to a real transport after rendering."""
    return {
        "email": settings.channels.email is not None,
        "sms": settings.channels.sms is not None,
        "webhook": settings.channels.webhook is not None,
        "letter": True,
        "registered_letter": True,
    }.get(channel, False)


def status_after_render(channel: str, settings: Settings) -> str:
    if channel == "manual":
        return "prepared"
    return "rendered" if _configured(channel, settings) else "sent"


def _original_invoices(ctx: dict, folder: Path | None) -> list[tuple[str, bytes]]:
    """The original invoice PDFs of the listed invoices, where `<invoice_number>.pdf` exists."""
    if folder is None:
        return []
    found = []
    for inv in ctx["invoices"]:
        name = f"{inv['invoice_number']}.pdf"
        path = folder / name
        # invoice numbers come from the input: never let one reach outside the folder (nor a NUL or
        # line break into a path or an attachment's file name)
        if ("/" not in name and "\\" not in name and not name.startswith(".") and name.isprintable()
                and path.is_file()):
            found.append((f"invoice-{name}", path.read_bytes()))
    return found


def _event_payload(row: dict) -> dict:
    import json

    details = json.loads(row["details"]) if row.get("details") else {}
    data = {k: (str(row[k]) if row[k] is not None else None) for k in (
        "case_id", "contract_id", "customer_id", "currency", "policy_id", "policy_version", "level_no",
        "level_name", "level_due_date", "principal", "fees_total", "interest", "amount_demanded")}
    return {"id": row["action_key"], "type": details.get("event", "payment.escalated"),
            "occurred_on": row["executed_on"].isoformat(), "data": data}


# A render failure is not retried by later runs: the same data and templates fail the same way.
# `dunning dispatch --retry-failed` (after fixing them) or `dunning resolve KEY --as resend` renders it again.
RENDER_FAILED = "not rendered or addressed: not retried until `dunning dispatch --retry-failed`"
ERROR_MAX = 500  # characters of an error kept in the ledger


def describe_error(exc: BaseException) -> str:
    """`Type: message` on one line, bounded: what the ledger keeps of an exception (no traceback)."""
    from pipeline.delivery.render.pdf import RenderError

    text = exc.args[1] if isinstance(exc, RenderError) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.replace("\x00", "\\x00").split())
    return text if len(text) <= ERROR_MAX else text[:ERROR_MAX - 1] + "\u2026"


def _isolated(rows: list[dict], build, fail) -> list[dict]:
    """build(rows), or, if it raises, build on each half: a row that fails alone is failed alone."""
    try:
        return build(rows)
    except Exception as exc:
        if len(rows) == 1:
            fail(rows[0]["action_key"], exc)
            return []
        mid = len(rows) // 2
        return _isolated(rows[:mid], build, fail) + _isolated(rows[mid:], build, fail)


def planned_rows(con, as_of: date) -> list[dict]:
    """The live document actions up to `as_of` waiting to be rendered."""
    return records(con, _PLANNED_SQL, [as_of])


def render_inputs(con, rows: list[dict], settings: Settings, fail) -> list[dict]:
    """What rendering needs of each planned row, read from the database once: the webhook event's
    payload, or the document context (`build_contexts`). A row whose context cannot be built is
    fail()ed alone; the others come back as {"action_key", "kind", "content"} in row order, kind
    `webhook`, `sms` or `document` (email, letter, outbox, manual)."""
    out: dict[str, dict] = {}
    for row in (r for r in rows if r["action"] == "webhook"):
        try:
            out[row["action_key"]] = {"action_key": row["action_key"], "kind": "webhook",
                                      "content": _event_payload(row)}
        except Exception as exc:
            fail(row["action_key"], exc)
    text_rows = [r for r in rows if r["action"] in DOCUMENT_ACTIONS]  # rendered from templates
    contexts = _isolated(text_rows, lambda part: build_contexts(con, part, settings), fail)
    with_context = {c["action_key"]: c for c in contexts}
    for row in text_rows:
        ctx = with_context.get(row["action_key"])
        if ctx is None:  # never silently left planned
            fail(row["action_key"], LookupError("no document context (customer or contract not in the inputs)"))
            continue
        out[row["action_key"]] = {"action_key": row["action_key"],
                                  "kind": "sms" if row["channel"] == "sms" else "document", "content": ctx}
    return [out[r["action_key"]] for r in rows if r["action_key"] in out]


class Unaddressable(ValueError):
    """A document whose recipient cannot be written into it (an email address that is not valid)."""


def render_items(items: list[dict], settings: Settings, outbox: Outbox, record, fail, *,
                 workers: int = 1) -> None:
    """Write each item (`render_inputs`, plus its `channel`) to the outbox, calling
    record(key, folder, message_id) or fail(key, exc) for it. Reads no database: a dispatch shard
    runs it on its share of the day. Rendering is idempotent: the same item gives the same bytes."""
    if not items:
        return  # nothing to render: not even the renderer is loaded (a shard that only sends)
    channel_of = {it["action_key"]: it["channel"] for it in items}
    for it in (i for i in items if i["kind"] == "webhook"):
        try:
            folder = outbox.write_event(it["executed_on"], it["action_key"], it["content"])
        except Exception as exc:
            fail(it["action_key"], exc)
        else:
            record(it["action_key"], folder, None)
    template_sets: dict[str, object] = {}

    def template_set(name: str):
        from pipeline.delivery.render.templates import TemplateSet

        if name not in template_sets:
            template_sets[name] = TemplateSet(settings.templates, name)
        return template_sets[name]

    for ctx in (i["content"] for i in items if i["kind"] == "sms"):
        try:
            text = template_set(ctx["template_set"]).render_sms(ctx)
            payload = {"to": ctx["customer"].get("phone"), "text": text, "reference": ctx["action_key"],
                       "customer_id": ctx["customer"]["customer_id"], "locale": ctx["locale"]}
            folder = outbox.write_json(ctx["as_of"], ctx["action_key"], "sms.json", payload)
        except Exception as exc:
            fail(ctx["action_key"], exc)
        else:
            record(ctx["action_key"], folder, None)

    from pipeline.delivery.render.pdf import RenderError

    letters = [i["content"] for i in items if i["kind"] == "document"]
    if not letters:
        return
    by_key = {c["action_key"]: c for c in letters}
    workers = workers if len(letters) >= PARALLEL_FROM else 1
    email_configured = _configured("email", settings)
    for key, pdf in _renderer(settings.templates).render_many(letters, workers=workers, errors="return"):
        ctx = by_key[key]
        faults.checkpoint("render.document", key)
        try:
            if isinstance(pdf, RenderError):
                raise pdf
            if channel_of[key] == "email" and email_configured:
                _check_addressable(ctx)
            email = template_set(ctx["template_set"]).render_email(ctx)
            folder = outbox.write_document(ctx["as_of"], ctx, email, pdf,
                                           _original_invoices(ctx, settings.channels.invoice_pdf_dir))
        except Exception as exc:
            fail(key, exc)
            continue
        record(key, folder, message_id(ctx))


def _check_addressable(ctx: dict) -> None:
    """An email needs a valid address; a missing one is the send's "no email address" instead."""
    target = ctx.get("recipient") or ctx["customer"]
    addr = target.get("email")
    if addr and recipient(ctx)[1] is None:
        who = "the merchant copy" if ctx.get("recipient") else f"customer {target.get('customer_id')}"
        raise Unaddressable(f"the email address of {who} is not a valid address: {str(addr)[:120]!r}")


def manifest_rows(con, day: date) -> list[dict]:
    return records(
        con,
        """select l.action_key, l.case_id, l.customer_id, c.name, c.email,
                  concat_ws(', ', c.address_line1, c.address_line2, concat_ws(' ', c.postal_code, c.city), c.country)
                      as address,
                  l.level_no, l.template, l.amount_demanded as amount_total, l.currency
           from action_ledger l join stg_customers c using (customer_id)
           where l.executed_on = ? and l.document_path is not null and l.action in ('reminder', 'notify_merchant')
           order by l.action_key""",
        [day],
    )
