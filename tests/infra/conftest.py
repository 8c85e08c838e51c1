"""Shared fixtures for the infrastructure checks: every Terraform file parsed once.

The Terraform code cannot be planned here (no Terraform binary, no AWS), so these tests read it
with python-hcl2 (8.x) and check it by construction; checkov runs from its own virtual
environment (.venv-checkov, created by `make test-setup`).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.requirements import IN_CI

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
MODULE_NAMES = ("networking", "compute", "database", "cache", "messaging", "monitoring", "security")
ENVIRONMENTS = ("dev", "staging", "prod")


def _require_hcl2() -> None:
    try:
        import hcl2  # noqa: F401
    except ImportError:
        message = (
            "python-hcl2 is not installed in this virtual environment: run `make test-setup` "
            "(it installs python-hcl2==8.1.4)"
        )
        if IN_CI:
            raise
        pytest.skip(message, allow_module_level=True)


_require_hcl2()


def _load_infra_cost() -> ModuleType:
    spec = importlib.util.spec_from_file_location("infra_cost", REPO / "tools" / "infra_cost.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["infra_cost"] = module
    spec.loader.exec_module(module)
    return module


infra_cost = _load_infra_cost()


def all_tf_files() -> list[Path]:
    return sorted(TERRAFORM.rglob("*.tf"))


@pytest.fixture(scope="session")
def ic() -> ModuleType:
    """tools/infra_cost.py: HCL loading and resolution helpers."""
    return infra_cost


@pytest.fixture(scope="session")
def parsed_files() -> dict[Path, dict[str, Any]]:
    """Every .tf file under terraform/, parsed once."""
    return {path: infra_cost.parse_file(path) for path in all_tf_files()}


@pytest.fixture(scope="session")
def modules() -> dict[str, Any]:
    return {name: infra_cost.load_config(TERRAFORM / "modules" / name) for name in MODULE_NAMES}


@pytest.fixture(scope="session")
def environments() -> dict[str, Any]:
    return {env: infra_cost.load_config(TERRAFORM / "environments" / env) for env in ENVIRONMENTS}


@pytest.fixture(scope="session")
def bootstrap() -> Any:
    return infra_cost.load_config(TERRAFORM / "bootstrap")


@pytest.fixture(scope="session")
def all_configs(
    modules: dict[str, Any], environments: dict[str, Any], bootstrap: Any
) -> dict[str, Any]:
    configs = {f"modules/{k}": v for k, v in modules.items()}
    configs.update({f"environments/{k}": v for k, v in environments.items()})
    configs["bootstrap"] = bootstrap
    return configs


@pytest.fixture(scope="session")
def prod() -> Any:
    """Inputs of each module call in the prod environment, resolved (tfvars, defaults)."""

    class Prod:
        def inputs(self, module: str) -> dict[str, Any]:
            return infra_cost.module_inputs("prod", module)

        def scope(self, module: str) -> Any:
            return infra_cost.module_scope("prod", module)

    return Prod()
