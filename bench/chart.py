"""bench/results/summary.png from the JSON results of the last run.

    uv run python -m bench.chart

Six panels: throughput beside the baselines, latency beside the spec-style sender, delivery under
Telegram's limits, the daily summary at scale, the linker, and the notifier's memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.harness import RESULTS

OURS = "#1f77b4"
SPEC = "#d62728"
CEILING = "#7f7f7f"
IDEAL = "#2ca02c"


def load(name: str) -> dict[str, Any]:
    """bench/results/<name>.json, or {} if that benchmark has not run."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _missing(ax: Axes, title: str) -> None:
    ax.set_title(title, fontsize=11, loc="left")
    ax.text(0.5, 0.5, "not measured", ha="center", va="center", color="grey")
    ax.set_axis_off()


def _labels(ax: Axes, bars: Any, texts: list[str]) -> None:
    for bar, label in zip(bars, texts, strict=True):
        ax.annotate(
            label,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=9,
        )


def throughput(
    ax: Axes, mine: dict[str, Any], spec: dict[str, Any], ceiling: dict[str, Any]
) -> None:
    title = "Sending rate, limits lifted (events/s)"
    if not mine:
        return _missing(ax, title)
    names, values, colors = [], [], []
    for name, result, color in (
        ("spec-style\n(sync DB + requests)", spec, SPEC),
        ("our notifier", mine, OURS),
        ("bare aiohttp\nPOST loop", ceiling, CEILING),
    ):
        if result:
            names.append(name)
            values.append(result["events_per_second"])
            colors.append(color)
    bars = ax.bar(names, values, color=colors)
    ours_rate = mine["events_per_second"]
    texts = []
    for name, value in zip(names, values, strict=True):
        ratio = "" if name == "our notifier" else f"\nours = {ours_rate / value:.2g}×"
        texts.append(f"{value:,.0f}{ratio}")
    _labels(ax, bars, texts)
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_ylim(0, max(values) * 1.3)
    ax.set_ylabel("events / s")


def latency(ax: Axes, mine: dict[str, Any], spec: dict[str, Any]) -> None:
    title = "Publish → sendMessage at 100 events/s (ms, log)"
    if not mine:
        return _missing(ax, title)
    groups = ["p50", "p99"]
    width = 0.38
    xs = range(len(groups))
    series = [("our notifier", mine, OURS, width / 2)]
    if spec:
        series.insert(0, ("spec-style", spec, SPEC, -width / 2))
    for name, result, color, offset in series:
        values = [result["p50_ms"], result["p99_ms"]]
        bars = ax.bar([x + offset for x in xs], values, width, label=name, color=color)
        _labels(ax, bars, [f"{v:,.1f}" for v in values])
    ax.set_xticks(list(xs), groups)
    ax.set_yscale("log")
    ax.axhline(50, color=IDEAL, linestyle="--", linewidth=1)
    ax.text(1.45, 50, "target p99 ≤ 50 ms", color=IDEAL, fontsize=8, va="bottom", ha="right")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_ylim(top=ax.get_ylim()[1] * 3)


def limits(ax: Axes, mine: dict[str, Any], spec: dict[str, Any]) -> None:
    title = "Under Telegram's limits (30/s, 1/s per chat)"
    if not mine:
        return _missing(ax, title)
    rows = [("our notifier", mine, OURS)]
    if spec:
        rows.insert(0, ("spec-style", spec, SPEC))
    names = [r[0] for r in rows]
    delivered = [100 * r[1]["delivered"] / r[1]["messages"] for r in rows]
    bars = ax.bar(names, delivered, color=[r[2] for r in rows])
    _labels(
        ax,
        bars,
        [
            f"{r[1]['delivered']:,}/{r[1]['messages']:,} delivered\n"
            f"{r[1]['too_many_requests']:,} × 429, "
            + (
                f"{100 * r[1]['fraction_of_limit']:.1f}% of 30/s"
                if r[1]["delivered"] == r[1]["messages"]
                else "the rest lost (no retry)"
            )
            for r in rows
        ],
    )
    ax.set_ylim(0, 135)
    ax.set_ylabel("% of events delivered")
    ax.set_title(title, fontsize=11, loc="left")


