"""Channels checked before anything is handed over: one message that names the setting.

`check_channels` runs at the start of every dispatch (and of `dunning run`, before the day is
planned): a webhook or SMS secret that is missing or malformed, a URL that is not allowed, SMTP
credentials that cannot be used, a sender address that is not valid. Any of them stops dispatch
before a single row is marked `sending`, so nothing is sent and nothing is left in `sending`;
the message names the setting (`channels.webhook.secret_env`, ...) and never the secret, and a
URL is printed with its credentials redacted.
"""

from __future__ import annotations

import os

from pipeline.config.settings import HttpEndpointSettings, Settings, SmtpSettings, redact_url


class ChannelConfigError(ValueError):
    """A configured channel that cannot work; nothing was sent. The message names the setting(s)."""


def http_secret(cfg: HttpEndpointSettings, setting: str) -> str:
    """The signing secret of a webhook or SMS endpoint from its environment variable, checked."""
    from pipeline.delivery.channels.http import secret_key

    value = os.environ.get(cfg.secret_env)
    if not value:
        raise ChannelConfigError(
            f"{setting}.secret_env: the environment variable {cfg.secret_env} (the signing secret for "
            f"{redact_url(cfg.url)}) is not set")
    try:
        secret_key(value)
    except ValueError as exc:
        raise ChannelConfigError(
            f"{setting}.secret_env: the environment variable {cfg.secret_env} does not hold a usable "
            f"signing secret: {exc}. A Standard Webhooks secret is whsec_ followed by the base64 of the key."
        ) from None
    return value


def _check_url(cfg: HttpEndpointSettings, setting: str) -> None:
    from pipeline.delivery.channels.http import validate_url

    try:
        validate_url(cfg.url)
    except ValueError as exc:
        raise ChannelConfigError(f"{setting}.url: {exc}") from None


def smtp_credentials(cfg: SmtpSettings) -> tuple[str | None, str | None]:
    """SMTP login from the environment, checked: both or neither, never in plain text off this machine."""
    from pipeline.delivery.channels.smtp import _is_loopback

    username, password = cfg.credentials()
    if (username is None) != (password is None):
        have, missing = (cfg.username_env, cfg.password_env) if username else (cfg.password_env, cfg.username_env)
        raise ChannelConfigError(
            f"channels.email.username_env / password_env: the environment variable {have} is set but "
            f"{missing} is not (set both, or neither for a relay without login)")
    if username is not None and cfg.security == "none" and not _is_loopback(cfg.host):
        raise ChannelConfigError(
            f"channels.email.security: none would send the SMTP login in plain text to {cfg.host}:{cfg.port}; "
            "use starttls or tls")
    return username, password


def check_channels(settings: Settings) -> None:
    """Raise ChannelConfigError naming every configured channel that cannot work, before any sending."""
    from pipeline.delivery.outbox import valid_address

    problems = []
    channels = settings.channels
    if channels.email is not None:
        try:
            smtp_credentials(channels.email)
        except ChannelConfigError as exc:
            problems.append(str(exc))
        if valid_address(settings.organization.email) is None:
            problems.append(f"organization.email: {settings.organization.email!r} is not a valid email address "
                            "(the sender of every email)")
    for name, cfg in (("webhook", channels.webhook), ("sms", channels.sms)):
        if cfg is None:
            continue
        for check in (_check_url, http_secret):
            try:
                check(cfg, f"channels.{name}")
            except ChannelConfigError as exc:
                problems.append(str(exc))
    if problems:
        raise ChannelConfigError("; ".join(problems) if len(problems) == 1 else
                                 "channels not usable, nothing was sent:\n- " + "\n- ".join(problems))
