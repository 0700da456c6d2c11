-- Suspensions in force on $as_of. from_date is the first suspended day and to_date
-- the day dunning resumes, so a period covers from_date <= day < to_date.
with final as (
    select distinct scope, coalesce(target_id, '*') as target_id
    from stg_suspensions
    where from_date <= $as_of
      and (to_date is null or to_date > $as_of)
)

select * from final
