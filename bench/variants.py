"""``--variant``/``--gateway-variant`` of the benchmarks: another build or setting of the gateway,
run beside this checkout's in the same rounds."""

from __future__ import annotations

import argparse


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """``LABEL:NAME=VALUE[,NAME=VALUE…]`` → (label, the gateway's environment overrides).

    ``PYTHONPATH=<other checkout>/src`` runs another build: it comes before the editable install.
    ``PYTHON=<interpreter>`` runs the gateway on another Python, one with collabgate installed
    (where the benchmark supports it: bench/yjs_relay).
    """
    label, _, assignments = text.partition(":")
    env = dict(pair.split("=", 1) for pair in assignments.split(",") if "=" in pair)
    if not label or not env:
        raise argparse.ArgumentTypeError(f"expected LABEL:NAME=VALUE[,NAME=VALUE], got {text!r}")
    return label, env
