-- The action ledger with everything that explains a row: the policy version (and when it
-- was in force), how the case was routed to it, and the level's timing rule. Left joins:
-- versions are never deleted, but a ledger row must never vanish from this view.
with final as (
    select l.action_key, l.case_id, l.scope, l.target_id, l.contract_id, l.customer_id, l.currency,
           l.policy_id, l.policy_version,
           v.effective_from as version_effective_from,
           v.effective_to as version_effective_to,
           v.in_file as version_in_file,
           coalesce(l.routed_by, c.routed_by) as routed_by,
           c.experiment, c.arm,
           c.opened_on as case_opened_on,
           l.level_no, l.level_name,
           pl.anchor as level_anchor,
           pl.offset_days as level_offset_days,
           pl.payment_term_days as level_payment_term_days,
           l.action, l.channel, l.template, l.scheduled_on, l.executed_on, l.level_due_date,
           l.followed_invoice_id, l.days_overdue,
           l.principal, l.fee, l.fees_total, l.interest, l.amount_demanded,
           l.status, l.dispatch_mode, l.status_changed_on, l.confirmed_on,
           l.document_path, l.provider_message_id, l.details,
           payment_reference(l.case_id) as payment_reference
    from action_ledger l
    left join case_register c on c.case_id = l.case_id
    left join policy_versions v on v.policy_version = l.policy_version
    left join policy_levels pl on pl.policy_version = l.policy_version and pl.level_no = l.level_no
)

select * from final order by executed_on, action_key
