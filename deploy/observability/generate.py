"""The observability files, each generated from one source (`make observability`):

- `dashboard.json`, the Grafana dashboard, from `SECTIONS` below, built with Grafana's typed
  builders (grafana-foundation-sdk) rather than written as JSON by hand;
- `prometheusrule.yaml`, the PrometheusRule for Kubernetes (the Prometheus Operator), from
  `alerts.rules.yml`, the plain Prometheus rules file compose's Prometheus loads;
- `alerts.fast.rules.yml` is not committed: `fast_rules()` gives the same rules with every `for:`
  cut to a second, for the e2e test's Prometheus.

    uv run python deploy/observability/generate.py           # write both files
    uv run python deploy/observability/generate.py --check   # exit 1 if a committed file differs

Every panel reads metrics our services or RabbitMQ's `rabbitmq_prometheus` plugin export
(`services/*/metrics.py`, `services/common/`); tests/e2e/test_prometheus.py runs each query against
a real Prometheus scraping the real services, and `make observability-chart` draws the main ones.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

HERE = Path(__file__).resolve().parent
DASHBOARD = HERE / "dashboard.json"
RULES = HERE / "alerts.rules.yml"
PROMETHEUS_RULE = HERE / "prometheusrule.yaml"

UID = "sns-telegram"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
"""Grafana's rate window; `concrete()` puts a real one in for Prometheus itself."""


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    stat: bool = False
    width: int = 12


def _q(expr: str, legend: str) -> Query:
    return Query(expr, legend)


SECTIONS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Delivery",
        (
            Panel(
                "Delivery rate by type and status",
                "Events the notifier finished per second, by event type and what became of them "
                "(sent, skipped, held, edited, undeliverable, dead_lettered...).",
                "ops",
                (
                    _q(
                        f"sum by (type, outcome) (rate(notifier_events_total[{RATE}]))",
                        "{{type}} {{outcome}}",
                    ),
                ),
            ),
            Panel(
                "Publish-to-send latency",
                "From the event's occurred_at to Telegram accepting the message "
                "(notifier_event_lag_seconds), and one sendMessage call.",
                "s",
                (
                    _q(
                        "histogram_quantile(0.5, sum by (le) "
                        f"(rate(notifier_event_lag_seconds_bucket[{RATE}])))",
                        "p50 occurred → sent",
                    ),
                    _q(
                        "histogram_quantile(0.99, sum by (le) "
                        f"(rate(notifier_event_lag_seconds_bucket[{RATE}])))",
                        "p99 occurred → sent",
                    ),
                    _q(
                        "histogram_quantile(0.99, sum by (le) "
                        f"(rate(notifier_send_seconds_bucket[{RATE}])))",
                        "p99 one sendMessage",
                    ),
                ),
            ),
            Panel(
                "Telegram budget: requests vs the limit",
                "Requests the rate limiter let through per second (sends, edits, retries) against "
                "the configured global limit (30/s; 1000/s with paid broadcast).",
                "reqps",
                (
                    _q(
                        f"sum(rate(notifier_rate_limit_wait_seconds_count[{RATE}]))",
                        "requests/s",
                    ),
                    _q('max(notifier_telegram_rate_limit{scope="global"})', "limit/s"),
                ),
                width=9,
            ),
            Panel(
                "Budget used",
                "Share of the global limit in use (no value when the limit is 0, unlimited).",
                "percent",
                (
                    _q(
                        f"100 * sum(rate(notifier_rate_limit_wait_seconds_count[{RATE}])) "
                        '/ max(notifier_telegram_rate_limit{scope="global"} > 0)',
                        "budget used",
                    ),
                ),
                stat=True,
                width=3,
            ),
            Panel(
                "429s and retry_after",
                "Telegram's 429 answers per second and the pause each asked for (every send "
                "waits it out).",
                "short",
                (
                    _q(
                        'sum(rate(notifier_telegram_errors_total{failure="retry_after"}'
                        f"[{RATE}]))",
                        "429s per second",
                    ),
                    _q(
                        "histogram_quantile(0.99, sum by (le) "
                        f"(rate(notifier_retry_after_seconds_bucket[{RATE}])))",
                        "retry_after p99 (s)",
                    ),
                ),
            ),
        ),
    ),
    (
        "Queues",
        (
            Panel(
                "Dead-letter queues",
                "Messages waiting in each DLQ (RabbitMQ), and what the notifier dead-lettered, "
                "by reason: see docs/operations.md, 'Dead letters'.",
                "short",
                (
                    _q(
                        'sum by (queue) (rabbitmq_queue_messages{queue=~".+\\\\.dlq"})',
                        "{{queue}} depth",
                    ),
                    _q(
                        f"sum by (reason) (increase(notifier_dead_lettered_total[{RATE}]))",
                        "dead-lettered: {{reason}}",
                    ),
                ),
            ),
            Panel(
                "notifier.events: waiting, consumers, stall",
                "Messages ready in the notifier's queue, its consumers (one active, the rest "
                "standby), and the notifier's own seconds without progress while work waits.",
                "short",
                (
                    _q(
                        'sum(rabbitmq_queue_messages_ready{queue="notifier.events"})',
                        "ready",
                    ),
                    _q('sum(rabbitmq_queue_consumers{queue="notifier.events"})', "consumers"),
                    _q("max(notifier_stalled_seconds)", "stalled (s)"),
                ),
            ),
        ),
    ),
    (
        "Users and chats",
        (
            Panel(
                "Blocked chats",
                "Sends Telegram refused for good (403 blocked or deactivated, chat not found): "
                "each disables that link; and chat ids no configured key decrypts.",
                "short",
                (
                    _q(
                        'sum(increase(notifier_telegram_errors_total{failure="chat_gone"}'
                        f"[{RATE}]))",
                        "chats refused",
                    ),
                    _q(
                        f"sum(increase(chat_ids_undecryptable_total[{RATE}]))",
                        "chat ids undecryptable",
                    ),
                ),
                width=8,
            ),
            Panel(
                "Held messages (quiet hours)",
                "Messages waiting for their users' quiet hours to end, the earliest one's delay "
                "past its release time, and messages held and released, by result.",
                "short",
                (
                    _q("max(notifier_held_messages)", "waiting now"),
                    _q("max(notifier_held_overdue_seconds)", "oldest overdue (s)"),
                    _q(f"sum(increase(notifier_held_total[{RATE}]))", "held"),
                    _q(
                        f"sum by (status) (increase(notifier_released_total[{RATE}]))",
                        "released {{status}}",
                    ),
                ),
                width=8,
            ),
            Panel(
                "Scheduler lag",
                "How late daily-report triggers left (due time → broker confirm), triggers still "
                "unconfirmed, and seconds since the scheduler's last good tick.",
                "s",
                (
                    _q(
                        "histogram_quantile(0.99, sum by (le) "
                        f"(rate(scheduler_trigger_lag_seconds_bucket[{RATE}])))",
                        "p99 due → emitted",
                    ),
                    _q("max(scheduler_unpublished_triggers)", "unconfirmed triggers"),
                    _q("time() - max(scheduler_last_tick_timestamp_seconds)", "since last tick"),
                ),
                width=8,
            ),
        ),
    ),
)


