"""One shared polling loop behind every server-sent event stream.

An open event stream holds no database session and no worker thread while it waits: each topic (the live report
feed, the progress of one alert) has one asyncio task that reads the database in a worker thread with a short
session of its own, closes it, and hands the events to every stream subscribed to that topic. Two hundred open
streams on one topic cost one query per tick, not two hundred, and leave the connection pool to the requests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from anyio import to_thread
from fastapi.responses import StreamingResponse

log = logging.getLogger(__name__)

KEEP_ALIVE = ": keep-alive\n\n"
END = object()  # a topic's reader says the stream is over (e.g. every delivery settled)

# A reader takes the topic's state and returns (new state, SSE frames, finished). It runs in a worker thread
# and opens (and closes) its own database session.
Reader = Callable[[Any], tuple[Any, list[str], bool]]


@dataclass
class _Topic:
    reader: Reader
    state: Any
    queues: dict[asyncio.Queue[Any], float] = field(default_factory=dict)  # subscriber → its interval
    task: asyncio.Task[None] | None = None
    finished: bool = False


class Hub:
    """The topics of one event loop and their polling tasks."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.topics: dict[Any, _Topic] = {}

    def join(self, key: Any, make: Callable[[], tuple[Reader, Any]], interval_s: float) -> asyncio.Queue[Any]:
        """Subscribe to a topic (started with `make()` → (reader, initial state) when new); returns its queue."""
        topic = self.topics.get(key)
        if topic is None or topic.finished:
            reader, state = make()
            topic = self.topics[key] = _Topic(reader, state)
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)
        topic.queues[queue] = interval_s
        if topic.task is None:
            topic.task = self.loop.create_task(self._run(key, topic))
        return queue

    def leave(self, key: Any, queue: asyncio.Queue[Any]) -> None:
        """Unsubscribe; the topic's loop stops with its last subscriber."""
        topic = self.topics.get(key)
        if topic is None:
            return
        topic.queues.pop(queue, None)
        if not topic.queues:
            if topic.task is not None:
                topic.task.cancel()
            if self.topics.get(key) is topic:
                del self.topics[key]

    async def _run(self, key: Any, topic: _Topic) -> None:
        while topic.queues:
            try:
                topic.state, frames, finished = await to_thread.run_sync(topic.reader, topic.state)
            except Exception:
                log.exception("event stream %r: reading failed, retrying", key)
                frames, finished = [], False
            for queue in list(topic.queues):
                _offer(queue, frames or [KEEP_ALIVE])
                if finished:
                    _offer(queue, [END])
            if finished:
                topic.finished = True
                return
            await asyncio.sleep(min(topic.queues.values(), default=1.0))


def _offer(queue: asyncio.Queue[Any], items: list[Any]) -> None:
    for item in items:
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:  # a subscriber that does not read loses frames, never blocks the others
            if item is END:
                queue.get_nowait()
                queue.put_nowait(END)


def frame(kind: str, data: Any) -> str:
    """One SSE frame: event `kind` with `data` as JSON."""
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def response(events: AsyncIterator[str]) -> StreamingResponse:
    """The HTTP answer carrying a stream (no caching, no proxy buffering)."""
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


async def replay(frames: Iterable[str]) -> AsyncIterator[str]:
    """A stream of frames already read (e.g. a finished topic's last state), then its end."""
    for item in frames:
        yield item


def hub_for(app_state: Any) -> Hub:
    """The hub of the running event loop (kept on the app's state)."""
    loop = asyncio.get_running_loop()
    hub: Hub | None = getattr(app_state, "sse_hub", None)
    if hub is None or hub.loop is not loop:
        hub = Hub(loop)
        app_state.sse_hub = hub
    return hub


async def subscribe(
    hub: Hub,
    key: Any,
    make: Callable[[], tuple[Reader, Any]],
    *,
    interval_s: float,
    first: list[str] | None = None,
    lifetime_s: float = 600,
) -> AsyncIterator[str]:
    """The frames of one stream: `first` (read by the caller for this subscriber), then the topic's frames,
    until the topic ends or `lifetime_s` passed (the browser reconnects)."""
    queue = hub.join(key, make, interval_s)
    deadline = time.monotonic() + lifetime_s
    try:
        for frame in first or ():
            yield frame
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                item = await asyncio.wait_for(queue.get(), timeout=min(left, 15.0))
            except TimeoutError:
                yield KEEP_ALIVE
                continue
            if item is END:
                return
            yield item
    finally:
        hub.leave(key, queue)
