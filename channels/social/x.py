"""X (Twitter) through tweepy: post alert threads as the right agency account, poll mentions as reports.

Never retries by itself and never sleeps: a 429 becomes `RateLimited` with the seconds until
`x-rate-limit-reset`, 5xx and timeouts `ChannelUnavailable`, and the dispatcher schedules the retry.
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import requests
import tweepy
from requests.adapters import HTTPAdapter

from channels.base import (
    AlertData,
    Channel,
    ChannelError,
    ChannelLimits,
    ChannelUnavailable,
    InboundEvent,
    MessageRejected,
    OutboundMessage,
    Outcome,
    Proceed,
    RateBucket,
    Recipient,
    SendResult,
    stopped_result,
)
from channels.social.accounts import choose_account
from channels.social.x_render import XRenderer
from templates import message_env

log = logging.getLogger(__name__)

# X API Basic tier posting caps (posts per rolling 24 hours).
X_BASIC_USER_POSTS_24H = 100
X_BASIC_APP_POSTS_24H = 1667
# X allows 5 to 100 mentions per page and serves at most the 800 newest, so 8 pages read them all.
MENTIONS_PAGE_SIZE = 100
MENTIONS_MAX_PAGES = 8


class RateLimited(ChannelUnavailable):
    """X answered 429: try again after `retry_after` seconds (None when X sent no reset time)."""

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DuplicatePost(MessageRejected):
    """X refused identical text from the same account: most likely an earlier attempt already posted it."""


def map_x_error(exc: Exception, *, now: float) -> ChannelError:
    """The channel error for a tweepy or requests failure: 429/5xx/network retry later, other 4xx never."""
    if isinstance(exc, tweepy.TooManyRequests):
        reset = exc.reset_time
        # Whole seconds, at least one: a reset already past must not become a zero-delay retry loop.
        retry_after = float(max(1, math.ceil(reset - now))) if reset is not None else None
        return RateLimited(f"x 429: rate limited, retry after {retry_after} s", retry_after=retry_after)
    if isinstance(exc, tweepy.TwitterServerError):
        return ChannelUnavailable(f"x {exc.response.status_code}: server error")
    if isinstance(exc, tweepy.HTTPException):
        status = exc.response.status_code
        detail = "; ".join(str(m) for m in exc.api_messages) or str(exc)
        if "duplicate" in detail.lower():
            return DuplicatePost(f"x {status}: {detail}")
        if 400 <= status < 500:
            return MessageRejected(f"x {status}: {detail}")
        return ChannelUnavailable(f"x {status}: {detail}")
    # requests errors reach us raw from Client and wrapped in a bare TweepyException from API.
    return ChannelUnavailable(f"x unreachable: {type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class XAccount:
    """One agency account on X and the jurisdiction (Kemendagri code, "" = national) it posts for."""

    code: str
    handle: str
    user_id: str = ""
    access_token: str = ""
    access_token_secret: str = field(default="", repr=False)
    posts_per_24h: int = X_BASIC_USER_POSTS_24H


@dataclass(frozen=True, slots=True)
class XConfig:
    """Everything the X channel needs, passed in by the entrypoint (adapters never read settings)."""

    consumer_key: str
    consumer_secret: str = field(repr=False)
    accounts: tuple[XAccount, ...]
    bearer_token: str = field(default="", repr=False)
    app_posts_per_24h: int = X_BASIC_APP_POSTS_24H
    timeout_s: float = 10.0


class TimeoutAdapter(HTTPAdapter):
    """Gives every request a timeout: tweepy's v2 Client sets none, and a hung socket stalls a worker."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout_s
        return super().send(request, **kwargs)


@dataclass(frozen=True)
class XConnection:
    """One account with the tweepy clients that act as it: v2 `Client` for posts, v1.1 `API` for media."""

    account: XAccount
    client: tweepy.Client
    api: tweepy.API | None = None  # None: post without images

    @classmethod
    def build(cls, config: XConfig, account: XAccount) -> XConnection:
        """Real tweepy clients for `account` with OAuth 1.0a user context and a request timeout."""
        client = tweepy.Client(
            bearer_token=config.bearer_token or None,
            consumer_key=config.consumer_key,
            consumer_secret=config.consumer_secret,
            access_token=account.access_token,
            access_token_secret=account.access_token_secret,
        )
        client.session.mount("https://", TimeoutAdapter(config.timeout_s))
        auth = tweepy.OAuth1UserHandler(
            config.consumer_key, config.consumer_secret, account.access_token, account.access_token_secret
        )
        return cls(account, client, tweepy.API(auth, timeout=config.timeout_s))


