-- The ledger rows $as_of adds for collection cases, with exactly the columns of
-- planned_actions, so both go into the one ledger (state.apply_day). One row per action of
-- each step run today, key `<case>/S<step>/<action>` (deterministic: a re-run re-creates
-- the same keys and nothing is planned twice), and the SMS of the current step whose delay
-- ends today (not once the next step has run: it would ask for a stale amount).
-- Admin charges (none where the customer's apply_fees is false) are charged once per step,
-- on its first action, and add up across the case's steps; the amount demanded (and the
-- payment link's amount) is the failed money still open plus all charges so far. The
-- failed transaction itself is never changed: charges only exist in the ledger.
with steps_today as (
    select d.step_no, d.step_name, d.wait, d.grace_days, d.scheduled_on, a.*,
           case when a.apply_fees then coalesce(ch.charge, 0) else 0 end as charge
    from int_col_steps_due d
    join int_col_active_cases a using (case_id)
    left join policy_collection_charges ch
      on ch.policy_version = a.policy_version and ch.failure_type = a.failure_type
     and ch.step_no = d.step_no and ch.currency = a.currency
),

-- the charges so far after each step of today (several steps may run on one day)
charged_steps as (
    select *,
           fees_total + sum(charge) over (
               partition by case_id order by step_no rows between unbounded preceding and current row) as fees_after
    from steps_today
),

step_rows as (
    select s.case_id, s.step_no, s.step_name, s.scheduled_on,
           case when s.wait = 'grace' then cast($as_of as date) + s.grace_days
                else cast($as_of as date) end as level_due_date,
           case when x.action_no = 1 then s.charge else 0 end as fee,
           s.fees_after as fees_total,
           x.action, x.channel, x.template, x.params_json
    from charged_steps s
    join policy_collection_step_actions x
      on x.policy_version = s.policy_version and x.failure_type = s.failure_type and x.step_no = s.step_no
    where x.delay_days = 0
),

delayed_sms as (
    select a.case_id, x.step_no, s.step_name, a.last_step_on + x.delay_days as scheduled_on,
           a.last_step_on + s.grace_days as level_due_date, 0 as fee, a.fees_total,
           x.action, x.channel, x.template, x.params_json
    from int_col_active_cases a
    join policy_collection_step_actions x
      on x.policy_version = a.policy_version and x.failure_type = a.failure_type
     and x.step_no = a.last_step_no and x.delay_days > 0
    join policy_collection_steps s
      on s.policy_version = x.policy_version and s.failure_type = x.failure_type and s.step_no = x.step_no
    where a.last_step_on is not null and not a.held and a.outstanding > 0
      and a.last_step_on + x.delay_days <= $as_of
      and a.case_id not in (select case_id from int_col_steps_due)
      -- sent before the day (like every model, the ledger before $as_of: a re-run of the SMS's day
      -- plans it again under its key, which the ledger insert skips, and explain shows it)
      and not exists (select 1 from action_ledger l
                      where l.action_key = a.case_id || '/S' || x.step_no || '/' || x.action
                        and l.executed_on < $as_of)
),

rows as (
    select r.*, a.target_id, a.contract_id, a.customer_id, a.currency, a.policy_id, a.policy_version,
           a.routed_by, a.failure_type, a.counting, a.payment_id, a.mandate_id, a.invoice_id, a.failed_on,
           a.failed_amount, a.reason_code, a.reason, a.days_overdue, a.outstanding as principal,
           a.outstanding + r.fees_total as amount_demanded, k.payment_link
    from (select * from step_rows union all select * from delayed_sms) r
    join int_col_active_cases a using (case_id)
    join policy_collections k on k.policy_version = a.policy_version and k.failure_type = a.failure_type
),

-- a link gets its {case_key}, {amount} and {currency} filled in here, so the document and the
-- ledger show the same link
links as (
    select *,
           replace(replace(replace(url, '{case_key}', url_encode(case_id)), '{amount}', amount_text),
                   '{currency}', currency) as filled_url
    from (select *,
                 case when action_is_document(action)
                      then coalesce(json_extract_string(params_json, '$.url'),
                                    case when json_extract_string(params_json, '$.method') = 'payment_link'
                                         then payment_link end) end as url,
                 cast(cast(amount_demanded as decimal(18, 2)) as varchar) as amount_text
          from rows)
),

-- what the ledger row tells dispatch, templates and the exports
with_details as (
    select *,
           json_merge_patch(
               json_object('failure_type', failure_type, 'counting', counting, 'payment_id', payment_id,
                           'mandate_id', mandate_id, 'failed_on', failed_on, 'failed_amount', failed_amount,
                           'reason_code', reason_code, 'reason', reason),
               case action
                   when 'attempt_payment' then json_object('amount', principal)
                   when 'change_mandate' then json_object(
                       'status', json_extract_string(params_json, '$.status'),
                       'block_account', json_extract(params_json, '$.block_account'))
                   when 'move_to_policy' then json_object('policy', json_extract_string(params_json, '$.policy'))
                   else json_object(
                       'method', json_extract_string(params_json, '$.method'),
                       'payment_link', case when json_extract_string(params_json, '$.method') = 'payment_link'
                                            then filled_url end,
                       'new_mandate_url', case when json_extract_string(params_json, '$.url') is not null
                                               then filled_url end)
               end) as details
    from links
),

final as (
    select case_id || '/S' || step_no || '/' || action as action_key,
           case_id, 'collection' as scope, target_id, contract_id, customer_id, currency,
           policy_id, policy_version, routed_by, step_no as level_no, step_name as level_name, action, channel,
           template, scheduled_on,
           cast($as_of as date) as executed_on,
           level_due_date,
           invoice_id as followed_invoice_id,
           days_overdue,
           cast(principal as decimal(18, 2)) as principal,
           cast(fee as decimal(18, 2)) as fee,
           cast(fees_total as decimal(18, 2)) as fees_total,
           cast(0 as decimal(18, 2)) as interest,
           cast(amount_demanded as decimal(18, 2)) as amount_demanded,
           case when action_is_document(action) then 'planned' else 'recorded' end as status,
           cast(details as varchar) as details
    from with_details
)

select * from final
