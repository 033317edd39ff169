"""The observability files and a real Prometheus (Debian's `prometheus`) for the tests and the
dashboard chart: `generate` is deploy/observability/generate.py (the dashboard's panels, the alert
rules); `running_prometheus` starts a server of its own (temporary config and data, a free port,
1 s scrapes) against the given targets, with the HTTP API's queries as methods;
`observed_system` runs the three services and the stand-in as processes under one, and
`produce_traffic` gives each panel something to show."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from services.standin.client import StandInClient
from shared.contract import EventType, sample_data
from shared.publisher import EventPublisher
from tests.support.bus import publish_raw
from tests.support.ids import new_chat_id, new_user, new_users
from tests.support.links import seed_links
from tests.support.processes import ROOT, Service, free_port, our_service, service_env
from tests.support.standin import standin_process
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


SERVICES = ("notifier", "linker", "scheduler")
JWT_SECRET = "observed-system-secret-0123456789abcdef"


@dataclass
class Observed:
    """The three services as processes in development, the stand-in, and a Prometheus scraping
    them and the broker's vhost."""

    standin: StandInClient
    services: dict[str, Service]
    prometheus: Prometheus


@contextlib.asynccontextmanager
async def observed_system(
    database_url: str, rabbitmq_url: str, work_dir: Path, rules: dict[str, Any] | None = None
) -> AsyncIterator[Observed]:
    """The stand-in, notifier, linker and scheduler (real processes, `APP_ENV=development`,
    each on a free port, logs in `work_dir`), and a Prometheus scraping the three and RabbitMQ
    every second with `rules`; everything stopped afterwards."""
    work_dir.mkdir(parents=True, exist_ok=True)
    async with standin_process(work_dir) as standin:
        env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
        env |= service_env(
            database_url,
            rabbitmq_url,
            standin.base_url,
            jwt_secret=JWT_SECRET,
            notifier_release_interval_seconds=0.5,
            scheduler_tick_seconds=1,
            log_level="WARNING",
        )
        services = {name: our_service(name, env, work_dir, inherit=False) for name in SERVICES}
        try:
            for service in services.values():
                service.start()
            await asyncio.gather(*(s.wait_ready(timeout=180) for s in services.values()))
            targets = [Target(n, f"127.0.0.1:{s.port}") for n, s in services.items()]
            targets.append(rabbitmq_target(rabbitmq_url))
            async with running_prometheus(targets, work_dir / "prometheus", rules) as server:
                await eventually(server.targets_up, 30, 0.2, "every target scraped")
                yield Observed(standin, services, server)
        finally:
            for service in services.values():
                service.stop(15)


def sample(name: str) -> dict[str, Any]:
    return sample_data(EventType(name), date.today())


async def produce_traffic(observed: Observed, database_url: str, rabbitmq_url: str) -> None:
    """One of each thing the dashboard shows: messages of each type sent, a chat that blocked
    the bot, a 429 with retry_after, a message held for quiet hours (released a few seconds
    later), and an event that is not valid JSON (dead-lettered `invalid`)."""
    (sent, sent_chat), (blocked, blocked_chat), (paced, paced_chat) = new_users(3)
    held, held_chat = new_user(), new_chat_id()
    await seed_links(
        database_url, [(sent, sent_chat), (blocked, blocked_chat), (paced, paced_chat)]
    )
    now = datetime.now(UTC)
    await seed_links(
        database_url,
        [(held, held_chat)],
        quiet_start=(now - timedelta(hours=1)).time().replace(microsecond=0),
        quiet_end=(now + timedelta(seconds=6)).time().replace(microsecond=0),
    )
    await observed.standin.add_fault(error_code=403, chat_id=blocked_chat)
    await observed.standin.add_fault(error_code=429, retry_after=1, chat_id=paced_chat)
    async with EventPublisher(rabbitmq_url) as publisher:
        await publisher.send("post_success", held, {"platform": "instagram", "likes": 1})
        for name in ("post_success", "post_failure", "automation_executed"):
            await publisher.send(name, sent, sample(name))
        await publisher.send("post_success", blocked, sample("post_success"))
        await publisher.send("post_failure", paced, sample("post_failure"))
    await publish_raw(rabbitmq_url, "post_success", b"{not json", message_id="poison")
    await observed.standin.wait_for_messages(sent_chat, 3)
    await observed.standin.wait_for_messages(paced_chat, 1)
    await observed.standin.wait_for_messages(held_chat, 1, timeout=30)
