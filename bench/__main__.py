"""`make bench`: every benchmark, one after another; a table at the end, JSON and a chart in
bench/results/.

uv run python -m bench                      # the default groups (BENCH_QUICK=1: smaller sizes)
uv run python -m bench notifier baselines   # some groups: notifier, baselines, limits, daily,
                                            # linker, memory, history, scale, scheduler (the daily
                                            # group already times the scheduler's 100,000
                                            # triggers), startup (each service's time to /readyz),
                                            # tracing (the notifier's CPU per event, off and on)

The default groups are notifier, baselines, limits (issue 17: adaptive limits against a hidden
one, the budget a round trip away), daily, linker, memory, history (10 million history
rows; BENCH_HISTORY_ROWS shrinks it, 0 leaves out the filled database and pruning), scale
(1,000,000 users; BENCH_SCALE_USERS) and tracing.

Each group is also runnable alone: `python -m bench.<notifier_bench|baselines|limits_bench|
daily_summary_bench|linker_bench|memory_bench|scheduler_bench|startup_bench|tracing_bench>`;
`python -m bench.chart` redraws the charts.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench import (
    baselines,
    chart,
    daily_summary_bench,
    history_bench,
    history_chart,
    limits_bench,
    linker_bench,
    memory_bench,
    notifier_bench,
    scale_bench,
    scheduler_bench,
    startup_bench,
    tracing_bench,
)
from bench.harness import QUICK, RESULTS, write_result

console = Console()
DEFAULT_GROUPS = [
    "notifier",
    "baselines",
    "limits",
    "daily",
    "linker",
    "memory",
    "history",
    "scale",
    "tracing",
]


def _notifier(results: dict[str, Any]) -> Any:
    return asyncio.run(notifier_bench.main(list(notifier_bench.PARTS)))


def _baselines(results: dict[str, Any]) -> Any:
    ours = results.get("notifier")
    parts = ["spec", "ceiling"] if ours else ["ours", "spec", "ceiling"]
    return asyncio.run(baselines.main(parts, ours=ours))


def _scheduler(results: dict[str, Any]) -> Any:
    result = scheduler_bench.main()
    write_result("scheduler", result)
    return result


GROUPS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "notifier": _notifier,
    "baselines": _baselines,
    "daily": lambda _: daily_summary_bench.main(),
    "limits": lambda _: asyncio.run(limits_bench.main(list(limits_bench.PARTS))),
    "linker": lambda _: linker_bench.main(),
    "memory": lambda _: memory_bench.main(),
    "history": lambda _: asyncio.run(history_bench.main(list(history_bench.PARTS))),
    "scale": lambda _: scale_bench.main(),
    "scheduler": _scheduler,
    "startup": lambda _: startup_bench.main(),
    "tracing": lambda _: asyncio.run(tracing_bench.main()),
}


def run(groups: list[str]) -> dict[str, Any]:
    """Run the chosen benchmark groups, with an overall progress bar; return their numbers."""
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise SystemExit(f"unknown groups {sorted(unknown)}; choose from {list(GROUPS)}")
    results: dict[str, Any] = {"seconds": {}}
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        overall = progress.add_task("benchmarks", total=len(groups))
        for name in groups:
            progress.update(overall, description=f"benchmarks: {name}")
            console.rule(f"[bold]{name}")
            started = time.monotonic()
            results[name] = GROUPS[name](results)
            results["seconds"][name] = round(time.monotonic() - started, 1)
            progress.advance(overall)
    return results


def _n(value: Any, digits: int = 0) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else "—"


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(benchmark, ours, baseline, ratio, target) for everything that ran."""
    out: list[tuple[str, str, str, str, str]] = []
    n = results.get("notifier") or results.get("baselines", {}).get("ours", {})
    b = results.get("baselines", {})
    spec, ceiling, ratio = b.get("spec", {}), b.get("ceiling", {}), b.get("ratios", {})
    if "throughput" in n:
        t = n["throughput"]
        out.append(
            (
                "notifier throughput, limits lifted (events/s)",
                _n(t["events_per_second"]),
                f"spec {_n(spec.get('throughput', {}).get('events_per_second'))}"
                f" · ceiling {_n(ceiling.get('events_per_second'))}",
                f"{ratio.get('throughput_vs_spec', '—')}× spec · "
                f"{ratio.get('throughput_vs_ceiling', '—')}× ceiling",
                "≥ 1,000",
            )
        )
        out.append(
            (
                "CPU per event (ms)",
                _n(t["notifier_cpu_ms_per_event"], 2),
                f"spec {_n(spec.get('throughput', {}).get('notifier_cpu_ms_per_event'), 2)}"
                f" · ceiling {_n(ceiling.get('sender_cpu_ms_per_message'), 2)}",
                "",
                "",
            )
        )
    if "latency" in n:
        lat, slat = n["latency"], spec.get("latency", {})
        for p in ("p50", "p99"):
            out.append(
                (
                    f"publish → sendMessage {p} @100/s (ms)",
                    _n(lat[f"{p}_ms"], 1),
                    f"spec {_n(slat.get(f'{p}_ms'), 1)}",
                    f"spec/ours {ratio.get(f'{p}_spec_over_ours', '—')}",
                    "≤ 50" if p == "p99" else "",
                )
            )
    if "limits" in n:
        lim, slim = n["limits"], spec.get("limits", {})
        out.append(
            (
                "under Telegram's limits: % of 30/s",
                f"{100 * lim['fraction_of_limit']:.1f} %",
                (
                    f"spec {100 * slim['fraction_of_limit']:.1f} %"
                    if slim.get("delivered") == slim.get("messages")
                    else f"spec: lost {slim.get('lost')} of {slim.get('messages')}"
                )
                if slim
                else "",
                "",
                "≥ 99 %",
            )
        )
        out.append(
            (
                "under limits: delivered · 429s",
                f"{lim.get('delivered', '—')}/{lim['messages']} · {lim['too_many_requests']}",
                f"spec {slim['delivered']}/{slim['messages']} · {slim['too_many_requests']}"
                if slim
                else "",
                "",
                "all · 0",
            )
        )
    tr = results.get("tracing")
    if tr:
        out.append(
            (
                "CPU per event with tracing on (ms)",
                _n(tr["on"]["notifier_cpu_ms_per_event"], 3),
                f"off {_n(tr['off']['notifier_cpu_ms_per_event'], 3)} (same run)",
                f"{tr['on_over_off_cpu']}× off",
                "",
            )
        )
    d = results.get("daily") or (results.get("scheduler") and {"scheduler": results["scheduler"]})
    if d and "scheduler" in d:
        s = d["scheduler"]
        out.append(
            (
                f"scheduler: {s['users']:,} daily triggers emitted (s)",
                _n(s["emit_seconds"], 1),
                f"{_n(s['triggers_per_second'])}/s",
                "",
                "seconds",
            )
        )
    if d and "projection" in d:
        a, smp, paid, proj = d["aggregation"], d["sample"], d["paid_broadcast"], d["projection"]
        out += [
            (
                "daily: aggregation + render per user (ms)",
                f"{a['query_ms_per_user'] + a['render_ms_per_user']:.3f}",
                f"query {a['query_ms_per_user']:.3f} · render {a['render_ms_per_user']:.4f}",
                "",
                "",
            ),
            (
                f"daily: end to end, limits lifted ({smp['triggers']:,} triggers)",
                f"{smp['per_second']:,.0f}/s",
                f"{smp['ms_per_user_end_to_end']:.2f} ms/user",
                "",
                "",
            ),
            (
                f"daily: paid broadcast slice ({paid['triggers']:,})",
                f"{paid['achieved_per_second']:,.0f}/s",
                f"{paid['too_many_requests']} × 429",
                f"{100 * paid['fraction_of_limit']:.1f} % of 1000/s",
                "1000/s",
            ),
            (
                f"daily: {d['users']:,} users at 1000 msg/s (s)",
                f"{proj['total_seconds_overlapped']:,.0f} overlapped · "
                f"{proj['total_seconds_sequential']:,.0f} sequential",
                f"ideal {proj['ideal_seconds']:,.0f}",
                f"{proj['overlapped_over_ideal']}× · {proj['sequential_over_ideal']}× ideal",
                "≈ ideal",
            ),
        ]
    out += limits_rows(results.get("limits", {}))
    lk = results.get("linker", {})
    for key, label in (("status", "GET /status"), ("link_account", "GET /link-account")):
        if key in lk:
            r = lk[key]
            out.append(
                (
                    f"linker {label}, 1 worker (req/s)",
                    _n(r["requests_per_second"]),
                    f"p50 {r['p50_ms']:.0f} · p99 {r['p99_ms']:.0f} ms @32",
                    f"alone p99 {r['unloaded_p99_ms']:.1f} ms",
                    "",
                )
            )
    m = results.get("memory", {})
    if m:
        out.append(
            (
                f"notifier RSS over {m['events']:,} events (MiB)",
                f"{m['rss_mb_after_first_tenth']:.0f} → {m['rss_mb_after_all']:.0f}",
                f"idle {m['rss_mb_idle']:.0f}",
                f"{m['growth_mb']:+.1f} MiB ({m['growth_percent']:+.1f} %); "
                f"2nd half {m['growth_mb_second_half']:+.1f}",
                "no growth",
            )
        )
    return out + lifecycle_rows(results)


