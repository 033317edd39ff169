"""bench/results/history.png from history.json and scale.json (the data-lifecycle benchmarks).

    uv run python -m bench.history_chart

Four panels: the notifier at an empty and at a filled database, the notifier while the
scheduler prunes, the bytes a delivered event costs and the steady state under retention, and
the scheduler and the daily aggregation at 1,000,000 linked users beside 10,000.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.chart import CEILING, IDEAL, OURS, SPEC, _labels, _missing, load, save
from bench.harness import RESULTS

FILLED = "#ff7f0e"


def history(ax: Axes, result: dict[str, Any]) -> str:
    """Empty beside filled: events/s (runs as dots), CPU per event."""
    rows = [
        ("empty", result["empty"], OURS),
        (f"{result['history_rows'] / 1e6:.0f}M history rows", result["filled"], FILLED),
    ]
    bars = ax.bar(
        [r[0] for r in rows], [r[1]["events_per_s"] for r in rows], color=[r[2] for r in rows]
    )
    for x, (_, side, _) in enumerate(rows):
        runs = side["runs_events_per_s"]
        ax.scatter([x] * len(runs), runs, color="black", s=12, zorder=3)
    _labels(
        ax,
        bars,
        [
            f"{r[1]['events_per_s']:,.0f}/s · {r[1]['cpu_ms_per_event']:.2f} ms CPU/event"
            for r in rows
        ],
    )
    ax.axhline(0.9 * result["empty_events_per_s"], color=IDEAL, linestyle="--", linewidth=1)
    ax.text(1.45, 0.9 * result["empty_events_per_s"], "0.9 × empty", color=IDEAL, fontsize=8,
            va="top", ha="right")  # fmt: skip
    ax.set_ylim(0, max(max(r[1]["runs_events_per_s"]) for r in rows) * 1.3)
    return (
        f"ratio filled/empty {result['ratio']} (medians of {result['repeat']} runs each, "
        f"dots: runs); filled in {result['history_fill_seconds']:.0f} s"
    )


def pruning(ax: Axes, p: dict[str, Any]) -> str:
    """p50 and p99 at 100 events/s without and while pruning; full speed in the caption."""
    groups = ["p50 @100/s (ms)", "p99 @100/s (ms)"]
    width = 0.38
    for offset, label, color, keys in (
        (-width / 2, "without pruning", OURS, ("p50_ms_without", "p99_ms_without")),
        (width / 2, "while pruning", SPEC, ("p50_ms_while_pruning", "p99_ms_while_pruning")),
    ):
        values = [p[k] for k in keys]
        bars = ax.bar([x + offset for x in range(2)], values, width, label=label, color=color)
        _labels(ax, bars, [f"{v:,.1f}" for v in values])
    ax.set_xticks(range(2), groups)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_ylim(0, max(p["p99_ms_without"], p["p99_ms_while_pruning"]) * 1.4)
    return (
        f"full speed: {p['events_per_s_without']:,.0f} → {p['events_per_s_while_pruning']:,.0f}"
        f" events/s while pruning {p['prune_rows_per_s_at_full_speed']:,.0f} rows/s"
    )


def size(ax: Axes, s: dict[str, Any]) -> str:
    """Bytes per event per table, each with its steady state under retention."""
    tables = list(s["bytes_per_event"])
    bars = ax.bar(tables, [s["bytes_per_event"][t] for t in tables], color=CEILING)
    _labels(
        ax,
        bars,
        [
            f"{s['bytes_per_event'][t]:,.0f} B × {s['retention_days'][t]:g} d\n"
            f"= {s['steady_state_bytes'][t] / 1e9:,.1f} GB"
            for t in tables
        ],
    )
    ax.set_ylim(0, max(s["bytes_per_event"].values()) * 1.45)
    ax.set_ylabel("bytes per event")
    return (
        f"{s['bytes_per_event_total']:,.0f} B/event over {s['events']:,} events; at "
        f"{s['events_per_day']:,}/day under the default retention: {s['steady_state_gb']} GB"
    )


def scale(ax: Axes, result: dict[str, Any]) -> str:
    """Small beside big, log scale: idle tick, due query, emit per trigger, aggregation."""
    small, big = result["small"], result["big"]
    metrics = [
        ("idle tick (ms)", lambda r: r["scheduler"]["idle_tick_seconds"] * 1000),
        ("due query (ms)", lambda r: r["scheduler"]["due_query_ms"]),
        ("emit (ms/trigger)", lambda r: r["scheduler"]["emit_ms_per_trigger"]),
        ("aggregation (ms/user)", lambda r: r["aggregation"]["query_ms_per_user"]),
    ]
    width = 0.38
    for offset, side, color in ((-width / 2, small, OURS), (width / 2, big, FILLED)):
        values = [f(side) for _, f in metrics]
        bars = ax.bar(
            [x + offset for x in range(len(metrics))], values, width,
            label=f"{side['users']:,} users", color=color,
        )  # fmt: skip
        _labels(ax, bars, [f"{v:,.3g}" for v in values])
    ax.set_xticks(range(len(metrics)), [m[0] for m in metrics], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(top=ax.get_ylim()[1] * 5)
    ax.legend(fontsize=8, loc="upper right")
    return result["how"]


def render(path: Path | None = None) -> Path:
    """Draw the data-lifecycle chart from bench/results; returns its path."""
    result, scaled = load("history"), load("scale")
    figure, axes = plt.subplots(2, 2, figsize=(14, 9.5))
    panels = (
        ("Notifier: empty database vs filled (events/s)", history, result, "ratio"),
        ("Notifier while the scheduler prunes", pruning, result.get("pruning"), "p99_ms_without"),
        ("Database per delivered event, and at a steady state", size, result.get("size"), "events"),
        ("Scheduler and daily aggregation, by linked users", scale, scaled, "big"),
    )
    for ax, (title, draw, part, needs) in zip(axes.flat, panels, strict=True):
        if part and needs in part:
            note = draw(ax, part)
            ax.set_title(title, fontsize=11, loc="left")
            ax.set_xlabel(note, fontsize=8, wrap=True)
        else:
            _missing(ax, title)
    machine = result.get("machine") or scaled.get("machine") or {}
    title = "sns-telegram: data lifecycle" + (
        f" — {machine.get('cpus')} CPUs, {result.get('measured_at', '')}" if machine else ""
    )
    return save(
        figure, title + "; each comparison measured in one run", path or RESULTS / "history.png"
    )


if __name__ == "__main__":
    print(render())
