"""Summaries of py-spy's collapsed stacks (``py-spy record --format raw --threads``)."""

from __future__ import annotations

import re
from collections import Counter

_LINE_NUMBER = re.compile(r":\d+\)$")
_THREAD = re.compile(r"^thread \(\d+\): ?")


def _frame(text: str) -> str:
    """``run (asyncio/runners.py:118)`` → ``run (asyncio/runners.py)``: lines are merged."""
    return _LINE_NUMBER.sub(")", text.strip())


def summarize(collapsed: str, top: int = 20) -> list[dict[str, object]]:
    """Per-thread shares, then the ``top`` functions by self time, as % of all samples."""
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        thread = _THREAD.sub("", frames[0]) or "thread"
        threads[thread] += count
        names = [_frame(f) for f in frames[1:]] or [f"(idle in {thread})"]
        self_time[names[-1]] += count
        for name in set(names):
            total_time[name] += count
    if samples == 0:
        return []
    rows: list[dict[str, object]] = [
        {"function": f"[thread] {name}", "self_pct": 0.0, "total_pct": 100 * n / samples}
        for name, n in threads.most_common()
    ]
    rows += [
        {
            "function": name,
            "self_pct": 100 * n / samples,
            "total_pct": 100 * total_time[name] / samples,
        }
        for name, n in self_time.most_common(top)
    ]
    return rows
