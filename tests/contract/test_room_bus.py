"""RoomBus contract: the in-process and the RabbitMQ adapter must pass this suite unchanged.

The RabbitMQ half needs a broker on ``COLLABGATE_TEST_AMQP_URL`` (default
amqp://guest:guest@127.0.0.1:5672/). When it is not reachable those tests skip, except under
``CI=true`` where a missing broker is a failure. Every test gets its own exchange
(``cgtest.{uuid}``); the exchange and every instance queue are deleted afterwards.

Broker outages are simulated without touching the broker: RabbitMQ-only tests connect through
:class:`FlakyProxy`, a TCP proxy the test can drop (abort every socket, as a crashed broker or a
cut link would), take down (refuse new connections, as a broker that is restarting) and stall
(stop forwarding bytes, as a wedged broker). Synchronisation is by polling with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal, NoReturn

import aio_pika
import pytest
from structlog.testing import capture_logs
from yarl import URL

from collabgate.bus import envelope, sharding
from collabgate.bus.memory import InProcessBus, InProcessHub
from collabgate.bus.port import RoomBus, RoomEvent, RoomEventHandler
from collabgate.bus.rabbitmq import AMQP_URL_VARIABLE, AmqpStartupError, RabbitMqBus
from collabgate.ops.metrics import Metrics
from tests.support.requirements import unavailable

TEST_AMQP_URL = os.environ.get("COLLABGATE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
_TEST_URL = URL(TEST_AMQP_URL)
AMQP_HOST, AMQP_PORT = _TEST_URL.host or "127.0.0.1", _TEST_URL.port or 5672
DEADLINE = 10.0  # seconds any single wait may take before the test fails

BusKind = Literal["memory", "rabbitmq"]
R1, R2 = "patient:1", "surgery-report:2"


# =========================================================================== helpers
async def eventually(condition: Callable[[], bool], what: str, within: float = DEADLINE) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.005)


class Boom(Exception):
    """What a deliberately failing handler raises."""


@dataclass
class Recorder:
    """A handler that keeps what it is given; optionally raises for chosen frames."""

    name: str
    events: list[RoomEvent] = field(default_factory=list)
    fail_on: set[str] = field(default_factory=set)

    async def __call__(self, event: RoomEvent) -> None:
        self.events.append(event)
        if event.frame in self.fail_on:
            raise Boom(f"{self.name} fails on {event.frame}")

    def frames(self, resource_id: str | None = None) -> list[str]:
        return [e.frame for e in self.events if resource_id is None or e.resource_id == resource_id]

    async def wait_for(self, frame: str) -> None:
        await eventually(lambda: frame in self.frames(), f"{self.name} to receive {frame!r}")


def event(origin: str, frame: str, resource_id: str = R1, update: bytes | None = None) -> RoomEvent:
    return RoomEvent(resource_id, origin, frame, update)


def missing_broker(reason: str) -> NoReturn:
    unavailable(f"RabbitMQ bus tests need a broker at {TEST_AMQP_URL}: {reason}")


async def require_broker() -> None:
    """Skip (or fail under CI=true) unless the test broker answers."""
    try:
        connection = await asyncio.wait_for(aio_pika.connect(TEST_AMQP_URL, timeout=2), 3)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        missing_broker(f"{type(exc).__name__}: {exc}")
    else:
        await connection.close()


async def delete_topology(exchange: str, queues: list[str]) -> None:
    """Remove what a test left on the broker: its instance queues and its exchange."""
    connection = await aio_pika.connect(TEST_AMQP_URL, timeout=5)
    try:
        for queue in queues:
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(queue)
            with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError):
                await channel.close()
        channel = await connection.channel()
        await channel.exchange_delete(exchange)
    finally:
        await connection.close()


class BusCluster:
    """Starts buses of one kind that see each other, as the instances of one fleet do.

    In-process buses share one :class:`InProcessHub`; RabbitMQ buses share one exchange.
    """

    def __init__(self, kind: BusKind) -> None:
        self.kind = kind
        self.hub = InProcessHub()
        self.exchange = f"cgtest.{uuid.uuid4().hex}"
        self.buses: list[RoomBus] = []

    async def start(
        self, instance_id: str, handler: RoomEventHandler | None = None, **options: object
    ) -> RoomBus:
        bus = self._make(**options)
        self.buses.append(bus)
        await bus.start(instance_id, handler or Recorder(instance_id))
        return bus

    async def instance(self, instance_id: str, **options: object) -> tuple[RoomBus, Recorder]:
        recorder = Recorder(instance_id)
        return await self.start(instance_id, recorder, **options), recorder

    def _make(self, **options: object) -> RoomBus:
        if self.kind == "memory":
            return InProcessBus(self.hub)
        return RabbitMqBus(
            str(options.pop("url", TEST_AMQP_URL)),
            exchange=self.exchange,
            reconnect_interval=0.2,
            queue_expires=30.0,
            **options,  # type: ignore[arg-type]
        )

    async def cleanup(self) -> None:
        for bus in self.buses:
            await bus.close()
        if self.kind == "rabbitmq":
            queues = [b.queue_name for b in self.buses if isinstance(b, RabbitMqBus)]
            await delete_topology(self.exchange, [q for q in queues if q])


async def _cluster(kind: BusKind) -> AsyncIterator[BusCluster]:
    if kind == "rabbitmq":
        await require_broker()
    cluster = BusCluster(kind)
    try:
        yield cluster
    finally:
        await cluster.cleanup()


@pytest.fixture(params=["memory", "rabbitmq"])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[BusCluster]:
    """The adapter under test, able to start several instances on one shared medium."""
    async for value in _cluster(request.param):
        yield value


@pytest.fixture
async def rabbit_cluster() -> AsyncIterator[BusCluster]:
    """RabbitMQ alone, for what only it does (reconnection, start-up errors)."""
    async for value in _cluster("rabbitmq"):
        yield value


class FlakyProxy:
    """A TCP proxy to the test broker that a test can drop, take down or stall."""

    def __init__(self) -> None:
        self.accepting = True
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._sockets: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return str(_TEST_URL.with_host("127.0.0.1").with_port(self.port))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def drop(self) -> None:
        """Abort every proxied socket, both ways; new connections are still accepted."""
        for writer in list(self._sockets):
            writer.transport.abort()
        self._sockets.clear()

    def down(self) -> None:
        """Drop everything and refuse (accept then abort) every new connection."""
        self.accepting = False
        self.drop()

    def up(self) -> None:
        self.accepting = True

    def stall(self) -> None:
        """Keep the sockets open but stop forwarding bytes."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def close(self) -> None:
        self.drop()
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(AMQP_HOST, AMQP_PORT)
        except OSError:
            writer.transport.abort()
            return
        self._sockets.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(65_536):
                await self._flowing.wait()
                sink.write(data)
                await sink.drain()
        sink.transport.abort()


