"""Documentation of every table and view analysts query, in one place.

Applied to the database as COMMENT ON after each run (so any DuckDB client
shows it: `select * from duckdb_columns()`), and rendered to docs/tables.md by
`dunning docs`; a test keeps the committed page in step with this module.
"""

from __future__ import annotations

from pipeline.failed_collections.catalog_docs import document as _document_failed_collections
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
               "cu-<customer>-<currency>-<opened yyyymmdd>; a failed collection cc-<payment> (per transaction) "
               "or cm-<mandate>-<failure type>-<opened yyyymmdd> (per mandate).",
    "scope": "contract, invoice or customer (all contracts of a customer in one currency), or collection "
             "(a failed collection: pipeline/failed_collections).",
    "target_id": "The contract_id, invoice_id or <customer_id>-<currency> dunned; for a collection case the "
                 "payment_id (per transaction) or the mandate_id (per mandate).",
    "contract_id": "Contract of the case.",
    "customer_id": "Customer of the case.",
    "currency": "Currency of all amounts of the case.",
    "policy_id": "Handle of the policy the case was routed to when it opened.",
    "policy_version": "Policy version kept for the case's whole life (handle@content hash).",
    "opened_on": "Day the case opened.",
    "closed_on": "Day the case closed; empty while open.",
    "close_reason": "balance_cleared, invoice_settled, invoice_voided or moved_to_policy; for a collection "
                    "case settled (nothing of its money open any more) or unsettled (its last step waited in "
                    "vain; see unsettled_collections).",
    "routed_by": "How the policy was chosen: moved (a move_to_policy action of the previous case), explicit "
                 "(the contract's handle), rule (routing rules) or default.",
    "failure_type": "Collection cases: soft, hard or technical (from the reason code). Empty for dunning.",
    "counting": "Collection cases: per_transaction or per_mandate. Empty for dunning.",
})

