"""Documentation of the failed-collection tables and views, added to `pipeline.catalog`.

Kept beside the feature so the catalog module stays readable; `pipeline.catalog`
calls `document(_doc, _LEDGER)` where these entries belong in docs/tables.md.
"""

from __future__ import annotations

_CODE_TABLE = {
    "code": "The code as the bank or card network reports it (payments.reason_code, compared trimmed and in "
            "upper case).",
    "name": "Short name (for SEPA the ISO 20022 name, e.g. InsufficientFunds).",
    "meaning": "What the code means, in words; shown in documents.",
    "failure_type": "soft (insufficient funds: a retry may succeed), hard (the debtor or the debtor's account "
                    "refuses) or technical (bank side or creditor data).",
}
_CASE_COLS = ("action_key", "case_id", "contract_id", "customer_id", "executed_on")


def document(doc, ledger: dict[str, str]) -> None:
    """Add the entries through the catalog's own `_doc`; `ledger` holds the action_ledger column docs."""
    doc("sepa_reason_codes", "table", "SEPA Direct Debit R-transaction reason codes (ISO 20022, as named in the "
        "EPC guidance) with their failure type; shipped with the package and reloaded on every run. Applies "
        "to contracts whose payment_method is not a card. See pipeline/failed_collections/__init__.py for why "
        "each code has its type.", _CODE_TABLE)
    doc("card_decline_codes", "table", "Card decline codes (ISO 8583 response codes as the card networks use "
        "them) with their failure type; applies to contracts whose payment_method is card, credit_card or "
        "debit_card. Reloaded on every run.", _CODE_TABLE)
    doc("unknown_reason_codes", "view", "Failed payments whose reason code is in neither list (or missing): "
        "they are handled as technical failures and each run logs a warning naming the payment.", {
        "payment_id": "The payment.", "contract_id": "Its contract.", "customer_id": "The contract's customer.",
        "payment_method": "The contract's payment method (decides the list).",
        "status": "failed, or reversed (a return or refund after settlement).",
        "failed_on": "booked_on of a failed payment, reversed_on of a reversed one.",
        "reason_code": "The code as delivered (empty: none).", "amount": "Amount that failed.",
        "currency": "Currency.", "mandate_id": "Direct-debit mandate.",
        "looked_up_in": "sepa_reason_codes or card_decline_codes.",
    })
    doc("mandate_changes", "view", "Mandates to suspend or cancel (write-back export), from change_mandate "
        "steps of collection cases.", {
        **{k: ledger[k] for k in _CASE_COLS},
        "mandate_id": "Mandate to change (of the case's latest failed payment).",
        "change": "suspend or cancel.",
        "block_account": "True: also block the bank account for future mandates.",
        "payment_id": "The failed payment that led to the change.",
        "reason_code": "Its reason code.",
        "policy_id": ledger["policy_id"], "policy_version": ledger["policy_version"],
        "step_no": "Step of the collection workflow.",
    })
    doc("unsettled_collections", "view", "Collection cases whose last step waited its time without payment: "
        "the automatic workflow has ended and no longer holds ordinary dunning of the contract.", {
        "case_id": "The collection case.", "contract_id": "Contract.", "customer_id": "Customer.",
        "currency": "Currency.", "failure_type": "soft, hard or technical.",
        "counting": "per_transaction or per_mandate.",
        "mandate_id": "Mandate of the latest failed payment.", "payment_id": "Latest failed payment.",
        "reason_code": "Its reason code.", "opened_on": "Day the case opened.",
        "unsettled_on": "Day it was found unsettled (closed_on).", "last_step": "Last step executed.",
        "outstanding": "Failed money still open at the last step.",
        "admin_charges": "Admin charges of the case.", "amount_demanded": "outstanding + admin_charges.",
        "policy_id": "Policy of the case.", "policy_version": "Its version.",
    })
    _version_type = {"policy_version": "Policy version.", "failure_type": "soft, hard or technical."}
    doc("policy_collections", "table", "Failure types a policy version handles after a failed collection "
        "(its `collections` section).", {
        **_version_type,
        "counting": "per_transaction (every failed transaction starts at step 1) or per_mandate (steps "
                    "continue across the mandate's failed transactions).",
        "steps": "Number of steps.",
        "payment_link": "The payment link's address with {case_key}, {amount}, {currency} placeholders.",
    })
    doc("policy_collection_steps", "table", "Steps of the failed-collection workflow per failure type.", {
        **_version_type, "step_no": "Step number (1 = first).",
        "step_type": "retry, payment_alternative, registered_mail, official_letter, change_mandate, notify, "
                     "offer_new_mandate or move_to_profile.",
        "step_name": "Name (the ledger's level_name).",
        "wait": "What ends the step: grace (its grace period), at_once (the next step runs the same day), "
                "retry_result (the retry is reported failed, or result_days pass without a result) or final.",
        "grace_days": "Grace period in days (0 when the step does not wait for one).",
        "retry_when": "For a retry: after_days, next_month or next_month_plus_days.",
        "retry_days": "For a retry: the days.",
        "result_days": "For a retry: the days after it that the next step waits at most for the retry's result "
                       "(result_within_days).",
        "params_json": "The step's settings as JSON.",
    })
    doc("policy_collection_step_actions", "table", "Ledger actions of each collection step, in order.", {
        **_version_type, "step_no": "Step number.", "action_no": "Order within the step (charges go on the first).",
        "action": "reminder, sms, notify_merchant, attempt_payment, change_mandate or move_to_policy.",
        "channel": "email, sms, letter, registered_letter, or the action's own name for exports.",
        "template": "Template of a document.",
        "delay_days": "Days after the step the action runs (a delayed SMS); 0: with the step.",
        "params_json": "The action's settings as JSON.",
    })
    doc("policy_collection_charges", "table", "Admin charges per collection step and currency (added to the "
        "payment link or transfer amount, cumulative).", {
        **_version_type, "step_no": "Step number.", "currency": "Currency.", "charge": "Charge.",
    })
