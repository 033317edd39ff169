"""The observability files and a real Prometheus (Debian's `prometheus`) for the tests and the
dashboard chart: `generate` is deploy/observability/generate.py (the dashboard's panels, the alert
rules), and `running_prometheus` starts a server of its own (temporary config and data, a free
port, 1 s scrapes) against the given targets, with the HTTP API's queries as methods."""

from __future__ import annotations

import contextlib
import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from tests.support.processes import ROOT, free_port
from tests.support.waiting import eventually

OBSERVABILITY = ROOT / "deploy" / "observability"


def _load_generate() -> Any:
    spec = importlib.util.spec_from_file_location("generate", OBSERVABILITY / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["generate"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


generate = _load_generate()


def binary(name: str) -> str:
    """promtool or prometheus from PATH; `make test` installs them (scripts/test_tools.py)."""
    found = shutil.which(name)
    assert found, f"{name} is missing: run `make test-tools` (Debian's package prometheus)"
    return found


@dataclass(frozen=True)
class Target:
    """One scrape job: `host:port` and the path of its metrics."""

    job: str
    address: str
    path: str = "/metrics"
    keep: dict[str, str] | None = None
    """Keep only the series with these label values (e.g. the test's own RabbitMQ vhost)."""


def rabbitmq_target(rabbitmq_url: str) -> Target:
    """The broker's rabbitmq_prometheus plugin, per object, only the vhost of `rabbitmq_url`."""
    parts = urlsplit(rabbitmq_url)
    vhost = parts.path.lstrip("/") or "/"
    return Target("rabbitmq", f"{parts.hostname}:15692", "/metrics/per-object", {"vhost": vhost})


def _config(targets: list[Target], rule_file: Path | None) -> dict[str, Any]:
    jobs = []
    for target in targets:
        job: dict[str, Any] = {
            "job_name": target.job,
            "metrics_path": target.path,
            "static_configs": [{"targets": [target.address]}],
        }
        if target.keep:
            job["metric_relabel_configs"] = [
                {"source_labels": [label], "regex": re.escape(value), "action": "keep"}
                for label, value in target.keep.items()
            ]
        jobs.append(job)
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": jobs,
    }
    if rule_file is not None:
        config["rule_files"] = [str(rule_file)]
    return config


class Prometheus:
    """A running server's HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def _get(self, path: str, **params: Any) -> Any:
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.get(f"{self.url}{path}", params=params)
        body = answer.json()
        assert answer.status_code == 200 and body["status"] == "success", (path, params, body)
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result (a vector's series); fails if the PromQL does not parse."""
        data = await self._get("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else []
        return result

    async def query_range(
        self, expr: str, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        data = await self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step)
        result: list[dict[str, Any]] = data["result"]
        return result

    async def names(self) -> set[str]:
        """Every metric name scraped so far."""
        return set(await self._get("/api/v1/label/__name__/values"))

    async def targets_up(self) -> bool:
        data = await self._get("/api/v1/targets")
        active = data["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)

    async def firing(self) -> dict[str, list[dict[str, str]]]:
        """Firing alerts by name, each with its labels."""
        data = await self._get("/api/v1/alerts")
        alerts: dict[str, list[dict[str, str]]] = {}
        for alert in data["alerts"]:
            if alert["state"] == "firing":
                alerts.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
        return alerts


@contextlib.asynccontextmanager
async def running_prometheus(
    targets: list[Target], work_dir: Path, rules: dict[str, Any] | None = None
) -> AsyncIterator[Prometheus]:
    """A Prometheus of its own in `work_dir` scraping `targets` every second and evaluating
    `rules` (a rules file's content) every second; stopped and its data left in `work_dir`."""
    work_dir.mkdir(parents=True, exist_ok=True)
    rule_file = None
    if rules is not None:
        rule_file = work_dir / "rules.yml"
        rule_file.write_text(yaml.safe_dump(rules, sort_keys=False))
    config = work_dir / "prometheus.yml"
    config.write_text(yaml.safe_dump(_config(targets, rule_file), sort_keys=False))
    port = free_port()
    log = (work_dir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={work_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        cwd=work_dir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Prometheus(f"http://127.0.0.1:{port}")

    async def ready() -> bool:
        assert process.poll() is None, (work_dir / "prometheus.log").read_text()[-3000:]
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(f"{server.url}/-/ready")).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        await eventually(ready, 30, 0.1, "prometheus ready")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
