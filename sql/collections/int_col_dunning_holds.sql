-- Contracts whose ordinary dunning waits on $as_of because a collection case is working on
-- them: every contract of a failed transaction of a case active today (docs/design.md,
-- "Failed collections and dunning"). int_dunning_targets treats them as suspended, so a
-- dunning level whose time comes meanwhile runs when the collection case has closed.
with final as (
    select distinct p.contract_id, k.customer_id, k.currency
    from int_col_active_payments p
    join stg_contracts k using (contract_id)
)

select * from final
