-- The policy each open receivable of a contract is routed to on $as_of, in the version in
-- force that day. Only used when a case opens; an open case keeps the version it opened
-- under (even one since edited or removed from the policy file: versions are never deleted).
-- Precedence: a move_to_policy action of the contract's last case (until the next case
-- has opened under the new policy); the contract's explicit policy handle (a contract whose
-- policy has no version in force is routed nowhere: int_waiting_contracts); else the
-- policies whose routing rules match (int_routing_matches), the one whose next action
-- comes earliest winning, ties by priority; else the default policy.
-- A version running a champion/challenger experiment sends a stable, hashed share of the items it
-- takes by rule or default to the challenger policy (`experiment`, `arm`).
-- A backfill may name the version to use (forced_policy_versions, empty otherwise): it
-- replaces its policy's version in force on every day of the backfill.
with forced as (
    select v.policy_id, v.policy_version
    from forced_policy_versions f
    join policy_versions v using (policy_version)
),

versions_in_force as (
    select *
    from policy_versions
    where policy_version in (select policy_version from forced)
       or (in_file
           and effective_from <= $as_of
           and (effective_to is null or effective_to > $as_of)
           and policy_id not in (select policy_id from forced))
),

-- what is routed: each open receivable of a contract (an invoice case uses its own row,
-- a contract or customer case the row of the receivable it follows)
items as (
    select contract_id, invoice_id, due_date, invoice_date, scheduled_payment_on
    from int_open_receivables
),

pending_moves as (
    select l.contract_id, json_extract_string(l.details, '$.policy') as policy_id
    from action_ledger l
    where l.action = 'move_to_policy' and status_is_done(l.status) and l.executed_on < $as_of
      and not exists (select 1 from case_register c
                      where c.contract_id = l.contract_id and c.opened_on > l.executed_on and c.opened_on < $as_of)
    qualify row_number() over (partition by l.contract_id order by l.executed_on desc, l.action_key desc) = 1
),

moved as (
    select t.contract_id, t.invoice_id, v.policy_id, v.policy_version, v.scope, v.grace_days, 'moved' as routed_by
    from pending_moves m
    join items t using (contract_id)
    join versions_in_force v using (policy_id)
),

explicit as (
    select t.contract_id, t.invoice_id, v.policy_id, v.policy_version, v.scope, v.grace_days,
           'explicit' as routed_by
    from items t
    join stg_contracts c using (contract_id)
    join versions_in_force v on v.policy_id = c.policy
    where c.policy is not null
      and t.contract_id not in (select contract_id from pending_moves)
),

-- each matching policy's next action for the item: its first enabled level's day for the
-- item's receivable (previous_level timing counts from the due date), not before the first day past
-- its grace period unless that level is a courtesy level (first_action_on: a long grace period made
-- a policy win that acted days after another, review 2026-12-08)
rule_matches as (
    select m.contract_id, m.invoice_id, v.policy_id, v.policy_version, v.scope, v.grace_days, r.priority,
           first_action_on(f.anchor,
                           level_anchor_date(f.anchor, t.invoice_date, t.due_date, t.scheduled_payment_on, null)
                               + f.offset_days,
                           t.due_date, v.grace_days) as next_action_on
    from int_routing_matches m
    join items t using (contract_id, invoice_id)
    join versions_in_force v using (policy_version)
    join policy_routing r using (policy_version)
    left join int_first_levels f using (policy_version)
    -- an explicit handle is never routed by rules, also while its policy has no version in force
    -- (int_waiting_contracts)
    where m.contract_id not in (select contract_id from stg_contracts where policy is not null)
      and m.contract_id not in (select contract_id from pending_moves)
),

by_rule as (
    select contract_id, invoice_id, policy_id, policy_version, scope, grace_days, 'rule' as routed_by
    from rule_matches
    qualify row_number() over (
        partition by contract_id, invoice_id order by next_action_on nulls last, priority, policy_id
    ) = 1
),

by_default as (
    select t.contract_id, t.invoice_id, v.policy_id, v.policy_version, v.scope, v.grace_days,
           'default' as routed_by
    from items t
    join versions_in_force v on v.is_default
    -- every item's contract is loaded (ingestion quarantines an invoice of an unknown contract): the few
    -- contracts naming a policy are left out, not the many naming none looked up
    where t.contract_id not in (select contract_id from stg_contracts where policy is not null)
      and t.contract_id not in (select contract_id from pending_moves)
      and not exists (select 1 from by_rule b where b.contract_id = t.contract_id and b.invoice_id = t.invoice_id)
),

routed as (
    select * from moved
    union all select * from explicit
    union all select * from by_rule
    union all select * from by_default
),

-- champion/challenger (policy_experiments): of the items a version running an experiment takes by
-- rule or default, a stable share goes to the challenger's version in force. The bucket is the MD5
-- of `<experiment>/<case target>` (the target of the champion's scope) modulo 100: the same case
-- falls in the same arm on every run, re-run and backfill
experiments as (
    select r.contract_id, r.invoice_id, e.experiment,
           cast(md5_number(e.experiment || '/' || case r.scope
                                                    when 'contract' then r.contract_id
                                                    when 'invoice' then r.invoice_id
                                                    else c.customer_id || '-' || c.currency
                                                end) % 100 as integer) < e.share_percent as to_challenger,
           e.challenger_policy_id
    from routed r
    join policy_experiments e on e.policy_version = r.policy_version
    join stg_contracts c on c.contract_id = r.contract_id
    where r.routed_by in ('rule', 'default')
),

final as (
    select r.contract_id, r.invoice_id,
           coalesce(v.policy_id, r.policy_id) as policy_id,
           coalesce(v.policy_version, r.policy_version) as policy_version,
           coalesce(v.scope, r.scope) as scope,
           coalesce(v.grace_days, r.grace_days) as grace_days,
           r.routed_by,
           x.experiment,
           case when x.experiment is null then null when v.policy_id is not null then 'challenger'
                else 'champion' end as arm
    from routed r
    left join experiments x using (contract_id, invoice_id)
    -- a challenger with no version in force takes nobody: the case stays with the champion
    left join versions_in_force v on x.to_challenger and v.policy_id = x.challenger_policy_id
)

select * from final
