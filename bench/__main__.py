"""``python -m bench [--quick]``: custody's throughput, measured in one run on one machine.

For each backend (Redis + PostgreSQL, then the embedded default): (a) the Celery no-op
ceiling, (b) one assign_device per message and its ratio to (a), (c) assign_devices at
several batch sizes, (d) onboarding a generated file end to end; with worker memory.
Prints a table; ``--json`` keeps the figures and ``--plot`` draws throughput against
batch size (needs the ``bench`` extra: matplotlib).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import plot, table
from bench.scenarios import Measure, WorkerOptions, batches, cpu_count, noop, onboarding, singles
from bench.stack import Stack, embedded_stack, server_stack
from models.settings import Settings


@dataclass(frozen=True)
class Sizes:
    noop_tasks: int  # (a), per round
    single_commands: int  # (b), per round
    items_by_batch_size: dict[int, int]  # (c): items sent at each batch size
    onboard_rows: int  # (d)


# Sized so that each measurement lasts several seconds on a quiet 2-core machine (shorter
# ones are mostly worker start-up and the drain's first and last moments).
SIZES: dict[tuple[str, bool], Sizes] = {  # (backend, quick)
    ("redis+postgres", False): Sizes(
        10_000, 6_000, {1: 2_000, 10: 20_000, 100: 100_000, 1000: 200_000}, 1_000_000
    ),
    ("redis+postgres", True): Sizes(
        2_000, 2_000, {1: 300, 10: 2_000, 100: 10_000, 1000: 20_000}, 50_000
    ),
    ("embedded", False): Sizes(
        10_000, 8_000, {1: 1_000, 10: 10_000, 100: 50_000, 1000: 100_000}, 1_000_000
    ),
    ("embedded", True): Sizes(1_000, 500, {1: 100, 100: 2_000, 1000: 10_000}, 10_000),
}


def _report(measure: Measure) -> None:
    print(
        f"  {measure.backend:15} {measure.scenario:45} {measure.rate:10,.0f} {measure.unit}/s",
        flush=True,
    )


def ceiling_and_singles(
    stack: Stack, options: WorkerOptions, sizes: Sizes, rounds: int
) -> list[Measure]:
    """(a) and (b) in alternating rounds, so that both see the same (shared, changing)
    machine; the round with the median rate of each stands, and the per-round ratios
    are noted."""
    pairs = []
    for _ in range(rounds):
        pair = (
            noop(stack, options, sizes.noop_tasks),
            singles(stack, options, sizes.single_commands),
        )
        for measure in pair:
            _report(measure)
        pairs.append(pair)
    ratios = ", ".join(f"{b.rate / a.rate:.0%}" for a, b in pairs)
    chosen = []
    for kind in (0, 1):
        runs = sorted((pair[kind] for pair in pairs), key=lambda m: m.rate)
        median = runs[len(runs) // 2]
        if rounds > 1:
            median.note = f"median of {rounds} rounds"
            if kind == 1:
                median.note += f"; ratio in each round {ratios}"
        chosen.append(median)
    # For comparison: the same commands one by one, each its own transaction and hand-over.
    alone = singles(stack, options, sizes.single_commands, coalesce=False)
    _report(alone)
    return [*chosen, alone]


PARTS = ("singles", "batches", "onboard")  # (a)+(b), (c), (d)


def run_backend(
    stack: Stack, options: WorkerOptions, *, quick: bool, rounds: int, parts: list[str]
) -> list[Measure]:
    sizes = SIZES[(stack.name, quick)]
    results = ceiling_and_singles(stack, options, sizes, rounds) if "singles" in parts else []
    steps = []
    if "batches" in parts:
        steps += [
            lambda b=b, n=n: batches(stack, options, b, n)
            for b, n in sizes.items_by_batch_size.items()
        ]
    if "onboard" in parts:
        steps.append(lambda: onboarding(stack, options, sizes.onboard_rows))
    for step in steps:
        measure = step()
        _report(measure)
        results.append(measure)
    return results


def _load(load: tuple[float, float, float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load) + " (1 / 5 / 15 min)"


def _exit_on_signal(number: int, _frame: Any) -> None:
    raise SystemExit(f"stopped by signal {number}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a run of a minute or two"
    )
    parser.add_argument("--backend", choices=["all", "redis+postgres", "embedded"], default="all")
    parser.add_argument(
        "--concurrency", type=int, default=2, help="worker processes (both workers)"
    )
    parser.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"])
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="alternating rounds of the no-op and single-command runs (default 3, quick 1)",
    )
    parser.add_argument(
        "--only",
        choices=PARTS,
        action="append",
        help="run only this part (repeatable): singles = (a) and (b), batches = (c), onboard = (d)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument(
        "--plot", type=Path, default=None, help="write the batch-size plot here (PNG)"
    )
    args = parser.parse_args(argv)
    # A termination request unwinds like an error: workers stopped, private database
    # dropped, Redis database number released.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)

    options = WorkerOptions(concurrency=args.concurrency, pool=args.pool)
    stacks: list[AbstractContextManager[Stack]] = []
    if args.backend in ("all", "redis+postgres"):
        stacks.append(server_stack())
    if args.backend in ("all", "embedded"):
        stacks.append(embedded_stack())
    started = time.monotonic()
    defaults = {name: f.default for name, f in Settings.model_fields.items()}  # the workers'
    results: list[Measure] = []
    load_before = os.getloadavg()
    print(
        f"custody bench ({'quick' if args.quick else 'full'}): {cpu_count()} CPU(s), "
        f"load average {_load(load_before)}, "
        f"workers {options.pool} x{options.concurrency}, log level {options.log_level}, "
        f"prefetch {defaults['prefetch_multiplier']} per process, "
        f"groups of at most {defaults['coalesce_max']} single commands",
        flush=True,
    )
    for context in stacks:
        with context as stack:
            rounds = args.rounds or (1 if args.quick else 3)
            results.extend(
                run_backend(
                    stack, options, quick=args.quick, rounds=rounds, parts=args.only or list(PARTS)
                )
            )
    print()
    print(table(results))
    load_after = os.getloadavg()
    elapsed_s = time.monotonic() - started
    print(f"\n{elapsed_s:.0f}s in all; load average at the end {_load(load_after)}")
    environment: dict[str, Any] = {
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": cpu_count(),
        "quick": args.quick,
        "pool": options.pool,
        "concurrency": options.concurrency,
    }
    if args.json:
        args.json.write_text(
            json.dumps(
                {"environment": environment, "results": [m.to_json() for m in results]}, indent=2
            )
        )
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
