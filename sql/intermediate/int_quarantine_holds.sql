-- What dunning holds because an input row naming it sits in the quarantine: one row per held
-- scope and target and per quarantined row that holds it (table, file, row and rule, to explain
-- it). A quarantined row is missing from the day's data: a payment that settled an invoice, a
-- credit note that lowered a balance, a suspension that was meant. Dunning what the other rows
-- show would demand money already paid or break a promise not to dun, so what the row names is
-- held like a suspension (int_dunning_targets.suspended, int_col_active_cases.held: no case opens,
-- no level or collection step runs, the schedule does not move) until the row is fixed and
-- ingested again (docs/design.md: not dunning what is ambiguous is the safe side).
--
-- What a row names, read from its record (the raw row; control characters off, ids otherwise as
-- written, as ingestion loads them):
-- * an invoice: the contract of its contract_id, and the customer of its customer_id when that
--   contract is neither a loaded contract of that customer nor a contract row of that customer
--   quarantined itself (whose invoices are all quarantined) or there is none: the invoice could be
--   any of the customer's;
-- * a payment: the contract of its contract_id and the contract of the loaded invoice of its
--   invoice_id (both when they differ: which one the money was for is a guess). A payment naming
--   neither holds nothing: who paid cannot be read; the quarantine's share stop
--   (ingestion.stop_when_quarantined_share_above) is what guards against many of those. A line the
--   CSV reader rejected has the values read from it by position in its record, so it names what its
--   leading values name (ids come first);
-- * a suspension: scope customer, contract or invoice with a target: that target, as the suspension
--   would have held it; a target whose scope is no valid scope or names no loaded row of it
--   (unknown_target): that id in every scope; scope global, or no target at all (missing, or
--   unreadable): everything, a global hold, because the row could have been any suspension,
--   a global one included, and a suspension is an explicit instruction not to dun.
-- Rows of customers and contracts hold nothing themselves: what names a contract or customer that is
-- not loaded is quarantined with it (unknown_contract, unknown_customer) and is no target.
--
-- A row holds from its own first date (held_from: invoice_date, booked_on or from_date; every day
-- when that is unreadable or a date broke the row's rule): rows dated after a day are invisible
-- when computing it, so a payment
-- booked in April, quarantined, does not change March. A range needs no day of its own for a hold
-- (pipeline/warehouse/range_days.py): it starts and never ends, and, like a suspension's start,
-- only holds back what would happen, which a customer the day does not recompute has nothing of.
-- Each hold is one customer's (a contract's, an invoice's) or everyone's, and the loaded rows read
-- (stg_contracts, stg_invoices) are found from the record's own ids, so a range day that
-- recomputes some customers gets exactly their holds.
with records as (
    select table_name, source_file, source_row, rule,
           regexp_replace(record ->> 'contract_id', '[[:cntrl:]]', '', 'g') as contract_id,
           regexp_replace(record ->> 'customer_id', '[[:cntrl:]]', '', 'g') as customer_id,
           regexp_replace(record ->> 'invoice_id', '[[:cntrl:]]', '', 'g') as invoice_id,
           regexp_replace(record ->> 'scope', '[[:cntrl:]]', '', 'g') as suspension_scope,
           regexp_replace(record ->> 'target_id', '[[:cntrl:]]', '', 'g') as suspension_target,
           -- the first day the row could count: its own first date (an invoice's invoice_date, a
           -- payment's booked_on, a suspension's from_date), unless it is unreadable or a date broke
           -- the row's rule (out of range, before the date it follows: it may be the typo): every day
           case when column_name in ('invoice_date', 'due_date', 'booked_on', 'reversed_on', 'from_date', 'to_date')
                     or rule in ('due_before_invoice_date', 'reversed_before_booked', 'empty_period')
                then null
                else try_cast(trim(record ->> (case table_name when 'invoices' then 'invoice_date'
                                                               when 'payments' then 'booked_on'
                                                               else 'from_date' end), ' ') as date)
           end as held_from
    from quarantine
    where table_name in ('invoices', 'payments', 'suspensions')
),

-- rows dated after the day are invisible when computing it (SPEC 3: any past day can be recomputed
-- from today's files), so a quarantined row holds nothing before its own date
dated as (
    select * from records where held_from is null or held_from <= $as_of
),

-- ids as written (ingestion keeps spaces around them: `CT1 ` is another contract than `CT1`); one of
-- spaces (U+0020) only is empty, as ingestion reads it
quarantined as (
    select table_name, source_file, source_row, rule,
           case when trim(contract_id, ' ') <> '' then contract_id end as contract_id,
           case when trim(customer_id, ' ') <> '' then customer_id end as customer_id,
           case when trim(invoice_id, ' ') <> '' then invoice_id end as invoice_id,
           case when trim(suspension_scope, ' ') <> '' then suspension_scope end as suspension_scope,
           case when trim(suspension_target, ' ') <> '' then suspension_target end as suspension_target,
           held_from
    from dated
),

-- contracts quarantined for a fault of their own, with the customer they name: their invoices are
-- quarantined too (unknown_contract), and nothing of theirs can change another contract's balance
quarantined_contracts as (
    select record ->> 'contract_id' as contract_id, record ->> 'customer_id' as customer_id
    from quarantine
    where table_name = 'contracts'
),

-- an invoice's or a payment's own contract
named_contracts as (
    select q.table_name, q.source_file, q.source_row, q.rule, q.held_from,
           'contract' as scope, q.contract_id as target_id, 'contract_id' as named_by
    from quarantined q
    where q.table_name in ('invoices', 'payments') and q.contract_id is not null
),

-- the contract named does not place the invoice with the customer named (none, unknown, another's)
invoice_customers as (
    select q.table_name, q.source_file, q.source_row, q.rule, q.held_from,
           'customer' as scope, q.customer_id as target_id, 'customer_id' as named_by
    from quarantined q
    where q.table_name = 'invoices' and q.customer_id is not null
      and not exists (select 1 from stg_contracts k
                      where k.contract_id = q.contract_id and k.customer_id = q.customer_id)
      and not exists (select 1 from quarantined_contracts k
                      where k.contract_id = q.contract_id and k.customer_id = q.customer_id)
),

payment_invoice_contracts as (
    select q.table_name, q.source_file, q.source_row, q.rule, q.held_from,
           'contract' as scope, i.contract_id as target_id, 'invoice_id' as named_by
    from quarantined q
    join stg_invoices i on i.invoice_id = q.invoice_id
    where q.table_name = 'payments' and i.contract_id is distinct from q.contract_id
),

suspension_scopes as (
    select q.*,
           coalesce(q.suspension_scope in ('customer', 'contract', 'invoice'), false)
           and q.rule <> 'unknown_target' as scope_readable
    from quarantined q
    where q.table_name = 'suspensions'
),

suspension_targets as (
    select s.table_name, s.source_file, s.source_row, s.rule, s.held_from,
           a.scope, s.suspension_target as target_id,
           case when s.scope_readable then 'target_id' else 'target_id, any scope' end as named_by
    from suspension_scopes s
    join (values ('customer'), ('contract'), ('invoice')) a(scope)
      on a.scope = s.suspension_scope or not s.scope_readable
    where s.suspension_target is not null and s.suspension_scope is distinct from 'global'
),

suspension_globals as (
    select s.table_name, s.source_file, s.source_row, s.rule, s.held_from,
           'global' as scope, '*' as target_id,
           case when s.suspension_scope = 'global' then 'scope global' else 'no target' end as named_by
    from suspension_scopes s
    where s.suspension_scope = 'global' or s.suspension_target is null
),

holds as (
    select * from named_contracts
    union all select * from invoice_customers
    union all select * from payment_invoice_contracts
    union all select * from suspension_targets
    union all select * from suspension_globals
),

final as (
    select distinct h.scope, h.target_id,
           case h.scope when 'contract' then k.customer_id when 'customer' then h.target_id
                        when 'invoice' then i.customer_id end as customer_id,
           case h.scope when 'contract' then k.currency when 'invoice' then i.currency end as currency,
           h.named_by, h.table_name, h.source_file, h.source_row, h.rule, h.held_from
    from holds h
    left join stg_contracts k on h.scope = 'contract' and k.contract_id = h.target_id
    left join stg_invoices i on h.scope = 'invoice' and i.invoice_id = h.target_id
)

select * from final
