-- The first enabled level of each policy version: when a policy would first act on a
-- receivable. Routing compares it across matching policies; a courtesy first level
-- (on or before the due date) opens a case early.
with final as (
    select policy_version,
           arg_min(anchor, level_no) as anchor,
           arg_min(offset_days, level_no) as offset_days,
           arg_min(payment_term_days, level_no) as payment_term_days
    from policy_levels
    where enabled
    group by policy_version
)

select * from final
