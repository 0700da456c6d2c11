-- Cases that close on $as_of, decided before any action of the day: a contract case
-- when the whole contract balance is cleared (not-yet-due invoices included), a customer
-- case when nothing of the customer is open in its currency, an invoice case when its
-- invoice is settled or voided.
with voided_today as (
    select invoice_id from stg_invoices where voided_on <= $as_of
),

final as (
    select p.case_id,
           case
               when p.scope = 'invoice' and p.target_id in (select invoice_id from voided_today) then 'invoice_voided'
               when p.scope = 'invoice' then 'invoice_settled'
               else 'balance_cleared'
           end as close_reason
    from int_case_progress p
    anti join int_dunning_targets t on t.scope = p.scope and t.target_id = p.target_id
)

select * from final
