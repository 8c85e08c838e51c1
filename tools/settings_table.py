"""Print the README's configuration table from the Settings model (one source of truth).

.venv/bin/python tools/settings_table.py > /tmp/table.md
"""

from __future__ import annotations

from collabgate.settings import ENV_PREFIX, Settings


def settings_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        shown = "—" if default in (None, "", []) else f"`{default}`"
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(settings_table())
