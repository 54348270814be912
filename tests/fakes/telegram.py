"""A local fake of the Telegram Bot API for tests: python-telegram-bot's real Bot talks to it through `base_url`.

Start it with ``with FakeTelegram() as fake:`` (127.0.0.1, a port the OS picks) and give the bot
``base_url=fake.base_url``. It enforces Telegram's limits (30 messages/s per bot, 1/s per private chat, 20/min per
group or channel), answering 429 with ``parameters.retry_after`` like Telegram, records every message and can be
told to fail: ``fake.fail_next(1, status=502)``, ``fake.hang_next(1, seconds=2)``, ``fake.block_chat(42)``.
"""

from __future__ import annotations

import asyncio
import itertools
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


class FakeTelegram(LocalServer):
    """The Bot API methods the service uses (getMe, sendMessage), with Telegram's limits."""

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


def _ok(result: dict[str, Any]) -> web.Response:
    return web.json_response({"ok": True, "result": result})


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
