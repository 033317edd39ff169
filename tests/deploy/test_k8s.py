"""The Kubernetes manifests, as kustomize renders them: what operators rely on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli import build_parser
from tests.deploy.conftest import (
    DEPLOY,
    K8S,
    OVERLAYS,
    SERVICES,
    component,
    objects_of,
)

pytestmark = pytest.mark.unit

SECRET_NAME = "sns-telegram-secrets"
TMP = "/tmp"  # noqa: S108 (the container's /tmp, which must be writable)
OBSERVABILITY = DEPLOY / "observability"


def cli_subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.choices)
    return set(action.choices or {})


def deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {component(d): d for d in objects_of(objects, "Deployment")}


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return objects_of(objects, "Deployment") + objects_of(objects, "Job")


def config_data(objects: list[dict[str, Any]]) -> dict[str, str]:
    (config,) = [
        c
        for c in objects_of(objects, "ConfigMap")
        if c["metadata"]["name"].startswith("sns-telegram-config")
    ]
    data: dict[str, str] = config["data"]
    return data


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_a_deployment(rendered, overlay):
    assert set(SERVICES) <= set(deployments(rendered[overlay]))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_health_and_readiness_probes(rendered, overlay):
    for deployment in objects_of(rendered[overlay], "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            what = f"{deployment['metadata']['name']}/{container['name']}"
            for probe in ("livenessProbe", "readinessProbe"):
                assert probe in container, f"{what} has no {probe}"
                get = container[probe]["httpGet"]
                assert get["port"] in ports or get["port"] in ports.values(), what
            if component(deployment) in SERVICES:
                assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", what
                assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", what
                # /readyz runs two checks of up to 3 s each.
                assert container["readinessProbe"].get("timeoutSeconds", 1) > 6, what


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_and_limits(rendered, overlay):
    for workload in workloads(rendered[overlay]):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            what = f"{workload['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{what}: {kind}"
            for unit in ("cpu", "memory"):
                request = quantity(resources["requests"][unit])
                assert request <= quantity(resources["limits"][unit]), f"{what}: {unit}"


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (250m, 1, 256Mi, 1Gi) as a number."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_as_non_root_on_a_read_only_root_filesystem(rendered, overlay):
    for workload in workloads(rendered[overlay]):
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["automountServiceAccountToken"] is False, name
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert TMP in mounts, f"{name}: no writable /tmp"
            assert "emptyDir" in volumes[mounts[TMP]], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_listen_where_their_settings_say(rendered, overlay):
    config = config_data(rendered[overlay])
    for name, deployment in deployments(rendered[overlay]).items():
        if name not in SERVICES:
            continue
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        port = container["ports"][0]["containerPort"]
        assert port == SERVICES[name] == int(config[f"{name.upper()}_PORT"])
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/port"] == str(port), name
        assert annotations["prometheus.io/path"] == "/metrics", name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_run_real_subcommands(rendered, overlay):
    commands = cli_subcommands()
    for workload in workloads(rendered[overlay]):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if "command" in container:  # the dev stand-in runs its own module
                assert container["command"][:3] == ["python", "-m", "services.standin"]
                continue
            assert container["args"][0] in commands, workload["metadata"]["name"]
    jobs = {job["metadata"]["name"]: job for job in objects_of(rendered[overlay], "Job")}
    assert {
        name: job["spec"]["template"]["spec"]["containers"][0]["args"] for name, job in jobs.items()
    } == {
        "sns-telegram-migrate": ["migrate"],
        "sns-telegram-broker-permissions": ["broker-permissions"],
    }
    for job in jobs.values():
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_select_their_pods(rendered, overlay):
    objects = rendered[overlay]
    pods = {component(d): d["spec"]["template"] for d in objects_of(objects, "Deployment")}
    services = {component(s): s for s in objects_of(objects, "Service")}
    assert set(SERVICES) <= set(services)
    for name, service in services.items():
        labels = pods[name]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), name
        container_ports = {p["name"] for c in pods[name]["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_has_a_disruption_budget(rendered, overlay):
    objects = rendered[overlay]
    budgets = {component(p): p for p in objects_of(objects, "PodDisruptionBudget")}
    for name, deployment in deployments(objects).items():
        if name not in SERVICES:
            continue
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        # maxUnavailable never blocks a drain, even with one replica.
        assert budgets[name]["spec"].get("maxUnavailable") == 1


def test_prod_runs_two_notifiers_and_autoscales_the_linker_in_webhook_mode(rendered):
    objects = rendered["overlays/prod"]
    found = deployments(objects)
    # Two notifiers are safe: single active consumer (deploy/README.md, "Scaling").
    assert found["notifier"]["spec"]["replicas"] == 2
    assert found["scheduler"]["spec"]["replicas"] >= 2
    assert "replicas" not in found["linker"]["spec"], "the HPA owns the linker's replicas"
    (hpa,) = objects_of(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": found["linker"]["metadata"]["name"],
    }
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    # More than one linker needs webhook mode: getUpdates serves one client at a time.
    config = config_data(objects)
    assert config["TELEGRAM_WEBHOOK_URL"].startswith("https://")
    assert config["APP_ENV"] == "production"
    assert config["LOG_FORMAT"] == "json"


def test_dev_runs_one_linker_by_long_polling_against_the_stand_in(rendered):
    objects = rendered["overlays/dev"]
    found = deployments(objects)
    assert found["linker"]["spec"]["replicas"] == 1
    assert not objects_of(objects, "HorizontalPodAutoscaler")
    config = config_data(objects)
    assert "TELEGRAM_WEBHOOK_URL" not in config
    assert config["APP_ENV"] == "development"
    standin = found["telegram-standin"]["spec"]["template"]["spec"]["containers"][0]
    assert standin["args"] == ["--host", "0.0.0.0", "--port", "8081"]
    service = next(s for s in objects_of(objects, "Service") if component(s) == "telegram-standin")
    assert config["TELEGRAM_API_BASE"] == f"http://{service['metadata']['name']}:8081"


def test_prod_never_generates_a_secret(rendered):
    # The production Secret is created out of band: a placeholder can never reach production.
    assert not objects_of(rendered["overlays/prod"], "Secret")
    assert not objects_of(rendered["base"], "Secret")


def test_prod_image_is_pinned(rendered):
    for workload in workloads(rendered["overlays/prod"]):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1], image
            assert not image.endswith(":latest"), image


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_container_sets_a_variable_twice(rendered, overlay):
    for workload in workloads(rendered[overlay]):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            names = [env["name"] for env in container.get("env", [])]
            assert len(names) == len(set(names)), (container["name"], sorted(names))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secret_references_name_keys_of_the_secret_template(rendered, overlay):
    template = yaml_load(K8S / "secret.template.yaml")
    keys = set(template["stringData"]) | {"JWT_PUBLIC_KEY"}  # commented alternative in the template
    generated = {s["metadata"]["name"] for s in objects_of(rendered[overlay], "Secret")}
    for workload in workloads(rendered[overlay]):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref is None:
                    continue
                assert ref["key"] == env["name"]
                assert ref["key"] in keys, f"{ref['key']} is not in secret.template.yaml"
                assert ref["name"] == SECRET_NAME or ref["name"] in generated
                if ref["key"] not in ("DATABASE_URL", "RABBITMQ_URL"):
                    assert ref.get("optional") is True, ref["key"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configuration_names_only_variables_the_services_read(rendered, overlay, settings_fields):
    names = set(config_data(rendered[overlay]))
    for secret in objects_of(rendered[overlay], "Secret"):
        names |= set(secret.get("data", {})) | set(secret.get("stringData", {}))
    assert names - set(settings_fields) == set()
    template = yaml_load(K8S / "secret.template.yaml")
    assert set(template["stringData"]) - set(settings_fields) == set()


def yaml_load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_prod_names_the_jwt_issuer_and_two_different_audiences(rendered):
    # Required in production (services/common/auth.py): without them the services do not start.
    config = config_data(rendered["overlays/prod"])
    for variable in ("JWT_ISSUER", "JWT_AUDIENCE", "ADMIN_JWT_AUDIENCE"):
        assert config.get(variable), variable
    assert config["ADMIN_JWT_AUDIENCE"] != config["JWT_AUDIENCE"]


def test_prod_ships_the_dashboard_for_grafanas_sidecar_and_the_alert_rules(rendered):
    objects = rendered["overlays/prod"]
    (dashboard,) = [
        c for c in objects_of(objects, "ConfigMap") if c["metadata"]["name"].endswith("dashboard")
    ]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    committed = json.loads((OBSERVABILITY / "dashboard.json").read_text())
    assert json.loads(dashboard["data"]["sns-telegram.json"]) == committed
    (rule,) = objects_of(objects, "PrometheusRule")
    assert rule["metadata"]["namespace"] == dashboard["metadata"]["namespace"] == "sns-telegram"
    plain = yaml.safe_load((OBSERVABILITY / "alerts.rules.yml").read_text())
    assert rule["spec"]["groups"] == plain["groups"]


def test_dev_needs_no_prometheus_operator(rendered):
    assert objects_of(rendered["overlays/dev"], "PrometheusRule") == []