_LEDGER = {
    "action_key": "Deterministic key <case_id>/L<level>/<action> (collection cases: <case_id>/S<step>/<action>): "
                  "never planned or sent twice.",
    "case_id": "Case the action belongs to.",
    "scope": "contract, invoice or customer (all contracts of a customer in one currency), or collection.",
    "target_id": "The contract_id, invoice_id or <customer_id>-<currency> dunned; collection: payment or mandate.",
    "contract_id": "Contract of the case.",
    "customer_id": "Customer of the case.",
    "currency": "Currency of the amounts.",
    "policy_id": "Policy that caused the action (provenance).",
    "policy_version": "Policy version that caused the action (provenance).",
    "level_no": "Level number within the policy version (1 = first); for a collection case the step number.",
    "level_name": "Level name from the policy (collection: the step's name).",
    "action": "reminder (a document), sms, notify_merchant, webhook, end_contract, keep_active, attempt_payment, "
              "set_field, move_to_policy, change_mandate (collection: suspend or cancel the mandate), "
              "or level_skipped (passed over in a catch-up).",
    "channel": "Channel the document goes through: outbox (local files) or manual (sent by a person).",
    "template": "Template the document is rendered from.",
    "scheduled_on": "Day the level was due by its timing rule.",
    "executed_on": "Day the level was executed (or recorded as skipped).",
    "level_due_date": "The level's own due date: executed_on + payment term.",
    "followed_invoice_id": "Receivable the case followed that day (its anchor).",
    "days_overdue": "Days the followed receivable was overdue that day.",
    "principal": "Amount demanded: the open receivables past due; for a courtesy level before the due "
                 "date, the amount due; for a collection case the failed money still open.",
    "fee": "Fee charged by this level (0 where the customer's apply_fees is false); collection: the step's "
           "admin charge.",
    "fees_total": "Fees of the case so far, this level included.",
    "interest": "Interest demanded: simple, actual/365, on each overdue invoice's open amount from its due "
                "date to executed_on at the policy's rate, summed and rounded half-up (0 without a rate).",
    "amount_demanded": "principal + fees_total + interest.",
    "status": "planned (decided, not yet rendered), rendered (document in the outbox, waiting for its "
              "channel), sending (being handed over), sent, failed (retried by later runs until "
              "attempts reaches dispatch.max_attempts; see review_reason), needs_review (the outcome of "
              "a hand-over is unknown: never resent automatically), prepared (a manual document awaiting "
              "`dunning confirm`), recorded (an exported action: end_contract, attempt_payment, set_field, "
              "keep_active, move_to_policy, change_mandate), skipped, held (the fresh-data gate stopped "
              "dispatch that day; decided again "
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
               "attempt_payment amount, set_field target, field and value; for a collection case also the "
               "failure (failure_type, payment_id, mandate_id, reason_code, reason, failed_on, failed_amount), "
               "the payment link or method, the mandate change.",
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
_doc("collection_requests", "view", "Payment attempts to make (export for the payment provider), from "
     "attempt_payment actions and the retries of failed collections.", {
    **{k: _LEDGER[k] for k in ("action_key", "case_id", "contract_id", "customer_id", "currency", "executed_on")},
    "amount": "Amount to collect: the overdue amount that day (a retry: the failed money still open, "
              "without admin charges).",
    "payment_id": "A retry: the failed payment collected again (its latest failure). Empty for dunning.",
    "mandate_id": "A retry: the mandate to collect on. Empty for dunning.",
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

_doc("backfill_runs", "table", "One row per backfill: its range, the version it was forced to, and the "
     "catch-up the user chose for the next live days.", {
    "backfill_id": "bf-<first day>-<last day>-<n>.",
    "first_day": "First day recomputed.", "last_day": "Last day recomputed.",
    "policy_version": "The version every day was recomputed under; empty: the versions in force each day.",
    "catch_up": "none (missed levels count as done), highest (the highest is sent once on the next live day) "
                "or each (one missed level per live day, lowest first).",
    "actions_before": "Ledger rows in the range before the backfill.",
    "actions_after": "Rows the recomputation decided in the range.",
    "differences": "Rows in backfill_differences for this backfill.",
})

_doc("backfill_differences", "table", "What a backfill decided differently from what the ledger held: "
     "actions that would have happened and did not, that happened and would not have, or changed.", {
    "backfill_id": "The backfill (backfill_runs).",
    "kind": "would_have_happened, would_not_have_happened or changed (date, level or amounts differ).",
    "action_key": "The action.", "case_id": "Its case.", "level_no": "Its level.", "action": "Its action type.",
    "before_status": "Status the ledger had before the backfill (sent: it really happened).",
    "before_executed_on": "Day it was executed before.", "after_executed_on": "Day the backfill executes it.",
    "before_amount": "Amount demanded before.", "after_amount": "Amount demanded by the backfill.",
    "before_fee": "Fee before.", "after_fee": "Fee by the backfill.",
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
_document_failed_collections(_doc, _LEDGER)  # reason codes, collection steps, mandate changes, unsettled


# The analyst's views and table macros (pipeline/analytics.py, sql/analytics/). A table macro takes
# the day: `select * from state_as_of(date '2026-06-30')`. DuckDB comments the macro, not its columns.
_AS_OF = "The day asked for (the macro's argument)."
_STATE = {k: v for k, v in CATALOG["cases"][2].items() if k not in ("closed_on", "close_reason", "is_open")}
_doc("state_as_of", "table macro", "`state_as_of(d)`: every case opened on or before day d with its status "
     "that day, from the case register and the ledger alone (levels executed on or before d; skipped and "
     "held rows are no levels done). On the latest day it equals the view `cases`.", {
    "as_of": _AS_OF,
    **{k: _STATE[k] for k in ("case_id", "scope", "target_id", "contract_id", "customer_id", "currency",
                              "policy_id", "policy_version", "routed_by", "opened_on")},
    "closed_on": "Day the case closed, if on or before d; else empty.",
    "close_reason": "Why it closed, if closed on or before d.",
    "status": "open or closed on day d.",
    "is_open": "True while the case is open on day d.",
    "current_level": "Highest level executed on or before d (0: none yet).",
    "current_level_name": "Its name.",
    "last_level_on": "Day it was executed (the latest execution up to d, for a level sent again).",
    "level_due_date": "Its own due date.",
    "last_amount_demanded": "Amount demanded by it.",
    "fees_total": "Fees charged in the case up to d.",
})
_RECEIVABLE_MACRO_NOTE = ("the daily model of the same name run as a table macro over the typed inputs (rows "
                          "dated after d are invisible), so any past day is recomputed exactly as the run did.")
_doc("receivable_remainders_as_of", "table macro", "`receivable_remainders_as_of(d)`: invoices visible on "
     "day d after their own invoice-bound payments, keeping those with something open or overpaid; "
     + _RECEIVABLE_MACRO_NOTE + " A building block of open_receivables_as_of.", {
    **{k: CATALOG["open_receivables"][2][k] for k in (
        "invoice_id", "invoice_number", "contract_id", "customer_id", "currency", "invoice_date", "due_date",
        "scheduled_payment_on", "amount", "dunning_paused")},
    "bound_paid": "Payments bound to the invoice and effective on d (settled, or reversed after d).",
    "remaining": "amount - bound_paid, at least 0.",
    "overpaid": "bound_paid - amount, at least 0: becomes contract credit.",
})
_doc("contract_credits_as_of", "table macro", "`contract_credits_as_of(d)`: credit per contract on day d that "
     "settles open receivables oldest first (payments without a visible invoice, overpayments, credit notes); "
     + _RECEIVABLE_MACRO_NOTE + " A building block of open_receivables_as_of.", {
    "contract_id": "Contract.", "credit": "Credit available on d.",
})
_doc("open_receivables_as_of", "table macro", "`open_receivables_as_of(d)`: open receivables on day d, per "
     "invoice; " + _RECEIVABLE_MACRO_NOTE + " On the latest day it equals the table open_receivables.", {
    **CATALOG["open_receivables"][2], "as_of": _AS_OF,
    "is_overdue": "d is after due_date.", "days_overdue": "d - due_date, 0 if not yet due.",
})
_doc("aging_as_of", "table macro", "`aging_as_of(d)`: open receivables on day d per currency and age bucket "
     "(not due, 1-30, 31-60, 61-90, over 90 days overdue), computed per receivable from "
     "open_receivables_as_of(d). On the latest run's day it equals the view `aging`.", {
    "as_of": _AS_OF, "currency": "Currency.", "bucket": "not due, 1-30, 31-60, 61-90 or over 90 (days overdue).",
    "receivables": "Number of open receivables.", "open_amount": "Their open amount.",
})
_KEY_FIGURES = {
    "currency": "Currency of the cases.",
    "policy_id": "Policy handle the cases were routed to.",
    "cases_opened": "Cases opened up to the day.",
    "cases_opened_on_day": "Cases opened on the day.",
    "cases_closed": "Cases closed up to the day.",
    "cases_closed_on_day": "Cases closed on the day.",
    "closed_balance_cleared": "Closed because the contract's (or customer's) balance was cleared.",
    "closed_invoice_settled": "Closed because the invoice was settled (invoice scope).",
    "closed_invoice_voided": "Closed because the invoice was voided (invoice scope).",
    "closed_moved_to_policy": "Closed by a move_to_policy action (the next case opens under that policy).",
    "closed_collection_settled": "Failed collections closed because the money was paid after all (settled).",
    "closed_collection_unsettled": "Failed collections closed unsettled after their last step.",
    "closed_other": "Closed for any other reason.",
    "cases_open": "Cases open at the end of the day.",
    "fees_earned": "Fees charged by the levels done up to the day (skipped and held rows excluded).",
}
_doc("key_figures_as_of", "table macro", "`key_figures_as_of(d)`: cases opened, closed (by reason) and open, "
     "and fees earned, per currency and policy, counting only what happened on or before day d.",
     {"as_of": _AS_OF, **_KEY_FIGURES})
_doc("key_figures", "view", "key_figures_as_of on the latest day run (max run_log.as_of).",
     {"as_of": "The latest day run.", **_KEY_FIGURES})
_LEVEL_OUTCOMES = {
    "policy_id": "Policy handle.",
    "level_no": "Level number.",
    "level_name": "Level name (of the latest execution, if versions renamed it).",
    "currency": "Currency of the cases.",
    "cases_reached": "Cases that received the level.",
    "documents_sent": "Documents of the level (reminder, sms, notify_merchant) in status sent.",
    "cases_recovered": "Cases closed paid (balance_cleared, invoice_settled, or a failed collection settled) "
                       "with this level as the last they received: each paid case is credited to one level.",
    "paid_within_7_days": "Of those, paid at most 7 days after the level was executed.",
    "paid_within_14_days": "Of those, paid at most 14 days after the level.",
    "paid_within_30_days": "Of those, paid at most 30 days after the level.",
    "recovery_rate": "cases_recovered / cases_reached, rounded half up to 4 decimals.",
    "median_days_to_pay": "Median days from the level to the case's closure, of the recovered cases.",
    "amount_recovered": "Sum of the amount the level demanded of the recovered cases.",
}
_doc("level_outcomes_as_of", "table macro", "`level_outcomes_as_of(d)`: per policy, level and currency, what "
     "each level achieved by day d: cases reached, documents sent, cases that paid after it and how fast, "
     "recovery rate and amount recovered.", {"as_of": _AS_OF, **_LEVEL_OUTCOMES})
_doc("level_outcomes", "view", "level_outcomes_as_of on the latest day run (max run_log.as_of).",
     {"as_of": "The latest day run.", **_LEVEL_OUTCOMES})
_doc("ledger_with_provenance", "view", "The action ledger with its provenance: the policy version and when it "
     "was in force, how the case was routed, and the level's timing rule.", {
    **{k: _LEDGER[k] for k in ("action_key", "case_id", "scope", "target_id", "contract_id", "customer_id",
                               "currency", "policy_id", "policy_version")},
    "version_effective_from": "First day the policy version was in force.",
    "version_effective_to": "Day the next version took over (empty: still in force).",
    "version_in_file": "True while the version is in the policy file.",
    "routed_by": _LEDGER["routed_by"],
    "case_opened_on": "Day the case opened (its version is the one in force that day).",
    "level_no": _LEDGER["level_no"], "level_name": _LEDGER["level_name"],
    "level_anchor": "The level's timing anchor: due_date, invoice_date, scheduled_payment_date or previous_level.",
    "level_offset_days": "Days after the anchor (negative: before).",
    "level_payment_term_days": "The level's payment term in days.",
    **{k: _LEDGER[k] for k in ("action", "channel", "template", "scheduled_on", "executed_on", "level_due_date",
                               "followed_invoice_id", "days_overdue", "principal", "fee", "fees_total",
                               "interest", "amount_demanded", "status", "dispatch_mode", "status_changed_on",
                               "confirmed_on", "document_path", "provider_message_id", "details")},
})


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def apply_comments(con, names=None) -> None:
    """COMMENT ON every documented table, view, table macro and column present in the database
    (or only those in `names`).

    DuckDB's COMMENT ON takes no bound parameters, so the text is quoted here; it
    comes only from this module, never from data.
    """
    present = {name: kind for name, kind in con.execute(
        "select table_name, case table_type when 'VIEW' then 'view' else 'table' end "
        "from information_schema.tables where table_schema = 'main'").fetchall()}
    # a table macro takes a comment itself; its columns exist only when it is called
    present.update((name, "macro table") for (name,) in con.execute(
        "select distinct function_name from duckdb_functions() where function_type = 'table_macro' "
        "and schema_name = 'main' and database_name = current_database()").fetchall())
    actual: dict[str, set[str]] = {}  # one query: each one binds every view (~3 ms)
    for table, column in con.execute(
            "select table_name, column_name from information_schema.columns where table_schema = 'main'").fetchall():
        actual.setdefault(table, set()).add(column)
    for name, (kind, description, columns) in CATALOG.items():
        if name not in present or (names is not None and name not in names):
            continue
        con.execute(f"comment on {present[name]} {name} is {_quote(description)}")
        for column, text in columns.items():
            if column in actual.get(name, ()):
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