def panels() -> list[Panel]:
    return [panel for _, section in SECTIONS for panel in section]


def metric_names() -> set[str]:
    """Every metric name the panels' queries read (histograms by their `_bucket` series)."""
    exprs = [query.expr for panel in panels() for query in panel.queries]
    found = {n for e in exprs for n in re.findall(r"\b([a-z]+_[a-z_]+)\b(?=[{\[)])", e)}
    return found - {"histogram_quantile"}


def concrete(expr: str, window: str = "1m") -> str:
    """A panel's query as Prometheus itself takes it: Grafana's rate window made `window`."""
    return expr.replace(RATE, window)


def _target(query: Query, ref: str) -> Dataquery:
    return (
        Dataquery()
        .expr(query.expr)
        .legend_format(query.legend)
        .ref_id(ref)
        .range()
        .datasource(DATASOURCE)
    )


def _panel(panel: Panel) -> Timeseries | Stat:
    built: Timeseries | Stat = Stat() if panel.stat else Timeseries().fill_opacity(10)
    built = (
        built.title(panel.title)
        .description(panel.description)
        .unit(panel.unit)
        .datasource(DATASOURCE)
        .span(panel.width)
        .height(8)
    )
    for ref, query in zip("ABCDEFGH", panel.queries, strict=False):
        built = built.with_target(_target(query, ref))
    return built


def dashboard() -> dict[str, Any]:
    """The dashboard, as the JSON Grafana imports."""
    builder = (
        Dashboard("sns-telegram")
        .uid(UID)
        .description(
            "Delivery of SNS notifications to Telegram: rates, latency, Telegram's limits, "
            "queues, chats and the scheduler. Generated by deploy/observability/generate.py."
        )
        .tags(["sns-telegram", "generated"])
        .refresh("30s")
        .time("now-3h", "now")
        .timezone("utc")
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    for title, section in SECTIONS:
        builder = builder.with_row(Row(title))
        for panel in section:
            builder = builder.with_panel(_panel(panel))
    encoded: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(builder.build()))
    return encoded


def dashboard_text() -> str:
    return json.dumps(dashboard(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rules() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return loaded


def prometheus_rule() -> dict[str, Any]:
    """alerts.rules.yml as a PrometheusRule (the groups unchanged)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "sns-telegram",
            "labels": {"app.kubernetes.io/name": "sns-telegram", "prometheus": "sns-telegram"},
        },
        "spec": {"groups": rules()["groups"]},
    }


def prometheus_rule_text() -> str:
    header = (
        "# Generated from deploy/observability/alerts.rules.yml by "
        "deploy/observability/generate.py (make observability): edit that file, not this one.\n"
    )
    return header + yaml.safe_dump(
        prometheus_rule(), sort_keys=False, allow_unicode=True, width=100
    )


def fast_rules() -> dict[str, Any]:
    """The same rules with every `for:` cut to 1s, for a test that produces each condition."""
    fast = copy.deepcopy(rules())
    for group in fast["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "1s"
    return fast


OUTPUTS = {DASHBOARD: dashboard_text, PROMETHEUS_RULE: prometheus_rule_text}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed file differs")
    args = parser.parse_args(argv)
    stale = []
    for path, render in OUTPUTS.items():
        text = render()
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent.parent)}")
    if stale:
        print(f"out of date: {', '.join(stale)}: run `make observability`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
