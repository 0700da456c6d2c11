"""A failed run is mailed to the billing team through the configured email channel. On by default.

The recipient is DUNNING_ALERT_EMAIL, else the organization's address
(`organization.email` in dunning.yaml). The message goes through `channels.email`
(the same SMTP settings and login the reminders use); with no email channel
configured (the embedded default) it is written to `<outbox>/alerts/<run id>.eml`,
as the documents are. It names the job, the day or range, each failed step with
its error (a blocking check, an input stop, a refused day) and the run's page in
the UI (DAGSTER_WEBSERVER_URL, default http://127.0.0.1:3000). A message that
cannot be sent fails the sensor's tick, so the next tick tries again.
"""

import email.policy
import os
import re
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

import dagster as dg

from dagster_project.resources import DunningResource
from pipeline.config.settings import Settings
from pipeline.durable_files import atomic_write

ALERT_ENV = "DUNNING_ALERT_EMAIL"
WEBSERVER_ENV = "DAGSTER_WEBSERVER_URL"


def failure_message(settings: Settings, *, run_id: str, job: str, tags: dict[str, str],
                    errors: list[tuple[str, str]]) -> EmailMessage:
    """The notice of one failed run; `errors`: (step, message) per failed step (or the run's)."""
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    day = tags.get("dagster/partition") or (f"{start}..{end}" if start else "no partition")
    url = f"{os.environ.get(WEBSERVER_ENV, 'http://127.0.0.1:3000').rstrip('/')}/runs/{run_id}"
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = f"[dunning] run failed: {job} {day}"
    msg["From"] = settings.organization.email
    msg["To"] = os.environ.get(ALERT_ENV) or settings.organization.email
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = f"<run-failure-{run_id}@{settings.organization.email.rpartition('@')[2]}>"
    lines = [f"The Dagster run {run_id} of {job} for {day} failed.", ""]
    lines += [f"- {step}: {text}" for step, text in errors] or ["- (no step failed: see the run's log)"]
    lines += ["", f"Run: {url}",
              f"Triggered by: {tags.get('dunning/trigger') or tags.get('dagster/schedule_name') or 'a user'}",
              "", "Nothing is sent by a step after the one that failed; re-run the day once the cause is fixed "
              "(re-running the latest day sends nothing twice)."]
    msg.set_content("\n".join(lines))
    return msg


def deliver(settings: Settings, msg: EmailMessage, name: str) -> str:
    """Send through channels.email, or write `<outbox>/alerts/<name>.eml`; returns where it went."""
    data = msg.as_bytes()
    cfg = settings.channels.email
    if cfg is None:
        path = Path(settings.outbox) / "alerts" / f"{name}.eml"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data, fsync=False)
        return str(path)
    from pipeline.delivery.channels.setup import smtp_credentials
    from pipeline.delivery.channels.smtp import SmtpSender

    username, password = smtp_credentials(cfg)
    with SmtpSender(cfg.host, cfg.port, security=cfg.security, username=username, password=password,
                    timeout_seconds=cfg.timeout_seconds) as sender:
        sender.send(data, settings.organization.email, [msg["To"]])
    return f"SMTP {cfg.host}:{cfg.port} to {msg['To']}"


@dg.run_failure_sensor(
    name="run_failure_email",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Mails every failed run of this code location (the day, a backfill, a single asset) to "
                f"{ALERT_ENV} (default: organization.email) through channels.email; without an email channel "
                "the message is written to <outbox>/alerts/. On by default.",
)
def run_failure_email(context: dg.RunFailureSensorContext, dunning: DunningResource) -> None:
    run = context.dagster_run
    errors = [(e.step_key or "run", _step_error(e)) for e in context.get_step_failure_events()]
    checks = context.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    for entry in checks:
        evaluation = entry.dagster_event.event_specific_data
        if not evaluation.passed:
            errors.append((f"check {evaluation.asset_key.to_user_string()} {evaluation.check_name}",
                           evaluation.description or "failed"))
    if not errors and context.failure_event.message:
        errors = [("run", context.failure_event.message)]
    settings = dunning.settings()
    where = deliver(settings, failure_message(settings, run_id=run.run_id, job=run.job_name, tags=dict(run.tags),
                                              errors=errors), run.run_id)
    context.log.info(f"run {run.run_id} failed: notice sent ({where})")


def _step_error(event: dg.DagsterEvent) -> str:
    """What the step said: a Failure's description, else the innermost exception's message."""
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    error = data.error
    while error is not None and error.cause is not None:
        error = error.cause
    if error is None:
        return event.message or ""
    return re.sub(r"^[\w.]+: ", "", error.message.strip())  # "pkg.module.Error: text" -> "text"
