-- The contract balances a range writes for the days after range_flushed.through up to $through
-- (pipeline/warehouse/range_days.py): each row a day computed, on that day and on each later day its
-- contract was carried (not recomputed), with the days its oldest receivable is overdue moved on.
-- Nothing else of such a contract changed in between (no input of its customer is dated in between and
-- no receivable of it fell due: range_next_changes). A span is a computed row and the last day it was
-- carried: closed ones (range_carried_spans) end the day before their contract was computed again; an
-- open one (range_balances) is carried up to $through. On the day it was computed, the row is the
-- computed one: days_overdue of that day is what int_contract_balances computed. The range writes these
-- rows every few days in one statement, not one statement a day: the rows are the same, the writing
-- costs far less.
with flushed as (
    select through as after from range_flushed
),

spans as (
    select * from range_carried_spans
    union all by name
    select *, cast($through as date) as carried_to from range_balances
),

carried as (
    select s.*, cast(g.day as date) as carried_on
    from spans s
    cross join flushed f
    cross join generate_series(greatest(s.as_of, f.after + 1), least(s.carried_to, cast($through as date)),
                               interval 1 day) g(day)
),

final as (
    select * exclude (carried_to, carried_on)
             replace (carried_on as as_of, days_overdue(carried_on, oldest_due_date) as oldest_days_overdue)
    from carried
)

select * from final
