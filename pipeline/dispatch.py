"""Dispatch: turn planned live actions into documents in the outbox, and record it.

Dispatch never decides what is due; it reads `planned` live rows from the
ledger, renders each (email + PDF letter), writes it and marks the row `sent`.
A crash between writing and marking is harmless for the outbox: the folder of
an action is named by its key and written atomically, so the next run writes
the same bytes again and marks the row. Documents are dated by the day the
action was executed, so a recovered action renders exactly as it would have.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from pipeline.outbox import Outbox, message_id
from pipeline.settings import Settings

BATCH = 200  # ledger rows marked per transaction: progress survives a crash mid-day
# Starting worker processes costs ~2-3 s (each imports WeasyPrint); below this many
# letters one warm in-process renderer is faster than a pool.
PARALLEL_FROM = 24
_RENDERERS: dict[str, object] = {}


def _renderer(template_root):
    """One LetterRenderer per template root per process, reused across days of a range."""
    from pipeline.render.pdf import LetterRenderer

    key = str(template_root)
    if key not in _RENDERERS:
        _RENDERERS[key] = LetterRenderer(template_root)
    return _RENDERERS[key]

_ACTIONS_SQL = """
select l.action_key, l.case_id, l.scope, l.target_id, l.contract_id, l.customer_id, l.currency,
       l.level_no, l.level_name, l.template, l.executed_on, l.level_due_date, l.followed_invoice_id,
       l.principal, l.fee, l.fees_total, l.interest, l.amount_demanded, l.channel, p.template_set
from action_ledger l
join policy_versions p on p.policy_version = l.policy_version
where l.status = 'planned' and l.dispatch_mode = 'live' and l.action = 'reminder'
  and l.channel in ('outbox', 'manual')
  and l.executed_on <= ?
order by l.executed_on, l.action_key
"""


def _records(con, sql: str, params: list) -> list[dict]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _by_key(rows: list[dict], key: str) -> dict:
    return {r[key]: {k: v for k, v in r.items() if not k.startswith("_")} for r in rows}


def build_contexts(con, actions: list[dict], settings: Settings) -> list[dict]:
    """Document contexts for ledger rows: customer, contract, the followed and all overdue invoices."""
    if not actions:
        return []
    customers = _by_key(_records(con, "select * from stg_customers where customer_id in (select unnest(?))",
                                 [sorted({a["customer_id"] for a in actions})]), "customer_id")
    contracts = _by_key(_records(con, "select * from stg_contracts where contract_id in (select unnest(?))",
                                 [sorted({a["contract_id"] for a in actions})]), "contract_id")
    invoices = _records(
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
    contexts = []
    for a in actions:
        # the invoices the case covers: its invoice, its contract's, or the customer's in its currency
        covered = {
            "invoice": lambda i: i["invoice_id"] == a["target_id"],
            "contract": lambda i: i["contract_id"] == a["contract_id"],
            "customer": lambda i: i["currency"] == a["currency"],
        }[a["scope"]]
        overdue = [{k: v for k, v in i.items() if k not in ("customer_id", "currency")}
                   for i in overdue_by_customer.get(a["customer_id"], []) if covered(i)]
        followed = next((i for i in overdue if i["invoice_id"] == a["followed_invoice_id"]), None) or (
            overdue[0] if overdue else {"invoice_id": a["followed_invoice_id"], "invoice_number": a["followed_invoice_id"],
                                        "invoice_date": None, "due_date": None, "amount": a["principal"],
                                        "open_amount": a["principal"], "days_overdue": 0})
        customer = customers[a["customer_id"]]
        contexts.append({
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
        })
    return contexts


def _manifest_rows(con, day: date) -> list[dict]:
    return _records(
        con,
        """select l.action_key, l.case_id, l.customer_id, c.name, c.email,
                  concat_ws(', ', c.address_line1, c.address_line2, concat_ws(' ', c.postal_code, c.city), c.country)
                      as address,
                  l.level_no, l.template, l.amount_demanded as amount_total, l.currency
           from action_ledger l join stg_customers c using (customer_id)
           where l.executed_on = ? and l.document_path is not null and l.action = 'reminder'
           order by l.action_key""",
        [day],
    )


_EVENTS_SQL = """
select action_key, case_id, contract_id, customer_id, currency, policy_id, policy_version, level_no,
       level_name, executed_on, level_due_date, principal, fees_total, interest, amount_demanded,
       json_extract_string(details, '$.event') as event
from action_ledger
where status = 'planned' and dispatch_mode = 'live' and action = 'webhook' and executed_on <= ?
order by executed_on, action_key
"""


def dispatch_events(con, as_of: date, settings: Settings) -> int:
    """Write planned webhook events to the outbox (the embedded default endpoint) and mark them sent."""
    events = _records(con, _EVENTS_SQL, [as_of])
    outbox = Outbox(settings.outbox)
    for e in events:
        payload = {"id": e["action_key"], "type": e["event"], "occurred_on": e["executed_on"].isoformat(),
                   "data": {k: (str(v) if v is not None else None) for k, v in e.items()
                            if k not in ("action_key", "event", "executed_on")}}
        folder = outbox.write_event(e["executed_on"], e["action_key"], payload)
        con.execute(
            """update action_ledger set status = 'sent', document_path = ?, status_changed_on = ?
               where action_key = ? and status = 'planned'""",
            [str(folder.relative_to(outbox.root)), as_of, e["action_key"]],
        )
    return len(events)


def dispatch_outbox(con, as_of: date, settings: Settings) -> int:
    """Write every planned live outbox action up to `as_of`; returns how many documents were written."""
    from pipeline.render.templates import TemplateSet

    events = dispatch_events(con, as_of, settings)
    actions = _records(con, _ACTIONS_SQL, [as_of])
    if not actions:
        return events
    contexts = build_contexts(con, actions, settings)
    by_key = {c["action_key"]: c for c in contexts}
    channel_of = {a["action_key"]: a["channel"] for a in actions}
    template_sets: dict[str, TemplateSet] = {}
    outbox = Outbox(settings.outbox)
    renderer = _renderer(settings.templates)
    workers = settings.render_workers if len(contexts) >= PARALLEL_FROM else 1
    done: list[tuple[str, str, str, str]] = []
    days_touched: set[date] = set()

    def mark_sent() -> None:
        con.executemany(
            """update action_ledger set status = ?, document_path = ?, provider_message_id = ?,
                      status_changed_on = ? where action_key = ? and status = 'planned'""",
            [[status, path, mid, as_of, key] for key, path, mid, status in done],
        )
        done.clear()

    for key, pdf in renderer.render_many(contexts, workers=workers):
        ctx = by_key[key]
        if ctx["template_set"] not in template_sets:
            template_sets[ctx["template_set"]] = TemplateSet(settings.templates, ctx["template_set"])
        email = template_sets[ctx["template_set"]].render_email(ctx)
        folder = outbox.write_document(ctx["as_of"], ctx, email, pdf)
        # a manual document is ready for a person to send: it is `prepared` until confirmed
        status = "prepared" if channel_of[key] == "manual" else "sent"
        done.append((key, str(folder.relative_to(outbox.root)), message_id(ctx), status))
        days_touched.add(ctx["as_of"])
        if len(done) >= BATCH:
            mark_sent()
    mark_sent()
    for day in sorted(days_touched):
        outbox.write_manifest(day, _manifest_rows(con, day))
    return len(contexts) + events
