"""What tracing costs the notifier: CPU per event with tracing off and on, measured in the same run
by the same procedure (`notifier_bench.throughput`: a pre-filled queue, limits lifted, CPU
counted from the first delivered message).

    uv run python -m bench.tracing_bench      (BENCH_QUICK=1: smaller sizes)

Off: `OTEL_EXPORTER_OTLP_ENDPOINT` empty, as in production by default. On: the real exporter
(OTLP http/protobuf, batch span processor) sending every span to a receiver in this process
(`tests/support/traces.OtlpReceiver`), so the notifier pays for making, encoding and exporting
spans, and only the collector's side is free. The rounds alternate (off, on, off, on...) so that
the load of a shared machine falls on both; each side's median is reported.

What "off" costs against no tracing code at all is below what two processes' CPU times can tell
apart, so it is also timed directly: the tracing calls one event's path makes when off
(`off_path`, the same calls with the same arguments), in microseconds per event.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import timeit
from typing import Any

from opentelemetry.trace import SpanKind
from rich.console import Console

from bench.harness import Process, Servers, sized, write_result
from bench.notifier_bench import start_with, throughput
from services.common import tracing
from tests.support.traces import OtlpReceiver

console = Console()
EVENTS = int(os.environ.get("BENCH_TRACING_EVENTS", sized(10_000, 3_000)))
ROUNDS = int(os.environ.get("BENCH_TRACING_ROUNDS", sized(2, 1)))


def _starter(endpoint: str) -> Any:
    def start(s: Servers, base: str, lifted: bool = True) -> Process:
        lifts = {"telegram_rate_global": 0, "telegram_rate_per_chat": 0} if lifted else {}
        return start_with(
            s,
            base,
            **lifts,
            otel_exporter_otlp_endpoint=endpoint,
            otel_exporter_otlp_traces_endpoint="",
            otel_sdk_disabled="false",
            otel_traces_sampler="parentbased_always_on",
        )

    return start


def off_path(calls: int = 200_000) -> float:
    """Microseconds per event of the tracing calls an event meets with tracing off: its context
    taken at submit, its render span, the task its send runs in, its deliver span, the HTTP span
    (the batch's span and links, once per batch, are left out: smaller still per event)."""
    assert not tracing.enabled()
    http = {"http.request.method": "POST", "url.full": "https://api.telegram.org/botREDACTED/x"}

    def one_event() -> None:
        carried = tracing.current()
        with tracing.span(
            "render post_success",
            parent=carried,
            links=tracing.link_to_current(),
            attributes={"sns.event.type": "post_success", "sns.language": "ko"},
        ):
            pass
        with tracing.attached(carried):
            pass
        with tracing.span("deliver", attributes={"sns.event.id": "x"}) as span:
            if span is not None:
                span.set_attributes({"sns.delivery.status": "sent"})
        with tracing.span("POST /bot{token}/sendMessage", kind=SpanKind.CLIENT, attributes=http):
            pass

    best = min(timeit.repeat(one_event, number=calls, repeat=5))
    return round(best / calls * 1e6, 3)


async def main() -> dict[str, Any]:
    """Alternate off and on rounds; write bench/results/tracing.json."""
    off: list[dict[str, Any]] = []
    on: list[dict[str, Any]] = []
    spans_per_event: list[float] = []
    with OtlpReceiver() as receiver:
        for round_ in range(ROUNDS):
            console.print(f"[bold]tracing off, round {round_ + 1}[/bold]")
            off.append(await throughput(EVENTS, start=_starter("")))
            console.print(off[-1])
            before = len(receiver.spans())
            console.print(f"[bold]tracing on, round {round_ + 1}[/bold]")
            on.append(await throughput(EVENTS, start=_starter(receiver.endpoint)))
            console.print(on[-1])
            # Spans arriving from the process's exit flush are counted too.
            spans_per_event.append((len(receiver.spans()) - before) / EVENTS)
    cpu_off = round(statistics.median(r["notifier_cpu_ms_per_event"] for r in off), 3)
    cpu_on = round(statistics.median(r["notifier_cpu_ms_per_event"] for r in on), 3)
    off_us = off_path()
    result = {
        "events_per_round": EVENTS,
        "rounds": ROUNDS,
        "off": {
            "notifier_cpu_ms_per_event": cpu_off,
            "events_per_second": statistics.median(r["events_per_second"] for r in off),
            "rounds": off,
        },
        "on": {
            "notifier_cpu_ms_per_event": cpu_on,
            "events_per_second": statistics.median(r["events_per_second"] for r in on),
            "spans_exported_per_event": round(statistics.median(spans_per_event), 2),
            "rounds": on,
        },
        "on_over_off_cpu": round(cpu_on / cpu_off, 3) if cpu_off else None,
        "off_path_us_per_event": off_us,
        "off_path_share_of_cpu_per_event": round(off_us / 1000 / cpu_off, 5) if cpu_off else None,
        "measured": (
            "median over alternating rounds of notifier_bench.throughput (CPU of the notifier "
            "process from the first delivered message, per event); on = OTLP http/protobuf to "
            "an in-process receiver"
        ),
    }
    write_result("tracing", result)
    return result


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    console.print(asyncio.run(main()))
