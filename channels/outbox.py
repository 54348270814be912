"""Outbox mode: a channel that sends nothing; the dispatcher stores each message for people to read."""

from __future__ import annotations

from channels.base import Channel, ChannelLimits, OutboundMessage


class Outbox(Channel):
    """Accepts every message and returns a local id; nothing leaves the machine. Never retries."""

    mode = "outbox"
    limits = ChannelLimits(rate_per_second=1000.0, burst=1000, max_batch=500)

    def send(self, message: OutboundMessage) -> str:
        return f"outbox-{self.name}-{message.reference}"
