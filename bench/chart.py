"""The summary chart: every figure that has a goal, as a bar of "how far from the goal".

Figures come in different units and directions (req/s, higher is better; ms, lower is better),
so each bar is the figure divided by its goal, turned so that 1 is the goal and *less than 1
meets it* for all of them: measured ÷ goal where lower is better, goal ÷ measured where higher
is better. Bars grow from the goal line, on a log scale, so "2× too slow" and "2× better than
asked" stand equally far from it on either side. Each bar is labelled with the measured value
and the goal in their own units.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

NO_MATPLOTLIB = "not drawn: matplotlib is missing (pip install -e '.[bench]')"


def score(row: dict[str, Any]) -> float:
    """1 at the goal, < 1 better than the goal, > 1 worse, whichever way the figure points."""
    value, goal = float(row["value"]), float(row["goal"])
    if row["better"] == "lower":
        return value / goal if goal else float("inf")
    return goal / value if value else float("inf")


def draw(summary: dict[str, Any], path: Path) -> str:
    """Draw the chart to *path*; returns where it is, or why it was not drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return NO_MATPLOTLIB
    rows = [r for r in summary["figures"] if r["met"] is not None]
    if not rows:
        return "not drawn: no figure with a goal was measured"
    # a zero (no page committed) or a huge ratio must still show as a bar, not vanish
    scores = [min(max(score(r), 0.01), 100.0) for r in rows]
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(rows) + 1.8))
    positions = list(range(len(rows)))[::-1]
    # bars grow from the goal line: to the left when the goal is met, to the right when not
    ax.barh(positions, [s - 1.0 for s in scores], left=1.0, height=0.6,
            color=["#2e7d32" if r["met"] else "#c62828" for r in rows])
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(positions, [r["name"] for r in rows], fontsize=8)
    for y, s, row in zip(positions, scores, rows, strict=True):
        sign = "≤" if row["better"] == "lower" else "≥"
        ax.text(max(s, 1.0) * 1.08, y, f"{row['value']:g} {row['unit']}  (goal {sign} "
                f"{row['goal']:g})", va="center", fontsize=7)
    low, high = min(scores), max(scores)
    ax.set_xlim(min(0.1, low / 2), max(10.0, high * 8))
    ax.set_xlabel("distance from goal (1 = goal; left of the line meets it; log scale)")
    kind = "quick smoke run" if summary.get("quick") else "full run"
    ax.set_title(f"flowrunner benchmarks, {kind} — {summary['when']}, {summary['cpus']} CPUs, "
                 f"load {summary['load_average_1m']}: {summary['goals_met']} goals met, "
                 f"{summary['goals_missed']} missed", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    try:
        return str(path.resolve().relative_to(Path(__file__).resolve().parent.parent))
    except ValueError:
        return str(path)
