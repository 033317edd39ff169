"""Finding real PostgreSQL and RabbitMQ for the tests, and isolating each run inside them.

Order: DATABASE_URL / RABBITMQ_URL when set; else the default local URLs when they answer; else
testcontainers when a Docker engine is available; else the run stops with what to start.
Each run gets its own database and its own RabbitMQ vhost, removed at the end.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import make_url

LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"

HOW_TO_START = """\
The tests need real PostgreSQL and RabbitMQ, and none could be found.
Start them with one of:
  docker compose -f deploy/docker-compose.yml up -d rabbitmq postgres
  rabbitmq-server -detached; pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
or point DATABASE_URL / RABBITMQ_URL at running servers."""


class ServicesUnavailable(RuntimeError):
    """Neither configured, local nor containerised services could be reached."""


def _answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _url_answers(url: str, default_port: int) -> bool:
    parsed = urllib.parse.urlsplit(url.replace("+psycopg", ""))
    return _answers(parsed.hostname or "localhost", parsed.port or default_port)


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class Brokers:
    """The server URLs the test run found (before per-run isolation)."""

    database_url: str
    rabbitmq_url: str
    management: Callable[[str, str, dict[str, Any] | None], None] | None


@contextmanager
def find_servers() -> Iterator[Brokers]:
    """Yield URLs of a reachable PostgreSQL and RabbitMQ, starting containers if need be."""
    database_url = os.environ.get("DATABASE_URL")
    rabbitmq_url = os.environ.get("RABBITMQ_URL")
    with ExitStack() as stack:
        if database_url is None:
            if _url_answers(LOCAL_DATABASE_URL, 5432):
                database_url = LOCAL_DATABASE_URL
            elif _docker_available():
                from testcontainers.postgres import PostgresContainer

                pg = stack.enter_context(PostgresContainer("postgres:16-alpine", driver="psycopg"))
                database_url = pg.get_connection_url()
        if rabbitmq_url is None:
            if _url_answers(LOCAL_RABBITMQ_URL, 5672):
                rabbitmq_url = LOCAL_RABBITMQ_URL
            elif _docker_available():
                from testcontainers.rabbitmq import RabbitMqContainer

                mq = stack.enter_context(RabbitMqContainer("rabbitmq:3.13-management-alpine"))
                host, port = mq.get_container_host_ip(), mq.get_exposed_port(5672)
                rabbitmq_url = f"amqp://guest:guest@{host}:{port}/"
                os.environ.setdefault(
                    "RABBITMQ_MANAGEMENT_URL", f"http://{host}:{mq.get_exposed_port(15672)}"
                )
        if database_url is None or rabbitmq_url is None:
            raise ServicesUnavailable(HOW_TO_START)
        if not _url_answers(database_url, 5432) or not _url_answers(rabbitmq_url, 5672):
            raise ServicesUnavailable(
                HOW_TO_START + f"\n(tried {make_url(database_url)!r} and the RabbitMQ URL)"
            )
        yield Brokers(database_url, rabbitmq_url, _management_for(rabbitmq_url))


def _management_for(amqp_url: str) -> Callable[[str, str, dict[str, Any] | None], None] | None:
    parsed = urllib.parse.urlsplit(amqp_url)
    base = os.environ.get("RABBITMQ_MANAGEMENT_URL", f"http://{parsed.hostname}:15672")
    user = urllib.parse.unquote(parsed.username or "guest")
    password = urllib.parse.unquote(parsed.password or "guest")
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()

    def call(method: str, path: str, body: dict[str, Any] | None) -> None:
        request = urllib.request.Request(  # noqa: S310 (a local management URL)
            base + path,
            method=method,
            data=json.dumps(body or {}).encode(),
            headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass

    try:
        call("GET", "/api/overview", None)
    except (urllib.error.URLError, OSError):
        return None
    return call


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


def with_vhost(amqp_url: str, vhost: str) -> str:
    """The AMQP URL pointing at `vhost`."""
    parsed = urllib.parse.urlsplit(amqp_url)
    return urllib.parse.urlunsplit(parsed._replace(path="/" + urllib.parse.quote(vhost, safe="")))


@contextmanager
def isolated_vhost(servers: Brokers, prefix: str = "test") -> Iterator[str]:
    """Create a fresh vhost for this run; yield its AMQP URL; delete it afterwards."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:10]}"
    user = urllib.parse.unquote(urllib.parse.urlsplit(servers.rabbitmq_url).username or "guest")
    quoted = urllib.parse.quote(vhost, safe="")
    if servers.management is not None:
        servers.management("PUT", f"/api/vhosts/{quoted}", {})
        servers.management(
            "PUT",
            f"/api/permissions/{quoted}/{urllib.parse.quote(user)}",
            {"configure": ".*", "write": ".*", "read": ".*"},
        )
        remove: Callable[[], None] = lambda: servers.management(  # noqa: E731
            "DELETE", f"/api/vhosts/{quoted}", None
        )
    elif shutil.which("rabbitmqctl"):
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        remove = lambda: _rabbitmqctl("delete_vhost", vhost)  # noqa: E731
    else:
        raise ServicesUnavailable(
            "cannot create a RabbitMQ vhost for the test run: enable the management plugin "
            "(rabbitmq-plugins enable rabbitmq_management) or put rabbitmqctl on PATH"
        )
    try:
        yield with_vhost(servers.rabbitmq_url, vhost)
    finally:
        remove()


@contextmanager
def isolated_database(servers: Brokers, prefix: str = "sns_test") -> Iterator[str]:
    """Create and migrate a fresh database for this run; yield its URL; drop it afterwards."""
    from shared.db import drop_database, migrate

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = make_url(servers.database_url).set(database=name).render_as_string(hide_password=False)
    migrate(url)
    try:
        yield url
    finally:
        drop_database(url)
