"""The audit service the gateway calls: never blocks it, never loses an event.

``record`` only appends to memory; a background task writes batches to the
:class:`~collabgate.audit.port.AuditStore`. While the store is failing the current batch is kept
and retried with exponential backoff (0.1 s doubling to 5 s). Memory is bounded: beyond
``max_queue`` the oldest events are spilled to an append-only NDJSON spool file (fsynced), which is
read back, in order, before anything newer once the store works again. Events are stored in the
order they were recorded, because the queue is always consumed from the front:

    in-flight batch  <  spool file  <  memory   (older to newer)

Delivery is exactly-once within a process. Across a crash it is at-least-once: the spool's read
position (``<spool>.offset``) is saved after each stored batch, so a crash in between replays
that one batch. Events still in memory when the process is killed are lost; :meth:`close` spools
them on an orderly shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import orjson
import structlog

from collabgate.audit.chain import event_fields, event_from_fields, normalize_event
from collabgate.audit.port import AuditEvent, AuditStore
from collabgate.ops.files import fsync_directory

#: Largest number of events spilled (and fsynced) in one go while the store is away.
MAX_SPILL_CHUNK = 1024


class Logger(Protocol):
    """What the trail needs of a logger (a structlog bound logger fits)."""

    def info(self, event: str, **fields: Any) -> Any: ...

    def warning(self, event: str, **fields: Any) -> Any: ...

    def error(self, event: str, **fields: Any) -> Any: ...


class AuditTrailClosedError(RuntimeError):
    """The trail closed before the events a caller flushed for were stored (they are spooled)."""


class _Spool:
    """An append-only NDJSON file of events waiting for the store, oldest first.

    ``count`` events lie after the read offset. The offset is saved next to the file after every
    stored batch so that a restart resumes where the last run stopped.
    """

    def __init__(self, path: Path, logger: Logger) -> None:
        self.path = path
        self.count = 0
        self._log = logger
        self._offset_path = path.with_name(path.name + ".offset")
        self._read_offset = 0
        self._handle: IO[bytes] | None = None
        self.loaded = False

    # --- start-up ----------------------------------------------------------------------------

    def load(self) -> int:
        """Pick up what an earlier run left; return how many events it holds."""
        self.loaded = True
        if not self.path.exists():
            return 0
        size = self.path.stat().st_size
        self._read_offset = self._saved_offset()
        if self._read_offset > size:
            self._log.warning("audit_spool_offset_invalid", offset=self._read_offset, size=size)
            self._read_offset = 0
        self.count = self._scan(size)
        return self.count

    def _saved_offset(self) -> int:
        try:
            return int(self._offset_path.read_text().strip() or 0)
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            self._log.warning("audit_spool_offset_unreadable", error=repr(exc))
            return 0

    def _scan(self, size: int) -> int:
        """Count the complete lines after the offset; cut a line torn by a crash mid-spill."""
        count, good_end = 0, self._read_offset
        with self.path.open("rb") as handle:
            handle.seek(self._read_offset)
            for line in handle:
                if not line.endswith(b"\n"):
                    break
                count += 1
                good_end += len(line)
        if good_end < size:
            self._log.warning("audit_spool_torn_tail", dropped_bytes=size - good_end)
            os.truncate(self.path, good_end)
        return count

    # --- writing -----------------------------------------------------------------------------

    def append(self, events: Sequence[AuditEvent]) -> None:
        """Add events at the end, durably (fsync). On failure the file is left as it was."""
        data = b"".join(orjson.dumps(event_fields(event)) + b"\n" for event in events)
        handle = self._append_handle()
        size = os.fstat(handle.fileno()).st_size
        try:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                handle.truncate(size)
            raise
        self.count += len(events)

    def prepend(self, events: Sequence[AuditEvent]) -> None:
        """Rewrite the file with ``events`` before what is left of it (used only at shutdown)."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("wb") as out:
            out.write(b"".join(orjson.dumps(event_fields(event)) + b"\n" for event in events))
            if self.path.exists():
                with self.path.open("rb") as source:
                    source.seek(self._read_offset)
                    while chunk := source.read(1 << 20):
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        self.close()
        # Offset first: a crash between the two steps replays (duplicates), never skips.
        self._offset_path.unlink(missing_ok=True)
        os.replace(temporary, self.path)
        fsync_directory(self.path.parent)
        self._read_offset = 0
        self.count += len(events)

    def _append_handle(self) -> IO[bytes]:
        if self._handle is None:
            created = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("ab")
            if created:
                fsync_directory(self.path.parent)
        return self._handle

    # --- reading -----------------------------------------------------------------------------

    def read(self, limit: int) -> tuple[list[AuditEvent], int, int]:
        """Up to ``limit`` events from the front: (events, lines read, offset after them).

        A line that does not decode is logged and skipped; it still counts as read.
        """
        events: list[AuditEvent] = []
        lines = 0
        with self.path.open("rb") as handle:
            handle.seek(self._read_offset)
            while lines < min(limit, self.count):
                line = handle.readline()
                if not line.endswith(b"\n"):
                    break
                lines += 1
                try:
                    events.append(event_from_fields(orjson.loads(line)))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    self._log.error("audit_spool_line_unreadable", error=repr(exc))
            end = handle.tell()
        return events, lines, end

    def consume(self, lines: int, end_offset: int) -> None:
        """Mark the front ``lines`` as stored. Never raises: the store already has them."""
        self._read_offset = end_offset
        self.count -= lines
        try:
            if self.count == 0:
                self._offset_path.unlink(missing_ok=True)
                os.truncate(self.path, 0)  # the O_APPEND handle goes on writing at the new end
                self._read_offset = 0
            else:
                self._save_offset()
        except OSError as exc:
            self._log.warning("audit_spool_offset_not_saved", error=repr(exc))

    def _save_offset(self) -> None:
        temporary = self._offset_path.with_name(self._offset_path.name + ".tmp")
        with temporary.open("w") as out:
            out.write(str(self._read_offset))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self._offset_path)

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.close()
            self._handle = None


