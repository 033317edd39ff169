"""deploy/observability/: the committed dashboard and PrometheusRule are what their sources
generate, the alert rules pass `promtool check rules` and their unit tests (`promtool test
rules`), every alert says what to do and the README lists it, and the dashboard is well formed.
Each query's meaning against real series is tests/e2e/test_prometheus.py's."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from tests.support.processes import ROOT
from tests.support.prometheus import OBSERVABILITY, binary, generate

pytestmark = pytest.mark.unit


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args],
        cwd=OBSERVABILITY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def alerts() -> list[dict]:
    return [rule for group in generate.rules()["groups"] for rule in group["rules"]]


def test_committed_files_are_what_the_generator_makes():
    for path, render in generate.OUTPUTS.items():
        assert path.read_text() == render(), f"{path.name} is stale: run `make observability`"


def test_the_rules_pass_promtool_check():
    done = promtool("check", "rules", "alerts.rules.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_rule_passes_its_promtool_unit_tests():
    done = promtool("test", "rules", "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_unit_test_that_expects_it_to_fire():
    tests = yaml.safe_load((OBSERVABILITY / "alerts.test.yml").read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in alerts()} == fired


def test_the_compose_prometheus_config_is_valid_and_loads_the_rules():
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "alerts.rules.yml" in done.stdout


def test_every_alert_says_what_to_do_and_the_readme_lists_it():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Alerts") :]
    for rule in alerts():
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(annotations), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert f"`{rule['alert']}`" in section, f"{rule['alert']} is not in the README's Alerts"


def test_the_prometheus_rule_carries_the_same_rules():
    assert generate.prometheus_rule()["spec"]["groups"] == generate.rules()["groups"]


def test_the_fast_variant_changes_only_the_waits():
    fast, slow = generate.fast_rules()["groups"], generate.rules()["groups"]
    for fast_group, group in zip(fast, slow, strict=True):
        assert fast_group["interval"] == "1s"
        for fast_rule, rule in zip(fast_group["rules"], group["rules"], strict=True):
            assert {**fast_rule, "for": rule.get("for")} == {**rule, "for": rule.get("for")}
            assert fast_rule.get("for", "1s") == "1s"


def test_the_dashboard_is_well_formed():
    dashboard = json.loads((OBSERVABILITY / "dashboard.json").read_text())
    assert dashboard["uid"] == "sns-telegram"
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    cells: set[tuple[int, int]] = set()
    titles = []
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        covered = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered
        titles.append(panel["title"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            # Grafana's only variable in a query is the rate window, which `concrete` fills.
            assert "$" not in generate.concrete(target["expr"]), target["expr"]
    assert len(titles) == len(set(titles))


def test_the_panels_the_issue_asks_for_are_there():
    exprs = " ".join(q.expr for panel in generate.panels() for q in panel.queries)
    for metric in (
        "notifier_events_total",  # delivery rate by type and status
        "notifier_event_lag_seconds_bucket",  # publish-to-send latency
        "notifier_telegram_rate_limit",  # budget use vs Telegram's limits
        'failure="retry_after"',  # 429s
        "notifier_retry_after_seconds_bucket",  # retry_after
        "rabbitmq_queue_messages",  # DLQ depth
        'failure="chat_gone"',  # blocked chats
        "notifier_held_total",  # held messages
        "scheduler_trigger_lag_seconds_bucket",  # scheduler lag
    ):
        assert metric in exprs, metric


def test_every_metric_a_panel_reads_is_one_we_or_rabbitmq_export():
    sources = "\n".join(
        p.read_text() for p in [*ROOT.glob("services/**/*.py"), *ROOT.glob("shared/*.py")]
    )
    for name in sorted(generate.metric_names()):
        if name.startswith("rabbitmq_"):
            continue  # RabbitMQ's plugin; the e2e test sees them scraped
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        assert f'"{base}"' in sources, f"no service exports {base}"
