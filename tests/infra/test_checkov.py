"""checkov, from its own virtual environment (.venv-checkov, made by `make test-setup`), reports
zero failed checks over terraform/, and every skip is an inline comment with a written reason."""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest

from tests.support.requirements import unavailable

from .conftest import REPO, TERRAFORM, all_tf_files

CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
SKIP_COMMENT = re.compile(r"#\s*checkov:skip=(?P<id>[A-Z0-9_]+)(?::(?P<reason>.*))?$")


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    if not CHECKOV.exists():
        unavailable(
            f"{CHECKOV.relative_to(REPO)} is missing: run `make test-setup` "
            "(creates .venv-checkov with checkov==3.3.30)"
        )
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"}
    proc = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(TERRAFORM),
            "--framework",
            "terraform",
            "--output",
            "json",
            "--compact",
            "--skip-download",
            "--download-external-modules",
            "false",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=900,
        check=False,
    )
    assert proc.stdout.strip(), (
        f"checkov printed nothing (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    )
    report = json.loads(proc.stdout)
    if isinstance(report, list):  # one report per framework
        (report,) = [r for r in report if r.get("check_type") == "terraform"]
    report["exit_code"] = proc.returncode
    return report


def test_checkov_reports_zero_failed_checks(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    failed = checkov_report["results"].get("failed_checks", [])
    details = "\n".join(
        f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']}:{c['file_line_range']})"
        for c in failed
    )
    assert summary["failed"] == 0, details
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 300, summary
    assert checkov_report["exit_code"] == 0


def test_checkov_skips_carry_reasons(checkov_report: dict[str, Any]) -> None:
    for check in checkov_report["results"].get("skipped_checks", []):
        comment = (check.get("check_result") or {}).get("suppress_comment", "")
        assert len(comment.strip()) >= 20, f"{check['check_id']} on {check['resource']}: no reason"


def test_inline_skips_have_written_reasons() -> None:
    found = 0
    for path in all_tf_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "checkov:skip" not in line:
                continue
            found += 1
            m = SKIP_COMMENT.search(line.strip())
            where = f"{path.relative_to(REPO)}:{number}"
            assert m, f"{where}: malformed skip {line.strip()}"
            assert re.fullmatch(r"CKV2?_AWS_\d+", m.group("id")), where
            reason = (m.group("reason") or "").strip()
            assert len(reason) >= 20, f"{where}: skip without a written reason"
    assert found > 0
