-- The failed transactions each collection case open at the start of $as_of is about.
-- Nothing of this is stored: it is derived again every day from the inputs, the case
-- register and the ledger, by the rules that attached each failure on its day:
-- (a) the failure a per-transaction case was opened for (its target);
-- (b) for a per-mandate case, every failure of its mandate and failure type;
-- (c) a failure for the same invoice as one of those: the same money failing again;
-- (d) a failure bound to no invoice, of the same contract and mandate as one of those,
--     when the case's last step on or before its day was a retry: the retry's result.
-- A refusal (hard) of a soft case's money is neither (c) nor (d): the debtor refused, so the money
-- is not retried (SPEC 6: soft failures only); it opens or joins its own hard case, and the soft
-- case closes as superseded (int_col_case_closures, the macro hard_after_soft).
-- A failure belongs to the case that opened first among those open on its day (a case
-- closing on a day takes no failure of that day). Cases opened today are not here: today's
-- openings are decided after today's closures (int_col_case_openings). `repeat`: the failure is
-- money the case already claims failing again ((c), (d)), so it adds nothing to the claim.
with cases as (
    select case_id, target_id, counting, failure_type, opened_on, closed_on
    from case_register
    where scope = 'collection' and opened_on < $as_of
),

-- (a)
own_failures as (
    select c.case_id, c.opened_on, false as repeat, f.*
    from cases c
    join int_col_failures f on f.payment_id = c.target_id
    where c.counting = 'per_transaction'
),

-- (b)
mandate_failures as (
    select c.case_id, c.opened_on, false as repeat, f.*
    from cases c
    join int_col_failures f
      on f.mandate_id = c.target_id and f.failure_type = c.failure_type
     and f.failed_on >= c.opened_on and (c.closed_on is null or c.closed_on > f.failed_on)
    where c.counting = 'per_mandate'
),

roots as (
    select * from own_failures
    union all
    select * from mandate_failures
),

-- (c)
same_invoice as (
    select c.case_id, c.opened_on, true as repeat, f.*
    from (select distinct case_id, invoice_id from roots where invoice_id is not null) r
    join cases c using (case_id)
    join int_col_failures f
      on f.invoice_id = r.invoice_id
     and f.failed_on >= c.opened_on and (c.closed_on is null or c.closed_on > f.failed_on)
     and not hard_after_soft(c.failure_type, f.failure_type)
),

executed_steps as (
    select case_id, level_no as step_no, min(executed_on) as executed_on,
           bool_or(action = 'attempt_payment') as is_retry
    from action_ledger
    where scope = 'collection' and executed_on < $as_of and status_is_done(status)
    group by case_id, level_no
),

-- (d)
retry_candidates as (
    select c.case_id, c.opened_on, true as repeat, f.*
    from (select distinct case_id, contract_id, mandate_id from roots where invoice_id is null) r
    join cases c using (case_id)
    join int_col_failures f
      on f.invoice_id is null and f.contract_id = r.contract_id and f.mandate_id is not distinct from r.mandate_id
     and f.failed_on > c.opened_on and (c.closed_on is null or c.closed_on > f.failed_on)
     and not hard_after_soft(c.failure_type, f.failure_type)
),

last_step_before as (
    select r.*, s.is_retry
    from retry_candidates r
    -- on the retry's own day too: a card retry declined at once is reported with that day's date
    join executed_steps s on s.case_id = r.case_id and s.executed_on <= r.failed_on
    qualify row_number() over (partition by r.case_id, r.payment_id order by s.step_no desc) = 1
),

retry_results as (
    select * exclude (is_retry) from last_step_before where is_retry
),

-- a failure that opened its own case belongs to it; any other to the first-opened match
joined as (
    select * exclude (rank_in_cases)
    from (
        -- a failure of the mandate is also "the same invoice" as itself: its own match (not a
        -- repeat) wins within the case
        select *, row_number() over (partition by payment_id order by opened_on, case_id, repeat) as rank_in_cases
        from (
            select * from mandate_failures
            union all select * from same_invoice
            union all select * from retry_results
        ) m
        where payment_id not in (select payment_id from own_failures)
    )
    where rank_in_cases = 1
),

final as (
    select a.case_id, a.payment_id, a.contract_id, a.customer_id, a.currency, a.invoice_id, a.mandate_id,
           a.amount, a.failed_on, a.reason_code, a.reason_known, a.failure_type, a.reason, a.repeat
    from (select * from own_failures union all select * from joined) a
    join cases c using (case_id)
    where c.closed_on is null
)

select * from final
