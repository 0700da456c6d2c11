-- Business rules for customers. `typed` holds the rows that passed typing.
-- One row per broken rule: the lowest priority number is reported.
-- Every copy of an id counts, also one already quarantined by a type or value rule
-- (`quarantined_keys`): the copies that passed are then quarantined too.
with duplicate_ids as (
    select customer_id from (select customer_id from typed union all select customer_id from quarantined_keys)
    group by customer_id having count(*) > 1
),

duplicates as (
    select _source_file, _source_row, 'duplicate_id' as rule, 'customer_id' as column_name,
           customer_id as value, 'customer_id appears more than once; every copy is quarantined' as message,
           1 as priority
    from typed where customer_id in (select customer_id from duplicate_ids)
),

bad_locales as (
    select _source_file, _source_row, 'invalid_locale', 'locale', locale,
           'expected a locale like de_DE or en', 2
    from typed where not regexp_full_match(locale, '[a-z]{2,3}(_[A-Z]{2})?')
),

final as (
    select * from duplicates
    union all select * from bad_locales
)

select * from final
