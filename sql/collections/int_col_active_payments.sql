-- The failed transactions of every collection case active on $as_of after the day's
-- closures: the cases that stay open (int_col_case_payments) and the ones opening today
-- (the failures that opened them).
with continuing as (
    select *
    from int_col_case_payments
    where case_id not in (select case_id from int_col_case_closures)
),

opening as (
    select o.case_id, f.payment_id, f.contract_id, f.customer_id, f.currency, f.invoice_id, f.mandate_id,
           f.amount, f.failed_on, f.reason_code, f.reason_known, f.failure_type, f.reason,
           false as repeat
    from (select case_id, unnest(payment_ids) as payment_id from int_col_case_openings) o
    join int_col_failures f using (payment_id)
),

final as (
    select * from continuing
    union all
    select * from opening
)

select * from final
