-- The last step each per-mandate collection case opened before $as_of reached. Steps of a
-- mandate are counted across its failed transactions: a later case of the same mandate,
-- failure type and policy starts after the highest of them (a move to another policy
-- starts the count afresh there).
with final as (
    select r.target_id as mandate_id, r.failure_type, r.policy_id, r.case_id, r.opened_on,
           max(l.level_no) as last_step_no
    from case_register r
    join action_ledger l using (case_id)
    where r.scope = 'collection' and r.counting = 'per_mandate' and r.opened_on < $as_of
      and l.executed_on < $as_of and status_is_done(l.status)
    group by all
)

select * from final
