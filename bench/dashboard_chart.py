"""deploy/observability/dashboard.png: the dashboard's panels drawn from real data.

    uv run python -m bench.dashboard_chart        (make observability-chart; about 2 minutes)

On a throwaway database and vhost it starts the Telegram stand-in, the notifier, the linker and
the scheduler as processes, and a Prometheus scraping them and RabbitMQ every second
(`tests/support/prometheus.py`, as tests/e2e/test_prometheus.py does). It then sends real traffic
for about 80 seconds: a steady stream to 200 users, a burst of 600 that Telegram's 30/s budget
paces, three 429s, chats that blocked the bot, users in quiet hours whose messages are held then
released, and poisoned events that end in the DLQ. Finally it runs each panel's own PromQL
(`deploy/observability/generate.py`) over that window (`query_range`) and plots it with
matplotlib, one subplot per panel, with the panel's legends.
"""

from __future__ import annotations

import asyncio
import random
import re
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.harness import servers
from shared.publisher import EventPublisher
from tests.support.bus import publish_raw
from tests.support.ids import new_users
from tests.support.links import seed_links
from tests.support.prometheus import OBSERVABILITY, generate, observed_system, sample

OUTPUT = OBSERVABILITY / "dashboard.png"
WINDOW = "10s"  # the rate window put in for Grafana's $__rate_interval (1 s scrapes)
TYPES = ("post_success", "post_failure", "automation_executed")


async def stream(publisher: EventPublisher, users: list[str], per_second: float, seconds: float):
    """`per_second` events of the three message types to random users for `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        for _ in range(max(1, round(per_second))):
            name = random.choice(TYPES)
            await publisher.send(name, random.choice(users), sample(name))
        await asyncio.sleep(max(0.0, 1 - (time.monotonic() - started)))


async def traffic(observed: Any, database_url: str, rabbitmq_url: str) -> None:
    """About 80 seconds of a day in the life, with its incidents."""
    steady = new_users(200, "chart")
    blocked = new_users(8, "chart-blocked")
    quiet = new_users(20, "chart-quiet")
    now = datetime.now(UTC)
    # Their daily reports are due in 25 s: the scheduler's next tick sends them (its lag panel).
    due = (now + timedelta(seconds=25)).time().replace(microsecond=0)
    await seed_links(database_url, steady + blocked, summary_time=due)
    await seed_links(
        database_url,
        quiet,
        quiet_start=(now - timedelta(hours=1)).time().replace(microsecond=0),
        quiet_end=(now + timedelta(seconds=45)).time().replace(microsecond=0),
    )
    for _, chat in blocked:
        await observed.standin.add_fault(error_code=403, chat_id=chat)
    users = [user for user, _ in steady]
    async with EventPublisher(rabbitmq_url) as publisher:
        for user, _ in quiet:  # held until their quiet hours end, 45 s from now
            await publisher.send("post_success", user, sample("post_success"))
        await stream(publisher, users, 8, 15)
        for user, _ in blocked:  # each chat refuses once: its link is disabled
            await publisher.send("post_failure", user, sample("post_failure"))
        for i in range(3):
            await publish_raw(rabbitmq_url, "post_success", b"{poisoned", message_id=f"p{i}")
        await stream(publisher, users, 8, 10)
        # A burst of 600: the budget (30/s) paces it over about 20 s; three 429s on the way.
        await observed.standin.add_fault(error_code=429, retry_after=2, count=3)
        await asyncio.gather(
            *(publisher.send("post_failure", u, sample("post_failure")) for u in users * 3)
        )
        await stream(publisher, users, 5, 45)


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def draw(ax: Axes, title: str, unit: str, lines: list[tuple[str, list[float], list[float]]]):
    ax.set_title(title, fontsize=10, loc="left")
    for label, xs, ys in lines:
        ax.plot(xs, ys, label=label, linewidth=1.3)
    ax.set_xlabel("seconds", fontsize=8)
    ax.set_ylabel(unit, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if lines:
        ax.legend(fontsize=6, loc="upper left", ncol=2 if len(lines) > 4 else 1)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", color="grey")


UNITS = {"ops": "per second", "reqps": "requests/s", "s": "seconds", "short": "", "percent": "%"}


async def panels_over(prometheus: Any, start: float, end: float) -> list[tuple[str, str, list]]:
    """Each timeseries panel's lines over [start, end]: (title, unit, [(label, xs, ys)])."""
    drawn = []
    for panel in generate.panels():
        if panel.stat:
            continue
        lines = []
        for query in panel.queries:
            expr = generate.concrete(query.expr, WINDOW)
            for series in await prometheus.query_range(expr, start, end, 1):
                points = [(float(t) - start, float(v)) for t, v in series["values"]]
                points = [(x, y) for x, y in points if y == y]  # NaN: nothing observed yet
                if points:
                    xs, ys = zip(*points, strict=True)
                    lines.append((legend(query.legend, series["metric"]), list(xs), list(ys)))
        drawn.append((panel.title, UNITS.get(panel.unit, panel.unit), lines))
    return drawn


async def main(output: Path = OUTPUT) -> None:
    with servers() as s, tempfile.TemporaryDirectory(prefix="dashboard-chart-") as work:
        async with observed_system(s.database_url, s.rabbitmq_url, Path(work)) as observed:
            start = time.time()
            await traffic(observed, s.database_url, s.rabbitmq_url)
            await asyncio.sleep(3)  # the last scrapes of the window
            drawn = await panels_over(observed.prometheus, start, time.time())
    columns = 3
    rows = -(-len(drawn) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(15, 3.6 * rows))
    for ax, (title, unit, lines) in zip(axes.flat, drawn, strict=False):
        draw(ax, title, unit, lines)
    for ax in list(axes.flat)[len(drawn) :]:
        ax.set_axis_off()
    fig.suptitle(
        "sns-telegram dashboard, drawn from a real run (bench/dashboard_chart.py): "
        "the panels' PromQL against Prometheus scraping the services and RabbitMQ",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(output, dpi=80)
    print(f"wrote {output}")


if __name__ == "__main__":
    asyncio.run(main())
