"""A busy disk under the gateway: the scaled-down stress scenario while another process writes.

    .venv/bin/python bench/disk_pressure.py                      # 2 rounds, this checkout
    .venv/bin/python bench/disk_pressure.py --rounds 3 \\
        --variant "before:PYTHONPATH=/path/to/older/checkout/src"

Each run is ``tools.load``'s stress scenario at ``--scale`` (0.03: 30 users, the full run's 166
updates/s) against a gateway whose data directory is on the project's disk (``var/``), while
``dd oflag=direct`` writes ``--dd-mb`` at a time to the same disk, over and over, until the run
ends. Direct I/O keeps the page cache and the CPUs out of it: what slows down is the disk queue,
so the gateway's fsyncs wait. It prints, per run, the P99 of update → ACK (which waits for a
commit), update → peer (which does not) and LOCK_ACQUIRE → reply, and the gateway's commits. With
``--variant`` every round runs each build in turn, so both see the same disk. Not a test: it
prints figures, with the machine and the command.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.variants import parse_variant  # noqa: E402
from tools.load import runner  # noqa: E402

ROWS = (
    ("ack", "P99 update → Y_UPDATE_ACK"),
    ("peer", "P99 update → peer's copy"),
    ("lock", "P99 LOCK_ACQUIRE → reply"),
    ("commits", "gateway's storage commits"),
)


def main() -> None:
    args = _arguments()
    variants: dict[str, dict[str, str]] = {"this checkout": {}}
    for label, env in args.variant:
        variants[label] = env
    print(
        f"machine: {platform.node()} · {os.cpu_count()} CPUs · Python {platform.python_version()}"
    )
    print("command: " + " ".join(sys.argv))
    for round_number in range(1, args.rounds + 1):
        for label, env in variants.items():
            with _disk_writer(args.dd_mb):
                measured = _run(args.scale, env)
            print(f"round {round_number} · {label}")
            for key, name in ROWS:
                print(f"  {key:8} {measured.get(name, 'not measured')}")


def _run(scale: float, env: dict[str, str]) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="disk-pressure-") as results:
        result = runner.run(
            runner.RunOptions(
                scenario="stress",
                scale=scale,
                results_root=Path(results),
                echo=None,
                gateway_env=env,
            )
        )
        return {check.name: check.measured for check in result.evaluation.checks}


@contextlib.contextmanager
def _disk_writer(megabytes: int) -> Iterator[None]:
    """``dd`` writing with direct I/O to var/, in a loop, for as long as the block runs."""
    target = ROOT / "var" / "disk-pressure.bin"
    target.parent.mkdir(exist_ok=True)
    loop = (
        f"while true; do dd if=/dev/zero of={target} bs=4M"
        f" count={max(1, megabytes // 4)} oflag=direct 2>/dev/null; done"
    )
    writer = subprocess.Popen(["bash", "-c", loop], start_new_session=True)
    try:
        yield
    finally:
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait(10)
        target.unlink(missing_ok=True)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--scale", type=float, default=0.03, help="LOAD_SCALE of the stress run")
    parser.add_argument("--dd-mb", type=int, default=1000, help="megabytes per dd pass")
    parser.add_argument(
        "--variant",
        type=parse_variant,
        action="append",
        default=[],
        help="LABEL:NAME=VALUE[,NAME=VALUE]: another build or setting, run in every round",
    )
    return parser.parse_args()


if __name__ == "__main__":
    main()
