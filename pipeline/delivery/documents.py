"""Render planned live actions into the outbox: the first half of dispatch.

Every document action gets its folder `<outbox>/<day>/<key>/` (message.eml and
letter.pdf, sms.json, or event.json), written atomically. What happens next
depends on the channel:
- the outbox itself, or a channel that is not configured: the folder is the
  delivery, the row is `sent` (the embedded default);
- manual: `prepared` for a person to send, confirmed with `dunning confirm`;
- email, SMS, webhook with a configured transport, and letters: `rendered`,
  handed over by `pipeline.delivery.sending` from exactly these files, so what was sent
  is always on disk for audit.
Rendering is idempotent: a crash before the row is marked only means the same
bytes are written again.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from pathlib import Path

from pipeline.delivery import faults
from pipeline.failed_collections.context import collection_parts
from pipeline.delivery.outbox import Outbox, message_id
from pipeline.config.policy import DOCUMENT_ACTIONS
from pipeline.config.settings import Settings

BATCH = 200  # ledger rows marked per transaction: progress survives a crash mid-day
# Starting worker processes costs ~2-3 s (each imports WeasyPrint); below this many
# letters one warm in-process renderer is faster than a pool.
PARALLEL_FROM = 24
DOCUMENT_CHANNELS = ("outbox", "email", "letter", "registered_letter", "manual")
_RENDERERS: dict[str, object] = {}

_PLANNED_SQL = """
select l.action_key, l.case_id, l.scope, l.target_id, l.contract_id, l.customer_id, l.currency,
       l.policy_id, l.policy_version, l.level_no, l.level_name, l.action, l.channel, l.template,
       l.executed_on, l.level_due_date, l.followed_invoice_id, l.principal, l.fee, l.fees_total,
       l.interest, l.amount_demanded, l.details, p.template_set
from action_ledger l
join policy_versions p on p.policy_version = l.policy_version
where l.status = 'planned' and l.dispatch_mode = 'live' and l.executed_on <= ?
  and action_is_document(l.action)