def lifecycle_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """The history, pruning, size and scale rows."""
    out: list[tuple[str, str, str, str, str]] = []
    h = results.get("history", {})
    if "ratio" in h:
        out.append(
            (
                f"notifier at {h['history_rows']:,} history rows (events/s)",
                _n(h["filled_events_per_s"]),
                f"empty {_n(h['empty_events_per_s'])} · CPU "
                f"{h['filled_cpu_ms_per_event']:.2f} vs {h['empty_cpu_ms_per_event']:.2f} ms",
                f"{h['ratio']}×",
                "≥ 0.9×",
            )
        )
    p = h.get("pruning") or {}
    if p:
        out.append(
            (
                "p99 @100/s while pruning (ms)",
                _n(p["p99_ms_while_pruning"], 1),
                f"without {_n(p['p99_ms_without'], 1)}",
                f"prune {_n(p['prune_rows_per_s_at_full_speed'])} rows/s at full speed",
                "",
            )
        )
    if "size" in h:
        z = h["size"]
        out.append(
            (
                "database bytes per delivered event",
                _n(z["bytes_per_event_total"]),
                f"{z['events']:,} events",
                f"steady state {z['steady_state_gb']} GB at {z['events_per_day']:,}/day",
                "",
            )
        )
    sc = results.get("scale", {})
    if "big" in sc:
        big, small = sc["big"], sc["small"]
        for label, value in (
            ("scheduler idle tick (ms)", lambda r: r["scheduler"]["idle_tick_seconds"] * 1000),
            ("scheduler due query (ms)", lambda r: r["scheduler"]["due_query_ms"]),
            ("daily aggregation (ms/user)", lambda r: r["aggregation"]["query_ms_per_user"]),
        ):
            out.append(
                (
                    f"{label} at {big['users']:,} users",
                    _n(value(big), 2),
                    f"{small['users']:,} users {_n(value(small), 2)}",
                    f"{value(big) / value(small):.2f}×" if value(small) else "",
                    "",
                )
            )
    return out


