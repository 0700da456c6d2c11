-- The policy a contract is routed to on $as_of: its explicit handle, else the default,
-- in the version in force that day. Only used when a case opens; an open case keeps
-- the policy version it opened under.
with versions_in_force as (
    select *
    from policy_versions
    where effective_from <= $as_of
      and (effective_to is null or effective_to > $as_of)
),

default_policy as (
    select distinct policy_id from policy_versions where is_default
),

final as (
    select c.contract_id, v.policy_id, v.policy_version, v.scope, v.grace_days
    from stg_contracts c
    join versions_in_force v
      on v.policy_id = coalesce(c.policy, (select policy_id from default_policy))
)

select * from final
