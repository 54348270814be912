"""SMS: one short text per subscriber in their language, sent through Twilio; citizen commands by SMS."""

from __future__ import annotations

from channels.sms.commands import Command, CommandKind, parse_command, reply_for, reply_text, reply_twiml
from channels.sms.inbound import (
    DeliveryState,
    InvalidCallback,
    StatusUpdate,
    parse_form,
    parse_inbound,
    parse_status_callback,
    validate_signature,
)
from channels.sms.provider import (
    SenderRates,
    SenderStrategy,
    TwilioConfig,
    TwilioSms,
    is_short_code,
)
from channels.sms.render import (
    DEFAULT_PRICE_PER_SEGMENT,
    DEFAULT_SEVERITY_BUDGETS,
    Budget,
    FittedText,
    SmsRenderer,
    check_budget,
)
from channels.sms.segments import Encoding, SegmentInfo, is_gsm7, normalise_gsm7, sms_segments
from channels.twilio.client import (
    DELIVERY_PARAM,
    SentMessage,
    TwilioHttp,
    TwilioRejected,
    TwilioUnavailable,
    build_client,
    map_twilio_error,
    mask_number,
)

__all__ = [
    "DEFAULT_PRICE_PER_SEGMENT",
    "DEFAULT_SEVERITY_BUDGETS",
    "DELIVERY_PARAM",
    "Budget",
    "Command",
    "CommandKind",
    "DeliveryState",
    "Encoding",
    "FittedText",
    "InvalidCallback",
    "SegmentInfo",
    "SenderRates",
    "SenderStrategy",
    "SentMessage",
    "SmsRenderer",
    "StatusUpdate",
    "TwilioConfig",
    "TwilioHttp",
    "TwilioRejected",
    "TwilioSms",
    "TwilioUnavailable",
    "build_client",
    "check_budget",
    "is_gsm7",
    "is_short_code",
    "map_twilio_error",
    "mask_number",
    "normalise_gsm7",
    "parse_command",
    "parse_form",
    "parse_inbound",
    "parse_status_callback",
    "reply_for",
    "reply_text",
    "reply_twiml",
    "sms_segments",
    "validate_signature",
]
