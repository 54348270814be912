"""A local fake of the X API for the real tweepy SDK: v2 posts and mentions, v1.1 media upload.

Start it with `FakeX().start()` (or as a context manager); `attach(client, api)` points tweepy's
sessions at it. It listens on 127.0.0.1 on a port the OS picks, records every request, and can be
told to fail the next matching requests (429 with x-rate-limit-reset, 500, 403 duplicate, or a delay).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import HTTPAdapter

X_HOSTS = ("https://api.twitter.com", "https://upload.twitter.com")
DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int = 0

    def json(self) -> Any:
        """The request body as JSON."""
        return json.loads(self.body)


@dataclass
class Failure:
    """A programmed answer for the next `times` requests matching method and path prefix."""

    method: str
    path_prefix: str
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    delay_s: float = 0.0
    after: int = 0  # matching requests to let through first


class Redirect(HTTPAdapter):
    """Sends tweepy's https://api.twitter.com and upload.twitter.com requests to the fake, with a timeout."""

    def __init__(self, base: str, timeout_s: float) -> None:
        super().__init__()
        self.base = base
        self.timeout_s = timeout_s

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        for host in X_HOSTS:
            if request.url and request.url.startswith(host):
                request.url = self.base + request.url[len(host) :]
        kwargs["timeout"] = self.timeout_s
        return super().send(request, **kwargs)


