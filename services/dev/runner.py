"""`sns-telegram dev` (`make run`): the whole system on one machine, in one readable console.

In order: PostgreSQL and RabbitMQ (`services.dev.servers`), the Telegram stand-in (when
TELEGRAM_BOT_TOKEN is unset), one migration, then the notifier, the linker and the scheduler.
Every line any of them prints comes out as `HH:MM:SS.mmm name      | line`, control characters
escaped. One line with the word `ready` and the URLs is printed once every service's `/readyz` and
the stand-in's inbox answer 200; a service that does not within `--ready-timeout` is named and
everything stops (exit status 1).

Ctrl-C (SIGINT), SIGTERM and SIGHUP stop the services, then the stand-in (so nothing talks to a
stand-in that is gone), say so, and exit 0. The children run in process groups of their own, so
a terminal's Ctrl-C reaches only dev (and `make`, `uv`), which stops them in that order; a second
signal (`uv` or `make` forwarding the first) changes nothing. On Linux a child is also stopped if
dev dies.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

from services.common.safe_text import escape_controls
from services.dev import servers
from services.dev.tokens import DEV_JWT_SECRET

SERVICES = {"notifier": 8002, "linker": 8000, "scheduler": 8001}
"""Each service and its default port."""
STOP_SECONDS = 20.0
DEV = "dev"

if sys.platform == "linux":
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
    _PR_SET_PDEATHSIG = 1

    def _stop_with_parent() -> None:
        """In the child: SIGTERM when dev dies, however it dies."""
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    PREEXEC: Callable[[], None] | None = _stop_with_parent
else:  # pragma: no cover
    PREEXEC = None


class Console:
    """Lines from every process, each with the time and who said it (thread-safe)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def line(self, name: str, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S.%f")[:-3]
        with self._lock:
            self._out.write(f"{stamp} {name:<9} | {escape_controls(text)}\n")
            self._out.flush()


@dataclass
class Child:
    """A process dev started, and what it printed that is not a whole line yet."""

    name: str
    process: subprocess.Popen[bytes]
    pending: bytes = b""
    stopping: bool = False
    reported: bool = field(default=False)


class Supervisor:
    """Starts children, relays their output line by line, and stops them in order."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.children: list[Child] = []
        self.stop_requested: str | None = None
        self._selector = selectors.DefaultSelector()

    def install_signal_handlers(self) -> None:
        def request_stop(signum: int, _: object) -> None:
            if self.stop_requested is None:
                self.stop_requested = signal.Signals(signum).name

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, request_stop)

    def say(self, text: str) -> None:
        self.console.line(DEV, text)

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> Child:
        process = subprocess.Popen(  # noqa: S603 (our own modules)
            [sys.executable, *argv],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=PREEXEC,  # dev is single-threaded while it starts children
        )
        assert process.stdout is not None
        os.set_blocking(process.stdout.fileno(), False)
        child = Child(name, process)
        self._selector.register(process.stdout, selectors.EVENT_READ, child)
        self.children.append(child)
        return child

    def pump(self, timeout: float) -> None:
        """Relay whatever the children printed, waiting at most `timeout` for something."""
        if not self._selector.get_map():
            time.sleep(timeout)
            return
        for key, _ in self._selector.select(timeout):
            child: Child = key.data
            try:
                chunk = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                self._selector.unregister(key.fileobj)
                if child.pending:
                    self._emit(child, child.pending)
                    child.pending = b""
                continue
            *lines, child.pending = (child.pending + chunk).split(b"\n")
            for line in lines:
                self._emit(child, line)

    def _emit(self, child: Child, line: bytes) -> None:
        self.console.line(child.name, line.decode("utf-8", "replace").rstrip("\r"))

    def exited(self) -> Child | None:
        """A child that ended without being asked to (each is reported once)."""
        for child in self.children:
            if not child.stopping and not child.reported and child.process.poll() is not None:
                child.reported = True
                return child
        return None

    def wait_for_exit(self, child: Child) -> int | None:
        """The child's exit status, or None if a stop was requested first."""
        while child.process.poll() is None:
            if self.stop_requested:
                return None
            self.pump(0.1)
        self.pump(0)
        child.reported = True
        return child.process.returncode

    def stop(self, children: list[Child], timeout: float = STOP_SECONDS) -> None:
        """SIGTERM each, relay their last lines, SIGKILL what is left at the deadline."""
        for child in children:
            child.stopping = True
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(c.process.poll() is None for c in children) and time.monotonic() < deadline:
            self.pump(0.1)
        for child in children:
            if child.process.poll() is None:
                self.say(f"{child.name} did not stop within {timeout:g} s: killing it")
                child.process.kill()
                child.process.wait()
        self.pump(0)

    def shutdown(self, reason: str) -> None:
        """Stop the services, then the stand-in, and say so."""
        self.say(f"stopping ({reason})")
        last = [c for c in self.children if c.name == "standin"]
        self.stop([c for c in self.children if c not in last])
        if last:
            self.stop(last)
            self.say("telegram stand-in stopped")
        self.say("everything stopped")


def _answers(url: str) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310 (127.0.0.1)
            return response.status == 200, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        body = exc.read(300).decode("utf-8", "replace")
        return False, f"HTTP {exc.code} {body}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"no answer ({reason})"


def wait_ready(sup: Supervisor, checks: dict[str, str], timeout: float) -> str | None:
    """None once every URL answered 200; else why not (a stop request, a child that exited, or
    the deadline, naming who did not answer)."""
    pending = dict(checks)
    last: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    next_poll = 0.0
    while pending:
        if sup.stop_requested:
            return "stop requested"
        child = sup.exited()
        if child is not None:
            return f"{child.name} exited with status {child.process.returncode} before it was ready"
        if time.monotonic() > deadline:
            names = ", ".join(
                f"{name} ({url}: {last.get(name, 'no answer')})" for name, url in pending.items()
            )
            return f"not ready within {timeout:g} s: {names}"
        if time.monotonic() >= next_poll:
            for name, url in list(pending.items()):
                ok, last[name] = _answers(url)
                if ok:
                    del pending[name]
            next_poll = time.monotonic() + 0.2
        sup.pump(0.05)
    return None


def dev_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The children's environment: a development machine (the services default to production,
    which refuses these placeholders), console logs, unbuffered output."""
    env = dict(base)
    env["APP_ENV"] = "development"
    env.setdefault("LOG_FORMAT", "console")
    env.setdefault("JWT_SECRET", DEV_JWT_SECRET)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _ready_line(env: Mapping[str, str], standin: str | None) -> str:
    port = {name: env.get(f"{name.upper()}_PORT", str(p)) for name, p in SERVICES.items()}
    parts = [f"Telegram stand-in inbox {standin}/"] if standin else []
    parts += [
        f"linker API docs http://127.0.0.1:{port['linker']}/docs",
        f"scheduler admin API docs http://127.0.0.1:{port['scheduler']}/docs",
        f"notifier metrics http://127.0.0.1:{port['notifier']}/metrics",
    ]
    return "ready: " + " · ".join(parts) + " (Ctrl-C stops everything)"


def run(args: argparse.Namespace) -> int:
    """`sns-telegram dev`: see the module docstring. 0 after a requested stop."""
    console = Console(sys.stdout)
    sup = Supervisor(console)
    sup.install_signal_handlers()
    env = dev_environment(os.environ)
    try:
        env.update(servers.find(env, say=sup.say))
    except servers.ServersUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    standin: str | None = None
    if not env.get("TELEGRAM_BOT_TOKEN"):
        standin = f"http://127.0.0.1:{args.standin_port}"
        env["TELEGRAM_API_BASE"] = standin
        env.setdefault("TELEGRAM_BOT_USERNAME", "piwpiwtelegrambot")
        sup.start("standin", ["-m", "services.standin", "--port", str(args.standin_port)], env)
    status = sup.wait_for_exit(sup.start("migrate", ["-m", "services.cli", "migrate"], env))
    if status is None or status != 0:
        sup.shutdown("stop requested" if status is None else "the migration failed")
        return 0 if status is None else 1
    checks = {}
    for name, port in SERVICES.items():
        sup.start(name, ["-m", "services.cli", name], env)
        checks[name] = f"http://127.0.0.1:{env.get(f'{name.upper()}_PORT', port)}/readyz"
    if standin:
        checks["standin"] = f"{standin}/"
    problem = wait_ready(sup, checks, args.ready_timeout)
    if problem == "stop requested":
        sup.shutdown(f"{sup.stop_requested}")
        return 0
    if problem is not None:
        sup.say(f"error: {problem}; stopping everything")
        sup.shutdown("not ready")
        return 1
    sup.say(_ready_line(env, standin))
    if args.demo:
        from services.dev.demo import start_demo

        start_demo(env, standin, lambda text: console.line("demo", text))
    return _supervise(sup)


def _supervise(sup: Supervisor) -> int:
    while True:
        if sup.stop_requested:
            sup.shutdown(sup.stop_requested)
            return 0
        child = sup.exited()
        if child is not None:
            code = child.process.returncode
            sup.say(f"error: {child.name} exited with status {code}; stopping the rest")
            sup.shutdown(f"{child.name} exited")
            return code or 1
        with contextlib.suppress(InterruptedError):
            sup.pump(0.2)
