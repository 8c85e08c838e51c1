"""Load testing with Artillery: run a scenario against a gateway, report it, archive it.

- :mod:`tools.load.scenario` reads tests/load/*.yml and scales a scenario (LOAD_SCALE, LOAD_USERS,
  LOAD_DURATION) into Artillery overrides;
- :mod:`tools.load.runner` starts a gateway (or uses LOAD_TARGET), samples its memory, CPU and
  /metrics while Artillery runs, and writes the results folder;
- :mod:`tools.load.evaluate` turns Artillery's JSON and the samples into time series and the
  pass/fail table of the scenario's targets;
- :mod:`tools.load.report` writes the self-contained HTML report (inline SVG plots);
- :mod:`tools.load.upload` copies a results folder to S3 (LOAD_RESULTS_BUCKET);
- ``python -m tools.load run|report|upload`` is what ``make load`` runs (docs/load-testing.md).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOAD_DIR = ROOT / "tests" / "load"
RESULTS_DIR = ROOT / "var" / "load-results"
SCENARIOS = ("baseline", "stress", "spike", "soak")
ARTILLERY = LOAD_DIR / "node_modules" / ".bin" / "artillery"
