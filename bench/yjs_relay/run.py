"""y-websocket relay benchmark: collabgate's /yjs against the reference servers, in one run.

    make bench-yjs                                   # sets up bench/yjs_relay, then runs this
    .venv/bin/python bench/yjs_relay/run.py --clients 200,500,1000 --rate 2 --seconds 10

The same workload — rooms of ``--room-size`` Yjs clients, each appending a small update to a
Y.Text ``--rate`` times a second (loadgen.mjs, one Node process) — goes, step by step, to:

* collabgate ``/yjs`` (embedded adapters: every update applied once, stored durably in SQLite
  with group commit and audited, then relayed),
* the reference Node server, ``y-websocket/bin/server.cjs`` of y-websocket 2.1.0 (in memory),
* the same server persisting every update (``y-websocket-leveldb``: its own ``YPERSISTENCE``
  option, y-leveldb 0.1.2 on LevelDB, which writes each update without an fsync),
* pycrdt-websocket 0.16.5 (``ASGIServer`` under uvicorn, in memory),

each freshly started for its step, in that order within a step so that a change in background load
hits them all alike. With ``--repeat N`` every step runs N rounds of all servers (each round
starting with the next server, so none always goes first) and reports each server's median run —
deliveries/s, p50 and p99 each the median of the N runs — with the range of its p99: one run's p99
moves by 2-3x on a shared 2-vCPU machine, for the reference servers as for ours. It also pairs
the runs of each round: collabgate's p99 over each reference's in the same round, whose median,
range and count of rounds where ours was lower drift far less than the two medians do (the VM's
speed changes within the hour, for both servers of a round alike). The references
are installed only in this folder (``node_modules/`` from package-lock.json, ``.venv/`` from
requirements.txt). For every step it prints deliveries/s (updates received by peers within the
measured window), latency p50/p99 (send → peer receive, one clock), losses, the server's CPU time
per 1000 deliveries and how much of it was the kernel's (``of it sys``: socket reads and writes,
fsyncs, wake-ups; the rest is the server's own code), what it wrote to storage per second
(``disk MB/s``: collabgate's SQLite WAL and checkpoints, LevelDB's log and tables; the other
references keep documents in memory), and the ratios of collabgate to each reference. The load average is printed with the figures, and
so is the share of the machine's CPU time the hypervisor gave to other guests (``steal %``:
steal time over CPUs x window; with ``--repeat``, the most any kept run lost), since a stolen
slice shows as a latency spike that no server caused. ``idle %`` is the machine's idle CPU time
over the same: the server, the load generator and the kernel share two CPUs here, and near zero
every one of them queues for a CPU; ``runq %`` is how long the server's threads, ready to run,
waited for one (share of the window); ``loop %`` is the CPU time of the server's busiest thread
over the window (its event loop): near 100 the server is at its knee, whatever the machine's idle
time, because one thread cannot use more than one CPU. All of these are sampled at the start and end of the
measured window, so none counts the connection phase. A run with more steal than
``--max-steal-percent`` (5 by default; 0 keeps every run) measured the hypervisor's other guests
more than the server: it is run again, up to ``--steal-retries`` times, and the ``rerun`` column
counts the runs thrown away. A run still over the limit after that is kept and shows its steal.
The gateway's warnings (a long collector pause, a failed commit) follow its row, those logged
during the measured window first and marked ``[in window]``: only they are in the latencies.
After the last step it prints each server's capacity: the offered deliveries/s of the largest
step it kept up with (99 % delivered, none lost, p99 at most ``--keep-up-p99-ms``, 100 by
default), and collabgate's ratio to each reference: the comparison of throughput at a latency
an editor still calls live, where deliveries/s alone at one step cannot tell two servers that
both keep up apart.
``--gateway-variant paced:COLLABGATE_SQLITE_COMMIT_INTERVAL_MS=5`` adds a gateway with other
settings to the same rounds (``collabgate+paced``): an A/B of a setting against the references.
``PYTHON=<interpreter>`` in a variant runs that gateway on another Python with collabgate
installed (``py312:PYTHON=/tmp/venv312/bin/python``).
Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from bench.host import describe_host  # noqa: E402
from bench.variants import parse_variant  # noqa: E402
from tests.support.gateway_process import GatewayProcess  # noqa: E402

SERVERS = ("collabgate", "y-websocket", "y-websocket-leveldb", "pycrdt-websocket")

#: Gateways with settings of their own (``--gateway-variant``), run in the same rounds as
#: ``collabgate`` under the name ``collabgate+<label>``: environment overrides by name.
GATEWAY_VARIANTS: dict[str, dict[str, str]] = {}


def gateway_variant(text: str) -> tuple[str, dict[str, str]]:
    """``label:NAME=VALUE[,NAME=VALUE…]`` → (``collabgate+label``, the environment overrides)."""
    label, env = parse_variant(text)
    return f"collabgate+{label}", env


@dataclass(frozen=True)
class StealLimit:
    """How much hypervisor steal a run may show before it is run again, and how often."""

    max_percent: float
    retries: int

    def accepts(self, result: dict[str, Any]) -> bool:
        return not self.max_percent or result["stealPercent"] <= self.max_percent


@dataclass
class Step:
    clients: int
    room_size: int
    rate: float
    warmup: float
    seconds: float

    @property
    def offered(self) -> float:
        """Deliveries a second the step asks for: every update reaches the room's other clients."""
        return self.clients * self.rate * (self.room_size - 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


@contextlib.contextmanager
def serve(
    name: str, step: Step, data_dir: Path, warnings: list[str]
) -> Iterator[tuple[list[str], psutil.Process]]:
    """Start one server; yield one URL per client and the server's process.

    The gateway's warnings and errors (a long garbage-collector pause, a failed commit) are
    added to ``warnings`` when it stops, so a latency spike can be told from its cause."""
    rooms = [f"bench:{name}-{step.clients}-{r}" for r in range(step.clients // step.room_size)]
    if name == "collabgate" or name in GATEWAY_VARIANTS:
        variant = dict(GATEWAY_VARIANTS.get(name, {}))
        python = variant.pop("PYTHON", sys.executable)
        gateway = GatewayProcess(
            data_dir,
            env={
                **variant,
                "COLLABGATE_ROOM_MAX_USERS": str(step.room_size),
                "COLLABGATE_MAX_CONNECTIONS": str(step.clients + 100),
            },
            python=python,
        ).start()
        try:
            urls = [
                f"ws://127.0.0.1:{gateway.port}/yjs/{room}?token={gateway.token(f'u{i}-{j}')}"
                for i, room in enumerate(rooms)
                for j in range(step.room_size)
            ]
            assert gateway.process is not None
            yield urls, psutil.Process(gateway.process.pid)
        finally:
            gateway.terminate()
            warnings.extend(gateway.warnings())
        return
    port = free_port()
    if name.startswith("y-websocket"):
        command = ["node", str(HERE / "node_modules/y-websocket/bin/server.cjs")]
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port)}
        if name == "y-websocket-leveldb":
            env["YPERSISTENCE"] = str(data_dir / "leveldb")
    else:
        command = [str(HERE / ".venv/bin/python"), str(HERE / "pycrdt_server.py"), str(port)]
        env = dict(os.environ)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, cwd=HERE)
    try:
        wait_for_port(port)
        yield (
            [f"ws://127.0.0.1:{port}/{room}" for room in rooms for _ in range(step.room_size)],
            psutil.Process(process.pid),
        )
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def measure(name: str, step: Step) -> dict[str, Any]:
    warnings: list[str] = []
    with (
        tempfile.TemporaryDirectory() as data,
        serve(name, step, Path(data), warnings) as (urls, server),
    ):
        config = {
            "urls": urls,
            "clientsPerRoom": step.room_size,
            "rate": step.rate,
            "warmupSeconds": step.warmup,
            "seconds": step.seconds,
            "drainSeconds": 2,
        }
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
            json.dump(config, file)
        load_before = os.getloadavg()[0]
        cpu_run_before = _cpu_seconds(server)
        output, window = run_loadgen(file.name, server, step.warmup + step.seconds + 120)
        cpu_run = _cpu_seconds(server) - cpu_run_before
        os.unlink(file.name)
    result: dict[str, Any] = json.loads(output[-1])
    delivered = result["deliveriesPerSecond"] * step.seconds
    machine_seconds = step.seconds * (psutil.cpu_count() or 1)
    result.update(
        server=name,
        load1=round(load_before, 2),
        stealMs=round(1000 * window.steal),
        stealPercent=round(100 * window.steal / machine_seconds, 1),
        idlePercent=round(100 * window.idle / machine_seconds, 1),
        runQueueWaitPercent=round(100 * window.run_queue_wait / step.seconds, 1),
        busiestThreadPercent=round(100 * window.busiest_thread / step.seconds, 1),
        serverWarnings=[_mark_if_in(window, line) for line in warnings],
        serverCpuSeconds=round(cpu_run, 2),
        diskMBPerSecond=round(window.disk_bytes / step.seconds / 2**20, 2),
        cpuMsPer1000Deliveries=round(1000 * 1000 * window.cpu / delivered, 1)
        if delivered
        else None,
        systemMsPer1000Deliveries=round(1000 * 1000 * window.system / delivered, 1)
        if delivered
        else None,
    )
    return result


