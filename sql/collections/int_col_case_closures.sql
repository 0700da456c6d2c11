-- Collection cases that close on $as_of, decided before any step of the day, as dunning
-- closures are: a payment booked today means no step today.
-- - settled: nothing is open any more of the money the case is about: the invoices its
--   failed transactions were for, or, for a failure bound to no invoice, the contract's invoices
--   issued by the day it failed (a later collection, the payment link, a transfer or a credit
--   note all count, through the same open receivables as dunning);
-- - superseded: the debtor refused a soft case's money (a hard failure of one of its invoices,
--   after it opened): its hard case takes over, and the soft case retries nothing more;
-- - unsettled: its last step has waited its time (grace period over, or the retry reported
--   failed) and the money is still open. It is listed in unsettled_collections.
with money_open as (
    select p.case_id,
           bool_or(case when p.invoice_id is not null then o.invoice_id is not null
                        else c.invoice_id is not null end) as anything_open
    from int_col_case_payments p
    left join int_open_receivables o on o.invoice_id = p.invoice_id
    -- a failure bound to no invoice was collecting what the contract had been invoiced by its day (a
    -- retry's failure is the same money): an invoice issued later, not yet due, is no part of it
    left join int_open_receivables c
      on p.invoice_id is null and not p.repeat and c.contract_id = p.contract_id and c.invoice_date <= p.failed_on
    where p.failed_on < $as_of
    group by p.case_id
),

-- the debtor refused the money of a soft case (hard_after_soft) after it opened: its own hard case
-- takes over from that day (the refusal opens or joins it today, after the closures)
superseded as (
    select distinct c.case_id
    from int_col_case_progress c
    join int_col_case_payments p using (case_id)
    join int_col_failures f
      on f.invoice_id = p.invoice_id and f.failed_on > c.opened_on and f.failed_on <= $as_of
     and hard_after_soft(c.failure_type, f.failure_type)
),

final as (
    select c.case_id,
           case when not coalesce(m.anything_open, false) then 'settled'
                when s.case_id is not null then 'superseded'
                else 'unsettled' end as close_reason
    from int_col_case_progress c
    left join money_open m using (case_id)
    left join superseded s using (case_id)
    where not coalesce(m.anything_open, false)
       or s.case_id is not null
       or (c.last_step_no = c.step_count and c.last_wait <> 'final' and c.next_due_from <= $as_of)
)

select * from final
