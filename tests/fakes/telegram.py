"""A local fake of the Telegram Bot API for tests: python-telegram-bot's real Bot talks to it through `base_url`.

Start it with ``with FakeTelegram() as fake:`` (127.0.0.1, a port the OS picks) and give the bot
``base_url=fake.base_url``. It enforces Telegram's limits (30 messages/s per bot, 1/s per private chat, 20/min per
group or channel), answering 429 with ``parameters.retry_after`` like Telegram, records every message and can be
told to fail: ``fake.fail_next(1, status=502)``, ``fake.hang_next(1, seconds=2)``, ``fake.block_chat(42)``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.server import LocalServer


@dataclass
class _Failure:
    status: int = 500
    hang: float = 0.0


@dataclass
class _State:
    sent: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    limited: int = 0
    failures: deque[_Failure] = field(default_factory=deque)
    blocked: set[str] = field(default_factory=set)
    bot_times: deque[float] = field(default_factory=deque)
    chat_times: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    violations: int = 0  # sends the real Telegram would have refused (should stay 0 for a well-paced client)
    webhook: dict[str, Any] = field(default_factory=dict)  # what setWebhook was given (empty: none set)
    pending_updates: int = 0


class FakeTelegram(LocalServer):
    """The Bot API methods the service uses (getMe, sendMessage, setWebhook, deleteWebhook, getWebhookInfo), with
    Telegram's limits."""

    BOT_PER_S = 30
    CHAT_PER_S = 1
    GROUP_PER_MIN = 20

    def __init__(self, token: str = "123456:TEST-TOKEN", *, enforce: bool = True) -> None:  # noqa: S107
        super().__init__()
        self.token = token
        self.enforce = enforce
        self._state = _State()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/bot{token}/{method}", self._handle)

    @property
    def base_url(self) -> str:
        """What to give python-telegram-bot as `base_url` (it appends the token and the method)."""
        return f"http://127.0.0.1:{self.port}/bot"

    # -- control ---------------------------------------------------------------------------------------------
    def fail_next(self, n: int = 1, *, status: int = 500) -> None:
        """Answer the next `n` sendMessage requests with `status` (429 carries retry_after 3)."""
        with self._lock:
            self._state.failures.extend(_Failure(status=status) for _ in range(n))

    def hang_next(self, n: int = 1, *, seconds: float = 2.0) -> None:
        """Hold the next `n` requests `seconds` before answering (to trip the client's timeout)."""
        with self._lock:
            self._state.failures.extend(_Failure(status=200, hang=seconds) for _ in range(n))

    def block_chat(self, chat_id: int | str) -> None:
        """The user of this chat blocked the bot: 403 Forbidden from now on."""
        with self._lock:
            self._state.blocked.add(str(chat_id))

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Every message accepted, in order (chat_id, text, parse_mode, at)."""
        with self._lock:
            return list(self._state.sent)

    @property
    def webhook(self) -> dict[str, Any]:
        """The webhook as setWebhook left it (url, secret_token, allowed_updates, max_connections); {} when none."""
        with self._lock:
            return dict(self._state.webhook)

    def queue_updates(self, n: int) -> None:
        """Pretend `n` updates wait at Telegram for delivery (getWebhookInfo's pending_update_count)."""
        with self._lock:
            self._state.pending_updates += n

    @property
    def violations(self) -> int:
        """How many sends went over a limit the real Telegram enforces (0 for a well-paced client)."""
        return self._state.violations

    @property
    def limited(self) -> int:
        """How many requests were answered 429 for going over a limit."""
        return self._state.limited

    # -- the API ---------------------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        form: dict[str, Any] = dict(await request.post()) if request.can_read_body else {}
        if request.content_type == "application/json":
            form = await request.json()
        if method == "getMe":
            return _ok({"id": 123456, "is_bot": True, "first_name": "BPBD", "username": "bpbd_test_bot"})
        if method in ("setWebhook", "deleteWebhook", "getWebhookInfo"):
            return self._webhook(method, form)
        if method != "sendMessage":
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        with self._lock:
            self._state.requests += 1
            failure = self._state.failures.popleft() if self._state.failures else None
        if failure is not None and failure.hang:
            await asyncio.sleep(failure.hang)
        elif failure is not None:
            if failure.status == 429:
                return _too_many(3)
            return web.json_response(
                {"ok": False, "error_code": failure.status, "description": "Bad Gateway"}, status=failure.status
            )
        chat = str(form.get("chat_id", ""))
        text = str(form.get("text", ""))
        if not chat or not text:
            return _error(400, "Bad Request: message text is empty" if chat else "Bad Request: chat not found")
        if len(text) > 4096:
            return _error(400, "Bad Request: message is too long")
        if chat in self._state.blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        now = time.monotonic()
        with self._lock:
            wait = self._over_limit(chat, now)
            if wait is not None:
                self._state.limited += 1
                return _too_many(wait)
            self._state.bot_times.append(now)
            self._state.chat_times[chat].append(now)
            message_id = next(self._ids)
            self._state.sent.append({"chat_id": chat, "text": text, "parse_mode": form.get("parse_mode"), "at": now})
        chat_id: int | str = int(chat) if chat.lstrip("-").isdigit() else chat
        kind = "channel" if chat.startswith(("@", "-")) else "private"
        return _ok(
            {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": chat_id if isinstance(chat_id, int) else -1001, "type": kind},
                "text": text,
            }
        )

    def _webhook(self, method: str, form: dict[str, Any]) -> web.Response:
        """setWebhook, deleteWebhook and getWebhookInfo, with Telegram's own checks on the URL and secret."""
        with self._lock:
            hook = self._state.webhook
            if method == "setWebhook":
                url = str(form.get("url", ""))
                secret = str(form.get("secret_token", ""))
                if not url.startswith("https://"):
                    return _error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
                if secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
                    return _error(400, "Bad Request: secret token contains unallowed characters")
                hook.clear()
                hook.update(
                    url=url,
                    secret_token=secret,
                    allowed_updates=_json(form.get("allowed_updates"), []),
                    max_connections=int(_json(form.get("max_connections"), 40)),
                )
                if _json(form.get("drop_pending_updates"), False):
                    self._state.pending_updates = 0
                return _ok(True)
            if method == "deleteWebhook":
                hook.clear()
                if _json(form.get("drop_pending_updates"), False):
                    self._state.pending_updates = 0
                return _ok(True)
            info: dict[str, Any] = {
                "url": hook.get("url", ""),
                "has_custom_certificate": False,
                "pending_update_count": self._state.pending_updates,
            }
            if hook:
                info.update(allowed_updates=hook["allowed_updates"], max_connections=hook["max_connections"])
            return _ok(info)

    def _over_limit(self, chat: str, now: float) -> int | None:
        """Seconds to wait when this send would break a limit (Telegram answers 429), else None."""
        bot = self._state.bot_times
        while bot and now - bot[0] >= 1.0:
            bot.popleft()
        group = chat.startswith(("@", "-"))
        window, cap = (60.0, self.GROUP_PER_MIN) if group else (1.0, self.CHAT_PER_S)
        times = self._state.chat_times[chat]
        while times and now - times[0] >= window:
            times.popleft()
        if len(bot) >= self.BOT_PER_S or len(times) >= cap:
            self._state.violations += 1
            if self.enforce:
                return max(1, int(window if group else 1))
        return None


_update_ids = itertools.count(1_000)


def telegram_update(
    chat_id: int,
    text: str | None = None,
    *,
    location: tuple[float, float] | None = None,
    language: str = "id",
    photo: bool = False,
    update_id: int | None = None,
) -> dict[str, Any]:
    """An update as Telegram posts it to a webhook: a private-chat message with `text` (the caption of a photo
    when `photo`), a shared `location` (lon, lat), or both; a fresh update_id unless one is given."""
    message: dict[str, Any] = {
        "message_id": 1,
        "date": 0,
        "chat": {"id": chat_id, "type": "private"},
        "from": {"id": chat_id, "is_bot": False, "first_name": "Warga", "language_code": language},
    }
    if text is not None:
        message["caption" if photo else "text"] = text
    if photo:
        message["photo"] = [
            {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90},
            {"file_id": "big", "file_unique_id": "b", "width": 800, "height": 600},
        ]
    if location is not None:
        message["location"] = {"longitude": location[0], "latitude": location[1]}
    return {"update_id": next(_update_ids) if update_id is None else update_id, "message": message}


def _ok(result: object) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _json(value: Any, default: Any) -> Any:
    """A form field as python-telegram-bot sends it (lists, numbers and booleans JSON-encoded)."""
    if value is None:
        return default
    return json.loads(value) if isinstance(value, str) else value


def _error(code: int, description: str) -> web.Response:
    return web.json_response({"ok": False, "error_code": code, "description": description}, status=code)


def _too_many(retry_after: int) -> web.Response:
    return web.json_response(
        {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {retry_after}",
            "parameters": {"retry_after": retry_after},
        },
        status=429,
    )
