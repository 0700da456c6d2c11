-- The actions the levels executed on $as_of run (levels_due), one row per action in policy
-- order, each with what its ledger row records in `details`: a webhook's event, an
-- end_contract's effective date and credit note for the billed period running today, the
-- amount an attempt_payment collects, a move_to_policy's policy, a set_field's target,
-- field and value (documents: none). A catch-up sends again only the documents nobody
-- received (int_catch_up_actions). marts/planned_actions makes them ledger rows. The
-- billed period running today (running_periods) is read for an end_contract's credit note.
with running_periods as (
    select contract_id, invoice_id, amount, period_start, period_end
    from stg_invoices
    where is_receivable_on($as_of, invoice_date, voided_on, amount)
      and period_start <= $as_of and period_end >= $as_of
      and contract_id in (select d.contract_id
                          from levels_due d
                          join policy_level_actions a using (policy_version, level_no)
                          where d.executed and a.action = 'end_contract')
    qualify row_number() over (partition by contract_id order by period_end desc, invoice_date desc, invoice_id desc) = 1
),

-- the billed-until date of the contracts an end_contract ends today
ending_contracts as (
    select contract_id, billed_until
    from stg_contracts
    where contract_id in (select d.contract_id
                          from levels_due d
                          join policy_level_actions a using (policy_version, level_no)
                          where d.executed and a.action = 'end_contract')
),

-- each executed level runs its actions in policy order
executed_actions as (
    select d.case_id, d.contract_id, d.customer_id, d.followed_invoice_id, d.demanded_principal,
           d.level_no, d.catch_up, a.action_no, a.action, a.channel, a.template, a.params_json
    from levels_due d
    join policy_level_actions a on a.policy_version = d.policy_version and a.level_no = d.level_no
    -- a catch-up sends again only the documents nobody received
    left join (select distinct case_id, level_no, action from int_catch_up_actions) u
      on u.case_id = d.case_id and u.level_no = d.level_no and u.action = a.action
    where d.executed
      and (not d.catch_up or u.case_id is not null)
),

final as (
    select e.case_id, e.level_no, e.catch_up, e.action_no, e.action, e.channel, e.template,
           case e.action
               when 'webhook' then json_object('event', json_extract_string(e.params_json, '$.event'))
               when 'end_contract' then json_object(
                   'when', json_extract_string(e.params_json, '$.when'),
                   'effective_on', case json_extract_string(e.params_json, '$.when')
                       when 'immediately' then cast($as_of as date)
                       else coalesce(k.billed_until, p.period_end, cast($as_of as date)) end,
                   -- no billed period running today: nothing to credit
                   'credit_note_amount', case when json_extract_string(e.params_json, '$.when') = 'immediately'
                       then coalesce(cast(cast((cast(p.amount * 100 as hugeint) * (p.period_end - cast($as_of as date)) * 2
                                                + (p.period_end - p.period_start + 1))
                                               // (2 * (p.period_end - p.period_start + 1)) as decimal(18, 2)) * 0.01
                                          as decimal(18, 2)), 0)
                       else 0 end,
                   'credit_note_for_invoice_id', p.invoice_id)
               when 'attempt_payment' then json_object('amount', e.demanded_principal)
               when 'move_to_policy' then json_object('policy', json_extract_string(e.params_json, '$.policy'))
               when 'set_field' then json_object(
                   'target', json_extract_string(e.params_json, '$.target'),
                   'target_id', case json_extract_string(e.params_json, '$.target')
                       when 'customer' then e.customer_id when 'contract' then e.contract_id
                       else e.followed_invoice_id end,
                   'field', json_extract_string(e.params_json, '$.field'),
                   'value', json_extract(e.params_json, '$.value'))
           end as details
    from executed_actions e
    left join running_periods p on p.contract_id = e.contract_id
    left join ending_contracts k on k.contract_id = e.contract_id
)

select * from final