@pytest.fixture
async def proxy() -> AsyncIterator[FlakyProxy]:
    await require_broker()
    flaky = FlakyProxy()
    await flaky.start()
    yield flaky
    await flaky.close()


def rabbit(bus: RoomBus) -> RabbitMqBus:
    assert isinstance(bus, RabbitMqBus)
    return bus


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# =========================================================================== the contract
async def test_event_reaches_the_other_instance_with_every_field_intact(
    cluster: BusCluster,
) -> None:
    a, a_seen = await cluster.instance("instance-a")
    _, b_seen = await cluster.instance("instance-b")
    every_byte = bytes(range(256)) * 3
    sent = [
        RoomEvent(
            R1, "instance-a", '{"t":"Y_UPDATE","who":"Zoë 🩺 Ünïcødé 患者"}', every_byte, "c-1"
        ),
        RoomEvent("résumé:ü/⚕", "instance-a", "", b"", None),  # empty update is not "no update"
        RoomEvent(R2, "instance-a", '{"t":"AWARENESS"}', None, None),
    ]
    for item in sent:
        await a.publish(item)
    await eventually(lambda: len(b_seen.events) == len(sent), "B to receive all three events")
    assert b_seen.events == sent
    assert b_seen.events[1].update == b""
    assert b_seen.events[2].update is None
    assert a_seen.events == []


