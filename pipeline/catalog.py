"""Documentation of every table and view analysts query, in one place.

Applied to the database as COMMENT ON after each run (so any DuckDB client
shows it: `select * from duckdb_columns()`), and rendered to docs/tables.md by
`dunning docs`; a test keeps the committed page in step with this module.
"""

from __future__ import annotations

from pipeline.schema import INPUT_TABLES

# name -> (kind, description, {column: description})
CATALOG: dict[str, tuple[str, str, dict[str, str]]] = {}


def _doc(name: str, kind: str, description: str, columns: dict[str, str]) -> None:
    CATALOG[name] = (kind, description, columns)


for _t in INPUT_TABLES:
    _doc(
        f"stg_{_t.name}",
        "table",
        f"Input {_t.name}, typed and validated: rows that broke no rule. {_t.doc} "
        "Extra columns of the source follow as text.",
        {"_source_file": "File the row was read from.", "_source_row": "1-based data row in that file.",
         **{c.name: c.doc for c in _t.columns}},
    )

_doc("quarantine", "table", "Input rows rejected at ingestion, one per row, with the rule it broke. "
     "For every table: rows read = rows in stg_<table> + rows here.", {
    "table_name": "Input table the row belongs to.",
    "source_file": "File the row was read from.",
    "source_row": "1-based data row in that file (for CSV, line = row + 1).",
    "rule": "Rule broken, e.g. invalid_date, duplicate_id, currency_mismatch, unknown_contract.",
    "column_name": "Column at fault, where one is.",
    "value": "The offending value as text.",
    "message": "What was expected.",
    "record": "The whole row as JSON.",
})

_doc("case_register", "table", "Dunning cases: the thing being dunned (a contract or an invoice) from the "
     "day it opened until it closed. Carried from day to day; see the view `cases` for the current level.", {
    "case_id": "Stable id: ct-<contract>-<opened yyyymmdd>, in-<invoice>-<opened yyyymmdd> or "
               "cu-<customer>-<currency>-<opened yyyymmdd>.",
    "scope": "contract, invoice or customer (all contracts of a customer in one currency).",
    "target_id": "The contract_id, invoice_id or <customer_id>-<currency> dunned.",
    "contract_id": "Contract of the case.",
    "customer_id": "Customer of the case.",
    "currency": "Currency of all amounts of the case.",
    "policy_id": "Handle of the policy the case was routed to when it opened.",
    "policy_version": "Policy version kept for the case's whole life (handle@content hash).",
    "opened_on": "Day the case opened.",
    "closed_on": "Day the case closed; empty while open.",
    "close_reason": "balance_cleared, invoice_settled, invoice_voided or moved_to_policy.",
    "routed_by": "How the policy was chosen: moved (a move_to_policy action of the previous case), explicit "
                 "(the contract's handle), rule (routing rules) or default.",
})

