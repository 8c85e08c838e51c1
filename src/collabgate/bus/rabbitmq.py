"""RabbitMQ room bus: room events between gateway instances over AMQP 0-9-1 (aio-pika).

Topology
    One durable **direct exchange** (``collabgate.rooms``) shared by the fleet. Every event is
    published with the routing key of its room's shard (``shard.{crc32(resource_id) % shards}``,
    see :mod:`collabgate.bus.sharding`). Each instance declares **one queue of its own** and binds
    it once, at start, to every shard key: joins and leaves never touch the broker's bindings
    (per-room bind/unbind churn is what costs RabbitMQ CPU at scale). Binding shard keys one by one
    (rather than one ``#`` on a topic exchange) keeps the scaling path open: an instance can later
    bind only the shards of the rooms it holds without changing the wire format.

Why the instance queue is a durable classic queue with ``x-expires`` (and not exclusive, and not
a quorum queue)
    * Room events are ephemeral and only useful to the live instance that owns the queue, so the
      queue must vanish when that instance dies: ``x-expires`` deletes it once it has had no
      consumer for ``queue_expires`` seconds, and :meth:`RabbitMqBus.close` deletes it at once on
      a clean stop. The name ends in a random suffix so a restarted instance never inherits its
      predecessor's backlog and two instances never share (split) one queue.
    * Not exclusive: an exclusive queue dies with its connection, so every connection blip would
      drop the events published meanwhile, and redeclaring it on the new connection races the
      broker's clean-up of the old one (RESOURCE_LOCKED, repeated until the broker notices the old
      socket is gone — up to a heartbeat timeout after a network partition). Surviving a blip
      means fewer gaps for SYNC to close.
    * Durable only as a definition: RabbitMQ 4 deprecates transient non-exclusive queues, and a
      durable definition also keeps the bindings across a broker restart. Messages are published
      *non-persistent*: a persistent message costs a disk write before its confirm, and buys
      nothing here — after a broker restart the receiving side closes gaps with a state-vector
      SYNC anyway, and Y.js updates are already durable in the document store.
    * Not quorum: quorum queues replicate and fsync every message through Raft; that cost is for
      data that must survive a node loss (the architecture keeps quorum queues for that), not for
      a per-instance stream of idempotent, re-syncable events.
    * ``x-max-length``/``x-max-length-bytes`` with drop-head bound what a stalled or vanished
      instance's queue can hold on the broker until it expires.

Delivery
    Own events are dropped on receipt: every instance receives its own publications because it
    binds every shard. "Own" is decided by a random sender id carried in the AMQP ``app_id``
    property, not by the instance id: two processes misconfigured with one instance id (all
    containers defaulting to ``0.0.0.0:8080``) would otherwise silently drop each other's events;
    this way they still converge, and the bus logs ``bus_duplicate_instance_id`` once. The
    handler runs for one message at a time, in queue order (per-room order is preserved), and
    messages are acked (in batches) only after the handler has run — a handler exception is logged
    and the message acked anyway (a poison event must not stall the room or be redelivered
    forever). ``prefetch`` bounds the unacked messages held locally.

Publishing
    With ``confirm=True`` (the default) each publish waits for the broker's confirm: the event has
    been routed to every bound queue, so a lost Y.js update shows up as an error at the sender
    instead of vanishing. Every event kind is confirmed, on one channel, because (measured on
    loopback) the confirm costs the publishing caller about 0.3 ms, and buys three things:
    per-room order across event kinds (a second, unconfirmed channel for awareness would reorder
    against updates); backpressure (unconfirmed, a burst outran the receiver and its delivery
    latency went from under 1 ms to tens of ms); and truth (unconfirmed publishes "succeeded" and
    were lost while connections dropped; confirmed ones never were).
    Publishing and consuming use separate connections, as RabbitMQ recommends, so that flow control
    blocking a publishing connection never stops this instance from draining its own queue.

Failure and recovery
    Both connections are aio-pika robust connections: after a broker restart or a dropped socket
    they reconnect every ``reconnect_interval`` seconds and re-declare the exchange, the queue,
    its bindings, the QoS and the consumer by themselves. While the publishing side is down,
    :meth:`RabbitMqBus.publish` raises :class:`ConnectionError` immediately (and after at most
    ``publish_timeout`` seconds when the broker is stalled) — the gateway core logs it and goes on;
    other instances' clients close the gap with SYNC. ``collabgate_dependency_up{dependency=
    "rabbitmq"}`` follows the connections; ``rabbitmq_publish_total{result}`` counts publications.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aio_pika
import aiormq.exceptions
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ConsumerTag,
)
from yarl import URL

from collabgate.bus import envelope, sharding
from collabgate.bus.port import PublishUnconfirmed, RoomEvent, RoomEventHandler
from collabgate.ops.metrics import Metrics
from collabgate.settings import SettingsError

log = structlog.get_logger(__name__)

AMQP_URL_VARIABLE: Final = "COLLABGATE_AMQP_URL"
AMQP_EXCHANGE_VARIABLE: Final = "COLLABGATE_AMQP_EXCHANGE"
DEFAULT_EXCHANGE: Final = "collabgate.rooms"
DEPENDENCY: Final = "rabbitmq"

#: What a publish can fail with when the broker, the connection or the channel is not there.
_PUBLISH_FAILURES: Final = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    TimeoutError,
)
#: What acks and shutdown steps can also fail with: aio-pika's "connection closed" errors.
_SHUTDOWN_FAILURES: Final = (*_PUBLISH_FAILURES, RuntimeError)
#: What connecting or declaring can fail with at start-up.
_STARTUP_FAILURES: Final = (aiormq.exceptions.AMQPError, OSError, TimeoutError, ValueError)
_AUTHENTICATION_FAILURES: Final = (
    aiormq.exceptions.ProbableAuthenticationError,
    aiormq.exceptions.AuthenticationError,
)
_MAX_QUEUE_NAME: Final = 255


class AmqpStartupError(SettingsError):
    """RabbitMQ cannot be used at start-up; the message names the variable to fix.

    A :class:`SettingsError` so the CLI reports it like any other bad configuration (exit 2).
    The message never contains the password.
    """


class RabbitMqBus:
    """The production :class:`~collabgate.bus.port.RoomBus`: see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        metrics: Metrics | None = None,
        exchange: str = DEFAULT_EXCHANGE,
        shards: int = 64,
        confirm: bool = True,
        prefetch: int = 256,
        publish_timeout: float = 1.0,
        connect_timeout: float = 5.0,
        reconnect_interval: float = 2.0,
        heartbeat: int = 15,
        queue_expires: float = 60.0,
        queue_max_length: int = 100_000,
        queue_max_bytes: int = 128 * 1024 * 1024,
    ) -> None:
        if not exchange:
            raise ValueError("exchange name must not be empty")
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self._url = url
        self._metrics = metrics
        self._exchange_name = exchange
        self._shards = sharding.check_shard_count(shards)
        self._confirm = confirm
        self._prefetch = prefetch
        self._ack_every = max(1, prefetch // 4)
        self._publish_timeout = publish_timeout
        self._connect_timeout = connect_timeout
        self._reconnect_interval = reconnect_interval
        self._heartbeat = heartbeat
        self._queue_arguments: dict[str, Any] = {
            "x-queue-type": "classic",
            "x-expires": max(1, round(queue_expires * 1000)),
            "x-max-length": queue_max_length,
            "x-max-length-bytes": queue_max_bytes,
            "x-overflow": "drop-head",
        }
        self._routing_keys = sharding.all_routing_keys(self._shards)
        self._instance_id: str | None = None
        self._sender = uuid.uuid4().hex  # tells our own publications from everyone else's
        self._duplicate_reported = False
        self._handler: RoomEventHandler | None = None
        self._publisher: AbstractRobustConnection | None = None
        self._consumer: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._queue: AbstractQueue | None = None
        self._queue_name: str | None = None
        self._consumer_tag: ConsumerTag | None = None
        self._inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._publisher_up = False
        self._consumer_up = False
        self._closing = False
        # Children resolved once: a `.labels()` lookup per publish costs more than the increment.
        self._published_ok = metrics.rabbitmq_publish.labels("ok") if metrics else None
        self._published_error = metrics.rabbitmq_publish.labels("error") if metrics else None
        self._failures = metrics.dependency_failures.labels(DEPENDENCY) if metrics else None

    # ------------------------------------------------------------------ introspection
    @property
    def healthy(self) -> bool:
        """True while both connections are up with their topology restored and the consumer's
        worker runs (for ``/ready``)."""
        worker = self._worker
        return self._publisher_up and self._consumer_up and worker is not None and not worker.done()

    @property
    def queue_name(self) -> str | None:
        """This instance's queue, once started."""
        return self._queue_name

    @property
    def exchange(self) -> str:
        return self._exchange_name

    @property
    def shards(self) -> int:
        return self._shards

    # ------------------------------------------------------------------ lifecycle
    async def start(self, instance_id: str, handler: RoomEventHandler) -> None:
        """Connect, declare the topology and begin consuming.

        Raises :class:`AmqpStartupError` naming COLLABGATE_AMQP_URL when the URL is malformed,
        the credentials or vhost are refused, or the broker cannot be reached within
        ``connect_timeout``; naming COLLABGATE_AMQP_EXCHANGE when the exchange exists with an
        incompatible definition.
        """
        if self._instance_id is not None:
            raise RuntimeError("RabbitMqBus.start called twice")
        self._instance_id = instance_id
        self._handler = handler
        self._queue_name = instance_queue_name(self._exchange_name, instance_id)
        try:
            self._publisher = await self._connect(f"collabgate {instance_id} publish")
            self._consumer = await self._connect(f"collabgate {instance_id} consume")
            await self._declare_topology(self._publisher, self._consumer)
        except BaseException:
            await self._close_connections()
            self._instance_id, self._closing = None, False  # start may be tried again
            raise
        self._watch(self._publisher, is_publisher=True)
        self._watch(self._consumer, is_publisher=False)
        self._publisher_up = self._consumer_up = True
        self._worker = asyncio.create_task(self._deliver_forever(), name="rabbitmq-bus-consumer")
        self._worker.add_done_callback(self._worker_ended)
        self._report_health()
        log.info(
            "bus_started",
            adapter="rabbitmq",
            broker=redact_url(self._url),
            exchange=self._exchange_name,
            queue=self._queue_name,
            shards=self._shards,
            confirm=self._confirm,
        )

    async def close(self) -> None:
        """Stop consuming, delete this instance's queue, close both connections.

        Every step is bounded by ``publish_timeout`` so a stop during an outage does not hang;
        a queue left behind then expires by itself after ``queue_expires``.
        """
        self._closing = True
        await self._stop_consuming()
        await self._close_connections()
        self._publisher_up = self._consumer_up = False

    # ------------------------------------------------------------------ publishing
    @property
    def reaches_other_instances(self) -> bool:
        """Always: other instances come and go without this one knowing."""
        return True

    async def publish(self, event: RoomEvent) -> None:
        """Send ``event`` to every other instance.

        Raises :class:`ConnectionError` when the broker is unavailable, without waiting for a
        reconnection; after at most ``publish_timeout`` seconds when it is stalled.
        """
        exchange = self._exchange
        if exchange is None or not self._publisher_up:
            self._publish_failed()
            raise ConnectionError("rabbitmq unavailable: not connected")
        message = aio_pika.Message(
            envelope.encode(event),
            content_type=envelope.CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT,
            app_id=self._sender,
        )
        key = sharding.routing_key_for(event.resource_id, self._shards)
        try:
            async with asyncio.timeout(self._publish_timeout):
                await exchange.publish(message, routing_key=key, mandatory=False)
        except Exception as exc:
            if not _is_broker_failure(exc, _PUBLISH_FAILURES):
                raise
            self._publish_failed()
            message_text = f"rabbitmq unavailable during publish: {_describe(exc)}"
            if isinstance(exc, TimeoutError):  # sent, or about to be: only the confirm is late
                raise PublishUnconfirmed(message_text) from exc
            raise ConnectionError(message_text) from exc
        if self._published_ok is not None:
            self._published_ok.inc()

    def _publish_failed(self) -> None:
        if self._published_error is not None:
            self._published_error.inc()
        if self._failures is not None:
            self._failures.inc()

    # ------------------------------------------------------------------ start-up steps
    async def _connect(self, name: str) -> AbstractRobustConnection:
        """One robust connection, or :class:`AmqpStartupError` naming COLLABGATE_AMQP_URL.

        The connection object is built here rather than by ``aio_pika.connect_robust`` so that a
        failed first attempt can be closed: that stops its reconnection loop, which would
        otherwise keep retrying in the background of a process that is exiting.
        """
        shown = redact_url(self._url)
        try:
            url = with_default_heartbeat(URL(self._url), self._heartbeat)
            connection = aio_pika.RobustConnection(
                url,
                reconnect_interval=self._reconnect_interval,
                client_properties={"connection_name": name},
            )
        except (ValueError, TypeError) as exc:
            raise AmqpStartupError(
                f"{AMQP_URL_VARIABLE}: invalid AMQP URL {shown}: {_describe(exc)}"
            ) from None
        try:
            async with asyncio.timeout(self._connect_timeout + 1.0):
                await connection.connect(timeout=self._connect_timeout)
        except BaseException as exc:
            await connection.close()
            if isinstance(exc, _AUTHENTICATION_FAILURES):
                raise AmqpStartupError(
                    f"{AMQP_URL_VARIABLE}: RabbitMQ at {shown} refused the credentials: "
                    f"{_describe(exc)}"
                ) from None
            if isinstance(exc, _STARTUP_FAILURES):
                raise AmqpStartupError(
                    f"{AMQP_URL_VARIABLE}: cannot connect to RabbitMQ at {shown}: {_describe(exc)}"
                ) from None
            raise
        return connection

    async def _declare_topology(
        self, publisher: AbstractRobustConnection, consumer: AbstractRobustConnection
    ) -> None:
        """Exchange on both connections (either may be the one to recreate it), queue, bindings."""
        try:
            async with asyncio.timeout(self._connect_timeout + 1.0):
                publishing = await publisher.channel(publisher_confirms=self._confirm)
                self._exchange = await self._declare_exchange(publishing)
                consuming = await consumer.channel(publisher_confirms=False)
                self._queue = await self._declare_queue(
                    consuming, await self._declare_exchange(consuming)
                )
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            raise AmqpStartupError(
                f"{AMQP_EXCHANGE_VARIABLE}: exchange {self._exchange_name!r} or queue "
                f"{self._queue_name!r} exists with another definition: {_describe(exc)}"
            ) from None
        except aiormq.exceptions.ChannelAccessRefused as exc:
            raise AmqpStartupError(
                f"{AMQP_URL_VARIABLE}: the RabbitMQ user may not declare exchange "
                f"{self._exchange_name!r} or its queue: {_describe(exc)}"
            ) from None
        except _STARTUP_FAILURES as exc:
            raise AmqpStartupError(
                f"{AMQP_URL_VARIABLE}: RabbitMQ at {redact_url(self._url)} failed while "
                f"declaring the bus topology: {_describe(exc)}"
            ) from None

    async def _declare_exchange(self, channel: AbstractChannel) -> AbstractExchange:
        return await channel.declare_exchange(
            self._exchange_name, aio_pika.ExchangeType.DIRECT, durable=True
        )

    async def _declare_queue(
        self, channel: AbstractChannel, exchange: AbstractExchange
    ) -> AbstractQueue:
        """This instance's queue, bound once to every shard key, with its consumer."""
        await channel.set_qos(prefetch_count=self._prefetch)
        queue = await channel.declare_queue(
            self._queue_name, durable=True, arguments=self._queue_arguments
        )
        for key in self._routing_keys:
            await queue.bind(exchange, routing_key=key)
        self._consumer_tag = await queue.consume(self._on_message, no_ack=False)
        return queue

    # ------------------------------------------------------------------ connection health
    def _watch(self, connection: AbstractRobustConnection, *, is_publisher: bool) -> None:
        """Follow one connection's losses and recoveries in the health flags and metrics."""

        def lost(_: object, exc: BaseException | None = None) -> None:
            if self._closing:
                return
            self._set_side(is_publisher, up=False)
            if self._failures is not None:
                self._failures.inc()
            log.warning(
                "bus_connection_lost",
                side="publish" if is_publisher else "consume",
                error=_describe(exc) if exc else None,
            )

        def restored(_: object) -> None:
            self._set_side(is_publisher, up=True)
            log.info("bus_connection_restored", side="publish" if is_publisher else "consume")

        connection.close_callbacks.add(lost)
        connection.reconnect_callbacks.add(restored)

    def _set_side(self, is_publisher: bool, *, up: bool) -> None:
        if is_publisher:
            self._publisher_up = up
        else:
            self._consumer_up = up
        self._report_health()

    def _report_health(self) -> None:
        if self._metrics is not None:
            self._metrics.set_dependency(DEPENDENCY, self.healthy)

    # ------------------------------------------------------------------ consuming
    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        """Called by aio-pika per delivery (in delivery order): hand over to the one worker."""
        self._inbox.put_nowait(message)

    async def _deliver_forever(self) -> None:
        """Run the handler for one message at a time, so a room's events stay in order.

        Acks are batched: one ``multiple`` ack covers every message handled so far, sent when
        the inbox runs dry or every ``prefetch // 4`` messages. That halves the frames and
        syscalls per event under load, and (acking only handled messages) never acks ahead.
        """
        handled: AbstractIncomingMessage | None = None
        since_ack = 0
        while True:
            if handled is not None and (self._inbox.empty() or since_ack >= self._ack_every):
                await _ack(handled)
                handled, since_ack = None, 0
            message = await self._inbox.get()
            await self._deliver(message)
            handled, since_ack = message, since_ack + 1

    def _worker_ended(self, worker: asyncio.Task[None]) -> None:
        """The worker ends only when :meth:`close` stops it. Any other end means no event from
        another instance is handled any more: the bus turns unhealthy (``/ready`` fails, so the
        instance is drained and replaced) and says why, instead of going quiet."""
        if self._closing:
            return
        self._report_health()  # unhealthy now: the worker is done
        error = None if worker.cancelled() else worker.exception()
        log.error(
            "bus_consumer_stopped",
            error=_describe(error) if error else "cancelled",
            exc_info=error,
        )

    async def _deliver(self, message: AbstractIncomingMessage) -> None:
        """Hand one message to the handler unless it is our own or malformed; never raises."""
        if message.app_id == self._sender:
            return  # our own publication, recognised without decoding the body
        try:
            event = envelope.decode(message.body)
        except envelope.EnvelopeError as exc:
            log.warning("bus_event_malformed", error=str(exc), size=len(message.body))
            return
        if event.origin_instance == self._instance_id:
            self._report_duplicate_instance_id()
        await self._run_handler(event)

    def _report_duplicate_instance_id(self) -> None:
        if not self._duplicate_reported:
            self._duplicate_reported = True
            log.warning(
                "bus_duplicate_instance_id",
                instance=self._instance_id,
                hint="another process publishes with this instance id; give every instance "
                "its own COLLABGATE_INSTANCE_ID",
            )

    async def _run_handler(self, event: RoomEvent) -> None:
        handler = self._handler
        assert handler is not None  # set by start() before the consumer exists
        try:
            await handler(event)
        except Exception:
            # The event is acked anyway: redelivering a poison event would stall the room.
            log.exception(
                "bus_handler_failed",
                resource_id=event.resource_id,
                origin=event.origin_instance,
            )

    # ------------------------------------------------------------------ shutdown steps
    async def _stop_consuming(self) -> None:
        queue, tag = self._queue, self._consumer_tag
        if queue is not None and self._consumer_up:
            if tag is not None:
                await self._bounded("cancel_consumer", lambda: queue.cancel(tag))
            await self._bounded(
                "delete_queue", lambda: queue.delete(if_unused=False, if_empty=False)
            )
        self._queue = None
        self._consumer_tag = None
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():  # one that stopped was reported then
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _close_connections(self) -> None:
        self._closing = True
        self._exchange = None
        for connection in (self._publisher, self._consumer):
            if connection is not None:
                await self._bounded("close_connection", connection.close)
        self._publisher = self._consumer = None

    async def _bounded(self, step: str, call: Callable[[], Awaitable[object]]) -> None:
        """Run one shutdown step, giving up after ``publish_timeout``; a broker failure is logged."""
        try:
            async with asyncio.timeout(self._publish_timeout):
                await call()
        except Exception as exc:
            if not _is_broker_failure(exc, _SHUTDOWN_FAILURES):
                raise
            log.warning("bus_close_step_failed", step=step, error=_describe(exc))


async def _ack(message: AbstractIncomingMessage) -> None:
    """Ack ``message`` and every earlier delivery on its channel; never raises.

    An ack is best effort: if it fails, the broker requeues the deliveries when their channel
    goes and they come again on the new one, a duplicate the bus tolerates. Whatever it fails
    with must not escape, because it would end the one worker and every later delivery.
    """
    try:
        await message.ack(multiple=True)
    except Exception as exc:
        if _is_broker_failure(exc, _SHUTDOWN_FAILURES):
            log.debug("bus_ack_failed", error=_describe(exc))
        else:
            log.warning("bus_ack_failed", error=_describe(exc))


def _is_broker_failure(exc: Exception, expected: tuple[type[Exception], ...]) -> bool:
    """Whether ``exc`` is the broker, the connection or the channel going away.

    Besides the ``expected`` types that means a bare :class:`Exception`: aiormq fails a
    closing channel's pending futures with one when the close has no reason (seen in CI: an
    ack in flight when a connection reset).
    """
    return isinstance(exc, expected) or type(exc) is Exception


def instance_queue_name(exchange: str, instance_id: str) -> str:
    """``{exchange}.{instance_id}.{random}``: unique per process, readable in the broker UI."""
    suffix = uuid.uuid4().hex[:12]
    budget = _MAX_QUEUE_NAME - len(exchange.encode()) - len(suffix) - 2
    readable = instance_id.encode("utf-8")[: max(budget, 0)].decode("utf-8", "ignore")
    return f"{exchange}.{readable}.{suffix}"


def with_default_heartbeat(url: URL, seconds: int) -> URL:
    """``url`` with ``?heartbeat=seconds`` unless it names its own.

    AMQP heartbeats are how a silently dead peer (a broker host gone without a TCP reset) is
    noticed; the usual 60 s default leaves the bus marked up, and its consumer waiting, for
    up to two minutes. Publishing does not depend on it (``publish_timeout`` bounds that).
    """
    if "heartbeat" in url.query:
        return url
    return url.update_query(heartbeat=seconds)


def redact_url(url: str) -> str:
    """``url`` without its password, for error messages and logs."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return "<unparsable URL>"
    if parsed.password is not None:
        parsed = parsed.with_password("***")
    return str(parsed.with_query(None))


def _describe(exc: BaseException) -> str:
    """A one-line description of ``exc``: its type when it carries no message (TimeoutError)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
