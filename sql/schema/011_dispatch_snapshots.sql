-- Dispatch snapshots (pipeline/delivery/shards.py): one row per snapshot of a day's documents
-- taken for rendering and sending in shards. `open` while its rows are `sending` in the ledger;
-- `collected` once every shard's outcomes are applied. A dispatch first finishes an open one.
create table if not exists dispatch_snapshots (
    snapshot_id varchar primary key,
    as_of date not null,
    shards integer not null,
    actions integer not null,
    status varchar not null
);