_LEDGER = {
    "action_key": "Deterministic key <case_id>/L<level>/<action>: never planned or sent twice.",
    "case_id": "Case the action belongs to.",
    "scope": "contract, invoice or customer (all contracts of a customer in one currency).",
    "target_id": "The contract_id, invoice_id or <customer_id>-<currency> dunned.",
    "contract_id": "Contract of the case.",
    "customer_id": "Customer of the case.",
    "currency": "Currency of the amounts.",
    "policy_id": "Policy that caused the action (provenance).",
    "policy_version": "Policy version that caused the action (provenance).",
    "level_no": "Level number within the policy version (1 = first).",
    "level_name": "Level name from the policy.",
    "action": "reminder (a document), webhook, end_contract, keep_active, attempt_payment, set_field, "
              "or level_skipped (passed over in a catch-up).",
    "channel": "Channel the document goes through: outbox (local files) or manual (sent by a person).",
    "template": "Template the document is rendered from.",
    "scheduled_on": "Day the level was due by its timing rule.",
    "executed_on": "Day the level was executed (or recorded as skipped).",
    "level_due_date": "The level's own due date: executed_on + payment term.",
    "followed_invoice_id": "Receivable the case followed that day (its anchor).",
    "days_overdue": "Days the followed receivable was overdue that day.",
    "principal": "Amount demanded: the open receivables past due; for a courtesy level before the due "
                 "date, the amount due.",
    "fee": "Fee charged by this level (0 where the customer's apply_fees is false).",
    "fees_total": "Fees of the case so far, this level included.",
    "interest": "Interest demanded: simple, actual/365, on each overdue invoice's open amount from its due "
                "date to executed_on at the policy's rate, summed and rounded half-up (0 without a rate).",
    "amount_demanded": "principal + fees_total + interest.",
    "status": "planned (decided, not yet rendered), rendered (document in the outbox, waiting for its "
              "channel), sending (being handed over), sent, failed (retried by later runs until "
              "attempts reaches dispatch.max_attempts; see review_reason), needs_review (the outcome of "
              "a hand-over is unknown: never resent automatically), prepared (a manual document awaiting "
              "`dunning confirm`), recorded (an exported action: end_contract, attempt_payment, set_field, "
              "keep_active), skipped, held (the fresh-data gate stopped dispatch that day; decided again "
              "by the next run), or not_dispatched (recorded by a backfill, never sent or exported).",
    "dispatch_mode": "live (dispatched by the daily run) or backfill (recorded only).",
    "document_path": "Folder of the written document in the outbox.",
    "provider_message_id": "What the channel answered: the SMTP server's queue reply, the gateway's or "
                           "receiver's message id, the print batch id; the email's Message-ID on the "
                           "embedded outbox.",
    "attempts": "Hand-overs tried so far (each run tries a failed action again, once).",
    "last_error": "The channel's answer to the last failed attempt.",
    "review_reason": "Why the action is not retried automatically (refused, gave up, outcome unknown).",
    "status_changed_on": "As-of day of the run that last changed the status.",
    "confirmed_on": "For a manual document: the day a person confirmed sending it (`dunning confirm`).",
    "routed_by": "Provenance of the policy choice: moved, explicit (the contract's handle), rule or default.",
    "details": "Action data as JSON: webhook event, end_contract mode, effective date and credit note, "
               "attempt_payment amount, set_field target, field and value.",
}
_doc("action_ledger", "table", "One row per action: the memory of what was planned, sent or skipped, "
     "with provenance and the amount demanded.", _LEDGER)

_doc("contract_balances", "table", "Per day and contract with anything open or credit left: the balance "
     "after oldest-first allocation of payments and credits.", {
    "as_of": "Day the balance is computed for.",
    "contract_id": "Contract.",
    "customer_id": "Customer owning the contract.",
    "currency": "Contract currency.",
    "open_amount": "Sum of open receivables (due or not).",
    "overdue_amount": "Sum of open receivables past their due date.",
    "unapplied_credit": "Credit left after settling every open receivable.",
    "balance": "open_amount - unapplied_credit (negative: the customer is in credit).",
    "open_receivables": "Number of open receivables.",
    "overdue_receivables": "Number of overdue receivables.",
    "oldest_invoice_id": "Oldest open receivable (due date, invoice date, id): what a contract case follows.",
    "oldest_due_date": "Its due date.",
    "oldest_days_overdue": "Days it is overdue (0 if not yet due).",
})

_doc("open_receivables", "table", "Open receivables as of the latest run's day.", {
    "as_of": "Day of the snapshot.",
    "invoice_id": "Invoice.",
    "invoice_number": "Invoice number.",
    "contract_id": "Contract.",
    "customer_id": "Customer.",
    "currency": "Currency.",
    "invoice_date": "Invoice date.",
    "due_date": "Due date.",
    "scheduled_payment_on": "Planned automatic collection day, if any.",
    "dunning_paused": "Dunning paused for this invoice.",
    "amount": "Gross invoice amount.",
    "open_amount": "Amount still open after payments and credits.",
    "is_overdue": "as_of is after due_date.",
    "days_overdue": "as_of - due_date, 0 if not yet due.",
})