def daily(ax: Axes, result: dict[str, Any]) -> None:
    users = result.get("users")
    title = f"Daily summary, {users:,} users (s)" if users else "Daily summary"
    projection = result.get("projection")
    if not projection:
        return _missing(ax, title)
    rows = [
        ("ideal at 1000 msg/s", projection["ideal_seconds"], IDEAL),
        ("scheduler: emit all triggers", result["scheduler"]["emit_seconds"], CEILING),
        ("notifier: send all (projected)", projection["notifier_seconds"], OURS),
        ("total, emit then send", projection["total_seconds_sequential"], "#9467bd"),
        ("total, overlapped", projection["total_seconds_overlapped"], "#17becf"),
    ]
    bars = ax.barh([r[0] for r in rows], [r[1] for r in rows], color=[r[2] for r in rows])
    for bar, (_, value, _) in zip(bars, rows, strict=True):
        ax.annotate(
            f"{value:,.0f} s",
            (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=9,
        )
    ax.invert_yaxis()
    ax.set_xlim(0, max(r[1] for r in rows) * 1.25)
    paid = result["paid_broadcast"]
    agg = result["aggregation"]
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel(
        f"slice of {paid['triggers']:,} at paid-broadcast limits: {paid['achieved_per_second']:,.0f}/s"
        f"; aggregation {agg['query_ms_per_user']:.2f} ms/user",
        fontsize=8,
    )
    ax.tick_params(axis="y", labelsize=8)


def linker(ax: Axes, result: dict[str, Any]) -> None:
    title = "Linker, one worker, 32 in flight (requests/s)"
    if "status" not in result:
        return _missing(ax, title)
    rows = [("GET /status", result["status"]), ("GET /link-account", result["link_account"])]
    bars = ax.bar([r[0] for r in rows], [r[1]["requests_per_second"] for r in rows], color=OURS)
    _labels(
        ax,
        bars,
        [
            f"{r[1]['requests_per_second']:,.0f}/s\np99 {r[1]['p99_ms']:.0f} ms"
            f" (alone {r[1]['unloaded_p99_ms']:.1f} ms)"
            for r in rows
        ],
    )
    ax.set_ylim(0, max(r[1]["requests_per_second"] for r in rows) * 1.35)
    ax.set_title(title, fontsize=11, loc="left")


def memory(ax: Axes, result: dict[str, Any]) -> None:
    title = "Notifier memory while sending"
    samples = result.get("samples")
    if not samples:
        return _missing(ax, title)
    xs = [s["events"] for s in samples]
    ys = [s["rss_mb"] for s in samples]
    ax.plot(xs, ys, marker="o", color=OURS)
    ax.set_ylabel("RSS (MiB)", color=OURS)
    ax.set_ylim(0, max(ys) * 1.25)
    ax.set_xlabel("events processed")
    if all("open_sockets" in s for s in samples):
        # RSS steps with the HTTP connection pool (aiohttp's limit: 200 connections).
        twin = ax.twinx()
        sockets = [s["open_sockets"] for s in samples]
        twin.plot(xs, sockets, color=CEILING, linestyle="--", marker=".", label="open sockets")
        twin.set_ylim(0, max(sockets) * 2.5)
        twin.set_ylabel("open sockets", color=CEILING)
        twin.tick_params(axis="y", colors=CEILING)
        twin.legend(fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=11, loc="left")
    ax.annotate(
        f"{result['growth_mb']:+.1f} MiB from {xs[1]:,} to {xs[-1]:,} events\n"
        f"{result.get('growth_mb_second_half', float('nan')):+.1f} MiB over the second half",
        (xs[-1], ys[-1]),
        xytext=(-5, 12),
        textcoords="offset points",
        ha="right",
        fontsize=9,
    )


SENDERS = (
    ("ours", "our notifier (adaptive)", OURS),
    ("fixed_rate", "fixed rate (429 pauses all)", SPEC),
    ("ptb_aioratelimiter", "python-telegram-bot AIORateLimiter", CEILING),
)


def convergence(rate_ax: Axes, refused_ax: Axes, result: dict[str, Any]) -> None:
    """Accepted sends and 429s of each second, each sender, under the hidden limit."""
    hidden = result.get("hidden_limit_per_second")
    title = f"Hidden limit {hidden}/s, configured 30/s: accepted per second"
    if not hidden:
        _missing(refused_ax, "429s per second")
        return _missing(rate_ax, "Hidden limit: accepted per second")
    for key, name, color in SENDERS:
        run = result.get(key)
        if not run or "timeline" not in run:
            continue
        line = run["timeline"]
        label = f"{name}: {run['rate_second_half']:.1f}/s, {run['lost']} lost"
        rate_ax.plot(line["accepted"][:-1], color=color, label=label)
        refused_ax.plot(
            line["too_many_requests"][:-1],
            color=color,
            label=f"{name}: {run['too_many_requests']} × 429",
        )
    rate_ax.axhline(hidden, color=IDEAL, linestyle="--", linewidth=1)
    for ax, heading, unit in (
        (rate_ax, title, "accepted / s"),
        (refused_ax, "429s per second, same runs", "429 / s"),
    ):
        ax.set_title(heading, fontsize=11, loc="left")
        ax.set_xlabel("seconds from the first accepted send")
        ax.set_ylabel(unit)
        ax.legend(fontsize=8)


def round_trips(paid_ax: Axes, standard_ax: Axes, result: dict[str, Any]) -> None:
    """The sending path's budget use at each round trip (median of its runs, the bar's whisker
    their spread), counted on arrival beside until the answer."""
    by_rtt = result.get("by_rtt", {})
    if not by_rtt:
        _missing(standard_ax, "30/s a round trip away")
        return _missing(paid_ax, "Paid broadcast a round trip away")
    rtts = list(by_rtt)
    width = 0.38
    for ax, part, limit in ((paid_ax, "paid_broadcast", 1000), (standard_ax, "standard", 30)):
        for offset, count_at, color in (
            (-width / 2, "completion", SPEC),
            (width / 2, "arrival", OURS),
        ):
            runs = [by_rtt[r][count_at][part] for r in rtts]
            values = [100 * run["fraction_of_limit"] for run in runs]
            spread = [
                [v - 100 * run["fraction_min"] for v, run in zip(values, runs, strict=True)],
                [100 * run["fraction_max"] - v for v, run in zip(values, runs, strict=True)],
            ]
            bars = ax.bar(
                [i + offset for i in range(len(rtts))],
                values,
                width,
                yerr=spread,
                capsize=3,
                color=color,
                label=f"counted at {count_at}" + (" (before)" if count_at == "completion" else ""),
            )
            _labels(
                ax,
                bars,
                [
                    f"{v:.1f}%\n{r['too_many_requests']}×429"
                    for v, r in zip(values, runs, strict=True)
                ],
            )
        ax.set_xticks(range(len(rtts)), [f"RTT {r}" for r in rtts])
        lowest = min(100 * by_rtt[r][c][part]["fraction_min"] for r in rtts for c in by_rtt[r])
        ax.set_ylim(80 if lowest > 85 else 0, 108)
        ax.set_ylabel(f"% of {limit}/s (median of {result.get('repetitions', 1)} runs)")
        ax.legend(fontsize=8, loc="lower left")
        ax.set_title(
            f"{'Paid broadcast drain' if limit == 1000 else '30/s'} a round trip away "
            "(limiter + sender alone)",
            fontsize=11,
            loc="left",
        )


def render_limits(path: Path | None = None) -> Path | None:
    """bench/results/limits.png from limits.json (None if it has not run)."""
    result = load("limits")
    if not result:
        return None
    figure, axes = plt.subplots(2, 2, figsize=(15, 9.5))
    convergence(axes[0][0], axes[0][1], result.get("convergence", {}))
    round_trips(axes[1][0], axes[1][1], result.get("rtt", {}))
    when = " · ".join(
        f"{part} {result[part].get('measured_at') or result['measured_at']}"
        for part in ("convergence", "rtt")
        if part in result
    )
    figure.suptitle(f"Limits that adapt, the budget a network away — measured: {when}")
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    path = path or RESULTS / "limits.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def render(path: Path | None = None) -> Path:
    """Draw the summary chart from bench/results/*.json; returns its path."""
    ours, base = load("notifier"), load("baselines")
    if not ours and base.get("ours"):
        ours = base["ours"]
    figure, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    spec = base.get("spec", {})  # the spec-style sender, measured in the same run
    throughput(
        axes[0][0], ours.get("throughput", {}), spec.get("throughput", {}), base.get("ceiling", {})
    )
    latency(axes[0][1], ours.get("latency", {}), spec.get("latency", {}))
    limits(axes[0][2], ours.get("limits", {}), spec.get("limits", {}))
    daily(axes[1][0], load("daily_summary"))
    linker(axes[1][1], load("linker"))
    memory(axes[1][2], load("memory"))
    machine = next((r["machine"] for r in (ours, base) if r.get("machine")), {})
    title = "sns-telegram benchmarks" + (
        f" — {machine.get('cpus')} CPUs, Python {machine.get('python')}, "
        f"{ours.get('measured_at', '')}; baselines measured in the same run"
        if machine
        else ""
    )
    return save(figure, title, path or RESULTS / "summary.png")


def save(figure: Any, title: str, path: Path) -> Path:
    """Title the figure, lay it out, write it to `path` and close it."""
    figure.suptitle(title, fontsize=13)
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


if __name__ == "__main__":
    print(render(), render_limits())
