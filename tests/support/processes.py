"""Our commands as child processes, for the tests that need a real process (e2e, faults) and the
benchmarks: `python -m services.cli NAME` with an environment and a log, waited on until it
answers `/readyz`, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
"""The repository: every process runs from here."""


def free_port() -> int:
    """A TCP port nobody listens on right now (for a service a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(
    database_url: str, rabbitmq_url: str, api_base: str, **settings: Any
) -> dict[str, str]:
    """The variables of one of our services pointed at the test's servers and stand-in, in
    development; `settings` by field name (`notifier_port=8002` is NOTIFIER_PORT)."""
    env = {
        "DATABASE_URL": database_url,
        "RABBITMQ_URL": rabbitmq_url,
        "TELEGRAM_API_BASE": api_base,
        "APP_ENV": "development",
    }
    env.update({name.upper(): str(value) for name, value in settings.items()})
    return env


class Service:
    """One of our commands as a child process (`python ARGV` in the repository), its output in
    `log_path` (a restart appends to it). Its environment is ours plus `env`, or `env` alone with
    `inherit=False`. `port`: where it serves HTTP, if it does."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        log_path: Path,
        *,
        port: int | None = None,
        inherit: bool = True,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.port = port
        self.inherit = inherit
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Service:
        """Start (or restart) the process."""
        with self.log_path.open("ab" if self.starts else "wb") as log:
            if self.starts:  # the first start's log holds only what the process wrote
                log.write(f"--- start {self.starts + 1}: {' '.join(self.argv)}\n".encode())
                log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, *self.argv],
                env={**os.environ, **self.env} if self.inherit else self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """`kill -9`: no shutdown code runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit status (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def url(self, path: str = "") -> str:
        """`http://127.0.0.1:<port><path>`."""
        assert self.port is not None, f"{self.name} serves no port"
        return f"http://127.0.0.1:{self.port}{path}"

    async def answers(self, path: str = "/readyz") -> bool:
        """True when `path` answers 200; fails, with the log's end, if the process exited."""
        assert self.alive, f"{self.name} exited:\n{self.log_text()[-3000:]}"
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(self.url(path))).status_code == 200
        except httpx.HTTPError:
            return False

    async def wait_ready(self, path: str = "/readyz", timeout: float = 120) -> None:
        """Wait until `path` answers 200 (a bound, not a speed claim: importing aiogram alone took
        20-27 s on a 2-core machine under load; `make bench` measures time to ready)."""
        await eventually(lambda: self.answers(path), timeout, 0.2, f"{self.name} ready")

    def rss_mb(self) -> float:
        """Resident memory of the process, in MiB."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        """User + system CPU time the process used so far."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def our_service(
    command: str, env: dict[str, str], log_dir: Path, name: str | None = None, **options: Any
) -> Service:
    """`sns-telegram COMMAND` (`notifier`, `linker`, `scheduler`) on a free port of its own
    (`<COMMAND>_PORT`), logging to `<log_dir>/<name>.log`; not started."""
    port = free_port()
    name = name or command
    env = {**env, f"{command.upper()}_PORT": str(port)}
    argv = ["-m", "services.cli", command]
    return Service(name, argv, env, log_dir / f"{name}.log", port=port, **options)
