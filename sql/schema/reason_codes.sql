-- The SEPA reason codes and card decline codes shipped in pipeline/failed_collections/*.csv.
create table if not exists sepa_reason_codes (
    code varchar primary key, name varchar not null, meaning varchar not null, failure_type varchar not null);
create table if not exists card_decline_codes (
    code varchar primary key, name varchar not null, meaning varchar not null, failure_type varchar not null);
