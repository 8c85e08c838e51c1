"""Settings come from COLLABGATE_* variables; a bad value stops start-up naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from collabgate.settings import SettingsError, load_settings
from collabgate.storage.sqlite import SqliteDatabase
from collabgate.wiring import Runtime


def test_defaults_are_embedded_and_local(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.database_file.name == "collabgate.sqlite3"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLABGATE_PORT", "9001")
    monkeypatch.setenv("COLLABGATE_RESOURCE_TYPES", "patient, surgery")
    settings = load_settings()
    assert settings.port == 9001
    assert settings.resource_types == ["patient", "surgery"]


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        ("COLLABGATE_SQLITE_COMMIT_INTERVAL_MS", "5", "commit_interval", 0.005),
        ("COLLABGATE_SQLITE_WRITER_NICE", "10", "writer_nice", 10),
    ],
)
def test_sqlite_settings_reach_the_database(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    variable: str,
    value: str,
    attribute: str,
    expected: float,
) -> None:
    monkeypatch.setenv("COLLABGATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLLABGATE_DEV_KEYS", "true")
    monkeypatch.setenv(variable, value)
    database = Runtime(load_settings()).database
    assert isinstance(database, SqliteDatabase)
    assert getattr(database, attribute) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("COLLABGATE_PORT", "70000", "COLLABGATE_PORT"),
        ("COLLABGATE_MAX_CONNECTIONS", "-1", "COLLABGATE_MAX_CONNECTIONS"),
        ("COLLABGATE_HEARTBEAT_TIMEOUT_SECONDS", "soon", "COLLABGATE_HEARTBEAT_TIMEOUT_SECONDS"),
        ("COLLABGATE_LOG_LEVEL", "loud", "COLLABGATE_LOG_LEVEL"),
        ("COLLABGATE_LOCK_DEFAULT_TTL_MS", "99999999", "LOCK_DEFAULT_TTL_MS"),
        ("COLLABGATE_SQLITE_COMMIT_INTERVAL_MS", "5000", "SQLITE_COMMIT_INTERVAL_MS"),
        ("COLLABGATE_SQLITE_WRITER_NICE", "20", "SQLITE_WRITER_NICE"),
        ("COLLABGATE_JWT_HS256_SECRET", "s" * 40, "JWT_ALLOW_HS256"),
    ],
)
def test_bad_values_are_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=named):
        load_settings()


def test_serve_refuses_to_start_and_names_the_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "collabgate", "serve"],
        env={"COLLABGATE_PORT": "not-a-port", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "COLLABGATE_PORT" in result.stderr
    assert "not-a-port" in result.stderr


def test_serve_without_any_key_source_says_what_to_set(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "collabgate", "serve"],
        env={"COLLABGATE_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "COLLABGATE_JWT_PUBLIC_KEY_FILE" in result.stderr