_doc("run_log", "table", "One row per run of a day: what it did.", {
    "as_of": "Day run.", "run_number": "1 for the first run of that day, then 2, ...",
    "mode": "live or backfill.", "cases_opened": "Cases opened that day.", "cases_closed": "Cases closed that day.",
    "actions_planned": "Actions of the day (skipped levels not counted).",
    "levels_skipped": "Levels recorded as skipped that day.", "documents_sent": "Documents written by this run.",
    "dispatch_blocked": "Why nothing was sent that day (stale payment data), empty when dispatch ran.",
})

_doc("cases", "view", "Cases with their current level, derived from the ledger.", {
    **{k: v for k, v in CATALOG["case_register"][2].items()},
    "current_level": "Highest level executed (0: none yet).",
    "current_level_name": "Its name.",
    "last_level_on": "Day it was executed.",
    "level_due_date": "Its own due date.",
    "last_amount_demanded": "Amount demanded by it.",
    "fees_total": "Fees charged in the case so far.",
    "is_open": "True while the case is open.",
})

_doc("aging", "view", "Open receivables of the latest run per currency and age bucket "
     "(not due, 1-30, 31-60, 61-90, over 90 days overdue).", {
    "as_of": "Day of the snapshot.", "currency": "Currency.", "bucket": "Age bucket.",
    "receivables": "Number of open receivables.", "open_amount": "Their open amount.",
})

_doc("contract_terminations", "view", "Contracts to end (write-back export), from end_contract actions.", {
    **{k: _LEDGER[k] for k in ("action_key", "case_id", "contract_id", "customer_id", "currency", "executed_on")},
    "mode": "immediately or end_of_period.",
    "effective_on": "Day the contract ends: the execution day, or the end of the billed period (billed_until).",
    "credit_note_amount": "For immediately: the running period's invoice amount x unused days / period days, "
                          "rounded half-up (days after effective_on up to period_end).",
    "credit_note_for_invoice_id": "Invoice of the running billed period.",
    **{k: _LEDGER[k] for k in ("policy_id", "policy_version", "level_no")},
})
_doc("collection_requests", "view", "Payment attempts to make (export for the payment provider).", {
    **{k: _LEDGER[k] for k in ("action_key", "case_id", "contract_id", "customer_id", "currency", "executed_on")},
    "amount": "Amount to collect: the overdue amount that day.",
    **{k: _LEDGER[k] for k in ("policy_id", "policy_version", "level_no")},
})
_doc("field_updates", "view", "Fields to set on customers, contracts or invoices (write-back export).", {
    **{k: _LEDGER[k] for k in ("action_key", "case_id", "executed_on")},
    "target": "customer, contract or invoice.", "target_id": "Id of the record to update.",
    "field": "Field name.", "value": "Value as JSON.",
    **{k: _LEDGER[k] for k in ("policy_id", "policy_version", "level_no")},
})
_doc("policy_level_actions", "table", "Actions of each level, in the order they run.", {
    "policy_version": "Policy version.", "level_no": "Level number.", "action_no": "Order within the level.",
    "action": "reminder, webhook, end_contract, keep_active, attempt_payment or set_field.",
    "channel": "Channel (reminders: outbox or manual).", "template": "Template (reminders).",
    "params_json": "The action's settings as JSON.",
})

_doc("dispatch_review", "view", "Actions a person must look at: failed hand-overs and ones whose outcome "
     "is unknown. Failed ones are retried by later runs until they give up; needs_review ones never are.", {
    **{k: _LEDGER[k] for k in ("action_key", "case_id", "customer_id", "action", "channel", "executed_on",
                               "status", "attempts", "last_error", "document_path", "status_changed_on")},
    "reason": "review_reason, or that the action will be retried.",
})

_doc("fee_ledger", "view", "Dunning fees charged, one row per level that charged one; kept apart from invoices.", {
    k: _LEDGER[k] for k in ("action_key", "case_id", "contract_id", "customer_id", "currency",
                            "level_no", "level_name", "executed_on", "fee")
})


