"""Run one scenario: a gateway, Artillery against it, samples of both, then the report.

The results folder (var/load-results/<UTC time>-<scenario>/) holds:

``artillery.json``   Artillery's raw JSON (aggregate and 10-s periods)
``artillery.log``    Artillery's console output
``samples.json``     the gateway's RSS, CPU, event-loop CPU and open connections (its /metrics),
                     and the load generator's and the machine's CPU, every ``sample_seconds``
``run.json``         what ran: the scaled scenario, command, machine, versions, gateway state
``report.html``      the report (:mod:`tools.load.report`); ``summary.json`` its verdict
``gateway.log.gz``   the gateway's log
``profile.txt``      py-spy's collapsed stacks of the gateway, when profiling was asked for
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families
from tools.load import ARTILLERY, LOAD_DIR, RESULTS_DIR, ROOT, evaluate, profile, report
from tools.load import scenario as scenarios
from tools.load.canary import Canary, canary_token

#: Variables whose values may hold credentials: recorded as "set", never by value.
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|KEY", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"(//)[^/@\s]+@")


class ToolMissing(RuntimeError):
    """Node or the npm packages of tests/load are not installed."""


@dataclass
class RunOptions:
    scenario: str
    scale: float = 1.0
    users: int | None = None
    duration: float | None = None
    results_root: Path = RESULTS_DIR
    #: An already running gateway (ws://host:port/ws) instead of starting one; needs key_file.
    target: str | None = None
    key_file: Path | None = None
    #: Seconds between samples; default 10 s times the scale, between 0.5 s and 10 s.
    sample_seconds: float | None = None
    #: py-spy the gateway this long, from the end of the arrival phases (0: no profile).
    profile_seconds: float = 0.0
    #: Scenario variables set outright after scaling, e.g. {"sessionSeconds": 60}.
    variables: dict[str, Any] = field(default_factory=dict)
    #: Extra settings for the gateway this run starts (COLLABGATE_*); the environment's pass too.
    gateway_env: dict[str, str] = field(default_factory=dict)
    #: Where the gateway this run starts keeps its files (var/load-scratch, on the project's
    #: disk, unless set): its ACKs wait for that disk's fsyncs.
    scratch_dir: Path | None = None
    #: Copy Artillery's console to this stream as well as to artillery.log.
    echo: TextIO | None = sys.stdout


@dataclass
class RunResult:
    folder: Path
    evaluation: evaluate.Evaluation
    report: Path

    @property
    def passed(self) -> bool:
        return self.evaluation.passed and self.evaluation.run.get("artillery_exit_code") == 0


def artillery_command() -> list[str]:
    """The pinned Artillery of tests/load, run by this machine's node; ToolMissing if absent."""
    node = shutil.which("node")
    if node is None:
        raise ToolMissing("node is not installed (Node 20+ runs the load tests)")
    cli = LOAD_DIR / "node_modules" / "artillery" / "bin" / "run"
    if not cli.exists() or not ARTILLERY.exists():
        raise ToolMissing("tests/load/node_modules is missing: run `make test-setup` (npm ci)")
    return [node, str(cli)]


def equivalent_command(options: RunOptions) -> str:
    """The command line that repeats this run (how it was started does not matter)."""
    words = [".venv/bin/python", "-m", "tools.load", "run", options.scenario]
    for flag, value in (
        ("--scale", options.scale if options.scale != 1.0 else None),
        ("--users", options.users),
        ("--duration", options.duration),
        ("--profile-seconds", options.profile_seconds or None),
    ):
        if value is not None:
            words += [flag, f"{value:g}"]
    for name, value in options.variables.items():
        words += ["--set", f"{name}={value}"]
    settings = [f"{k}={v}" for k, v in sorted(options.gateway_env.items())]
    settings += [
        f"{k}={_redact(k, v)}"
        for k, v in sorted(os.environ.items())
        if k.startswith("COLLABGATE_") and k not in options.gateway_env
    ]
    return " ".join(shlex.quote(word) for word in [*settings, *words])


