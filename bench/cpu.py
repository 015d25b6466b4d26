"""Where the CPU went during a measurement: the worker's processes, the PostgreSQL backends
serving the bench's database, and the whole machine (which is shared: what is left over
was used by other programs)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _process_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S  # utime + stime


def _database_backends(database: str) -> dict[int, float]:
    backends = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if command.startswith(b"postgres:") and f" {database} ".encode() in command:
            backends[int(entry.name)] = _process_cpu_s(int(entry.name))
    return backends


def _machine_busy_s() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    idle = int(fields[3]) + int(fields[4])  # idle + iowait
    return (sum(int(f) for f in fields[:8]) - idle) / _TICKS_PER_S


@dataclass
class CpuSnapshot:
    processes: dict[int, float]
    backends: dict[int, float]
    machine_s: float


@dataclass(frozen=True)
class CpuUse:
    worker_s: float  # main process and pool children
    postgres_s: float  # backends of the bench's database
    machine_s: float  # every program on the machine, the bench's included


def snapshot(pids: list[int], database: str | None) -> CpuSnapshot:
    return CpuSnapshot(
        {pid: _process_cpu_s(pid) for pid in pids},
        _database_backends(database) if database else {},
        _machine_busy_s(),
    )


def since(before: CpuSnapshot, pids: list[int], database: str | None) -> CpuUse:
    after = snapshot(pids, database)
    worker = sum(cpu - before.processes.get(pid, 0.0) for pid, cpu in after.processes.items())
    postgres = sum(cpu - before.backends.get(pid, 0.0) for pid, cpu in after.backends.items())
    return CpuUse(worker, postgres, after.machine_s - before.machine_s)
