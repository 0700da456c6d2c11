-- How a failed collection's reason code is looked up: the list (card contracts use the card
-- decline codes, all others the SEPA reason codes) and the code as written in that list (a
-- one-digit code is a card code that lost its leading zero in a spreadsheet or YAML). Used
-- by collections/int_col_failures.sql and the view unknown_reason_codes.
create or replace macro reason_code_list(payment_method) as
    case when lower(coalesce(payment_method, '')) in ('card', 'credit_card', 'debit_card')
         then 'card_decline_codes' else 'sepa_reason_codes' end;

create or replace macro normalized_reason_code(reason_code) as
    case when regexp_full_match(trim(reason_code), '[0-9]') then '0' || trim(reason_code)
         else upper(trim(reason_code)) end;

-- Whether a failure of type `later` of a case's money takes it over from a case of type `case_type`:
-- a refusal (hard) of the money a soft case retries. Retrying what the debtor refused is not
-- allowed (SPEC 6: soft failures only are retried), so the refusal is not the soft case's (it opens
-- or joins its own hard case, int_col_case_payments) and the soft case closes as superseded
-- (int_col_case_closures).
create or replace macro hard_after_soft(case_type, later) as case_type = 'soft' and later = 'hard';
