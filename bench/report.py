"""The bench's table (Markdown, ready for docs/performance.md) and its plot.

``python -m bench.report RESULTS.json [PLOT.png]`` prints the table of saved results
(``python -m bench --json RESULTS.json``) again, and draws the plot.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.cpu import CpuUse
from bench.scenarios import Measure

CEILING = "Celery no-op task (ceiling)"
SINGLE = "assign_device, one per message"


def table(results: list[Measure]) -> str:
    ceilings = {m.backend: m.rate for m in results if m.scenario == CEILING}
    lines = [
        "| backend | measurement | count | seconds | rate | vs. no-op ceiling "
        "| worker RSS main / child (MiB) | CPU s: worker / PostgreSQL / whole machine |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in results:
        versus = ""
        if m.scenario.startswith(SINGLE) and ceilings.get(m.backend):
            versus = f"{m.rate / ceilings[m.backend]:.0%}"
        elif m.unit in ("items", "rows") and ceilings.get(m.backend):
            versus = f"{m.rate / ceilings[m.backend]:.1f}x"
        note = f" ({m.note})" if m.note else ""
        lines.append(
            f"| {m.backend} | {m.scenario}{note} | {m.count:,} {m.unit} | {m.seconds:.1f} | "
            f"{m.rate:,.0f} {m.unit}/s | {versus} | {m.rss_main_mib:.0f} / {m.rss_child_mib:.0f} | "
            f"{_cpu(m)} |"
        )
    return "\n".join(lines)


def _cpu(m: Measure) -> str:
    if m.cpu is None:
        return ""
    postgres = f"{m.cpu.postgres_s:.1f}" if m.backend != "embedded" else "n/a"
    return f"{m.cpu.worker_s:.1f} / {postgres} / {m.cpu.machine_s:.1f}"


def plot(results: list[Measure], path: Path) -> None:
    """Assignments per second against items per message, one line per backend, with the
    no-op ceiling and single commands for scale."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("the plot needs matplotlib: pip install -e '.[bench]'") from None

    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=120)
    for backend in dict.fromkeys(m.backend for m in results):
        points = sorted(
            (m.batch_size, m.rate) for m in results if m.backend == backend and m.batch_size
        )
        if not points:
            continue
        (line,) = axes.plot(
            [b for b, _ in points],
            [r for _, r in points],
            marker="o",
            label=f"assign_devices, {backend}",
        )
        for m in results:
            if m.backend == backend and m.scenario == CEILING:
                axes.axhline(
                    m.rate,
                    linestyle="--",
                    linewidth=1,
                    color=line.get_color(),
                    label=f"no-op task ceiling, {backend}",
                )
            if m.backend == backend and m.scenario == SINGLE:
                axes.plot(
                    [1],
                    [m.rate],
                    marker="x",
                    markersize=9,
                    linestyle="none",
                    color=line.get_color(),
                    label=f"assign_device, {backend}",
                )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("items per message (batch size)")
    axes.set_ylabel("assignments per second")
    axes.set_title("custody: throughput against batch size (2 worker processes)")
    axes.grid(True, which="both", linewidth=0.3)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path)


def load(path: Path) -> list[Measure]:
    """Measures saved with ``--json``."""
    measures = []
    for saved in json.loads(path.read_text())["results"]:
        fields: dict[str, Any] = {k: v for k, v in saved.items() if k != "rate"}
        fields["cpu"] = CpuUse(**fields["cpu"]) if fields.get("cpu") else None
        measures.append(Measure(**fields))
    return measures


if __name__ == "__main__":
    results = load(Path(sys.argv[1]))
    print(table(results))
    if len(sys.argv) > 2:
        plot(results, Path(sys.argv[2]))
