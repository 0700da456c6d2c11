-- Key figures on the latest day run: the analyst's default question needs no date.
with final as (
    select * from key_figures_as_of((select max(as_of) from run_log))
)

select * from final
