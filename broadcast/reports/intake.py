"""The intake writer: concurrent report POSTs become one multi-row INSERT and one commit per batch.

A request gets its answer only after its row is committed (nothing acknowledged is lost); under load, whatever
arrived while the previous batch was being written goes in the next one, so commits (and their fsync) are shared
instead of paid per report. With one request at a time a batch is that one row: no added wait.
A batch the database refuses (one bad report) is written again one report per transaction, so only the bad one
fails; a database that cannot be reached fails the whole batch at once.
With `batching=False` every request writes its own row in its own transaction (the naive path, a baseline).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from broadcast.db import session_scope
from broadcast.reports import service

log = logging.getLogger(__name__)
MAX_BATCH = 500


class IntakeWriter:
    """Coalesces intake rows from concurrent requests (one writer task per event loop)."""

    def __init__(
        self, engine: Engine, *, after_commit: Callable[[], None], max_batch: int = MAX_BATCH, batching: bool = True
    ) -> None:
        self.engine = engine
        self.after_commit = after_commit
        self.max_batch = max_batch
        self.batching = batching
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[tuple[int, bool]]]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def submit(self, row: dict[str, Any]) -> tuple[int, bool]:
        """Store one intake row; returns (report id, created) once it is committed.

        Raises: whatever the database raised for the batch it was in.
        """
        if not self.batching:
            return (await anyio.to_thread.run_sync(self._write, [row]))[0]
        loop = asyncio.get_running_loop()
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._run())
        future: asyncio.Future[tuple[int, bool]] = loop.create_future()
        self._queue.put_nowait((row, future))
        return await future

    def _write(self, rows: list[dict[str, Any]]) -> list[tuple[int, bool]]:
        with session_scope(self.engine) as session:
            results = service.store_many(session, rows)
        if any(created for _, created in results):
            self.after_commit()
        return results

    async def _one_by_one(self, batch: list[tuple[dict[str, Any], asyncio.Future[tuple[int, bool]]]]) -> None:
        for row, future in batch:
            try:
                result = (await anyio.to_thread.run_sync(self._write, [row]))[0]
            except Exception as exc:
                log.exception("intake of one report failed")
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            try:
                results = await anyio.to_thread.run_sync(self._write, [row for row, _ in batch])
            except Exception as exc:
                if len(batch) == 1 or isinstance(exc, OperationalError | InterfaceError):
                    log.exception("intake batch of %d failed", len(batch))
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    # One report the database refuses must not take the others in its batch down with it.
                    log.warning("intake batch of %d refused (%s); writing its reports one by one", len(batch), exc)
                    await self._one_by_one(batch)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
