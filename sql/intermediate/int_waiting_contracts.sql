-- Contracts with open receivables that name a policy (their explicit handle) and are routed to
-- nothing on $as_of: the policy has no version in force yet (or no more). An explicit assignment
-- never falls through to routing rules or the default policy, so such a contract is not dunned
-- until a version of its policy takes effect; every run warns about it (pipeline/engine/run.py).
with waiting as (
    select c.contract_id, c.customer_id, c.policy as policy_id
    from stg_contracts c
    where c.policy is not null
      and c.contract_id in (select contract_id from int_open_receivables)
      and c.contract_id not in (select contract_id from int_routed_contracts)
),

final as (
    select w.contract_id, w.customer_id, w.policy_id,
           min(v.effective_from) filter (where v.in_file and v.effective_from > $as_of) as first_version_on
    from waiting w
    left join policy_versions v on v.policy_id = w.policy_id
    group by w.contract_id, w.customer_id, w.policy_id
)

select * from final
