-- The ledger rows $as_of adds: one per executed level action and one per skipped level,
-- each with a deterministic key (case, level, action) so re-planning a day yields the
-- same keys and an existing key is never planned or sent again. Amounts carry their
-- breakdown: principal (the overdue amount today), fees (cumulative within the case) and
-- interest where the policy charges it.
with levels as (
    select d.*,
           -- a catch-up sends a level whose fee was recorded with it by the backfill
           case when d.executed and d.apply_fees and not d.catch_up then coalesce(f.fee, 0) else 0 end as fee
    from levels_due d
    left join policy_level_fees f
      on f.policy_version = d.policy_version and f.level_no = d.level_no and f.currency = d.currency
),

-- simple interest, actual/365, on each overdue invoice's open amount from its due date to
-- today, summed and rounded half-up to the cent. Integer arithmetic in cents and
-- 1/10000 percent keeps it exact: (x * 2 + d) // (2 * d) rounds x / d half-up.
case_interest as (
    select d.case_id,
           sum(cast(o.open_amount * 100 as hugeint)
               * cast(v.interest_rate_percent * 10000 as hugeint)
               * (cast($as_of as date) - o.due_date)) as numerator
    -- once per case: a catch-up can execute beside the case's scheduled level
    from (select distinct case_id, scope, target_id, contract_id, customer_id, currency, policy_version
          from levels_due where executed) d
    join policy_versions v on v.policy_version = d.policy_version and v.interest_rate_percent is not null
    join int_open_receivables o
      on o.is_overdue
     and case d.scope
             when 'contract' then o.contract_id = d.contract_id
             when 'invoice' then o.invoice_id = d.target_id
             else o.customer_id = d.customer_id and o.currency = d.currency
         end
    group by d.case_id
),

with_interest as (
    select l.*,
           cast(coalesce(cast((i.numerator * 2 + 365000000) // 730000000 as decimal(18, 2)) * 0.01, 0)
                as decimal(18, 2)) as interest
    from levels l
    left join case_interest i on i.case_id = l.case_id and l.executed
),

-- the billed period running today, for a credit note when a contract ends immediately
running_periods as (
    select contract_id, invoice_id, amount, period_start, period_end
    from stg_invoices
    where amount > 0
      and invoice_date <= $as_of
      and (voided_on is null or voided_on > $as_of)
      and period_start <= $as_of and period_end >= $as_of
      and contract_id in (select d.contract_id
                          from levels_due d
                          join policy_level_actions a using (policy_version, level_no)
                          where d.executed and a.action = 'end_contract')
    qualify row_number() over (partition by contract_id order by period_end desc, invoice_date desc, invoice_id desc) = 1
),

-- each executed level runs its actions in policy order; the fee is charged once, on the first
executed_actions as (
    select w.*, a.action_no, a.action, a.channel as action_channel, a.template as action_template,
           a.params_json
    from with_interest w
    join policy_level_actions a on a.policy_version = w.policy_version and a.level_no = w.level_no
    where w.executed
      -- a catch-up sends again only the documents nobody received
      and (not w.catch_up or exists (
          select 1 from int_catch_up_actions u
          where u.case_id = w.case_id and u.level_no = w.level_no and u.action = a.action))
),

action_details as (
    select e.*,
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
    left join stg_contracts k on k.contract_id = e.contract_id
),

rows as (
    select case_id, scope, target_id, contract_id, customer_id, currency, policy_id, policy_version, routed_by,
           level_no, level_name, action, action_channel as channel, action_template as template, scheduled_on,
           payment_term_days, followed_invoice_id, days_overdue, demanded_principal,
           case when action_no = 1 then fee else 0 end as fee, fees_before + fee as fees_total, interest,
           details, true as executed, catch_up
    from action_details
    union all
    select case_id, scope, target_id, contract_id, customer_id, currency, policy_id, policy_version, routed_by,
           level_no, level_name, 'level_skipped', null, null, scheduled_on,
           payment_term_days, followed_invoice_id, days_overdue, 0, 0, 0, 0, null, false, false
    from with_interest
    where not executed
),

final as (
    select case_id || '/L' || level_no || '/' || (case when executed then action else 'skipped' end)
               || (case when catch_up then '+catch_up' else '' end) as action_key,
           case_id, scope, target_id, contract_id, customer_id, currency,
           policy_id, policy_version, routed_by, level_no, level_name, action, channel, template,
           scheduled_on,
           cast($as_of as date) as executed_on,
           case when executed then cast($as_of as date) + payment_term_days end as level_due_date,
           followed_invoice_id, days_overdue,
           cast(demanded_principal as decimal(18, 2)) as principal,
           cast(fee as decimal(18, 2)) as fee,
           cast(fees_total as decimal(18, 2)) as fees_total,
           cast(interest as decimal(18, 2)) as interest,
           cast(demanded_principal + fees_total + interest as decimal(18, 2)) as amount_demanded,
           case when not executed then 'skipped'
                when action_is_document(action) then 'planned'
                else 'recorded' end as status,
           cast(details as varchar) as details
    from rows
)

select * from final