@dataclass(frozen=True, slots=True)
class PostedThread:
    """The ids X gave a message's posts, in order; `error` says why a thread stopped short."""

    ids: tuple[str, ...]
    planned: int
    error: str | None = None


class XPost(Channel):
    """Posts each alert as a thread on the agency account covering its area.

    Retries: never itself. The first post failing raises (RateLimited/ChannelUnavailable → the
    dispatcher retries the delivery; MessageRejected → failed). Once the first post is up the alert is
    public, so a later post failing ends the thread and the delivery counts as sent, with the error
    kept: retrying would repost the lead post, which X refuses as a duplicate.
    """

    mode = "live"
    # One public post per alert; the 24-hour caps, not the per-second rate, are what bind.
    limits = ChannelLimits(rate_per_second=1.0, burst=5, max_batch=10)

    def __init__(
        self,
        renderer: XRenderer,
        connections: Sequence[XConnection],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(renderer)
        if not connections:
            raise ValueError("the X channel needs at least one account")
        handles = [c.account.handle for c in connections]
        if len(set(handles)) != len(handles):
            raise ValueError(f"duplicate X account handles: {handles}")
        self.connections = tuple(connections)
        self._by_handle = {c.account.handle: c for c in connections}
        self.app_posts_per_24h = X_BASIC_APP_POSTS_24H
        self._clock = clock

    def rate_buckets(self, message: OutboundMessage) -> tuple[list[RateBucket], int]:
        """Per second, per account (its 24-hour cap) and per app (1,667 a day on X Basic); a thread costs
        one request per post."""
        posts = 1 + len(message.thread)
        buckets = [RateBucket("social:rate", self.limits.rate_per_second, self.limits.burst)]
        connection = self._by_handle.get(message.sender)
        if connection is not None:
            cap = connection.account.posts_per_24h
            buckets.append(RateBucket(f"social:account:{message.sender}", cap / 86400, cap))
        buckets.append(RateBucket("social:app", self.app_posts_per_24h / 86400, self.app_posts_per_24h))
        return buckets, posts

    @classmethod
    def from_config(cls, config: XConfig, renderer: XRenderer | None = None) -> XPost:
        """The channel with real tweepy clients for every configured account.

        Raises: ValueError when no account is configured or one lacks its user tokens.
        """
        missing = [a.handle or a.code for a in config.accounts if not (a.access_token and a.access_token_secret)]
        if not config.consumer_key or not config.consumer_secret:
            raise ValueError("X consumer key and secret are required")
        if missing:
            raise ValueError(f"X accounts without access tokens: {', '.join(missing)}")
        channel = cls(renderer or XRenderer(), [XConnection.build(config, a) for a in config.accounts])
        channel.app_posts_per_24h = config.app_posts_per_24h
        return channel

    @property
    def accounts(self) -> tuple[XAccount, ...]:
        """The configured accounts, in configuration order."""
        return tuple(c.account for c in self.connections)

    def render(self, alert: AlertData, recipients: Sequence[Recipient]) -> list[OutboundMessage]:
        """The renderer's threads, each addressed to the account covering the alert's area (`sender`)."""
        account = choose_account(self.accounts, alert.area_codes)
        sender = account.handle if account else ""
        return [replace(m, sender=sender) for m in self.renderer.render(alert, recipients)]

    def send(self, message: OutboundMessage) -> str:
        """Post the message and its thread; return the first post's id.

        Raises: MessageRejected, ChannelUnavailable (RateLimited for 429), only when the first post failed.
        """
        return self.post_thread(message).ids[0]

    def send_many(self, messages: Sequence[OutboundMessage], *, proceed: Proceed | None = None) -> list[SendResult]:
        """Post each thread: `provider_id` is the first post, `extra_provider_ids` the replies after it.

        After a 429 the rest of the batch is not attempted: it would only meet the same limit. `proceed` is
        asked before each thread; once it says False the rest come back `stopped`.
        """
        results: list[SendResult] = []
        limited: RateLimited | None = None
        for m in messages:
            if proceed is not None and not proceed():
                results.append(stopped_result(m))
                continue
            if limited is not None:
                results.append(
                    SendResult(m.reference, Outcome.RETRY, error=str(limited), retry_after=limited.retry_after)
                )
                continue
            try:
                posted = self.post_thread(m)
            except RateLimited as exc:
                limited = exc
                results.append(SendResult(m.reference, Outcome.RETRY, error=str(exc), retry_after=exc.retry_after))
            except MessageRejected as exc:
                results.append(SendResult(m.reference, Outcome.FAILED, error=str(exc)))
            except ChannelUnavailable as exc:
                results.append(SendResult(m.reference, Outcome.RETRY, error=str(exc)))
            except Exception as exc:
                log.exception("x channel crashed on delivery %s", m.reference)
                results.append(SendResult(m.reference, Outcome.RETRY, error=f"{type(exc).__name__}: {exc}"))
            else:
                results.append(
                    SendResult(
                        m.reference,
                        Outcome.SENT,
                        provider_id=posted.ids[0],
                        extra_provider_ids=posted.ids[1:],
                        error=posted.error,
                    )
                )
        return results

    def post_thread(self, message: OutboundMessage) -> PostedThread:
        """Upload the map, post the lead (quoting or replying to an original), then each reply in order.

        Raises: MessageRejected, ChannelUnavailable, only when nothing was posted.
        """
        conn = self._connection(message.sender)
        media_ids = self._upload_image(conn, message)
        first = self._create(
            conn,
            text=message.text,
            quote_tweet_id=message.quote_of,
            in_reply_to_tweet_id=message.reply_to,
            media_ids=media_ids,
        )
        ids = [first]
        planned = 1 + len(message.thread)
        for text in message.thread:
            try:
                ids.append(self._create(conn, text=text, in_reply_to_tweet_id=ids[-1]))
            except ChannelError as exc:
                error = f"thread stopped after {len(ids)} of {planned} posts: {exc}"
                log.warning("x delivery %s: %s", message.reference, error)
                return PostedThread(tuple(ids), planned, error)
        log.info("x delivery %s posted as @%s: %s", message.reference, conn.account.handle, ",".join(ids))
        return PostedThread(tuple(ids), planned)

    def _connection(self, sender: str) -> XConnection:
        if sender in self._by_handle:
            return self._by_handle[sender]
        if not sender and len(self.connections) == 1:
            return self.connections[0]
        raise MessageRejected(f"no X account {sender!r} configured for this alert's area")

    def _create(self, conn: XConnection, **kwargs: Any) -> str:
        try:
            response = conn.client.create_tweet(user_auth=True, **{k: v for k, v in kwargs.items() if v})
        except (tweepy.TweepyException, requests.RequestException) as exc:
            raise map_x_error(exc, now=self._clock()) from exc
        return str(response.data["id"])

    def _upload_image(self, conn: XConnection, message: OutboundMessage) -> list[str] | None:
        if message.image_png is None or conn.api is None:
            return None
        try:
            media = conn.api.media_upload("map.png", file=io.BytesIO(message.image_png))
        except (tweepy.TweepyException, requests.RequestException) as exc:
            error = map_x_error(exc, now=self._clock())
            if isinstance(error, ChannelUnavailable):
                raise error from exc
            # A refused image must not hold back the warning itself: post the text without it.
            log.warning("x delivery %s: map image refused, posting without it: %s", message.reference, error)
            return None
        media_id = str(media.media_id_string)
        if message.image_alt:
            try:
                conn.api.create_media_metadata(media_id, message.image_alt)
            except (tweepy.TweepyException, requests.RequestException) as exc:
                log.warning(
                    "x delivery %s: alt text not set: %s",
                    message.reference,
                    map_x_error(exc, now=self._clock()),
                )
        return [media_id]


@dataclass(frozen=True, slots=True)
class MentionsPoll:
    """New mentions, oldest first, and the `since_id` to pass to the next poll (unchanged when none)."""

    events: tuple[InboundEvent, ...]
    since_id: str | None


def poll_mentions(
    client: tweepy.Client,
    user_id: str,
    since_id: str | None,
    *,
    page_size: int = MENTIONS_PAGE_SIZE,
    max_pages: int = MENTIONS_MAX_PAGES,
    clock: Callable[[], float] = time.time,
) -> MentionsPoll:
    """Every mention of `user_id` newer than `since_id`, following `pagination_token` across pages.

    A failure on any page raises and moves nothing forward, so the next poll reads the same mentions again.
    Raises: RateLimited, ChannelUnavailable, MessageRejected.
    """

    def fetch(token: str | None) -> tweepy.Response:
        return client.get_users_mentions(
            user_id,
            since_id=since_id,
            pagination_token=token,
            max_results=page_size,
            expansions=["author_id"],
            tweet_fields=TWEET_FIELDS,
            user_fields=["username", "name"],
            user_auth=not client.bearer_token,
        )

    return _poll(fetch, since_id, what=f"mentions of {user_id}", max_pages=max_pages, clock=clock)


def poll_search(
    client: tweepy.Client,
    query: str,
    since_id: str | None,
    *,
    page_size: int = MENTIONS_PAGE_SIZE,
    max_pages: int = MENTIONS_MAX_PAGES,
    clock: Callable[[], float] = time.time,
) -> MentionsPoll:
    """Every recent post matching `query` (e.g. "banjir OR longsor Palu") newer than `since_id`, across pages.

    Same guarantees as `poll_mentions`. Raises: RateLimited, ChannelUnavailable, MessageRejected.
    """

    def fetch(token: str | None) -> tweepy.Response:
        return client.search_recent_tweets(
            query,
            since_id=since_id,
            next_token=token,
            max_results=max(10, page_size),
            expansions=["author_id"],
            tweet_fields=TWEET_FIELDS,
            user_fields=["username", "name"],
            user_auth=not client.bearer_token,
        )

    return _poll(fetch, since_id, what=f"search {query!r}", max_pages=max_pages, clock=clock)


TWEET_FIELDS = ["author_id", "created_at", "conversation_id", "in_reply_to_user_id", "geo"]


def _poll(
    fetch: Callable[[str | None], tweepy.Response],
    since_id: str | None,
    *,
    what: str,
    max_pages: int,
    clock: Callable[[], float],
) -> MentionsPoll:
    events: dict[str, InboundEvent] = {}
    newest = since_id
    token: str | None = None
    for _ in range(max_pages):
        try:
            response = fetch(token)
        except (tweepy.TweepyException, requests.RequestException) as exc:
            raise map_x_error(exc, now=clock()) from exc
        users = {str(u.id): u for u in (response.includes or {}).get("users", [])}
        for tweet in response.data or []:
            author = users.get(str(tweet.author_id))
            sender = f"@{author.username}" if author is not None else str(tweet.author_id or "")
            raw: dict[str, object] = {
                "tweet": dict(tweet.data),
                "author": dict(author.data) if author else None,
            }
            events[str(tweet.id)] = InboundEvent("x", str(tweet.id), sender, tweet.text, raw)
        meta: Mapping[str, Any] = response.meta or {}
        page_newest = meta.get("newest_id")
        if page_newest and (newest is None or int(page_newest) > int(newest)):
            newest = str(page_newest)
        token = meta.get("next_token")
        if not token:
            break
    else:
        log.warning("x %s: stopped after %d pages", what, max_pages)
    ordered = tuple(sorted(events.values(), key=lambda e: int(e.external_id)))
    return MentionsPoll(ordered, newest)


@dataclass(frozen=True, slots=True)
class CapCheck:
    """Whether a planned thread fits the 24-hour posting caps, by how much not, and what to tell people."""

    planned: int
    account_posts_24h: int
    account_limit: int
    app_posts_24h: int
    app_limit: int
    account_excess: int
    app_excess: int
    message_id: str
    message_en: str

    @property
    def exceeds(self) -> bool:
        """True when sending the thread would go over either cap."""
        return bool(self.account_excess or self.app_excess)


def check_posting_caps(
    planned_posts: int,
    *,
    account_posts_24h: int,
    app_posts_24h: int,
    account_limit: int = X_BASIC_USER_POSTS_24H,
    app_limit: int = X_BASIC_APP_POSTS_24H,
    handle: str = "",
) -> CapCheck:
    """Compare a planned thread with the posts already made in the last 24 hours (per account and per app).

    The messages (Indonesian, English) are empty when the thread fits, so the UI can show them as they are.
    """
    account_excess = max(0, account_posts_24h + planned_posts - account_limit)
    app_excess = max(0, app_posts_24h + planned_posts - app_limit)
    check = CapCheck(
        planned_posts,
        account_posts_24h,
        account_limit,
        app_posts_24h,
        app_limit,
        account_excess,
        app_excess,
        "",
        "",
    )
    if not check.exceeds:
        return check
    env = message_env()
    texts = {
        lang: env.get_template(f"x/caps.{lang}.j2").render(check=check, handle=handle).strip() for lang in ("id", "en")
    }
    return replace(check, message_id=" ".join(texts["id"].split()), message_en=" ".join(texts["en"].split()))
