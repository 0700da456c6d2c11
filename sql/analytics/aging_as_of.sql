-- Aging per currency on any day. Receivable-level aging needs each invoice's open amount on
-- that day, which only the inputs hold (open_receivables keeps the latest day only), so this
-- reads int_open_receivables: the daily model itself, turned into a table macro over today's
-- typed inputs (rows dated after $as_of are invisible to it, as in the run). One
-- implementation of the allocation rules; on the latest day this equals the `aging` view.
-- A bucket is of the ENUM type aging_buckets (sql/seeds/aging_buckets.csv, in its order): sorted
-- by it, the buckets come in their natural order, not alphabetically.
with receivables as (
    select * from int_open_receivables
),

bucketed as (
    select as_of, currency, open_amount, days_overdue,
           cast(aging_bucket(is_overdue, days_overdue) as aging_buckets) as bucket
    from receivables
),

final as (
    select as_of, currency, bucket,
           count(*) as receivables,
           cast(sum(open_amount) as decimal(18, 2)) as open_amount
    from bucketed
    group by as_of, currency, bucket
)

select as_of, currency, bucket, receivables, open_amount from final order by currency, bucket