class AuditTrail:
    """:class:`~collabgate.audit.port.AuditSink` that writes to an ``AuditStore`` in the background.

    ``on_written(n)`` is called after each stored batch (e.g. a Prometheus counter's ``inc``).
    The trail owns ``store``: :meth:`close` closes it.
    """

    def __init__(
        self,
        store: AuditStore,
        *,
        max_queue: int,
        spool_path: Path | str,
        logger: Logger | None = None,
        on_written: Callable[[int], object] | None = None,
        batch_size: int = 512,
        retry_initial: float = 0.1,
        retry_max: float = 5.0,
    ) -> None:
        if max_queue < 1 or batch_size < 1:
            raise ValueError("max_queue and batch_size must be at least 1")
        self._store = store
        self._max_queue = max_queue
        self._log: Logger = logger if logger is not None else structlog.get_logger(__name__)
        self._spool = _Spool(Path(spool_path), self._log)
        self._on_written = on_written
        self._batch_size = batch_size
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._spill_chunk = max(1, min(max_queue // 2, MAX_SPILL_CHUNK))
        self._memory: deque[AuditEvent] = deque()
        self._inflight: list[AuditEvent] = []
        self._inflight_lines = 0  # spool lines the batch covers (0 when it came from memory)
        self._inflight_end = 0
        self._enqueued = 0  # events that entered the queue (recorded, or found in the spool)
        self._done = 0  # of those, how many left it (stored, or unreadable spool lines)
        self._written = 0
        self._store_failures = 0
        self._spill_retry_at = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # --- metrics -----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Events not stored yet: in memory (including an in-flight batch) plus spooled."""
        in_memory = len(self._memory) + (0 if self._inflight_lines else len(self._inflight))
        return in_memory + self._spool.count

    @property
    def spooled(self) -> int:
        return self._spool.count

    @property
    def written_total(self) -> int:
        return self._written

    @property
    def store_failures(self) -> int:
        """Failed store writes since start (each retry counts)."""
        return self._store_failures

    # --- recording ---------------------------------------------------------------------------

    def record(self, event: AuditEvent) -> None:
        """Queue ``event``. Synchronous, does not wait for I/O, never raises into the caller."""
        try:
            self._accept(normalize_event(event))
        except Exception as exc:  # auditing must never break the request that triggered it
            self._log.error(
                "audit_record_failed",
                error=repr(exc),
                event_type=str(getattr(event, "event_type", "?")),
            )

    def _accept(self, event: AuditEvent) -> None:
        self._ensure_spool_loaded()
        if self._closed:  # straight to disk: the next run stores it
            self._spool.append([event])
            return
        self._memory.append(event)
        self._enqueued += 1
        if len(self._memory) > max(self._max_queue, self._spill_retry_at):
            self._spill_overflow()
        self._wake.set()

    def _spill_overflow(self) -> None:
        """Move the oldest events to the spool; a chunk at a time so fsyncs stay rare."""
        excess = len(self._memory) - self._max_queue
        count = min(len(self._memory), max(excess, self._spill_chunk))
        events = [self._memory.popleft() for _ in range(count)]
        try:
            self._spool.append(events)
        except OSError as exc:
            self._memory.extendleft(reversed(events))
            if not self._spill_retry_at:
                self._log.error("audit_spill_failed", error=repr(exc), in_memory=len(self._memory))
            self._spill_retry_at = len(self._memory) + self._spill_chunk
            return
        if self._spill_retry_at:
            self._log.info("audit_spill_recovered", spooled=self._spool.count)
        self._spill_retry_at = 0

    def _ensure_spool_loaded(self) -> None:
        if not self._spool.loaded:
            found = self._spool.load()
            self._enqueued += found
            if found:
                self._log.info("audit_spool_resumed", events=found)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Resume any spool an earlier run left, then start writing in the background."""
        if self._task is not None or self._closed:
            raise RuntimeError("the audit trail was already started")
        self._ensure_spool_loaded()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-trail")
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every event recorded so far is stored."""
        if self._task is None or self._task.done():
            raise RuntimeError("the audit trail is not running")
        target = self._enqueued
        if self._done >= target:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, future))
        await future

    async def close(self, drain_seconds: float = 5.0) -> None:
        """Store what can be stored within ``drain_seconds``, spool the rest, close the store."""
        if self._closed:
            return
        self._closing.set()
        self._wake.set()
        if self._task is not None:
            await self._stop_task(self._task, drain_seconds)
        self._closed = True
        self._persist_remaining()
        self._fail_waiters()
        self._spool.close()
        await self._store.close()

    async def _stop_task(self, task: asyncio.Task[None], wait_seconds: float) -> None:
        done, _ = await asyncio.wait({task}, timeout=wait_seconds)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self._inflight and not self._inflight_lines:
                self._log.warning("audit_inflight_batch_abandoned", events=len(self._inflight))
        elif not task.cancelled() and task.exception() is not None:
            self._log.error("audit_trail_task_failed", error=repr(task.exception()))

    def _persist_remaining(self) -> None:
        """Keep order on disk: in-flight (from memory) first, then the spool, then memory."""
        newer = list(self._memory)
        self._memory.clear()
        at_risk = self.pending - self._spool.count + len(newer)
        try:
            if self._inflight and not self._inflight_lines:
                if self._spool.count:
                    self._spool.prepend(self._inflight)
                else:
                    newer = self._inflight + newer
            self._inflight = []
            if newer:
                self._spool.append(newer)
        except OSError as exc:
            self._log.error("audit_events_lost", error=repr(exc), events=at_risk)

    # --- the writer task ---------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self._retry_initial
        while True:
            outcome = await self._attempt()
            if outcome is None:  # nothing queued
                if self._closing.is_set():
                    return
                self._wake.clear()
                await self._wake.wait()
            elif outcome:
                delay = self._retry_initial
            else:
                if self._closing.is_set():
                    return  # close() spools what is left
                await self._pause(delay)
                delay = min(delay * 2, self._retry_max)

    async def _attempt(self) -> bool | None:
        """Store the front batch: True when stored, False when it failed, None when idle."""
        try:
            if not self._load_batch():
                return None
            await self._store.append(self._inflight)
        except Exception as exc:
            self._store_failures += 1
            self._log.warning(
                "audit_store_failed",
                error=repr(exc),
                pending=self.pending,
                batch=len(self._inflight),
            )
            return False
        self._settle_batch()
        return True

    def _load_batch(self) -> bool:
        """Make the front of the queue the in-flight batch (unless a failed one is waiting)."""
        while not self._inflight:
            if self._spool.count:
                events, lines, end = self._spool.read(self._batch_size)
                if not events:  # only unreadable lines (logged): step over them
                    self._spool.consume(lines, end)
                    self._advance(lines, 0)
                    continue
                self._inflight, self._inflight_lines, self._inflight_end = events, lines, end
            elif self._memory:
                count = min(self._batch_size, len(self._memory))
                self._inflight = [self._memory.popleft() for _ in range(count)]
                self._inflight_lines = 0
            else:
                return False
        return True

    def _settle_batch(self) -> None:
        stored = len(self._inflight)
        taken = self._inflight_lines or stored
        if self._inflight_lines:
            self._spool.consume(self._inflight_lines, self._inflight_end)
        self._inflight, self._inflight_lines = [], 0
        self._advance(taken, stored)

    def _advance(self, taken: int, stored: int) -> None:
        self._done += taken
        self._written += stored
        if stored and self._on_written is not None:
            try:
                self._on_written(stored)
            except Exception as exc:
                self._log.warning("audit_on_written_failed", error=repr(exc))
        ready = [waiter for waiter in self._waiters if waiter[0] <= self._done]
        self._waiters = [waiter for waiter in self._waiters if waiter[0] > self._done]
        for _, future in ready:
            if not future.done():
                future.set_result(None)

    async def _pause(self, delay: float) -> None:
        """Back off, but wake at once when close() is called."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), delay)

    def _fail_waiters(self) -> None:
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(
                    AuditTrailClosedError(
                        f"audit trail closed; {self.pending} events kept in {self._spool.path}"
                    )
                )
        self._waiters = []
