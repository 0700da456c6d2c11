-- Whether an invoice counts on `on_day`: issued by then and not voided by then. A counting invoice
-- with an amount owed is a receivable (int_receivable_remainders); one with a negative amount is a
-- credit note (int_contract_credits). Payments bound to an invoice that is no receivable that day
-- are contract credit (int_contract_credits); an end_contract credits the running period of a
-- receivable (int_action_details).
create or replace macro invoice_counts_on(on_day, invoice_date, voided_on) as
    invoice_date <= on_day and (voided_on is null or voided_on > on_day);

-- Whether an invoice is a receivable on `on_day`: it counts and owes an amount.
create or replace macro is_receivable_on(on_day, invoice_date, voided_on, amount) as
    invoice_counts_on(on_day, invoice_date, voided_on) and amount > 0;
