-- Whether an invoice counts on `on_day`: issued by then and not voided by then. A counting invoice
-- owes its amount (int_receivable_remainders): one with an amount owed is a receivable, one with a
-- negative amount a credit note. Payments bound to an invoice that owes nothing that day are
-- contract credit (int_receivable_remainders, int_contract_credits); an end_contract credits the
-- running period of a receivable (int_action_details).
create or replace macro invoice_counts_on(on_day, invoice_date, voided_on) as
    invoice_date <= on_day and (voided_on is null or voided_on > on_day);

-- Whether an invoice is a receivable on `on_day`: it counts and owes an amount.
create or replace macro is_receivable_on(on_day, invoice_date, voided_on, amount) as
    invoice_counts_on(on_day, invoice_date, voided_on) and amount > 0;

-- Whether a payment counts on `on_day`: booked by then, and settled, or reversed only after that
-- day (a reversal takes the money back on its date). A failed payment never counts.
create or replace macro payment_counts_on(on_day, booked_on, status, reversed_on) as
    booked_on <= on_day and (status = 'settled' or (status = 'reversed' and reversed_on > on_day));
