"""A real Prometheus (Debian's) scraping the three services, started as processes in development,
and RabbitMQ: every series the dashboard reads exists, every panel's query parses and returns
series, and alerts fire when their condition is produced (a poisoned event in the DLQ; a chat id
no configured key decrypts; the notifier stopped). The rules are alerts.rules.yml with each `for:` cut to 1 s."""

from __future__ import annotations

from collections.abc import Awaitable, Collection
from typing import Any

import pytest

from shared.publisher import EventPublisher
from tests.support.ids import new_users
from tests.support.links import seed_links
from tests.support.prometheus import (
    Observed,
    generate,
    observed_system,
    produce_traffic,
    sample,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

WINDOW = "10s"
"""The rate window put in for Grafana's $__rate_interval (scrapes are 1 s apart)."""


async def queries_without_series(observed: Observed) -> list[str]:
    empty = []
    for panel in generate.panels():
        for query in panel.queries:
            if not await observed.prometheus.query(generate.concrete(query.expr, WINDOW)):
                empty.append(f"{panel.title}: {query.expr}")
    return empty


async def test_the_dashboard_reads_real_series_and_the_alerts_fire(
    fresh_database_url, rabbitmq_url, tmp_path
):
    # A database of its own: the scheduler (and its retention job) works on whole tables.
    database_url = fresh_database_url
    async with observed_system(
        database_url, rabbitmq_url, tmp_path, generate.fast_rules()
    ) as observed:
        prometheus = observed.prometheus
        await produce_traffic(observed, database_url, rabbitmq_url)

        async def missing_names() -> set[str]:
            return generate.metric_names() - await prometheus.names()

        await eventually(
            lambda: _empty(missing_names()), 30, 0.5, "every series the dashboard reads scraped"
        )
        await eventually(
            lambda: _empty(queries_without_series(observed)), 30, 0.5, "every panel has series"
        )

        # The poisoned event waits in the DLQ: that alert fires, and nothing else does.
        async def only_dead_letters() -> bool:
            firing = await prometheus.firing()
            labels = firing.get("SnsTelegramDeadLetters", [])
            return set(firing) == {"SnsTelegramDeadLetters"} and any(
                a["queue"] == "notifier.events.dlq" for a in labels
            )

        await eventually(only_dead_letters, 30, 0.5, "only the DLQ alert firing")

        # A chat id stored encrypted under a key this notifier does not have (it has none).
        user, _ = new_users(1, "undecryptable")[0]
        await seed_links(database_url, [(user, "gAAAAABretired-key-ciphertext")])
        async with EventPublisher(rabbitmq_url) as publisher:
            await publisher.send("post_success", user, sample("post_success"))

        async def undecryptable() -> bool:
            firing = await prometheus.firing()
            return any(
                a["job"] == "notifier" for a in firing.get("SnsTelegramUndecryptableChatIds", [])
            )

        await eventually(undecryptable, 30, 0.5, "the undecryptable chat ids alert firing")

        # No consumer on notifier.events once the notifier is gone.
        assert observed.services["notifier"].stop(15) == 0

        async def no_consumer() -> bool:
            return "SnsTelegramNoConsumer" in await prometheus.firing()

        await eventually(no_consumer, 30, 0.5, "the no-consumer alert firing")


async def _empty(pending: Awaitable[Collection[Any]]) -> bool:
    """True when the awaited collection is empty (for `eventually`)."""
    return not await pending
