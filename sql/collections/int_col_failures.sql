-- Failed collections visible on $as_of, each with what its reason code means. A failed
-- payment fails on its booking day; a reversed one that carries a reason code (a SEPA
-- return or refund after settlement) fails on its reversal day. Card contracts look their
-- code up in the card decline list, all others in the SEPA list (macros shared with the view
-- unknown_reason_codes); a code in neither list, or none, is a technical failure.
with failures as (
    select p.payment_id, p.contract_id, k.customer_id, p.currency, p.invoice_id, p.mandate_id, p.amount,
           case when p.status = 'failed' then p.booked_on else p.reversed_on end as failed_on,
           normalized_reason_code(p.reason_code) as reason_code,  -- sql/schema/016_reason_code_macro.sql
           reason_code_list(k.payment_method) as code_list
    from stg_payments p
    join stg_contracts k using (contract_id)
    where (p.status = 'failed' and p.booked_on <= $as_of)
       or (p.status = 'reversed' and p.reason_code is not null and p.reversed_on <= $as_of)
),

codes as (
    select 'sepa_reason_codes' as code_list, code, meaning, failure_type from sepa_reason_codes
    union all
    select 'card_decline_codes', code, meaning, failure_type from card_decline_codes
),

final as (
    select f.*,
           c.code is not null as reason_known,
           coalesce(c.failure_type, 'technical') as failure_type,
           coalesce(c.meaning, 'unknown reason code') as reason
    from failures f
    left join codes c on c.code_list = f.code_list and c.code = f.reason_code
)

select * from final
