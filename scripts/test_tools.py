"""Provide the programs the tests need beyond Python packages (run by `make test`, so by CI too).

Each tool missing from PATH is installed from Debian's packages when this machine can (apt-get,
as root or with password-less sudo); otherwise one line says the command to run, and the exit
status is 1, before the suite starts. Later needs (fonts for screenshots) are one more `Tool` in
TOOLS. The local RabbitMQ's management API and Prometheus endpoint (plugins) are enabled too.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Tool:
    """A program the tests run, and the Debian package that provides it."""

    command: str
    package: str
    needed_by: str


TOOLS = (
    Tool(
        "chromium",
        "chromium",
        "the browser tests of the stand-in's inbox and the API docs pages",
    ),
    Tool(
        "promtool",
        "prometheus",  # promtool and the prometheus server
        "the alert rules' unit tests and the e2e test's Prometheus",
    ),
)
PLUGINS = {"rabbitmq_management": 15672, "rabbitmq_prometheus": 15692}
"""RabbitMQ plugins the tests use, and the port each serves on."""


def _installer() -> list[str] | None:
    """How to run apt-get here: directly as root, with password-less sudo, else not at all."""
    if shutil.which("apt-get") is None:
        return None
    if os.geteuid() == 0:
        return []
    sudo = ["sudo", "-n", "true"]
    if shutil.which("sudo") and subprocess.run(sudo, check=False).returncode == 0:  # noqa: S603
        return ["sudo", "-n"]
    return None


def _install(prefix: list[str], packages: list[str]) -> bool:
    """apt-get update + install; apt's output is shown only when it fails."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        done = subprocess.run(  # noqa: S603 (apt-get with our package names)
            [*prefix, *argv],
            env=env,
            check=False,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        if done.returncode != 0:
            print("\n".join(done.stdout.splitlines()[-20:]))
            return False
    return True


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def management_api() -> int:
    """The local RabbitMQ's management API (the tests create vhosts and accounts through it,
    e.g. `sns-telegram broker-permissions`) and its Prometheus endpoint (the e2e test's
    Prometheus scrapes queue depths and consumers): enabled here when the local broker runs
    without them and `rabbitmq-plugins` can enable them (no restart); else one line saying how.
    Nothing to do when the tests use a broker of their own (RABBITMQ_URL set) or no local broker
    runs."""
    if os.environ.get("RABBITMQ_URL") or not _answers(5672):
        return 0
    if all(_answers(port) for port in PLUGINS.values()):
        return 0
    command = f"rabbitmq-plugins enable {' '.join(PLUGINS)}"
    if shutil.which("rabbitmq-plugins") is None:
        print(f"make test: RabbitMQ's plugins are off: run `{command}`, then `make test`")
        return 1
    print("make test: enabling RabbitMQ's management and Prometheus plugins", flush=True)
    subprocess.run(command.split(), check=False, capture_output=True)  # noqa: S603
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(_answers(port) for port in PLUGINS.values()):
            return 0
        time.sleep(1)
    print(f"make test: RabbitMQ's plugins did not come up: run `{command}`")
    return 1


def main() -> int:
    """Install what is missing, or say in one line how; 0 when every tool is there."""
    if management_api() != 0:
        return 1
    missing = [tool for tool in TOOLS if shutil.which(tool.command) is None]
    if not missing:
        return 0
    packages = list(dict.fromkeys(tool.package for tool in missing))
    names = " and ".join(tool.command for tool in missing)
    why = "; ".join(tool.needed_by for tool in missing)
    command = f"sudo apt-get install -y {' '.join(packages)}"
    prefix = _installer()
    if prefix is not None:
        print(f"make test: installing {names} from Debian's packages ({why})", flush=True)
        if _install(prefix, packages) and all(shutil.which(t.command) for t in missing):
            return 0
        print(f"make test: could not install {names}: run `{command}`, then `make test` again")
        return 1
    print(
        f"make test: {names} {'is' if len(missing) == 1 else 'are'} missing (needed by {why}): "
        f"run `{command}`, then `make test` again"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
