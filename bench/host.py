"""The machine line every benchmark prints: the VMs these figures come from change between runs
(an AMD EPYC one day, an Intel Xeon the next), so a figure is printed with the CPU model."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import psutil


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, or what ``platform`` knows elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def describe_host() -> str:
    """``name · N CPUs · model · memory · Python version``."""
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{platform.node()} · {os.cpu_count()} CPUs · {cpu_model()} · {memory:.0f} GiB · "
        f"Python {platform.python_version()}"
    )
