-- Whether a ledger row ends its contract: an end_contract exported (on a live day, or in a
-- simulation's own schema) that found the contract still running. A contract is ended once: an
-- end_contract of a contract its contracts row shows ended, that an earlier end ended, or that
-- another case ends the same day is recorded (its level is done) but ends nothing and credits
-- nothing (int_action_details says so in its details). The view contract_terminations lists the
-- rows that end a contract, and int_action_details reads the earlier ones.
create or replace macro ends_contract(action, status, details) as
    action = 'end_contract' and status_is_exported(status) and json_extract(details, '$.already_ended') is null;