def results_folder(root: Path, name: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder = root / f"{stamp}-{name}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = root / f"{stamp}-{name}-{suffix}"
    folder.mkdir(parents=True)
    return folder


def run(options: RunOptions) -> RunResult:
    command = artillery_command()
    plan = scenarios.scaled(
        scenarios.load(options.scenario), options.scale, options.users, options.duration
    )
    if options.variables:
        plan.variables.update(options.variables)
        plan.scaling["variables"] = dict(options.variables)
    folder = results_folder(options.results_root.resolve(), plan.name)
    _raise_file_limit()
    sample_seconds = options.sample_seconds or min(10.0, max(0.5, 10.0 * options.scale))
    record: dict[str, Any] = {
        "scenario": {
            "name": plan.name,
            "file": str(
                plan.path.relative_to(ROOT) if plan.path.is_relative_to(ROOT) else plan.path
            ),
            "phases": plan.phases,
            "variables": plan.variables,
            "targets": plan.targets,
            "scaling": plan.scaling,
        },
        "command": equivalent_command(options),
        "sample_seconds": sample_seconds,
        "machine": _machine(),
        "versions": _versions(),
        "started_at": time.time(),
    }
    shutil.copy(plan.path, folder / "scenario.yml")
    (folder / "overrides.json").write_text(json.dumps(plan.overrides(), indent=2) + "\n")

    with _gateway(options, folder) as gateway:
        record["gateway"] = gateway.describe()
        env = {
            **os.environ,
            "ARTILLERY_DISABLE_TELEMETRY": "true",
            "LOAD_JWT_KEY_FILE": str(gateway.key_file),
        }
        artillery_args = [
            *command,
            "run",
            "--target",
            gateway.ws_url,
            "--overrides",
            json.dumps(plan.overrides()),
            "--output",
            str(folder / "artillery.json"),
            str(plan.path),
        ]
        timeout = plan.expected_seconds() * 1.25 + 180
        with (folder / "artillery.log").open("w") as log:
            process = subprocess.Popen(
                artillery_args,
                cwd=LOAD_DIR,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            canary = _start_canary(gateway)
            sampler = Sampler(sample_seconds, gateway.pid, gateway.metrics_url, process.pid, canary)
            sampler.start()
            profiler = _start_profiler(options, plan, gateway.pid, folder)
            copier = threading.Thread(
                target=_copy_lines, args=(process, log, options.echo), daemon=True
            )
            copier.start()
            try:
                record["artillery_exit_code"] = process.wait(timeout)
            except subprocess.TimeoutExpired:
                record["artillery_exit_code"] = f"killed after {timeout:.0f} s"
            finally:  # a timeout, or the run itself interrupted: no load generator left behind
                if process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(30)
            copier.join(10)
            sampler.stop()
            if canary is not None:
                canary.stop()
            if profiler is not None:
                profiler.stop()
        gateway.finish()
    record["finished_at"] = time.time()
    record["machine"]["load_after"] = _load_average()
    (folder / "samples.json").write_text(json.dumps(sampler.samples) + "\n")
    (folder / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    return report_folder(folder)


def report_folder(folder: Path) -> RunResult:
    """(Re)build report.html and summary.json from the files of a results folder."""
    record = json.loads((folder / "run.json").read_text())
    plan = scenarios.from_record(record["scenario"], ROOT)
    artillery_file = folder / "artillery.json"
    raw = json.loads(artillery_file.read_text()) if artillery_file.exists() else {}
    samples_file = folder / "samples.json"
    samples = json.loads(samples_file.read_text()) if samples_file.exists() else []
    evaluation = evaluate.evaluate(plan, raw, samples, record)
    if not raw:
        evaluation.checks.insert(
            0, evaluate.Check("Artillery wrote its results", "artillery.json", "missing", False)
        )
    profile_file = folder / "profile.txt"
    rows = profile.summarize(profile_file.read_text()) if profile_file.exists() else None
    return RunResult(folder, evaluation, report.write(evaluation, folder, rows))


# --- the gateway ----------------------------------------------------------------------------


class _Gateway:
    """A gateway this run started (GatewayProcess), or one given by LOAD_TARGET."""

    def __init__(self, ws_url: str, key_file: Path, pid: int | None, process: Any = None) -> None:
        self.ws_url = ws_url
        self.key_file = key_file
        self.pid = pid
        self.process = process
        base = re.sub(r"^ws", "http", ws_url.split("/ws")[0])
        self.base_url = base
        self.metrics_url = f"{base}/metrics"
        self.description: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        """What run.json records about the gateway (filled in further by finish and stop)."""
        settings = {
            k: _redact(k, v) for k, v in sorted(os.environ.items()) if k.startswith("COLLABGATE_")
        }
        if self.process is not None:
            settings.update({k: _redact(k, v) for k, v in self.process.env.items()})
        self.description = {
            "target": self.ws_url,
            "started_by_run": self.process is not None,
            "pid": self.pid,
            "adapters": self._adapters(),
            "settings": settings,
        }
        return self.description

    def _adapters(self) -> dict[str, str] | None:
        if self.process is None:
            return None
        for line in self.process.logs_containing('"gateway_started"'):
            with contextlib.suppress(ValueError, KeyError):
                return dict(json.loads(line)["adapters"])
        return None

    def finish(self) -> None:
        """After the load: is the gateway still there and healthy?"""
        description = self.description
        description["alive_at_end"] = (
            self.process.process.poll() is None if self.process is not None else None
        )
        try:
            description["health_at_end"] = httpx.get(
                f"{self.base_url}/health", timeout=5
            ).status_code
        except httpx.HTTPError as error:
            description["health_at_end"] = f"unreachable ({type(error).__name__})"
        if self.process is None:
            description["alive_at_end"] = description["health_at_end"] == 200


@contextlib.contextmanager
def _gateway(options: RunOptions, folder: Path) -> Any:
    target = options.target or os.environ.get("LOAD_TARGET")
    if target:
        key = options.key_file or os.environ.get("LOAD_JWT_KEY_FILE")
        if not key:
            raise ValueError(
                "LOAD_TARGET needs LOAD_JWT_KEY_FILE: the key its tokens are signed with"
            )
        yield _Gateway(target, Path(key), None)
        return
    from tests.support.gateway_process import GatewayProcess

    data_dir = Path(
        tempfile.mkdtemp(prefix="load-gateway-", dir=options.scratch_dir or _scratch_dir())
    )
    process = GatewayProcess(data_dir, env=dict(options.gateway_env))
    gateway = None
    try:
        process.start(timeout=60)
        assert process.process is not None
        gateway = _Gateway(
            process.ws_url, process.keys.private_key_file, process.process.pid, process
        )
        yield gateway
    finally:
        if process.process is not None:
            if process.process.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.terminate(timeout=60)
            if gateway is not None:
                gateway.description["exit_code"] = process.process.poll()
        process.kill()
        with gzip.open(folder / "gateway.log.gz", "wt") as log:
            log.write("\n".join(process.lines) + "\n")
        shutil.rmtree(data_dir, ignore_errors=True)


def _scratch_dir() -> Path:
    scratch = ROOT / "var" / "load-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    return scratch


def _redact(name: str, value: str) -> str:
    if _SECRET_NAME.search(name.removeprefix("COLLABGATE_")):
        return "(set)"
    return _URL_CREDENTIALS.sub(r"\1***@", value)


# --- sampling -------------------------------------------------------------------------------


class Sampler(threading.Thread):
    """Every ``interval`` s: the gateway's RSS and CPU, its /metrics, and the load generator's
    and the machine's CPU."""

    def __init__(
        self,
        interval: float,
        gateway_pid: int | None,
        metrics_url: str | None,
        loadgen_pid: int,
        canary: Canary | None = None,
    ) -> None:
        super().__init__(daemon=True, name="load-sampler")
        self.interval = interval
        self.metrics_url = metrics_url
        self.samples: list[dict[str, Any]] = []
        self.canary = canary
        self._stop_event = threading.Event()
        self._gateway = _process(gateway_pid)
        self._loadgen = _process(loadgen_pid)
        self._client = httpx.Client(timeout=min(5.0, max(1.0, interval)))
        self._cores = os.cpu_count() or 1
        #: (time, seconds) of the gateway's event-loop CPU counter at the previous sample.
        self._loop_cpu_before: tuple[float, float] | None = None
        for proc in (self._gateway, self._loadgen):
            with contextlib.suppress(psutil.Error):
                if proc is not None:
                    proc.cpu_percent(None)
        psutil.cpu_percent(None)

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._stop_event.is_set():
            self.samples.append(self.sample())
            next_at += self.interval
            self._stop_event.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(30)
        self._client.close()

    def sample(self) -> dict[str, Any]:
        sample: dict[str, Any] = {"t": time.time()}
        if self._gateway is not None:
            with contextlib.suppress(psutil.Error), self._gateway.oneshot():
                sample["rss_mb"] = round(self._gateway.memory_info().rss / 2**20, 2)
                sample["cpu_pct"] = round(self._gateway.cpu_percent(None), 1)
                sample["threads"] = self._gateway.num_threads()
                sample["fds"] = self._gateway.num_fds()
        if self._loadgen is not None:
            with contextlib.suppress(psutil.Error):
                sample["loadgen_cpu_pct"] = round(self._loadgen.cpu_percent(None), 1)
                sample["loadgen_rss_mb"] = round(self._loadgen.memory_info().rss / 2**20, 1)
        sample["machine_cpu_pct"] = round(psutil.cpu_percent(None) * self._cores, 1)
        sample["load1"] = os.getloadavg()[0]
        if self.metrics_url:
            sample.update(self._scrape())
            self._add_loop_share(sample)
        if self.canary is not None:
            sample.update(self.canary.take_window())
            if self.canary.connected and "connections" in sample:
                sample["connections"] -= 1  # the gauge counts the canary: users only
        return sample

    def _add_loop_share(self, sample: dict[str, Any]) -> None:
        """``loop_cpu_pct``: the gateway's event-loop thread's CPU since the previous sample, in %
        of one core (100 is a saturated instance: ops/loop_load.py)."""
        now, seconds = sample["t"], sample.get("loop_cpu_seconds")
        before = self._loop_cpu_before
        if seconds is not None and before is not None and now > before[0]:
            sample["loop_cpu_pct"] = round(100 * (seconds - before[1]) / (now - before[0]), 1)
        self._loop_cpu_before = (now, seconds) if seconds is not None else None

    def _scrape(self) -> dict[str, Any]:
        try:
            text = self._client.get(self.metrics_url).text  # type: ignore[arg-type]
        except httpx.HTTPError:
            return {"metrics_error": 1}
        values: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                name = s.name
                if name == f"{evaluate.STORAGE_COMMITS}_bucket" and s.labels["le"] != "+Inf":
                    name = f"{evaluate.COMMITS_WITHIN}{s.labels['le']}"  # commits <= le seconds
                values[name] = values.get(name, 0.0) + float(s.value)
        picked = {
            "connections": "websocket_connections_total",
            "documents": "collabgate_documents_loaded",
            "audit_buffer": "collabgate_audit_buffer_events",
            "gateway_errors": "collabgate_errors_total",
            "rejected": "collabgate_connections_rejected_total",
            "storage_commits": f"{evaluate.STORAGE_COMMITS}_count",
            "storage_commit_seconds": f"{evaluate.STORAGE_COMMITS}_sum",
            "loop_cpu_seconds": "collabgate_event_loop_cpu_seconds_total",
        }
        sample = {key: values[name] for key, name in picked.items() if name in values}
        sample.update((k, v) for k, v in values.items() if k.startswith(evaluate.COMMITS_WITHIN))
        return sample


def _process(pid: int | None) -> psutil.Process | None:
    if pid is None:
        return None
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _start_canary(gateway: _Gateway) -> Canary | None:
    """The canary connection, when its token can be signed (an ES256 key)."""
    try:
        token = canary_token(
            gateway.key_file,
            os.environ.get("LOAD_JWT_ISSUER") or None,
            os.environ.get("LOAD_JWT_AUDIENCE") or None,
        )
    except (OSError, ValueError):
        return None  # an RSA key for an external gateway: no canary
    canary = Canary(gateway.ws_url, token)
    canary.start()
    return canary


# --- profiling ------------------------------------------------------------------------------


class _Profiler:
    def __init__(self, delay: float, seconds: float, pid: int, output: Path) -> None:
        self.output = output
        self.command = [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "100",
            "--nonblocking",
            "--threads",
            "--format",
            "raw",
            "--output",
            str(output),
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self.timer = threading.Timer(delay, self._start)
        self.timer.daemon = True
        self.timer.start()

    def _start(self) -> None:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def stop(self) -> None:
        self.timer.cancel()
        if self.process is not None:
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _start_profiler(
    options: RunOptions, plan: scenarios.Scenario, pid: int | None, folder: Path
) -> _Profiler | None:
    if options.profile_seconds <= 0 or pid is None:
        return None
    if not Path(sys.executable).with_name("py-spy").exists():
        raise ToolMissing("py-spy is not installed: .venv/bin/pip install py-spy==0.4.1")
    windows = plan.windows()
    delay = (windows[-1].end if windows else 0.0) + 3.0  # Artillery's start-up
    return _Profiler(delay, options.profile_seconds, pid, folder / "profile.txt")


# --- facts about the run --------------------------------------------------------------------


def _copy_lines(process: subprocess.Popen[str], log: TextIO, echo: TextIO | None) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        log.write(line)
        if echo is not None:
            echo.write(line)
            echo.flush()


def _raise_file_limit() -> None:
    """Many users need many sockets: lift the soft limit to the hard one (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown cpu"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30),
        "load_before": _load_average(),
        "file_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        versions["node"] = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    for package in ("artillery", "yjs", "ws"):
        with contextlib.suppress(OSError, ValueError):
            manifest = json.loads(
                (LOAD_DIR / "node_modules" / package / "package.json").read_text()
            )
            versions[package] = str(manifest["version"])
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        if commit:
            versions["collabgate"] = commit
    return versions


def environment_options(environ: Mapping[str, str]) -> dict[str, Any]:
    """RunOptions fields from LOAD_* variables (what `make load` passes)."""
    options: dict[str, Any] = {}
    if environ.get("LOAD_SCALE"):
        options["scale"] = float(environ["LOAD_SCALE"])
    if environ.get("LOAD_USERS"):
        options["users"] = int(environ["LOAD_USERS"])
    if environ.get("LOAD_DURATION"):
        options["duration"] = float(environ["LOAD_DURATION"])
    if environ.get("LOAD_PROFILE_SECONDS"):
        options["profile_seconds"] = float(environ["LOAD_PROFILE_SECONDS"])
    if environ.get("LOAD_SAMPLE_SECONDS"):
        options["sample_seconds"] = float(environ["LOAD_SAMPLE_SECONDS"])
    if environ.get("LOAD_VARIABLES"):
        variables = json.loads(environ["LOAD_VARIABLES"])
        if not isinstance(variables, dict):
            raise ValueError('LOAD_VARIABLES must be a JSON object, e.g. {"sessionSeconds": 60}')
        options["variables"] = variables
    if environ.get("LOAD_RESULTS_DIR"):
        options["results_root"] = Path(environ["LOAD_RESULTS_DIR"])
    return options
