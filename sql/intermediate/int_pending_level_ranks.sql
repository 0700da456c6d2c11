-- Which levels are still to run after a case's last level done, in which order, and which of
-- them are in reach: one row per policy version, last level done and pending level. They depend
-- on nothing else, so they are ranked here once per such pair (a handful) instead of once per
-- case (hundreds of thousands on a day that opens every case of a history). Read by
-- int_pending_levels (each case after its last level) and marts/case_outlook (each case after
-- the level its day runs): the one place the rule of reach is stated.
with progress_points as (
    -- the last level of every active case, and every level of a version (the level a day runs)
    select policy_version, last_level_no from int_active_cases
    union
    select policy_version, level_no from policy_levels
),

pending_levels as (
    select p.policy_version, p.last_level_no, l.level_no, l.level_name, l.anchor, l.offset_days,
           l.payment_term_days, l.channel, l.template,
           row_number() over (partition by p.policy_version, p.last_level_no order by l.level_no) as pending_rank
    from progress_points p
    join policy_levels l
      on l.policy_version = p.policy_version and l.enabled and l.level_no > p.last_level_no
),

-- the next pending level is always in reach; a later one only through an unbroken run of
-- absolute levels, because a relative level waits for the one before it
final as (
    select *,
           bool_and(anchor <> 'previous_level' or pending_rank = 1) over (
               partition by policy_version, last_level_no order by pending_rank
               rows between unbounded preceding and current row
           ) as reachable
    from pending_levels
)

select * from final
