"""PostgreSQL and RabbitMQ for `sns-telegram dev`: the configured ones, else the local defaults,
else (when a Docker engine answers) just those two started from deploy/docker-compose.yml.

A URL the environment sets is used as it is: if it does not answer, dev says what to start and
starts nothing. Servers started with Docker keep running after dev stops (like a local server);
their ports and credentials are deploy/docker-compose.dev-servers.yml's, published on 127.0.0.1
only, so they never clash with servers of the machine's own.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.settings import DEFAULT_DATABASE_URL, DEFAULT_RABBITMQ_URL

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILES = ("deploy/docker-compose.yml", "deploy/docker-compose.dev-servers.yml")
PROJECT = "sns-telegram-dev"
COMPOSE_CREDENTIALS = {
    "RABBITMQ_USER": "sns",
    "RABBITMQ_PASSWORD": "change-me",
    "POSTGRES_USER": "sns",
    "POSTGRES_PASSWORD": "change-me",
}
"""The compose file's development defaults, said explicitly (deploy/.env may say otherwise)."""


@dataclass(frozen=True)
class Server:
    """One server dev needs, where it looks for it, and how it starts one."""

    name: str
    variable: str
    local_url: str
    compose_service: str
    port_variable: str
    docker_port: int
    how_to_start: str

    def docker_url(self, port: int) -> str:
        if self.compose_service == "postgres":
            return f"postgresql://sns:change-me@127.0.0.1:{port}/sns_telegram"
        return f"amqp://sns:change-me@127.0.0.1:{port}/"


SERVERS = (
    Server(
        "PostgreSQL",
        "DATABASE_URL",
        DEFAULT_DATABASE_URL,
        "postgres",
        "SNS_DEV_POSTGRES_PORT",
        55432,
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
    Server(
        "RabbitMQ",
        "RABBITMQ_URL",
        DEFAULT_RABBITMQ_URL,
        "rabbitmq",
        "SNS_DEV_RABBITMQ_PORT",
        55672,
        "rabbitmq-server -detached",
    ),
)


class ServersUnavailable(RuntimeError):
    """A server does not answer and could not be started; the message says what to start."""


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether something accepts TCP connections at the URL's host and port."""
    parsed = urllib.parse.urlsplit(url.replace("+psycopg", ""))
    default = 5432 if parsed.scheme.startswith("postgres") else 5672
    try:
        port = parsed.port or default
    except ValueError:
        return False
    try:
        with socket.create_connection((parsed.hostname or "localhost", port), timeout):
            return True
    except OSError:
        return False


def docker_engine_answers(env: Mapping[str, str], docker: str = "docker") -> bool:
    """Whether `docker info` succeeds (the CLI alone is not enough)."""
    if shutil.which(docker) is None:
        return False
    try:
        done = subprocess.run(  # noqa: S603
            [docker, "info"],
            env={**os.environ, **env},
            capture_output=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def compose_command(docker: str, services: list[str]) -> list[str]:
    """`docker compose ... up -d --wait SERVICES` for the dev servers' own project."""
    files = [arg for path in COMPOSE_FILES for arg in ("-f", str(ROOT / path))]
    return [docker, "compose", "-p", PROJECT, *files, "up", "-d", "--wait", *services]


def _instructions(missing: list[Server], configured: bool) -> str:
    names = " and ".join(s.name for s in missing)
    variables = " / ".join(s.variable for s in missing)
    lines = [f"{names} not reachable ({variables}). Start {'it' if len(missing) == 1 else 'them'}:"]
    if not configured:
        services = " ".join(s.compose_service for s in missing)
        files = " ".join(f"-f {path}" for path in COMPOSE_FILES)
        lines.append(f"  with Docker:  docker compose -p {PROJECT} {files} up -d --wait {services}")
        lines.append("                (or start the Docker engine: `make run` then does this)")
    lines += [f"  or locally:   {s.how_to_start}" for s in missing]
    return "\n".join(lines)


def find(
    env: Mapping[str, str],
    *,
    servers: tuple[Server, ...] = SERVERS,
    docker: str = "docker",
    wait_seconds: float = 180.0,
    say: Callable[[str], None] = print,
) -> dict[str, str]:
    """The URL of each server ({"DATABASE_URL": ..., "RABBITMQ_URL": ...}), starting the missing
    local ones with Docker when an engine answers; raise ServersUnavailable saying what to start."""
    urls: dict[str, str] = {}
    configured_missing: list[Server] = []
    missing: list[Server] = []
    for server in servers:
        given = env.get(server.variable)
        if given:
            urls[server.variable] = given
            if not answers(given):
                configured_missing.append(server)
        elif answers(server.local_url):
            urls[server.variable] = server.local_url
        else:
            missing.append(server)
    if configured_missing:
        raise ServersUnavailable(_instructions(configured_missing, configured=True))
    if not missing:
        return urls
    if not docker_engine_answers(env, docker):
        raise ServersUnavailable(_instructions(missing, configured=False))
    ports = {s.variable: int(env.get(s.port_variable) or s.docker_port) for s in missing}
    names = " and ".join(s.name for s in missing)
    say(f"{names} not reachable: starting {'it' if len(missing) == 1 else 'them'} with Docker")
    compose_env = {
        **os.environ,
        **env,
        **COMPOSE_CREDENTIALS,
        # Away from the management port `make up` publishes (15672).
        "RABBITMQ_MANAGEMENT_PUBLISHED_PORT": env.get(
            "RABBITMQ_MANAGEMENT_PUBLISHED_PORT", "55673"
        ),
        **{s.port_variable: str(ports[s.variable]) for s in missing},
    }
    command = compose_command(docker, [s.compose_service for s in missing])
    done = subprocess.run(command, env=compose_env, check=False)  # noqa: S603
    if done.returncode != 0:
        raise ServersUnavailable(
            f"`{' '.join(command)}` failed (exit status {done.returncode})\n"
            + _instructions(missing, configured=False)
        )
    deadline = time.monotonic() + wait_seconds
    for server in missing:
        url = server.docker_url(ports[server.variable])
        while not answers(url, timeout=1.0):
            if time.monotonic() > deadline:
                raise ServersUnavailable(
                    f"{server.name} started with Docker but did not answer on 127.0.0.1:"
                    f"{ports[server.variable]} within {wait_seconds:g} s "
                    f"(docker compose -p {PROJECT} logs {server.compose_service})"
                )
            time.sleep(0.5)
        urls[server.variable] = url
    say(
        f"{names} started with Docker (they keep running; stop them with "
        f"`docker compose -p {PROJECT} stop`)"
    )
    return urls
