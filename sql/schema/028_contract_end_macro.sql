-- Whether a ledger row ends its contract: an end_contract that found the contract still running
-- (int_action_details marks one that did not `already_ended` in its details), exported (on a live
-- day, or in a simulation's own schema), or with `unexported`, recorded by a backfill (what would
-- have happened; never exported). A contract is ended once: the view contract_terminations lists
-- the exported ends, and int_action_details reads the earlier ones (a backfill's too, within a
-- range that is not live) to know that a later end ends nothing.
create or replace macro ends_contract(action, status, details, unexported) as
    action = 'end_contract' and json_extract(details, '$.already_ended') is null
    and (status_is_exported(status) or (unexported and status = 'not_dispatched'));
