"""What the container image is built from: the Dockerfile against what the ECS task definition
expects of it, and the wheel the image installs (no Docker engine runs here; the deploy workflow
builds the image itself)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from collabgate.storage.migrate import head_revision

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPUTE = ROOT / "terraform" / "modules" / "compute"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def test_the_image_runs_as_the_task_definition_expects() -> None:
    stage = final_stage()
    ops = dict(stage)
    env = " ".join(args for op, args in stage if op == "ENV")
    compute = (COMPUTE / "main.tf").read_text() + (COMPUTE / "variables.tf").read_text()
    assert "readonlyRootFilesystem = true" in compute
    assert 'containerPath = "/tmp"' in compute  # the one writable path
    assert "COLLABGATE_DATA_DIR=/tmp/" in env  # so the audit spool can be written
    assert "COLLABGATE_HOST=0.0.0.0" in env
    assert "COLLABGATE_PORT=8080" in env
    assert "default     = 8080" in compute  # container_port
    assert ops["USER"] not in ("root", "0")
    assert ops["STOPSIGNAL"] == "SIGTERM"
    assert ops["CMD"] == '["collabgate", "serve"]'
    assert '"CMD", "python", "-c"' in compute  # the health check needs python in the image
    assert ops["FROM"].startswith("python:3.11")
    images = [args.split()[0] for op, args in instructions() if op == "FROM"]
    assert images
    assert all(":" in image and not image.endswith(":latest") for image in images)  # pinned


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (found,) = out.glob("collabgate-*.whl")
    return found


def test_the_wheel_the_image_installs_holds_migrations_and_the_demo(
    wheel: Path, tmp_path: Path
) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for needed in (
        "collabgate/storage/migrations/env.py",
        "collabgate/storage/migrations/script.py.mako",
        "collabgate/http/static/demo.js",
        "collabgate/http/demo/index.html",
        "collabgate/py.typed",
    ):
        assert needed in names, needed
    target = tmp_path / "installed"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    probe = (
        "import collabgate, collabgate.storage.migrate as m;"
        "print(collabgate.__file__); print(m.head_revision())"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    module, revision = ran.stdout.split()
    assert module.startswith(str(target))  # the installed copy, not the checkout
    assert revision == head_revision()