async def test_own_events_are_not_delivered_back(cluster: BusCluster) -> None:
    a, a_seen = await cluster.instance("instance-a")
    b, b_seen = await cluster.instance("instance-b")
    for n in range(20):
        await a.publish(event("instance-a", f"own-{n}"))
    await b_seen.wait_for("own-19")
    # B's fence is published after A's events were accepted, so it reaches A after them:
    # once A has the fence, anything of its own would have shown up already.
    await b.publish(event("instance-b", "fence"))
    await a_seen.wait_for("fence")
    assert a_seen.frames() == ["fence"]


async def test_three_instances_each_event_reaches_the_two_others_exactly_once(
    cluster: BusCluster,
) -> None:
    names = ("instance-a", "instance-b", "instance-c")
    instances = [await cluster.instance(name) for name in names]
    per_instance = 30
    for n in range(per_instance):
        for (bus, _), name in zip(instances, names, strict=True):
            await bus.publish(event(name, f"{name}/{n}", resource_id=f"patient:{n % 7}"))
    for (bus, _), name in zip(instances, names, strict=True):
        await bus.publish(event(name, f"{name}/fence"))
    for _, seen in instances:
        for name in names:
            if name != seen.name:
                await seen.wait_for(f"{name}/fence")
    for _, seen in instances:
        others = [name for name in names if name != seen.name]
        expected = [f"{o}/{n}" for o in others for n in range(per_instance)]
        expected += [f"{o}/fence" for o in others]
        assert sorted(seen.frames()) == sorted(expected), f"{seen.name}: missing or duplicated"
        assert all(e.origin_instance != seen.name for e in seen.events)


async def test_order_per_resource_is_preserved_for_a_thousand_events(cluster: BusCluster) -> None:
    a, _ = await cluster.instance("instance-a")
    _, b_seen = await cluster.instance("instance-b")
    resources = [f"patient:{k}" for k in range(4)]
    total = 1000
    for n in range(total):
        resource = resources[n % len(resources)]
        await a.publish(event("instance-a", str(n), resource_id=resource, update=n.to_bytes(2)))
    await eventually(lambda: len(b_seen.events) >= total, f"B to receive {total} events")
    assert len(b_seen.events) == total
    for k, resource in enumerate(resources):
        numbers = [int(frame) for frame in b_seen.frames(resource)]
        assert numbers == list(range(k, total, len(resources))), f"{resource} out of order"


async def test_handler_exception_does_not_stop_later_deliveries(cluster: BusCluster) -> None:
    a, _ = await cluster.instance("instance-a")
    b_seen = Recorder("instance-b", fail_on={"poison-1", "poison-2"})
    await cluster.start("instance-b", b_seen)
    for frame in ("before", "poison-1", "between", "poison-2", "after"):
        # Whether the publisher hears of a subscriber's failure is not this test's business
        # (see test_a_failing_subscriber_affects_neither_the_publisher_nor_other_instances).
        with contextlib.suppress(Boom):
            await a.publish(event("instance-a", frame))
    await b_seen.wait_for("after")
    assert b_seen.frames() == ["before", "poison-1", "between", "poison-2", "after"]


async def test_a_failing_subscriber_affects_neither_the_publisher_nor_other_instances(
    cluster: BusCluster,
) -> None:
    a, _ = await cluster.instance("instance-a")
    await cluster.start("instance-b", Recorder("instance-b", fail_on={"poison"}))
    _, c_seen = await cluster.instance("instance-c")
    await a.publish(event("instance-a", "poison"))
    await c_seen.wait_for("poison")


