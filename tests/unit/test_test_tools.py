"""`make test` provides the programs the tests need (scripts/test_tools.py): on a machine without
Chromium or promtool it installs Debian's packages when it can, and otherwise says in one line what
to run.

apt-get and sudo are replaced by recording stand-ins on a PATH of the test's own (they are the
operating system's, not ours); the script itself runs as it does under `make test`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_make_targets import dry_run

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "test_tools.py"

APT_GET = """\
import json, os, sys
from pathlib import Path
here = Path(sys.argv[0]).parent
with open(here / "apt-get.calls", "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
if "install" in sys.argv:
    if os.environ.get("APT_FAILS"):
        sys.exit(100)
    provides = {"chromium": ["chromium"], "prometheus": ["promtool", "prometheus"]}
    for package in sys.argv[sys.argv.index("install") + 1:]:
        for command in provides.get(package, []):
            (here / command).write_text("#!/bin/sh\\n")
            (here / command).chmod(0o755)
"""

SUDO = """\
import os, sys
args = [a for a in sys.argv[1:] if a != "-n"]
if args == ["true"]:
    sys.exit(0)
os.execvp(args[0], args)
"""


def fake(bin_dir: Path, name: str, source: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\n{source}")
    path.chmod(0o755)


def run(bin_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT)],
        env={"PATH": str(bin_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def calls(bin_dir: Path) -> list[list[str]]:
    record = bin_dir / "apt-get.calls"
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    fake(directory, "sudo", SUDO)
    return directory


def test_missing_tools_are_installed_from_debians_packages(bin_dir: Path) -> None:
    fake(bin_dir, "apt-get", APT_GET)
    result = run(bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(bin_dir) == [
        ["update", "-qq"],
        ["install", "-y", "-qq", "chromium", "prometheus"],
    ]
    assert (bin_dir / "chromium").exists()
    assert (bin_dir / "promtool").exists()
    assert "installing chromium and promtool" in result.stdout


def test_only_what_is_missing_is_installed(bin_dir: Path) -> None:
    fake(bin_dir, "apt-get", APT_GET)
    fake(bin_dir, "chromium", "")
    result = run(bin_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls(bin_dir) == [["update", "-qq"], ["install", "-y", "-qq", "prometheus"]]
    assert (bin_dir / "prometheus").exists()


def test_without_apt_get_one_line_says_what_to_run(bin_dir: Path) -> None:
    result = run(bin_dir)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 1, lines
    assert "chromium and promtool are missing" in lines[0]
    assert "`sudo apt-get install -y chromium prometheus`" in lines[0]
    assert "make test" in lines[0]


def test_a_failed_install_says_what_to_run(bin_dir: Path) -> None:
    fake(bin_dir, "apt-get", APT_GET)
    result = run(bin_dir, APT_FAILS="1")
    assert result.returncode == 1
    assert "`sudo apt-get install -y chromium prometheus`" in result.stdout.splitlines()[-1]


def test_nothing_is_installed_when_every_tool_is_there(bin_dir: Path) -> None:
    fake(bin_dir, "apt-get", APT_GET)
    fake(bin_dir, "chromium", "")
    fake(bin_dir, "promtool", "")
    result = run(bin_dir)
    assert (result.returncode, result.stdout, calls(bin_dir)) == (0, "", [])


@pytest.mark.parametrize("target", ["test", "test-e2e"])
def test_the_make_targets_provide_the_tools_before_running_pytest(target: str) -> None:
    commands = dry_run(target)
    tools = next(i for i, line in enumerate(commands) if "scripts/test_tools.py" in line)
    pytest_at = next(i for i, line in enumerate(commands) if " pytest" in line)
    assert tools < pytest_at, commands


def test_ci_runs_the_same_target() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\nmake test\n" in ci
    assert "apt-get" not in ci  # what the tests need comes from `make test`, as for everyone
