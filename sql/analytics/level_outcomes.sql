-- What each level achieved, on the latest day run (level_outcomes_as_of for any other day).
with final as (
    select * from level_outcomes_as_of((select max(as_of) from run_log))
)

select * from final
