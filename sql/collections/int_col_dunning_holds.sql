-- Contracts whose ordinary dunning waits on $as_of because a collection case is working on
-- them: every contract of a failed transaction of a case active today (docs/design.md,
-- "Failed collections and dunning"). int_dunning_targets treats them as suspended, so a
-- dunning level whose time comes meanwhile runs when the collection case has closed.
-- A case whose steps are held today (int_col_active_cases.held: a suspension, an invoice's pause
-- flag, dunning_disabled, a quarantined row) works on nothing: it holds no dunning, or a failure on a
-- paused invoice would hold the contract's other invoices for as long as the pause lasts. What
-- holds the case holds its own invoices' dunning too.
with working_cases as (
    select case_id from int_col_active_cases where not held
),

final as (
    select distinct p.contract_id, k.customer_id, k.currency
    from int_col_active_payments p
    join stg_contracts k using (contract_id)
    where p.case_id in (select case_id from working_cases)
)

select * from final