async def test_publish_after_close_does_not_reach_a_closed_instance(cluster: BusCluster) -> None:
    a, _ = await cluster.instance("instance-a")
    b, b_seen = await cluster.instance("instance-b")
    _, c_seen = await cluster.instance("instance-c")
    await b.close()
    await a.publish(event("instance-a", "after-b-left"))
    await c_seen.wait_for("after-b-left")
    assert b_seen.events == []


# =========================================================================== RabbitMQ only
def dependency_up(metrics: Metrics) -> float:
    return sample(metrics, "collabgate_dependency_up", dependency="rabbitmq")


def publish_results(metrics: Metrics, result: str) -> float:
    return sample(metrics, "rabbitmq_publish_total", result=result)


async def close_from_client_side(bus: RabbitMqBus) -> None:
    """Close both AMQP connections underneath aio-pika's robust wrappers, as a restart would."""
    for connection in (bus._publisher, bus._consumer):
        assert connection is not None
        assert connection.transport is not None
        await connection.transport.close(ConnectionError("simulated broker restart"))


@pytest.mark.parametrize("how", ["sockets-aborted", "closed-client-side"])
async def test_heals_after_its_connections_are_dropped(
    proxy: FlakyProxy, rabbit_cluster: BusCluster, how: str
) -> None:
    metrics = Metrics()
    a, a_seen = await rabbit_cluster.instance("instance-a", url=proxy.url, metrics=metrics)
    b, b_seen = await rabbit_cluster.instance("instance-b")
    assert rabbit(a).healthy
    assert dependency_up(metrics) == 1

    if how == "sockets-aborted":
        proxy.drop()  # both of A's sockets die at once, as when the broker crashes
    else:
        await close_from_client_side(rabbit(a))
    failures = "collabgate_dependency_failures_total"
    await eventually(
        lambda: sample(metrics, failures, dependency="rabbitmq") >= 2, "A to notice both drops"
    )
    await eventually(lambda: rabbit(a).healthy, "A to reconnect and restore its topology")

    assert dependency_up(metrics) == 1
    await a.publish(event("instance-a", "a-after"))
    await b_seen.wait_for("a-after")
    await b.publish(event("instance-b", "b-after"))  # A's queue, bindings and consumer are back
    await a_seen.wait_for("b-after")


async def test_outage_fails_publish_fast_then_heals_without_losing_queued_events(
    proxy: FlakyProxy, rabbit_cluster: BusCluster
) -> None:
    metrics = Metrics()
    a, a_seen = await rabbit_cluster.instance("instance-a", url=proxy.url, metrics=metrics)
    b, b_seen = await rabbit_cluster.instance("instance-b")

    proxy.down()  # and it stays down: every reconnection attempt is refused
    await eventually(lambda: not rabbit(a).healthy, "A to notice the outage")
    assert dependency_up(metrics) == 0
    for n in range(3):
        started = time.monotonic()
        with pytest.raises(ConnectionError):
            await a.publish(event("instance-a", f"lost-{n}"))
        assert time.monotonic() - started < 0.2, "publish must not wait for the broker"
    assert publish_results(metrics, "error") == 3

    # A's queue outlives a short outage, so what B publishes meanwhile is waiting for A.
    for n in range(5):
        await b.publish(event("instance-b", f"during-{n}"))

    proxy.up()
    await eventually(lambda: rabbit(a).healthy, "A to reconnect once the broker is back")
    assert dependency_up(metrics) == 1
    await a_seen.wait_for("during-4")
    assert a_seen.frames() == [f"during-{n}" for n in range(5)]
    await a.publish(event("instance-a", "a-after"))
    await b_seen.wait_for("a-after")
    assert "lost-0" not in b_seen.frames()
    assert publish_results(metrics, "ok") == 1


