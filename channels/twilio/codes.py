"""Twilio error codes by what they mean for a retry (REFERENCE §1, twilio.com/docs/api/errors/CODE)."""

from __future__ import annotations

# The number can never receive (bad, stopped until START, not mobile, blocked, unknown, landline).
SUPPRESS_CODES = frozenset({21211, 21610, 21614, 30004, 30005, 30006})
# Filtered as spam: the same text will be filtered again.
FILTERED_CODES = frozenset({30007})
PERMANENT_CODES = SUPPRESS_CODES | FILTERED_CODES
# Too many requests, queue overflow, unreachable handset, unknown, carrier congestion: try again later.
TRANSIENT_CODES = frozenset({20429, 30001, 30003, 30008, 30017})
# Authentication failed: a config problem, not the message's.
AUTH_CODES = frozenset({20003})