@dataclass
class Window:
    """What the server's process and the machine spent during the measured window.

    ``idle`` is the machine's idle CPU time (all CPUs): near zero, every thread on it (the
    server's, the load generator's, the kernel's) waits for a CPU. ``run_queue_wait`` is the
    time the server's threads were ready to run but waited for one (Linux schedstat).
    """

    cpu: float = 0.0
    #: The part of ``cpu`` spent in the kernel (socket writes and reads, fsync, futexes).
    system: float = 0.0
    steal: float = 0.0
    disk_bytes: int = 0
    idle: float = 0.0
    run_queue_wait: float = 0.0
    #: CPU seconds per thread of the server (thread id → user + system).
    threads: dict[int, float] = field(default_factory=dict)
    #: After :meth:`since`: the CPU time of the server's busiest thread in the window (for
    #: collabgate and the Node server, their event loop).
    busiest_thread: float = 0.0
    #: Wall-clock time of the sample (of the window's start, after :meth:`since`).
    at: float = 0.0
    #: The window's length in seconds, after :meth:`since`.
    length: float = 0.0

    @classmethod
    def sample(cls, server: psutil.Process) -> Window:
        machine = psutil.cpu_times()
        return cls(
            at=time.time(),
            cpu=_cpu_seconds(server),
            system=float(server.cpu_times().system),
            steal=float(getattr(machine, "steal", 0.0)),
            disk_bytes=_disk_bytes(server),
            idle=float(machine.idle),
            run_queue_wait=_run_queue_wait_seconds(server),
            threads={
                thread.id: thread.user_time + thread.system_time for thread in server.threads()
            },
        )

    def since(self, start: Window) -> Window:
        return Window(
            cpu=self.cpu - start.cpu,
            system=self.system - start.system,
            steal=self.steal - start.steal,
            disk_bytes=self.disk_bytes - start.disk_bytes,
            idle=self.idle - start.idle,
            run_queue_wait=self.run_queue_wait - start.run_queue_wait,
            busiest_thread=max(
                (spent - start.threads.get(thread, 0.0) for thread, spent in self.threads.items()),
                default=0.0,
            ),
            at=start.at,
            length=self.at - start.at,
        )