async def test_confirmed_publishes_survive_connection_churn(
    proxy: FlakyProxy, rabbit_cluster: BusCluster
) -> None:
    """While connections keep dropping: only ConnectionError, and every confirmed event arrives.

    A consumes too (its own events come back to it, and are acked) so drops also land on acks
    in flight: one once failed with aiormq's reason-less bare ``Exception`` and ended A's
    consumer for good, which only the fence from B at the end shows.
    """
    a, a_seen = await rabbit_cluster.instance("instance-a", url=proxy.url, confirm=True)
    b, b_seen = await rabbit_cluster.instance("instance-b")
    confirmed: list[str] = []
    unexpected: list[BaseException] = []
    stop = asyncio.Event()

    async def publish_until_stopped(publisher: int) -> None:
        for n in range(1_000_000):
            if stop.is_set():
                return
            try:
                await a.publish(event("instance-a", f"{publisher}-{n}"))
            except ConnectionError:
                await asyncio.sleep(0.002)  # back off as a caller would; not synchronisation
            except BaseException as exc:
                unexpected.append(exc)
                return
            else:
                confirmed.append(f"{publisher}-{n}")

    publishers = [asyncio.create_task(publish_until_stopped(k)) for k in range(8)]
    for _ in range(5):
        goal = len(confirmed) + 50

        def resumed(goal: int = goal) -> bool:
            return len(confirmed) >= goal

        await eventually(resumed, "publishing to resume")
        proxy.drop()
    stop.set()
    await asyncio.gather(*publishers)
    await eventually(lambda: rabbit(a).healthy, "A to heal")
    await a.publish(event("instance-a", "fence"))
    await b_seen.wait_for("fence")
    await b.publish(event("instance-b", "fence"))
    await a_seen.wait_for("fence")
    assert unexpected == []
    assert set(confirmed) <= set(b_seen.frames()), "a confirmed publish was lost"


@dataclass
class AckFailsWithoutAReason:
    """A delivery of A's own whose ack fails as aiormq fails one in flight on a channel that
    closes without a reason: with a bare ``Exception``. That happened once in CI, in the middle
    of connection churn; the race cannot be set up on demand, so this stands in for the
    delivery. It is A's own, so the worker skips it unread and goes straight to the ack."""

    app_id: str
    body: bytes = b""

    async def ack(self, multiple: bool = False) -> None:
        raise Exception  # exactly what aiormq raises


async def test_consumption_continues_after_an_ack_fails_without_a_reason(
    rabbit_cluster: BusCluster,
) -> None:
    a, a_seen = await rabbit_cluster.instance("instance-a")
    b, _ = await rabbit_cluster.instance("instance-b")
    await b.publish(event("instance-b", "before"))
    await a_seen.wait_for("before")

    await rabbit(a)._on_message(AckFailsWithoutAReason(rabbit(a)._sender))  # type: ignore[arg-type]
    await b.publish(event("instance-b", "after"))
    await a_seen.wait_for("after")  # the worker lived through the failed ack


async def test_a_consumer_that_stops_turns_the_bus_unhealthy(rabbit_cluster: BusCluster) -> None:
    """The worker ends only when close() stops it. Should anything else end it (here a handler
    raising a CancelledError that was not the worker's, which no ``except Exception`` stops),
    no event of another instance is handled any more: /ready must say so, not stay green."""
    metrics = Metrics()

    async def handler(event: RoomEvent) -> None:
        raise asyncio.CancelledError  # not a cancellation of the worker

    a = await rabbit_cluster.start("instance-a", handler, metrics=metrics)
    b, _ = await rabbit_cluster.instance("instance-b")
    assert rabbit(a).healthy
    with capture_logs() as logs:
        await b.publish(event("instance-b", "fatal"))
        await eventually(lambda: not rabbit(a).healthy, "A to report that its consumer stopped")
        # The metric and the log follow in the worker's done callback, a loop turn later.
        await eventually(lambda: dependency_up(metrics) == 0, "A's rabbitmq metric to go down")
    assert [e["error"] for e in logs if e["event"] == "bus_consumer_stopped"] == ["cancelled"]
    await a.close()  # and it still closes cleanly


