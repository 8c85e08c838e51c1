"""Documentation that is derived from code stays in step with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from collabgate.errors import ALL_ERRORS

ROOT = Path(__file__).resolve().parents[2]


def test_readme_configuration_table_matches_the_settings() -> None:
    table = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "settings_table.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- settings-table:start -->") + len("<!-- settings-table:start -->")
    end = readme.index("<!-- settings-table:end -->")
    assert readme[start:end].strip() == table, "regenerate with tools/settings_table.py"


def test_protocol_doc_lists_every_error_code() -> None:
    protocol = (ROOT / "docs" / "protocol.md").read_text()
    for error in ALL_ERRORS:
        assert error.code in protocol
        assert error.type in protocol
