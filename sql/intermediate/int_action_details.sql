-- The actions the levels executed on $as_of run (levels_due), one row per action in policy
-- order, each with what its ledger row records in `details`: a webhook's event, an
-- end_contract's effective date and credit note for the billed period running today, the
-- amount an attempt_payment collects, a move_to_policy's policy, a set_field's target,
-- field and value (documents: none). A catch-up sends again only the documents nobody
-- received (int_catch_up_actions). marts/planned_actions makes them ledger rows. The
-- billed period running today (running_periods) is read for an end_contract's credit note.
-- A contract is ended once (the macro ends_contract): an end_contract of a contract that an earlier
-- end, its contracts row, or another end of today has ended by the day it would take effect says
-- so (already_ended, by which case, on which day) and ends nothing, credits nothing.
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

-- the billed-until date of the contracts an end_contract ends today, and the end their row shows
ending_contracts as (
    select contract_id, billed_until, status, ended_on
    from stg_contracts
    where contract_id in (select d.contract_id
                          from levels_due d
                          join policy_level_actions a using (policy_version, level_no)
                          where d.executed and a.action = 'end_contract')
),

-- the earliest end of those contracts recorded on an earlier day (ends_contract: exported, or a
-- backfill's own in a range that is not live)
ended_before as (
    select contract_id,
           arg_min(case_id, (effective_on, executed_on, case_id)) as case_id,
           min(effective_on) as effective_on
    from (select contract_id, case_id, executed_on,
                 cast(json_extract_string(details, '$.effective_on') as date) as effective_on
          from action_ledger
          where executed_on < $as_of
            and ends_contract(action, status, details, not $live)
            and contract_id in (select contract_id from ending_contracts))
    group by contract_id
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

-- the day each end_contract of today ends its contract: today, or the end of the billed period
end_days as (
    select e.case_id, e.level_no, e.contract_id,
           case json_extract_string(e.params_json, '$.when')
               when 'immediately' then cast($as_of as date)
               else coalesce(k.billed_until, p.period_end, cast($as_of as date)) end as effective_on
    from executed_actions e
    left join running_periods p on p.contract_id = e.contract_id
    left join ending_contracts k on k.contract_id = e.contract_id
    where e.action = 'end_contract'
),

-- and the end of today that takes effect first (then in case order), which ends each contract today
contract_ends as (
    select *,
           first_value(case_id) over today as first_case_id,
           first_value(effective_on) over today as first_effective_on
    from end_days
    window today as (partition by contract_id order by effective_on, case_id, level_no)
),

-- an end that finds its contract ended by the day it would take effect: by an end recorded on an
-- earlier day effective by then, by its contracts row (ended before today, or to end before this end
-- would; the row the billing system wrote back for this pipeline's own end of today is not earlier),
-- or by another end of today that takes effect no later
blocked as (
    select c.case_id, c.level_no, c.first_case_id, c.first_effective_on,
           b.case_id as before_case_id, b.effective_on as before_effective_on, k.ended_on,
           coalesce(b.effective_on <= c.effective_on, false) as by_earlier_end,
           coalesce(k.ended_on < greatest(c.effective_on, cast($as_of as date)), k.status = 'ended') as by_contract_row,
           c.case_id <> c.first_case_id as by_end_today
    from contract_ends c
    join ending_contracts k on k.contract_id = c.contract_id
    left join ended_before b on b.contract_id = c.contract_id
),

already_ended as (
    select case_id, level_no,
           case when by_earlier_end then before_case_id
                when by_contract_row then null
                else first_case_id end as ended_by_case_id,
           case when by_earlier_end then before_effective_on
                when by_contract_row then ended_on
                else first_effective_on end as ended_on
    from blocked
    where by_earlier_end or by_contract_row or by_end_today
),

final as (
    select e.case_id, e.level_no, e.catch_up, e.action_no, e.action, e.channel, e.template,
           case e.action
               when 'webhook' then json_object('event', json_extract_string(e.params_json, '$.event'))
               when 'end_contract' then case when x.case_id is not null then json_object(
                   'when', json_extract_string(e.params_json, '$.when'),
                   'already_ended', true,
                   'already_ended_by_case', x.ended_by_case_id,
                   'already_ended_on', x.ended_on,
                   'credit_note_amount', cast(0 as decimal(18, 2)))
               else json_object(
                   'when', json_extract_string(e.params_json, '$.when'),
                   'effective_on', c.effective_on,
                   -- no billed period running today: nothing to credit
                   'credit_note_amount', case when json_extract_string(e.params_json, '$.when') = 'immediately'
                       then coalesce(cast(cast((cast(p.amount * 100 as hugeint) * (p.period_end - cast($as_of as date)) * 2
                                                + (p.period_end - p.period_start + 1))
                                               // (2 * (p.period_end - p.period_start + 1)) as decimal(18, 2)) * 0.01
                                          as decimal(18, 2)), 0)
                       else 0 end,
                   'credit_note_for_invoice_id', p.invoice_id) end
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
    left join contract_ends c on c.case_id = e.case_id and c.level_no = e.level_no and e.action = 'end_contract'
    left join already_ended x on x.case_id = e.case_id and x.level_no = e.level_no and e.action = 'end_contract'
)

select * from final
