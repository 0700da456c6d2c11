"""What every transport shares: a result, and the two ways a send can fail.

The dispatcher decides what happens next from the exception class alone:
a TransientError leaves the action `failed` and retried on the next run (up
to a limit), a PermanentError stops retrying at once. Neither is raised for
an outcome that is unknown (a connection lost after the message was handed
over): transports that can tell raise AmbiguousDelivery, and the action is
put up for review instead of being resent or dropped.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SendResult:
    """What the receiving side said: its id for the message, when it gives one."""

    provider_message_id: str | None


class ChannelError(Exception):
    """A send that did not succeed; the message says what the other side answered."""


class TransientError(ChannelError):
    """Worth retrying later: timeouts, refused connections, 4xx SMTP replies, HTTP 5xx/429."""


class PermanentError(ChannelError):
    """Retrying will not help: recipient refused, HTTP 4xx, no address to send to."""


class AmbiguousDelivery(ChannelError):
    """The message may or may not have arrived (lost after being handed over)."""