def run_loadgen(
    config_path: str, server: psutil.Process, timeout: float
) -> tuple[list[str], Window]:
    """Run loadgen.mjs; sample the server and the machine (:class:`Window`) at the window's
    start and end (loadgen prints a line at each), so the figures leave out the connection
    phase. Returns loadgen's output lines (the last one is its JSON result)."""
    process = subprocess.Popen(
        ["node", "-e", LOADGEN_FROM_FILE, config_path],
        cwd=HERE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    window, started = Window(), Window()
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.strip())
            if line.startswith("window start"):
                started = Window.sample(server)
            elif line.startswith("window end"):
                window = Window.sample(server).since(started)
    finally:
        watchdog.cancel()
    if process.wait() != 0 or not lines:
        raise RuntimeError(f"loadgen failed (exit {process.returncode}): {lines[-3:]}")
    return lines, window


def _mark_if_in(window: Window, line: str) -> str:
    """A gateway log line, prefixed ``[in window]`` when it was logged during the measured
    window (a pause there is in the latencies; one during the connection phase is not)."""
    with contextlib.suppress(ValueError, KeyError, TypeError):
        stamp = datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
        if window.at <= stamp <= window.at + window.length:
            return f"[in window] {line}"
    return line


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _disk_bytes(process: psutil.Process) -> int:
    """Bytes the process caused to be written to storage (its WAL, checkpoints, logs)."""
    return int(process.io_counters().write_bytes)


