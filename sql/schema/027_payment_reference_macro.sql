-- The payment reference of a case: an ISO 11649 creditor reference, RF + check digits + 20 digits,
-- the MD5 of the case id as a little-endian number modulo 10^20 (pipeline/delivery/payment.py
-- `creditor_reference` prints the same on every document of the case and tests that both agree).
-- Exported with the ledger (ledger_with_provenance.payment_reference) so incoming payments can be
-- matched to the case.
create or replace macro payment_reference(case_id) as
    'RF' || lpad(cast(98 - ((md5_number(case_id) % 100000000000000000000) * 1000000 + 271500) % 97 as varchar), 2, '0')
    || lpad(cast(md5_number(case_id) % 100000000000000000000 as varchar), 20, '0');