async def test_stalled_broker_fails_publish_within_the_publish_timeout(
    proxy: FlakyProxy, rabbit_cluster: BusCluster
) -> None:
    a, _ = await rabbit_cluster.instance("instance-a", url=proxy.url, publish_timeout=0.3)
    _, b_seen = await rabbit_cluster.instance("instance-b")

    proxy.stall()
    started = time.monotonic()
    with pytest.raises(ConnectionError):
        await a.publish(event("instance-a", "stalled"))
    assert 0.25 < time.monotonic() - started < 1.0

    proxy.resume()
    await a.publish(event("instance-a", "resumed"))
    await b_seen.wait_for("resumed")  # "stalled" may arrive too: duplicates/late are tolerated


async def test_wrong_credentials_fail_start_naming_the_variable(
    rabbit_cluster: BusCluster,
) -> None:
    url = str(_TEST_URL.with_password("not-the-password"))
    with pytest.raises(AmqpStartupError) as failure:
        await rabbit_cluster.start("instance-a", url=url)
    message = str(failure.value)
    assert message.startswith(f"{AMQP_URL_VARIABLE}:")
    assert "refused the credentials" in message
    assert "not-the-password" not in message


async def test_unreachable_broker_fails_start_naming_the_variable(
    proxy: FlakyProxy, rabbit_cluster: BusCluster
) -> None:
    bus = RabbitMqBus(proxy.url, exchange=rabbit_cluster.exchange, connect_timeout=1.0)
    rabbit_cluster.buses.append(bus)
    proxy.down()
    started = time.monotonic()
    with pytest.raises(AmqpStartupError, match=f"^{AMQP_URL_VARIABLE}: cannot connect"):
        await bus.start("instance-a", Recorder("instance-a"))
    assert time.monotonic() - started < 3.0

    proxy.up()  # a failed start leaves nothing running behind, and may be tried again
    await bus.start("instance-a", Recorder("instance-a"))
    assert bus.healthy


async def test_malformed_url_fails_start_naming_the_variable(rabbit_cluster: BusCluster) -> None:
    with pytest.raises(AmqpStartupError, match=f"^{AMQP_URL_VARIABLE}:"):
        await rabbit_cluster.start("instance-a", url="amqp://guest:guest@127.0.0.1:notaport/")


