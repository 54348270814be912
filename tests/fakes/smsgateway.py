"""A local fake of SMS Gateway for Android (its local server mode) for tests: the real `android-sms-gateway` client
talks to it through `base_url`, and it produces the signed webhooks the phone would post.

Start it with ``with FakeSmsGateway() as fake:`` (127.0.0.1, a port the OS picks) and give the client
``base_url=fake.base_url`` with ``fake.username``/``fake.password``. Like the phone it:

- checks Basic auth (401), refuses a malformed number or an empty text (400) and a reused message id (409);
- enforces Android's sending window (`max_count` SMS parts per `window_s`, 30 per 30 minutes by default) and a
  daily cap: a message over either is accepted and comes back Failed with RESULT_ERROR_LIMIT_EXCEEDED, as Android
  answers (counted in `violations`, which a well-paced client keeps at 0);
- answers each message with its state (Pending, then `process()` moves it to Sent and Delivered, or Failed for
  numbers marked `undeliverable`), also by GET /messages/{id};
- signs every webhook it makes with its signing key (X-Signature = hex HMAC-SHA256 of body + X-Timestamp):
  `received(...)` for an SMS a citizen sent, `process()` for the delivery states of what was sent;
- can be told to fail: ``fake.fail_next(1, status=503)``, ``fake.hang_next(1, seconds=2)``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from channels.sms.segments import sms_segments
from channels.smsgateway.inbound import sign
from tests.fakes.server import LocalServer

E164 = re.compile(r"^\+[1-9]\d{7,14}$")
LIMIT_ERROR = "RESULT_ERROR_LIMIT_EXCEEDED"


@dataclass
class _Failure:
    status: int = 500
    hang: float = 0.0


@dataclass
class Webhook:
    """One signed webhook as the phone would post it."""

    body: bytes
    headers: dict[str, str]

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class _State:
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)  # accepted within the limits, in order
    parts: deque[tuple[float, int]] = field(default_factory=deque)  # (at, parts) in the Android window
    day: deque[tuple[float, int]] = field(default_factory=deque)
    failures: deque[_Failure] = field(default_factory=deque)
    requests: int = 0
    violations: int = 0


class FakeSmsGateway(LocalServer):
    """The gateway's /messages API with the phone's limits, and its signed webhooks."""

    def __init__(
        self,
        *,
        username: str = "sms",
        password: str = "gateway-password-1",  # noqa: S107 - a test credential
        signing_key: str = "gateway-signing-key",
        max_count: int = 30,
        window_s: float = 1800.0,
        daily_limit: int = 300,
        device_id: str = "ffffffffceb0b1db0000018e937c815b",
    ) -> None:
        super().__init__()
        self.username, self.password, self.signing_key = username, password, signing_key
        self.max_count, self.window_s, self.daily_limit = max_count, window_s, daily_limit
        self.device_id = device_id
        self.undeliverable: set[str] = set()
        self._state = _State()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/messages", self._send)
        app.router.add_get("/messages/{id}", self._get)

    @property
    def base_url(self) -> str:
        """The local server's API root (what the app shows as its local address)."""
        return f"http://127.0.0.1:{self.port}"

    # -- control ---------------------------------------------------------------------------------------------
    def fail_next(self, n: int = 1, *, status: int = 500) -> None:
        """Answer the next `n` POST /messages with `status`."""
        with self._lock:
            self._state.failures.extend(_Failure(status=status) for _ in range(n))

    def hang_next(self, n: int = 1, *, seconds: float = 2.0) -> None:
        """Hold the next `n` POST /messages `seconds` before handling them (to trip the client's timeout); the
        message is still taken, as a phone that answered late would."""
        with self._lock:
            self._state.failures.extend(_Failure(status=200, hang=seconds) for _ in range(n))

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Every message accepted within the limits, in order (id, phone, text, parts, at)."""
        with self._lock:
            return list(self._state.sent)

    @property
    def violations(self) -> int:
        """Messages Android would have refused for its limits (a well-paced client keeps this at 0)."""
        return self._state.violations

    def state_of(self, message_id: str) -> str | None:
        with self._lock:
            found = self._state.messages.get(message_id)
            return None if found is None else str(found["state"])

    def webhook(self, event: str, payload: dict[str, Any], *, at: float | None = None, event_id: str = "") -> Webhook:
        """A webhook signed as the phone signs it, `at` (Unix seconds; now by default)."""
        body = json.dumps(
            {
                "deviceId": self.device_id,
                "event": event,
                "id": event_id or secrets.token_urlsafe(15),  # unique per event, like the app's
                "payload": payload,
                "webhookId": "wh-1",
            }
        ).encode()
        stamp = str(int(time.time() if at is None else at))
        return Webhook(body, {"X-Signature": sign(self.signing_key, body, stamp), "X-Timestamp": stamp,
                              "Content-Type": "application/json"})  # fmt: skip

    def received(self, phone: str, text: str, *, at: float | None = None) -> Webhook:
        """The `sms:received` webhook for an SMS a citizen sent to the phone."""
        local = datetime.now(UTC).astimezone().isoformat(timespec="milliseconds")
        payload = {"messageId": f"m{abs(hash((phone, text))) % 10**8}", "message": text, "phoneNumber": phone,
                   "sender": phone, "simNumber": 1, "receivedAt": local}  # fmt: skip
        return self.webhook("sms:received", payload, at=at)

    def process(self) -> list[Webhook]:
        """Let the phone send what is pending: each message becomes Sent then Delivered (Failed for numbers in
        `undeliverable`); returns the signed sms:sent/sms:delivered/sms:failed webhooks, in order."""
        out: list[Webhook] = []
        with self._lock:
            pending = [m for m in self._state.messages.values() if m["state"] == "Pending"]
        for m in pending:
            base = {"messageId": m["id"], "phoneNumber": m["phone"], "simNumber": 1}
            now = datetime.now(UTC).astimezone().isoformat(timespec="milliseconds")
            if m["phone"] in self.undeliverable:
                m["state"] = "Failed"
                out.append(
                    self.webhook("sms:failed", {**base, "reason": "RESULT_ERROR_GENERIC_FAILURE", "failedAt": now})
                )
                continue
            m["state"] = "Delivered"
            out.append(self.webhook("sms:sent", {**base, "sentAt": now}))
            out.append(self.webhook("sms:delivered", {**base, "deliveredAt": now}))
        return out

    # -- the API ---------------------------------------------------------------------------------------------
    def _authorised(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return request.headers.get("Authorization", "") == f"Basic {expected}"

    async def _get(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _error(401, "unauthorized")
        with self._lock:
            found = self._state.messages.get(request.match_info["id"])
        if found is None:
            return _error(404, "message not found")
        return web.json_response(_state_json(found))

    async def _send(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _error(401, "unauthorized")
        with self._lock:
            self._state.requests += 1
            failure = self._state.failures.popleft() if self._state.failures else None
        if failure is not None and not failure.hang:
            return _error(failure.status, "injected failure")
        body = await request.json()
        phones = body.get("phoneNumbers") or []
        text = (body.get("textMessage") or {}).get("text") or ""
        if len(phones) != 1 or not E164.match(str(phones[0])):
            return _error(400, "invalid phone number")
        if not text:
            return _error(400, "empty message")
        message_id = str(body.get("id") or f"gen{next(self._ids)}")
        parts = sms_segments(text).segments
        now = time.monotonic()
        with self._lock:
            if message_id in self._state.messages:
                return _error(409, "message with this id already exists")
            over = self._over_limit(parts, now)
            record = {"id": message_id, "phone": phones[0], "text": text, "parts": parts, "at": now,
                      "state": "Failed" if over else "Pending", "error": LIMIT_ERROR if over else None}  # fmt: skip
            self._state.messages[message_id] = record
            if over:
                self._state.violations += 1
            else:
                self._state.parts.append((now, parts))
                self._state.day.append((now, parts))
                self._state.sent.append(record)
        if failure is not None:  # taken, but the answer comes late (the client may have given up)
            await asyncio.sleep(failure.hang)
        return web.json_response(_state_json(record), status=202)

    def _over_limit(self, parts: int, now: float) -> bool:
        for window, cap, times in ((self.window_s, self.max_count, self._state.parts),
                                   (86_400.0, self.daily_limit, self._state.day)):  # fmt: skip
            while times and now - times[0][0] >= window:
                times.popleft()
            if sum(p for _, p in times) + parts > cap:
                return True
        return False


def _state_json(m: dict[str, Any]) -> dict[str, Any]:
    recipient: dict[str, Any] = {"phoneNumber": m["phone"], "state": m["state"]}
    if m.get("error"):
        recipient["error"] = m["error"]
    return {"id": m["id"], "deviceId": "fake-phone", "state": m["state"], "recipients": [recipient],
            "isHashed": False, "isEncrypted": False}  # fmt: skip


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)