_doc("policy_versions", "table", "Every policy version ever loaded, with its effective period; versions "
     "edited or removed from the file stay for the open cases that keep them.", {
    "policy_id": "Policy handle.",
    "policy_version": "Version id: handle@first 12 hex digits of the SHA-256 of its canonical content.",
    "is_default": "The default policy (used when a contract names none).",
    "effective_from": "First day the version is in force.",
    "effective_to": "Day the next version takes over (empty: still in force).",
    "scope": "contract, invoice or customer (all contracts of a customer in one currency).",
    "grace_days": "A case opens only when its receivable is more days overdue than this.",
    "template_set": "Folder under templates/ the documents are rendered from.",
    "interest_rate_percent": "Annual statutory interest rate in percent (empty: no interest).",
    "spec_json": "The whole version as JSON.",
    "in_file": "True while the version is in the policy file; versions are kept for the cases that use them.",
})
_doc("policy_levels", "table", "Levels of each policy version.", {
    "policy_version": "Policy version.", "level_no": "Level number (1 = first).", "level_name": "Level name.",
    "enabled": "False: the level is switched off and never executed.",
    "anchor": "due_date, invoice_date, scheduled_payment_date or previous_level.",
    "offset_days": "Days after the anchor (negative: before).",
    "payment_term_days": "The level's own due date is its execution date plus this.",
    "channel": "Channel of the level's document.", "template": "Template of the level's document.",
})
_doc("policy_routing", "table", "Routing rules of policy versions.", {
    "policy_version": "Policy version.", "priority": "Lower wins when two matching policies act on the same day.",
    "enabled": "False: the rule is switched off.",
})
_doc("policy_routing_criteria", "table", "Criteria of routing rules; all of a rule's criteria must hold.", {
    "policy_version": "Policy version.", "criterion_no": "Order in the rule.",
    "entity": "customer, contract or invoice (contract scope: the oldest open receivable).",
    "field": "Column of that input (extra columns included).",
    "op": "is, is_not, in, not_in, exists or not_exists.", "values": "Values compared as text.",
})
_doc("policy_thresholds", "table", "Minimum overdue amount per currency for a case to open or a level to run.", {
    "policy_version": "Policy version.", "currency": "Currency.", "threshold": "Minimum overdue amount.",
})
_doc("policy_level_fees", "table", "Fee per level and currency.", {
    "policy_version": "Policy version.", "level_no": "Level number.", "currency": "Currency.", "fee": "Fee charged.",
})


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def apply_comments(con) -> None:
    """COMMENT ON every documented table, view and column present in the database.

    DuckDB's COMMENT ON takes no bound parameters, so the text is quoted here; it
    comes only from this module, never from data.
    """
    present = {name: kind for name, kind in con.execute(
        "select table_name, case table_type when 'VIEW' then 'view' else 'table' end "
        "from information_schema.tables where table_schema = 'main'").fetchall()}
    for name, (kind, description, columns) in CATALOG.items():
        if name not in present:
            continue
        con.execute(f"comment on {present[name]} {name} is {_quote(description)}")
        actual = {r[0] for r in con.execute(
            "select column_name from information_schema.columns where table_schema = 'main' and table_name = ?",
            [name]).fetchall()}
        for column, text in columns.items():
            if column in actual:
                con.execute(f'comment on column {name}."{column}" is {_quote(text)}')


def markdown() -> str:
    """docs/tables.md: the reference page analysts read."""
    out = ["# Tables and views in the dunning database", "",
           "Generated by `dunning docs` from `pipeline/catalog.py`; the same text is stored as "
           "COMMENT ON in the database. Names are stable.", ""]
    for name, (kind, description, columns) in CATALOG.items():
        out += [f"## `{name}` ({kind})", "", description, "", "| column | description |", "|---|---|"]
        out += [f"| `{c}` | {d} |" for c, d in columns.items()]
        out.append("")
    return "\n".join(out)