order by l.executed_on, l.action_key
"""


def _renderer(template_root):
    """One LetterRenderer per template root per process, reused across days of a range."""
    from pipeline.delivery.render.pdf import LetterRenderer

    key = str(template_root)
    if key not in _RENDERERS:
        _RENDERERS[key] = LetterRenderer(template_root)
    return _RENDERERS[key]


def records(con, sql: str, params: list) -> list[dict]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _by_key(rows: list[dict], key: str) -> dict:
    return {r[key]: {k: v for k, v in r.items() if not k.startswith("_")} for r in rows}


def build_contexts(con, actions: list[dict], settings: Settings) -> list[dict]:
    """Document contexts for ledger rows: customer, contract, the followed and all overdue invoices."""
    if not actions:
        return []
    customers = _by_key(records(con, "select * from stg_customers where customer_id in (select unnest(?))",
                                [sorted({a["customer_id"] for a in actions})]), "customer_id")
    contracts = _by_key(records(con, "select * from stg_contracts where contract_id in (select unnest(?))",
                                [sorted({a["contract_id"] for a in actions})]), "contract_id")
    invoices = records(
        con,
        """select o.customer_id, o.currency, o.contract_id, o.invoice_id, o.invoice_number, o.invoice_date,
                  o.due_date, o.amount, o.open_amount, o.days_overdue
           from open_receivables o
           where o.customer_id in (select unnest(?)) and o.is_overdue
           order by o.due_date, o.invoice_date, o.invoice_id""",
        [sorted({a["customer_id"] for a in actions})],
    )
    overdue_by_customer: dict[str, list[dict]] = defaultdict(list)
    for inv in invoices:
        overdue_by_customer[inv["customer_id"]].append(inv)
    org = settings.organization.model_dump()
    # failed collections: the failed payment, its reason, the payment link or transfer details
    collections = collection_parts(con, actions, org)
    contexts = []
    for a in actions:
        # the invoices the case covers: its invoice, its contract's, or the customer's in its currency;
        # a collection case covers the invoice its failed payment was for
        covered = {
            "invoice": lambda i: i["invoice_id"] == a["target_id"],
            "contract": lambda i: i["contract_id"] == a["contract_id"],
            "customer": lambda i: i["currency"] == a["currency"],
            "collection": lambda i: i["invoice_id"] == a["followed_invoice_id"],
        }[a["scope"]]
        overdue = [{k: v for k, v in i.items() if k not in ("customer_id", "currency")}
                   for i in overdue_by_customer.get(a["customer_id"], []) if covered(i)]
        followed = next((i for i in overdue if i["invoice_id"] == a["followed_invoice_id"]), None) or (
            overdue[0] if overdue else {"invoice_id": a["followed_invoice_id"], "invoice_number": a["followed_invoice_id"],
                                        "invoice_date": None, "due_date": None, "amount": a["principal"],
                                        "open_amount": a["principal"], "days_overdue": 0})
        customer = customers[a["customer_id"]]
        ctx = {
            "action_key": a["action_key"],
            "case_id": a["case_id"],
            "template_set": a["template_set"],
            "template": a["template"],
            "locale": customer["locale"],
            "as_of": a["executed_on"],
            "level": {"no": a["level_no"], "name": a["level_name"], "due_date": a["level_due_date"], "fee": a["fee"]},
            "organization": org,
            "customer": customer,
            "contract": contracts[a["contract_id"]],
            "invoice": followed,
            "invoices": overdue or [followed],
            "amounts": {"currency": a["currency"], "principal": a["principal"], "fees": a["fees_total"],
                        "interest": a["interest"], "total": a["amount_demanded"]},
        }
        if a["action_key"] in collections:
            part = collections[a["action_key"]]
            ctx.update(collection=part["collection"], invoice=part["invoice"], invoices=[part["invoice"]])
        if a.get("action") == "notify_merchant":
            ctx["recipient"] = {"name": org["name"], "email": org.get("merchant_email") or org["email"]}
            ctx["subject_prefix"] = f"[{customer['customer_id']}] "
        contexts.append(ctx)
    return contexts


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
        # invoice numbers come from the input: never let one reach outside the folder
        if "/" not in name and "\\" not in name and not name.startswith(".") and path.is_file():
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


def render_planned(con, as_of: date, settings: Settings) -> int:
    """Render every planned live action up to `as_of` into the outbox; returns how many."""
    rows = records(con, _PLANNED_SQL, [as_of])
    if not rows:
        return 0
    outbox = Outbox(settings.outbox)
    done: list[list] = []

    def mark() -> None:
        con.executemany(
            """update action_ledger set status = ?, document_path = ?, provider_message_id = ?,
                      status_changed_on = ? where action_key = ? and status = 'planned'""",
            done,
        )
        done.clear()
        faults.checkpoint("render.marked")

    def record(key: str, channel: str, folder: Path, provider_id: str | None) -> None:
        done.append([status_after_render(channel, settings), str(folder.relative_to(outbox.root)),
                     provider_id, as_of, key])
        if len(done) >= BATCH:
            mark()

    for row in (r for r in rows if r["action"] == "webhook"):
        record(row["action_key"], "webhook", outbox.write_event(row["executed_on"], row["action_key"],
                                                                _event_payload(row)), None)
    text_rows = [r for r in rows if r["action"] in DOCUMENT_ACTIONS]  # rendered from templates
    contexts = build_contexts(con, text_rows, settings)
    channel_of = {r["action_key"]: r["channel"] for r in text_rows}
    sms = [c for c in contexts if channel_of[c["action_key"]] == "sms"]
    letters = [c for c in contexts if channel_of[c["action_key"]] != "sms"]
    template_sets: dict[str, object] = {}

    def template_set(name: str):
        from pipeline.delivery.render.templates import TemplateSet

        if name not in template_sets:
            template_sets[name] = TemplateSet(settings.templates, name)
        return template_sets[name]

    for ctx in sms:
        text = template_set(ctx["template_set"]).render_sms(ctx)
        payload = {"to": ctx["customer"].get("phone"), "text": text, "reference": ctx["action_key"],
                   "customer_id": ctx["customer"]["customer_id"], "locale": ctx["locale"]}
        record(ctx["action_key"], "sms", outbox.write_json(ctx["as_of"], ctx["action_key"], "sms.json", payload), None)

    by_key = {c["action_key"]: c for c in letters}
    workers = settings.render_workers if len(letters) >= PARALLEL_FROM else 1
    days_touched: set[date] = set()
    for key, pdf in _renderer(settings.templates).render_many(letters, workers=workers):
        ctx = by_key[key]
        faults.checkpoint("render.document", key)
        email = template_set(ctx["template_set"]).render_email(ctx)
        folder = outbox.write_document(ctx["as_of"], ctx, email, pdf,
                                       _original_invoices(ctx, settings.channels.invoice_pdf_dir))
        record(key, channel_of[key], folder, message_id(ctx))
        days_touched.add(ctx["as_of"])
    mark()
    for day in sorted(days_touched):
        outbox.write_manifest(day, manifest_rows(con, day))
    return len(rows)


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