def _run_queue_wait_seconds(process: psutil.Process) -> float:
    """Time the process's threads spent runnable but waiting for a CPU (0 without schedstat)."""
    waited = 0
    for thread in process.threads():
        with contextlib.suppress(OSError, IndexError, ValueError):
            schedstat = Path(f"/proc/{process.pid}/task/{thread.id}/schedstat").read_text()
            waited += int(schedstat.split()[1])
    return waited / 1e9


#: loadgen.mjs takes its configuration as one argument; a thousand URLs are passed in a file.
LOADGEN_FROM_FILE = (
    "const fs=require('fs');process.argv[2]=fs.readFileSync(process.argv[1],'utf8');"
    "import('./loadgen.mjs')"
)


def describe_machine() -> str:
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{describe_host()} · node {node}"


def measure_within(name: str, step: Step, limit: StealLimit) -> dict[str, Any]:
    """One run of ``name`` that the hypervisor left alone, if one comes within the retries."""
    discarded = 0
    result = measure(name, step)
    while not limit.accepts(result) and discarded < limit.retries:
        discarded += 1
        print(
            f"  {name}: the hypervisor took {result['stealPercent']} % of the CPU time "
            f"(limit {limit.max_percent:g} %); running it again",
            file=sys.stderr,
        )
        result = measure(name, step)
    result["rerunForSteal"] = discarded
    return result


def measure_rounds(
    step: Step, servers: list[str], repeat: int, limit: StealLimit
) -> dict[str, list[dict[str, Any]]]:
    """``repeat`` rounds of every server; round ``r`` starts with server ``r`` (mod count)."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    for round_ in range(repeat):
        shift = round_ % len(servers)
        for name in servers[shift:] + servers[:shift]:
            runs[name].append(measure_within(name, step, limit))
    return runs


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One server's runs of a step as one row: medians, p99 range, losses added up."""
    if len(runs) == 1:
        return runs[0]

    def median_of(key: str) -> float | None:
        values = [run[key] for run in runs if run[key] is not None]
        return statistics.median(values) if values else None

    p99s = [run["p99ms"] for run in runs if run["p99ms"] is not None]
    return {
        "server": runs[0]["server"],
        "runs": len(runs),
        "deliveriesPerSecond": median_of("deliveriesPerSecond"),
        "p50ms": median_of("p50ms"),
        "p99ms": median_of("p99ms"),
        "p99msRange": [min(p99s), max(p99s)] if p99s else None,
        "maxms": max((run["maxms"] for run in runs if run["maxms"] is not None), default=None),
        "lost": sum(run["lost"] for run in runs),
        "connectFailures": sum(run["connectFailures"] for run in runs),
        "cpuMsPer1000Deliveries": median_of("cpuMsPer1000Deliveries"),
        "systemMsPer1000Deliveries": median_of("systemMsPer1000Deliveries"),
        "load1": median_of("load1"),
        "diskMBPerSecond": median_of("diskMBPerSecond"),
        "idlePercent": median_of("idlePercent"),
        "runQueueWaitPercent": median_of("runQueueWaitPercent"),
        "busiestThreadPercent": median_of("busiestThreadPercent"),
        "stealMs": max((run["stealMs"] for run in runs), default=0),
        "stealPercent": max((run["stealPercent"] for run in runs), default=0),
        "rerunForSteal": sum(run["rerunForSteal"] for run in runs),
        "serverWarnings": [line for run in runs for line in run["serverWarnings"]],
    }


