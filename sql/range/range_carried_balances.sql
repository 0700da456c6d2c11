-- The contract balances a range carries into $as_of for the contracts it did not recompute that day
-- (pipeline/warehouse/range_days.py): their last computed row (range_balances), dated $as_of. Nothing
-- of such a contract changed since (no input of its customer is dated in between and no receivable
-- of it fell due: range_next_changes), so only the days its oldest receivable is overdue move on.
with recomputed as (
    select contract_id from range_recomputed_contracts
),

final as (
    select b.* replace (cast($as_of as date) as as_of,
                        days_overdue($as_of, b.oldest_due_date) as oldest_days_overdue)
    from range_balances b
    anti join recomputed r using (contract_id)
)

select * from final
