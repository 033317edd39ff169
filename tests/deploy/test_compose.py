"""deploy/docker-compose.yml: health checks, start order, the stand-in, the variables."""

from __future__ import annotations

import re

import pytest
import yaml

from services.cli import build_parser
from tests.deploy.conftest import DEPLOY, SERVICES, env_file_entries

pytestmark = pytest.mark.unit

SERVERS = {"rabbitmq", "postgres"}
ONE_SHOT = {"migrate", "broker-permissions"}
STANDIN = "telegram-standin"
OBSERVABILITY = {"prometheus", "grafana"}
TMP = "/tmp"  # noqa: S108 (the container's /tmp, which must be writable)


def subcommands() -> set[str]:
    action = next(a for a in build_parser()._actions if a.choices)
    return set(action.choices or {})


def test_the_whole_system_is_there(compose):
    assert (
        set(compose["services"]) == SERVERS | ONE_SHOT | set(SERVICES) | {STANDIN} | OBSERVABILITY
    )


def test_every_long_running_service_has_a_health_check(compose):
    for name, service in compose["services"].items():
        if name in ONE_SHOT:
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
        command = " ".join(test[1:])
        if name == "rabbitmq":
            assert command.startswith("rabbitmq-diagnostics")
        elif name == "postgres":
            assert command.startswith("pg_isready")
        else:
            urls = re.findall(r"http://127\.0\.0\.1:(\d+)(/\S*)", command)
            assert urls, f"{name}: the health check is not an HTTP request"
            port, path = urls[0]
            if name in SERVICES:
                assert int(port) == SERVICES[name], name
                assert path in ("/healthz", "/readyz"), name


def test_services_wait_for_the_migration_and_healthy_servers(compose):
    for name in SERVICES:
        depends = compose["services"][name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        for server in SERVERS:
            assert depends[server]["condition"] == "service_healthy", name


def test_migrate_is_a_one_shot_after_postgres(compose):
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_services_run_real_subcommands_of_one_image(compose):
    images = set()
    for name in [*SERVICES, *ONE_SHOT]:
        service = compose["services"][name]
        assert service["command"][0] in subcommands(), name
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        images.add(service["image"])
    assert len(images) == 1


def test_services_are_locked_down_like_in_kubernetes(compose):
    for name in [*SERVICES, *ONE_SHOT, STANDIN]:
        service = compose["services"][name]
        assert service["read_only"] is True, name
        assert TMP in service["tmpfs"], name
        assert service["cap_drop"] == ["ALL"], name


def test_the_stand_in_is_dev_only_and_where_the_services_look_for_it(compose):
    standin = compose["services"][STANDIN]
    assert standin["profiles"] == ["dev"]
    assert standin["entrypoint"] == ["python", "-m", "services.standin"]
    assert standin["command"] == ["--host", "0.0.0.0", "--port", "8081"]
    assert standin["image"] == compose["services"]["notifier"]["image"]
    for name in ("notifier", "linker"):
        service = compose["services"][name]
        script = " ".join(service["entrypoint"])
        assert f"TELEGRAM_API_BASE=http://{STANDIN}:8081" in script, name
        assert 'exec sns-telegram "$$@"' in script, name
        dependency = service["depends_on"][STANDIN]
        assert dependency == {"condition": "service_healthy", "required": False}, name


def test_servers_keep_their_data_in_named_volumes(compose):
    assert re.fullmatch(r"rabbitmq:3\.\d+-management", compose["services"]["rabbitmq"]["image"])
    volumes = set(compose["volumes"])
    for name, path in (("postgres", "/var/lib/postgresql/data"), ("rabbitmq", "/var/lib/rabbitmq")):
        mounts = dict(m.split(":", 1) for m in compose["services"][name]["volumes"])
        assert {v for v, p in mounts.items() if p == path} <= volumes, name


def test_env_files_are_the_example_then_the_local_file(compose):
    for name in [*SERVICES, *ONE_SHOT]:
        assert compose["services"][name]["env_file"] == [
            {"path": ".env.example", "required": True},
            {"path": ".env", "required": False},
        ]


def test_every_interpolated_variable_is_in_the_env_example(compose_variables):
    listed = {name for _, name, _, _ in env_file_entries(DEPLOY / ".env.example")}
    assert compose_variables - listed == set()


def test_the_dev_profile_runs_prometheus_and_grafana_on_the_shipped_files(compose):
    services = compose["services"]
    for name in OBSERVABILITY:
        assert services[name]["profiles"] == ["dev"], name
        ports = services[name]["ports"]
        assert all(p.startswith("127.0.0.1:") for p in ports), name
    mounts = {
        name: dict(m.rsplit(":", 2)[:2] for m in services[name]["volumes"] if m.startswith("./"))
        for name in OBSERVABILITY
    }
    assert mounts["prometheus"] == {
        "./observability/prometheus.yml": "/etc/prometheus/prometheus.yml",
        "./observability/alerts.rules.yml": "/etc/prometheus/alerts.rules.yml",
    }
    dashboards = mounts["grafana"]["./observability/dashboard.json"]
    provider = yaml.safe_load((DEPLOY / "observability/grafana/dashboards.yml").read_text())
    assert dashboards.startswith(provider["providers"][0]["options"]["path"] + "/")
    datasources = yaml.safe_load((DEPLOY / "observability/grafana/datasources.yml").read_text())
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    for path in [*mounts["prometheus"], *mounts["grafana"]]:
        assert (DEPLOY / path).is_file(), path


def test_rabbitmq_serves_the_metrics_prometheus_scrapes(compose):
    rabbitmq = compose["services"]["rabbitmq"]
    plugins = next(
        m for m in rabbitmq["volumes"] if m.endswith(":/etc/rabbitmq/enabled_plugins:ro")
    )
    text = (DEPLOY / plugins.split(":")[0]).read_text()
    assert "rabbitmq_prometheus" in text and "rabbitmq_management" in text
    config = yaml.safe_load((DEPLOY / "observability/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["rabbitmq"]["static_configs"][0]["targets"] == ["rabbitmq:15692"]
    assert jobs["rabbitmq"]["metrics_path"] == "/metrics/per-object"
    for name, port in SERVICES.items():
        assert jobs[name]["static_configs"][0]["targets"] == [f"{name}:{port}"]