def limits_rows(result: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """The hidden-limit convergence beside the fixed-rate sender and PTB; the RTT drains."""
    out = []
    c = result.get("convergence", {})
    if "ours" in c:
        ours, hidden = c["ours"], c["hidden_limit_per_second"]
        beside = " · ".join(
            f"{name} {c[key]['rate_second_half']:.1f}/s, {c[key]['too_many_requests']}×429, "
            f"{c[key]['lost']} lost"
            for key, name in (("fixed_rate", "fixed"), ("ptb_aioratelimiter", "PTB"))
            if key in c
        )
        out.append(
            (
                f"hidden {hidden}/s limit: rate (2nd half) · 429s (1st → 2nd half) · lost",
                f"{ours['rate_second_half']:.1f}/s · {ours['too_many_first_half']} → "
                f"{ours['too_many_second_half']} · {ours['lost']}",
                beside,
                f"{100 * ours['within_of_hidden_limit']:.1f} % off",
                "≤ 10 % off, 0 lost, 429s falling",
            )
        )
        d = c["documented"]
        out.append(
            (
                "adaptive, Telegram's documented limits: % of 30/s · 429s",
                f"{100 * d['fraction_of_limit']:.1f} % · {d['too_many_requests']}",
                "",
                "",
                "≥ 99 % · 0",
            )
        )
    for rtt, modes in result.get("rtt", {}).get("by_rtt", {}).items():
        for part, limit, target in (("paid_broadcast", 1000, "≥ 98 %"), ("standard", 30, "≥ 99 %")):
            now, before = modes["arrival"][part], modes["completion"][part]
            out.append(
                (
                    f"RTT {rtt}, limiter + sender: % of {limit}/s (median, range) · 429s",
                    f"{100 * now['fraction_of_limit']:.1f} % ({100 * now['fraction_min']:.1f}-"
                    f"{100 * now['fraction_max']:.1f}) · {now['too_many_requests']}",
                    f"counted to the answer {100 * before['fraction_of_limit']:.1f} % · "
                    f"{before['too_many_requests']}",
                    "",
                    f"{target} · 0",
                )
            )
    pipeline = result.get("rtt_pipeline", {})
    if "arrival" in pipeline:
        now, before = pipeline["arrival"], pipeline["completion"]
        out.append(
            (
                f"RTT {pipeline['rtt_ms']} ms, whole notifier (its ceiling here "
                f"{pipeline['ceiling_no_limits_no_delay']['events_per_second']:.0f}/s): "
                "paid /s · 30/s %",
                f"{now['paid_broadcast']['achieved_per_second']:.0f}/s · "
                f"{100 * now['standard']['fraction_of_limit']:.1f} %",
                f"counted to the answer {before['paid_broadcast']['achieved_per_second']:.0f}/s"
                f" · {100 * before['standard']['fraction_of_limit']:.1f} %",
                "",
                "",
            )
        )
    return out


def table(results: dict[str, Any]) -> Table:
    """The numbers a reader looks for, one row each."""
    t = Table(title="sns-telegram benchmarks" + (" (BENCH_QUICK=1)" if QUICK else ""))
    for name, justify in (
        ("benchmark", "left"),
        ("ours", "right"),
        ("beside", "right"),
        ("ratio", "right"),
        ("target", "left"),
    ):
        t.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows(results):
        t.add_row(*row)
    return t


if __name__ == "__main__":
    chosen = sys.argv[1:] or DEFAULT_GROUPS
    started = time.monotonic()
    results = run(chosen)
    results["seconds"]["total"] = round(time.monotonic() - started, 1)
    summary = {"groups": chosen, "quick": QUICK, "seconds": results["seconds"]}
    summary["table"] = [
        dict(zip(("benchmark", "ours", "beside", "ratio", "target"), r, strict=True))
        for r in rows(results)
    ]
    write_result("summary", summary)
    console.print(table(results))
    charts = [chart.render()]
    if {"history", "scale"} & set(chosen):
        charts.append(history_chart.render())
    console.print(
        f"charts: {', '.join(map(str, charts))} {chart.render_limits() or ''}   results: {RESULTS}/   "
        f"{json.dumps(results['seconds'])}"
    )