def paired_p99(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """collabgate's p99 over a reference's, round by round: the two runs of a round are minutes
    apart, so their ratio is spared most of the drift that moves both between rounds (this VM's
    speed changes within the hour). None with fewer than two rounds where both delivered."""
    ratios = [
        a["p99ms"] / max(b["p99ms"], 1e-9)
        for a, b in zip(ours, theirs, strict=True)
        if a["p99ms"] is not None and b["p99ms"] is not None
    ]
    if len(ratios) < 2:
        return None
    return {
        "median": round(statistics.median(ratios), 3),
        "range": [round(min(ratios), 3), round(max(ratios), 3)],
        "rounds": len(ratios),
        "oursLower": sum(1 for ratio in ratios if ratio < 1),
    }


def describe_paired(paired: dict[str, Any]) -> str:
    low, high = paired["range"]
    return (
        f"p99 paired by round x{paired['median']:.2f} ({low:.2f}-{high:.2f}),"
        f" lower in {paired['oursLower']} of {paired['rounds']} rounds"
    )


def print_step(
    step: Step,
    results: dict[str, dict[str, Any]],
    paired: dict[str, dict[str, Any] | None] | None = None,
) -> None:
    print(
        f"\n{step.clients} clients in rooms of {step.room_size}, {step.rate:g} updates/s each "
        f"(offered {step.offered:.0f} deliveries/s), "
        f"{step.seconds:g} s measured"
    )
    print(
        f"  {'server':<21}{'deliv/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'lost':>7}{'conn fail':>10}{'cpu ms/1k':>10}{'of it sys':>10}{'disk MB/s':>10}"
        f"{'idle %':>7}{'runq %':>7}{'loop %':>7}{'load1':>7}{'steal %':>8}{'rerun':>6}"
        + ("   p99 range ms" if any("p99msRange" in r for r in results.values()) else "")
    )
    present = [name for name in (*SERVERS[:1], *GATEWAY_VARIANTS, *SERVERS[1:]) if name in results]
    for name in present:
        r = results[name]
        print(
            f"  {name:<21}{r['deliveriesPerSecond']:>9.0f}{_ms(r['p50ms'])}{_ms(r['p99ms'])}"
            f"{_ms(r['maxms'])}{r['lost']:>7}{r['connectFailures']:>10}"
            f"{r['cpuMsPer1000Deliveries'] or 0:>10.1f}"
            f"{r.get('systemMsPer1000Deliveries') or 0:>10.1f}{r['diskMBPerSecond']:>10.2f}"
            f"{r['idlePercent']:>7.1f}{r['runQueueWaitPercent']:>7.1f}"
            f"{r.get('busiestThreadPercent') or 0:>7.1f}"
            f"{r['load1']:>7.2f}{r['stealPercent']:>8.1f}"
            f"{r['rerunForSteal']:>6}"
            f"{_range(r.get('p99msRange'))}"
        )
    ours = results.get("collabgate")
    if ours is None:
        return
    warned = sorted(ours["serverWarnings"], key=lambda line: not line.startswith("[in window]"))
    for line in warned[:5]:
        print(f"  collabgate warned: {line[:160]}")
    for name in present[1:]:
        print(f"  collabgate vs {name}: {ratios(ours, results[name])}")
        pair = (paired or {}).get(name)
        if pair is not None:
            print(f"  {'':<14}{'':<{len(name)}}  {describe_paired(pair)}")


def ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> str:
    """Deliveries/s and p99 of collabgate over a reference's (p99 below 1: ours is lower); a
    reference that delivered nothing in the window has no ratio (it is printed as such, not as
    a huge number)."""
    if not theirs["deliveriesPerSecond"] or theirs["p99ms"] is None:
        return "the reference delivered nothing in the window"
    rate = ours["deliveriesPerSecond"] / theirs["deliveriesPerSecond"]
    if ours["p99ms"] is None:
        return f"deliveries/s x{rate:.2f}"
    p99 = ours["p99ms"] / max(theirs["p99ms"], 1e-9)
    return f"deliveries/s x{rate:.2f}, p99 x{p99:.2f} ({'lower' if p99 < 1 else 'higher'})"


def kept_up(result: dict[str, Any], step: Step, p99_bound_ms: float) -> bool:
    """Whether a server carried a step: 99 % of the offered deliveries a second, none lost,
    and a p99 an editor would still call live."""
    return (
        result["deliveriesPerSecond"] >= 0.99 * step.offered
        and result["lost"] == 0
        and result["p99ms"] is not None
        and result["p99ms"] <= p99_bound_ms
    )


def capacity(report: list[dict[str, Any]], p99_bound_ms: float) -> dict[str, int]:
    """Per server, the offered deliveries/s of the largest step it kept up with (0: none)."""
    best: dict[str, int] = {}
    for entry in report:
        step = Step(**entry["step"])
        offered = round(step.offered)
        for name, result in entry["results"].items():
            carried = offered if kept_up(result, step, p99_bound_ms) else 0
            best[name] = max(best.get(name, 0), carried)
    return best


def print_capacity(best: dict[str, int], p99_bound_ms: float) -> None:
    print(
        f"\ncapacity: the largest step each server kept up with (99 % delivered, none lost, "
        f"p99 <= {p99_bound_ms:g} ms), as offered deliveries/s"
    )
    for name, carried in best.items():
        print(f"  {name:<21}{carried:>9}")
    ours = best.get("collabgate", 0)
    for name, carried in best.items():
        if name != "collabgate":
            ratio = f"x{ours / carried:.2f}" if carried else "the reference kept up with no step"
            print(f"  collabgate vs {name}: {ratio}")


def _range(values: list[float] | None) -> str:
    return f"   {values[0]:.1f}-{values[1]:.1f}" if values else ""


def _ms(value: float | None) -> str:
    return f"{value:>9.1f}" if value is not None else f"{'-':>9}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clients", default="200,500,1000", help="client counts, one step each")
    parser.add_argument("--room-size", type=int, default=10)
    parser.add_argument("--rate", type=float, default=2.0, help="updates per second per client")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per step")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds per step; medians are reported"
    )
    parser.add_argument(
        "--max-steal-percent",
        type=float,
        default=5.0,
        help="run again a run whose window lost more of the CPU time to the hypervisor (0: never)",
    )
    parser.add_argument("--steal-retries", type=int, default=2, help="re-runs allowed per run")
    parser.add_argument(
        "--keep-up-p99-ms",
        type=float,
        default=100.0,
        help="the p99 under which a server still keeps up with a step (capacity summary)",
    )
    parser.add_argument(
        "--gateway-variant",
        type=gateway_variant,
        action="append",
        default=[],
        metavar="LABEL:NAME=VALUE[,NAME=VALUE]",
        help="also run a gateway with these environment settings, in the same rounds, as"
        " collabgate+LABEL (e.g. paced:COLLABGATE_SQLITE_COMMIT_INTERVAL_MS=5)",
    )
    args = parser.parse_args()
    GATEWAY_VARIANTS.update(args.gateway_variant)
    missing = [
        p for p in (HERE / "node_modules/y-websocket", HERE / ".venv/bin/python") if not p.exists()
    ]
    if missing:
        print(
            f"bench/yjs_relay is not set up ({', '.join(map(str, missing))}): run `make bench-yjs`"
        )
        return 2
    servers = [s for s in args.servers.split(",") if s]
    servers[1:1] = list(GATEWAY_VARIANTS)
    print(f"machine: {describe_machine()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"command: {' '.join(sys.argv)}")
    limit = StealLimit(max(0.0, args.max_steal_percent), max(0, args.steal_retries))
    report: list[dict[str, Any]] = []
    for clients in (int(c) for c in args.clients.split(",")):
        step = Step(clients, args.room_size, args.rate, args.warmup, args.seconds)
        runs = measure_rounds(step, servers, max(1, args.repeat), limit)
        results = {name: median_run(server_runs) for name, server_runs in runs.items()}
        paired = {
            name: paired_p99(runs["collabgate"], server_runs)
            for name, server_runs in runs.items()
            if "collabgate" in runs and name != "collabgate"
        }
        report.append({"step": step.__dict__, "results": results, "runs": runs, "paired": paired})
        print_step(step, results, paired)
    best = capacity(report, args.keep_up_p99_ms)
    print_capacity(best, args.keep_up_p99_ms)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    path = out / time.strftime("%Y%m%d-%H%M%S.json")
    summary = {"keepUpP99ms": args.keep_up_p99_ms, "offeredDeliveriesPerSecond": best}
    path.write_text(
        json.dumps({"machine": describe_machine(), "steps": report, "capacity": summary}, indent=1)
    )
    print(f"raw results: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
