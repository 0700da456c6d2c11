-- The failed-collection steps of the policy file as tables (pipeline/failed_collections/steps.py).
create table if not exists policy_collections (
    policy_version varchar not null, failure_type varchar not null, counting varchar not null,
    steps integer not null, payment_link varchar, primary key (policy_version, failure_type));
create table if not exists policy_collection_steps (
    policy_version varchar not null, failure_type varchar not null, step_no integer not null,
    step_type varchar not null, step_name varchar not null, wait varchar not null, grace_days integer not null,
    retry_when varchar, retry_days integer, params_json varchar not null,
    primary key (policy_version, failure_type, step_no));
-- a retry's longest wait for its result (null: the step is no retry)
alter table policy_collection_steps add column if not exists result_days integer;
create table if not exists policy_collection_step_actions (
    policy_version varchar not null, failure_type varchar not null, step_no integer not null,
    action_no integer not null, action varchar not null, channel varchar not null, template varchar,
    delay_days integer not null, params_json varchar not null,
    primary key (policy_version, failure_type, step_no, action_no));
create table if not exists policy_collection_charges (
    policy_version varchar not null, failure_type varchar not null, step_no integer not null,
    currency varchar not null, charge decimal(18,2) not null,
    primary key (policy_version, failure_type, step_no, currency));
