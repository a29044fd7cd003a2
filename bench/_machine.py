"""The machine a benchmark ran on, for docs/benchmarks.md."""

import os
import platform
from datetime import UTC, datetime
from pathlib import Path


def _cpuinfo_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine() or "unknown"
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _postgresql_version() -> str:
    from ._django import connect, database_url

    try:
        # The server's maintenance database: the benchmark's own may not exist yet.
        with connect(database_url(), dbname="postgres") as conn:
            return conn.execute("SHOW server_version").fetchone()[0]
    except Exception as error:  # the report says why it is unknown
        return f"unknown ({type(error).__name__})"


def describe() -> dict[str, str]:
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    memory = _memory_gib()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpuinfo_model(),
        "cores": f"{cores}" + (f" ({usable} usable)" if usable != cores else ""),
        "memory": f"{memory} GiB" if memory is not None else "unknown",
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": platform.python_version(),
        "postgresql": _postgresql_version(),
        # Other work on the machine shows in the timings; this says how busy it was.
        "load": " / ".join(f"{x:.2f}" for x in os.getloadavg())
        if hasattr(os, "getloadavg")
        else "",
    }


def one_line(machine: dict[str, str]) -> str:
    return (
        f"{machine['date']} on {machine['cpu']}, {machine['cores']} cores, {machine['memory']}, "
        f"Python {machine['python']}, PostgreSQL {machine['postgresql']}"
        + (f", load average {machine['load']} (1/5/15 min)" if machine.get("load") else "")
    )
