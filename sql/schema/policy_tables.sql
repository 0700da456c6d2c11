-- The policy file as tables (pipeline/config/policy.py load_into_duckdb): versions, levels,
-- their actions, fees, thresholds and routing rules. Versions are never deleted.
create table if not exists policy_versions (
    policy_id varchar not null, policy_version varchar not null primary key,
    is_default boolean not null, effective_from date not null, effective_to date,
    scope varchar not null, grace_days integer not null, template_set varchar not null,
    interest_rate_percent decimal(8,4), spec_json varchar not null, in_file boolean not null default true);
create table if not exists policy_levels (
    policy_version varchar not null, level_no integer not null, level_name varchar not null,
    enabled boolean not null, anchor varchar not null, offset_days integer not null,
    payment_term_days integer not null, channel varchar not null, template varchar not null,
    primary key (policy_version, level_no));
create table if not exists policy_level_actions (
    policy_version varchar not null, level_no integer not null, action_no integer not null,
    action varchar not null, channel varchar, template varchar, params_json varchar not null,
    primary key (policy_version, level_no, action_no));
create table if not exists policy_routing (
    policy_version varchar not null primary key, priority integer not null, enabled boolean not null);
create table if not exists policy_routing_criteria (
    policy_version varchar not null, criterion_no integer not null, entity varchar not null,
    field varchar not null, op varchar not null, "values" varchar[] not null,
    primary key (policy_version, criterion_no));
create table if not exists policy_thresholds (
    policy_version varchar not null, currency varchar not null, threshold decimal(18,2) not null,
    primary key (policy_version, currency));
create table if not exists policy_level_fees (
    policy_version varchar not null, level_no integer not null, currency varchar not null,
    fee decimal(18,2) not null, primary key (policy_version, level_no, currency));
-- champion/challenger (pipeline/config/policy.py Experiment): a share of the version's new cases
-- goes to the challenger policy
create table if not exists policy_experiments (
    policy_version varchar not null primary key, experiment varchar not null,
    challenger_policy_id varchar not null, share_percent integer not null);
alter table policy_versions add column if not exists interest_rate_percent decimal(8,4);
alter table policy_versions add column if not exists in_file boolean default true;
