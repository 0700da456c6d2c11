"""Failed collections: a workflow that starts when a direct debit or card payment fails.

Ordinary dunning starts when an invoice gets old; this starts when a collection
fails (SPEC section 6). A failed payment (`payments.status = 'failed'`, or a
`reversed` one that carries a reason code: a SEPA return or refund after
settlement) opens a **collection case** when the contract's policy has a
`collections` section with steps for the failure's type. The case lives in the
same `case_register` and `action_ledger` as dunning, so dispatch, exactly-once
sending, provenance and exports work unchanged.

- `steps.py`: the policy keys (`collections: {counting, payment_link, steps}`)
  and their DuckDB tables.
- `reference.py`: the reason-code tables, loaded on every run, and the views
  analysts query (`mandate_changes`, `unsettled_collections`, `unknown_reason_codes`).
- `context.py`: what a collection document's template sees.
- `sql/collections/*.sql`: cases, steps and ledger rows, one model per file.

Reason codes and their failure type
-----------------------------------
`sepa_reason_codes.csv` lists the ISO 20022 reason codes the EPC guidance names
for SEPA Direct Debit R-transactions (rejects, returns, refunds), with the ISO
short name; `card_decline_codes.csv` the common ISO 8583 / card-network response
codes of a declined recurring card payment. Which list applies follows the
contract's `payment_method`: `card`, `credit_card` or `debit_card` use the card
list, everything else the SEPA list. A code in neither list (or no code at all)
is treated as **technical** and reported (`unknown_reason_codes`, and a logged
warning naming the payment), because an unknown code says nothing about the
debtor and must not trigger steps meant for a refusal.

The three types describe what the next attempt can expect, which is what a
workflow needs to know:

- **soft**: the money was not there; the same collection later may succeed.
  AM04 (insufficient funds), and MS03 (reason not given by the debtor's bank):
  the EPC guidance notes that banks which may not disclose insufficient funds
  under national data-protection rules report MS03 instead of AM04, and a retry
  is harmless if it was something else. Cards: 51, 61, 65 (funds or limits), and
  05 "do not honour", which the card networks class as a generic decline that
  may be attempted again.
- **hard**: the debtor, or the debtor's account, refuses; trying again will not
  help, the customer must act (pay otherwise, sign a new mandate, give a new
  card). MD01 (no mandate), MD06 (refund claimed), MS02 (refused), MD07 (debtor
  deceased), AC04 (account closed), AC06 (account blocked), AG01 (direct debits
  not allowed on the account), AC13 (consumer account in the B2B scheme: the
  mandate is in the wrong scheme), SL01 and SL11-SL14 (a blocking service or
  limit the debtor set up at the bank). Cards: lost, stolen, expired, restricted,
  pick-up, invalid card number or issuer, fraud, not permitted to the cardholder,
  and R0/R1/R3 (the cardholder stopped or revoked the recurring payment).
- **technical**: something between creditor and banks is wrong (account or bank
  identifiers, file format, clearing registration, duplicates, settlement,
  regulatory data, mandate data held by the creditor); the creditor fixes and
  resubmits, the customer did nothing wrong. FOCR is an ISO return code after a
  cancellation (recall) request; in SEPA it belongs chiefly to credit transfers
  and is listed because processors pass it through on direct-debit returns.
  Cards: 01, 03, 12, 13, 19, 58, 91, 92, 96.
"""
