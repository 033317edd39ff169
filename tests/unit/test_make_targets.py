"""What `make run`, `make demo` and `make install` do (dry runs of the Makefile): one migration
(dev's own), and dependencies installed compiled to bytecode so every service starts faster."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def dry_run(target: str) -> list[str]:
    done = subprocess.run(
        ["make", "-n", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "MAKEFLAGS": "", "UV": "uv"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_make_run_migrates_once_through_dev() -> None:
    commands = dry_run("run")
    assert [c for c in commands if "sns-telegram" in c] == ["uv run sns-telegram dev"]


def test_make_demo_is_dev_with_the_demo() -> None:
    assert [c for c in dry_run("demo") if "sns-telegram" in c] == ["uv run sns-telegram dev --demo"]


def test_install_compiles_the_dependencies_to_bytecode() -> None:
    assert "uv sync --frozen --compile-bytecode" in dry_run("install")