class FakeX:
    """The fake X API: tweets, mentions by user, uploaded media, alt texts, and programmed failures."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.tweets: dict[str, dict[str, Any]] = {}
        self.mentions: dict[str, list[dict[str, Any]]] = {}
        self.public_posts: list[dict[str, Any]] = []
        self.users: dict[str, dict[str, str]] = {}
        self.media: dict[str, bytes] = {}
        self.alt_texts: dict[str, str] = {}
        self.failures: list[Failure] = []
        self._next_id = 1_800_000_000_000_000_000
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> FakeX:
        """Listen on 127.0.0.1 on a free port in a background thread."""
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A handler still sleeping for a timeout test must not hold up stopping the fake.
        self._server.block_on_close = False
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeX:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>"""
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def attach(self, *clients: Any, timeout_s: float = 5.0) -> None:
        """Point tweepy `Client`s and `API`s (anything with a requests `session`) at this fake."""
        for c in clients:
            for host in X_HOSTS:
                c.session.mount(host, Redirect(self.base_url, timeout_s))

    # -- programming -----------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_prefix: str,
        status: int,
        body: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        times: int = 1,
        delay_s: float = 0.0,
        after: int = 0,
    ) -> None:
        """Let `after` matching requests through, then answer the next `times` with `status` (after `delay_s`)."""
        with self._lock:
            self.failures.append(Failure(method, path_prefix, status, body, headers or {}, times, delay_s, after))

    def rate_limit_next(self, method: str, path_prefix: str, *, reset: int | None, times: int = 1) -> None:
        """Answer 429 like X, with `x-rate-limit-reset` (epoch seconds) unless `reset` is None."""
        headers = {"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0"}
        if reset is not None:
            headers["x-rate-limit-reset"] = str(reset)
        body = {
            "title": "Too Many Requests",
            "detail": "Too Many Requests",
            "type": "about:blank",
            "status": 429,
        }
        self.fail_next(method, path_prefix, 429, body, headers=headers, times=times)

    def add_user(self, user_id: str, username: str, name: str = "") -> None:
        """Make a user known, so mentions can expand their author."""
        self.users[user_id] = {"id": user_id, "username": username, "name": name or username}

    def add_mention(self, user_id: str, text: str, *, author_id: str) -> str:
        """A post by `author_id` mentioning `user_id`; returns its id (ids only grow, like X's)."""
        with self._lock:
            tweet_id = self._new_id()
            self.mentions.setdefault(user_id, []).append(
                {"id": tweet_id, "text": text, "author_id": author_id, "edit_history_tweet_ids": [tweet_id]}
            )
        return tweet_id

    def posts(self) -> list[Recorded]:
        """Every successful POST /2/tweets, in order."""
        return [r for r in self.requests if r.path == "/2/tweets" and r.method == "POST" and r.status == 201]

    # -- serving ---------------------------------------------------------------------------------

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def _take_failure(self, method: str, path: str) -> Failure | None:
        with self._lock:
            for f in self.failures:
                if f.times > 0 and f.method == method and path.startswith(f.path_prefix):
                    if f.after > 0:
                        f.after -= 1
                        return None
                    f.times -= 1
                    return f
        return None

    def handle(self, rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        """Route one request; returns status, headers and body."""
        failure = self._take_failure(rec.method, rec.path)
        if failure is not None:
            if failure.delay_s:
                threading.Event().wait(failure.delay_s)
            body = failure.body if failure.body is not None else {"title": "Error", "status": failure.status}
            return failure.status, failure.headers, json.dumps(body).encode()
        if rec.method == "POST" and rec.path == "/2/tweets":
            return self._create_tweet(rec)
        m = re.fullmatch(r"/2/users/(\d+)/mentions", rec.path)
        if rec.method == "GET" and m:
            return self._mentions(m.group(1), rec)
        if rec.method == "GET" and rec.path == "/2/tweets/search/recent":
            return self._search(rec)
        if rec.method == "POST" and rec.path == "/1.1/media/upload.json":
            return self._upload(rec)
        if rec.method == "POST" and rec.path == "/1.1/media/metadata/create.json":
            payload = rec.json()
            self.alt_texts[str(payload["media_id"])] = payload["alt_text"]["text"]
            return 200, {}, b""
        return 404, {}, json.dumps({"title": "Not Found", "detail": f"no route {rec.path}"}).encode()

    def _create_tweet(self, rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        payload = rec.json()
        author = _oauth_token(rec.headers.get("Authorization", ""))
        with self._lock:
            if any(t["author"] == author and t["text"] == payload.get("text") for t in self.tweets.values()):
                body = {
                    "detail": DUPLICATE_DETAIL,
                    "type": "about:blank",
                    "title": "Forbidden",
                    "status": 403,
                }
                return 403, {}, json.dumps(body).encode()
            tweet_id = self._new_id()
            self.tweets[tweet_id] = {
                "id": tweet_id,
                "author": author,
                "text": payload.get("text", ""),
                "reply_to": (payload.get("reply") or {}).get("in_reply_to_tweet_id"),
                "quote_of": payload.get("quote_tweet_id"),
                "media_ids": (payload.get("media") or {}).get("media_ids", []),
            }
        body = {"data": {"id": tweet_id, "text": payload.get("text", ""), "edit_history_tweet_ids": [tweet_id]}}
        return 201, {}, json.dumps(body).encode()

    def add_post(self, text: str, *, author_id: str, **fields: Any) -> str:
        """A public post by someone else, findable by recent search; returns its id."""
        with self._lock:
            tweet_id = self._new_id()
            self.public_posts.append(
                {"id": tweet_id, "text": text, "author_id": author_id, "edit_history_tweet_ids": [tweet_id], **fields}
            )
        return tweet_id

    def _search(self, rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        """Recent search with X's paging (`next_token`); the query's words are ORed, case-insensitive."""
        q = {k: v[0] for k, v in rec.query.items()}
        words = [w.lower() for w in q.get("query", "").split() if w.upper() != "OR"]
        with self._lock:
            found = [t for t in self.public_posts if any(w in t["text"].lower() for w in words)]
        return self._page(found, q, token_param="next_token")

    def _mentions(self, user_id: str, rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        q = {k: v[0] for k, v in rec.query.items()}
        with self._lock:
            mentions = list(self.mentions.get(user_id, []))
        return self._page(mentions, q, token_param="pagination_token")

    def _page(
        self, tweets: list[dict[str, Any]], q: dict[str, str], *, token_param: str
    ) -> tuple[int, dict[str, str], bytes]:
        since = int(q.get("since_id", "0"))
        size = int(q.get("max_results", "10"))
        offset = int(q[token_param].removeprefix("page-")) if token_param in q else 0
        with self._lock:
            newer = sorted(
                (t for t in tweets if int(t["id"]) > since),
                key=lambda t: int(t["id"]),
                reverse=True,
            )
        page = newer[offset : offset + size]
        if not page:
            return 200, {}, json.dumps({"meta": {"result_count": 0}}).encode()
        meta: dict[str, Any] = {
            "result_count": len(page),
            "newest_id": page[0]["id"],
            "oldest_id": page[-1]["id"],
        }
        if offset + size < len(newer):
            meta["next_token"] = f"page-{offset + size}"
        body: dict[str, Any] = {"data": page, "meta": meta}
        if "author_id" in q.get("expansions", "").split(","):
            authors = {t["author_id"] for t in page}
            body["includes"] = {"users": [self.users[a] for a in sorted(authors) if a in self.users]}
        return 200, {}, json.dumps(body).encode()

    def _upload(self, rec: Recorded) -> tuple[int, dict[str, str], bytes]:
        content_type = rec.headers.get("Content-Type", "")
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + rec.body)
        parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
        media = parts.get("media")
        if media is None:
            return (
                400,
                {},
                json.dumps({"errors": [{"code": 38, "message": "media parameter is missing."}]}).encode(),
            )
        data = media.get_payload(decode=True)
        media_id = self._new_id()
        self.media[media_id] = data
        body = {
            "media_id": int(media_id),
            "media_id_string": media_id,
            "size": len(data),
            "expires_after_secs": 86400,
            "image": {"image_type": "image/png", "w": 1, "h": 1},
        }
        return 200, {}, json.dumps(body).encode()


def _oauth_token(authorization: str) -> str:
    m = re.search(r'oauth_token="([^"]*)"', authorization)
    return m.group(1) if m else "app"


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeX
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        rec = Recorded(self.command, url.path, parse_qs(url.query), dict(self.headers.items()), self.rfile.read(length))
        self.server_fake.requests.append(rec)
        status, headers, body = self.server_fake.handle(rec)
        rec.status = status
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing left to tell it

    do_GET = _serve
    do_POST = _serve


@contextmanager
def running() -> Iterator[FakeX]:
    """A started fake, stopped afterwards."""
    fake = FakeX().start()
    try:
        yield fake
    finally:
        fake.stop()
