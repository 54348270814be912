"""Sending SMS from the gateway phone through the `android-sms-gateway` client library (local or cloud server).

Retries: never itself. A timeout is `RETRY` in doubt (the message id we chose lets the retry ask the gateway
first); the phone or server unreachable, 429, 5xx and a message the phone refused for Android's sending limit
(RESULT_ERROR_LIMIT_EXCEEDED) are `RETRY`; 400 (a number the gateway cannot send to) and any other failed state are
`FAILED`. Limits: the phone's declared buckets (Android's window, the daily cap), each message costing its parts.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime

import httpx
from android_sms_gateway import APIClient, Message, MessageState, ProcessState, TextMessage
from android_sms_gateway.errors import APIError, BadRequestError, NotFoundError
from android_sms_gateway.http import HttpxHttpClient

from channels.base import (
    Channel,
    ChannelLimits,
    OutboundMessage,
    Outcome,
    Proceed,
    RateBucket,
    Renderer,
    SendResult,
    send_one_of_batch,
    stopped_result,
)
from channels.sms.segments import sms_segments
from channels.smsgateway.settings import SmsGatewayConfig

log = logging.getLogger(__name__)

# What Android answers when an app sends more than its window allows: the phone's limit, not the recipient's.
LIMIT_ERROR = "RESULT_ERROR_LIMIT_EXCEEDED"
# The gateway already holds a message with this id: an earlier attempt got through.
CONFLICT = 409
# Wait this long before trying a message the phone refused for its limit again (the window refills slowly).
LIMIT_RETRY_S = 60.0


def message_id(message: OutboundMessage) -> str:
    """The id we give the gateway for a message: our reference (a delivery id leads it, so delivery states find
    their row) and a digest of recipient and text, so a reused reference (a fresh database) never matches an old
    message when a send in doubt is looked up."""
    digest = hashlib.sha256(f"{message.recipient}\n{message.text}".encode()).hexdigest()[:12]
    return f"{message.reference}-{digest}"[:36]


class SimGateway(Channel):
    """SMS from one Android phone's SIM (SMS Gateway for Android): small volumes, within the phone's limits."""

    def __init__(self, renderer: Renderer, *, config: SmsGatewayConfig) -> None:
        """Raises: ValueError without the gateway's URL or password."""
        super().__init__(renderer)
        if not config.base_url or not config.password:
            raise ValueError("the SIM gateway needs smsgateway.base_url and smsgateway.password")
        self.config = config
        window = config.buckets()[0]
        self.limits = ChannelLimits(window.rate, int(window.burst), max_batch=20)

    def _client(self, http: httpx.Client) -> APIClient:
        return APIClient(
            self.config.username or None,
            self.config.password,
            base_url=self.config.base_url,
            http=HttpxHttpClient(http),
        )

    def _http(self) -> httpx.Client:
        return httpx.Client(timeout=self.config.timeout_s)

    def send(self, message: OutboundMessage) -> str:
        """Send one message.

        Raises: MessageRejected, ChannelUnavailable.
        """
        return send_one_of_batch(self, message)

    def send_many(self, messages: Sequence[OutboundMessage], *, proceed: Proceed | None = None) -> list[SendResult]:
        """Send a batch one message after another on one connection; `proceed` is asked before each."""
        results: list[SendResult] = []
        with self._http() as http:
            client = self._client(http)
            for m in messages:
                if proceed is not None and not proceed():
                    return results + [stopped_result(r) for r in messages[len(results) :]]
                results.append(self._send_one(client, m))
        return results

    def _send_one(self, client: APIClient, message: OutboundMessage) -> SendResult:
        ref = message.reference
        request = Message(
            phone_numbers=[message.recipient],
            text_message=TextMessage(text=message.text),
            id=message_id(message),
            with_delivery_report=True,
            ttl=self.config.message_ttl_s,
            sim_number=self.config.sim_number,
            device_id=self.config.device_id or None,
        )
        try:
            state = client.send(request)
        except httpx.TimeoutException as exc:
            return SendResult(ref, Outcome.RETRY, error=f"gateway timeout: {type(exc).__name__}", in_doubt=True)
        except httpx.TransportError as exc:
            return SendResult(ref, Outcome.RETRY, error=f"gateway unreachable: {type(exc).__name__}")
        except BadRequestError as exc:
            return SendResult(ref, Outcome.FAILED, error=f"gateway 400: {_detail(exc)}")
        except APIError as exc:  # 401/403 (credentials), 429, 5xx: not the message's fault
            status = exc.status_code or 0
            if status == CONFLICT:
                return self._known(client, message)
            wait = LIMIT_RETRY_S if status == 429 else None
            return SendResult(ref, Outcome.RETRY, error=f"gateway {status}: {_detail(exc)}", retry_after=wait)
        return self._outcome(ref, state)

    def _known(self, client: APIClient, message: OutboundMessage) -> SendResult:
        """A message id the gateway already holds (409: our earlier attempt got through): its state decides."""
        try:
            return self._outcome(message.reference, client.get_state(message_id(message)))
        except (APIError, httpx.HTTPError) as exc:
            return SendResult(message.reference, Outcome.RETRY, error=f"gateway lookup failed: {exc}", in_doubt=True)

    @staticmethod
    def _outcome(reference: str, state: MessageState) -> SendResult:
        if state.state is not ProcessState.Failed:
            return SendResult(reference, Outcome.SENT, provider_id=state.id)
        error = next((r.error for r in state.recipients if r.error), None) or "failed"
        if LIMIT_ERROR in error:
            return SendResult(
                reference, Outcome.RETRY, error=f"gateway phone limit: {error}", retry_after=LIMIT_RETRY_S
            )
        return SendResult(reference, Outcome.FAILED, provider_id=state.id, error=f"gateway failed: {error}")

    def reconcile(self, message: OutboundMessage, *, since: datetime) -> str | None:
        """The gateway's id when it already holds this message (we chose its id); None when it does not or
        cannot say (the message is then sent again)."""
        try:
            with self._http() as http:
                state = self._client(http).get_state(message_id(message))
        except NotFoundError:
            return None
        except (APIError, httpx.HTTPError) as exc:
            log.warning("delivery %s: gateway lookup failed (%s); sending again", message.reference, exc)
            return None
        return None if state.state is ProcessState.Failed else state.id

    def rate_buckets(self, message: OutboundMessage) -> tuple[list[RateBucket], int]:
        """The phone's buckets; a message costs one unit per SMS part (Android counts parts)."""
        return self.config.buckets(), sms_segments(message.text).segments


def _detail(exc: APIError) -> str:
    body = exc.response if isinstance(exc.response, dict) else {}
    return str(body.get("message") or body.get("error") or exc)[:200]