async def test_exchange_of_another_type_fails_start_naming_the_variable(
    rabbit_cluster: BusCluster,
) -> None:
    connection = await aio_pika.connect(TEST_AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.declare_exchange(rabbit_cluster.exchange, aio_pika.ExchangeType.FANOUT)
    with pytest.raises(AmqpStartupError, match=r"^COLLABGATE_AMQP_EXCHANGE:"):
        await rabbit_cluster.start("instance-a")


async def test_events_are_routed_by_shard_key(rabbit_cluster: BusCluster) -> None:
    """What lets an instance bind only some shards later: a shard's queue gets only its rooms."""
    a, _ = await rabbit_cluster.instance("instance-a")
    shards = rabbit(a).shards
    rooms = [f"patient:{n}" for n in range(200)]
    target = sharding.shard_of(rooms[0], shards)
    connection = await aio_pika.connect(TEST_AMQP_URL)
    async with connection:
        channel = await connection.channel()
        observer = await channel.declare_queue(exclusive=True)
        await observer.bind(rabbit_cluster.exchange, sharding.routing_key(target))
        for room in rooms:
            await a.publish(event("instance-a", room, resource_id=room))
        await a.publish(event("instance-a", "fence", resource_id=rooms[0]))
        seen: list[str] = []
        async with observer.iterator() as messages:
            async for message in messages:
                await message.ack()
                seen.append(envelope.decode(message.body).resource_id)
                if envelope.decode(message.body).frame == "fence":
                    break
    expected = [r for r in rooms if sharding.shard_of(r, shards) == target] + [rooms[0]]
    assert seen == expected
    assert 0 < len(expected) - 1 < len(rooms) // 10


async def test_instances_sharing_an_instance_id_still_exchange_events(
    rabbit_cluster: BusCluster,
) -> None:
    """Misconfigured fleets (every container "0.0.0.0:8080") must not silently drop events."""
    a, a_seen = await rabbit_cluster.instance("0.0.0.0:8080")
    b, b_seen = await rabbit_cluster.instance("0.0.0.0:8080")
    await a.publish(event("0.0.0.0:8080", "from-a"))
    await b_seen.wait_for("from-a")
    await b.publish(event("0.0.0.0:8080", "from-b"))
    await a_seen.wait_for("from-b")
    assert a_seen.frames() == ["from-b"]
    assert b_seen.frames() == ["from-a"]


async def test_malformed_message_is_dropped_and_consumption_continues(
    rabbit_cluster: BusCluster,
) -> None:
    a, _ = await rabbit_cluster.instance("instance-a")
    _, b_seen = await rabbit_cluster.instance("instance-b")
    connection = await aio_pika.connect(TEST_AMQP_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(rabbit_cluster.exchange)
        for body in (b"", b"not an envelope", b"\x09" + bytes(15)):
            await exchange.publish(aio_pika.Message(body), routing_key=sharding.routing_key(0))
    await a.publish(event("instance-a", "valid"))
    await b_seen.wait_for("valid")
    assert b_seen.frames() == ["valid"]


async def test_close_deletes_the_instance_queue(rabbit_cluster: BusCluster) -> None:
    a, _ = await rabbit_cluster.instance("instance-a")
    queue = rabbit(a).queue_name
    assert queue is not None
    await a.close()
    connection = await aio_pika.connect(TEST_AMQP_URL)
    async with connection:
        channel = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await channel.declare_queue(queue, passive=True)
    with pytest.raises(ConnectionError):
        await a.publish(event("instance-a", "after-close"))


# =========================================================================== wire format
def test_shard_of_is_stable_across_processes() -> None:
    """CRC-32, not the per-process salted hash(): every instance must agree on a room's shard."""
    assert sharding.shard_of("patient:1", 64) == zlib.crc32(b"patient:1") % 64 == 54
    assert sharding.routing_key_for("patient:1", 64) == "shard.54"
    assert sharding.all_routing_keys(3) == ("shard.0", "shard.1", "shard.2")
    with pytest.raises(ValueError, match="shard count"):
        sharding.check_shard_count(0)


@pytest.mark.parametrize(
    "body",
    [b"", b"\x01", b"\x03" + bytes(19), envelope.encode(event("a", "x"))[:-1], bytes(16)],
    ids=["empty", "short", "unknown-version", "truncated", "zero-version"],
)
def test_malformed_envelopes_are_rejected(body: bytes) -> None:
    with pytest.raises(envelope.EnvelopeError):
        envelope.decode(body)


def test_envelope_round_trip() -> None:
    original = RoomEvent("patient:ü", "host-1:8080", "frame ⚕", b"\x00\x01\xff", "conn-9")
    body = envelope.encode(original)
    assert envelope.decode(body) == original
    with_yjs = RoomEvent("patient:1", "host-1:8080", "", None, None, yjs_frame=b"\x01\x02\x00")
    assert envelope.decode(envelope.encode(with_yjs)) == with_yjs


def test_version_1_envelopes_from_the_previous_release_are_still_read() -> None:
    import struct

    fields = (b"patient:1", b"old-host:8080", b"", b"frame", b"\x07")
    header = struct.pack(">BBHHHII", 1, 0x01, *(len(f) for f in fields))
    decoded = envelope.decode(header + b"".join(fields))
    assert decoded == RoomEvent("patient:1", "old-host:8080", "frame", b"\x07", None)
