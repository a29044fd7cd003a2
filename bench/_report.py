"""docs/benchmarks.md: the machine of the last run and one section per benchmark. A run rewrites
the sections of the benchmarks it ran and keeps the others (each says when and where it was
measured)."""

import re
from pathlib import Path

from ._django import ROOT
from ._machine import one_line

DOC = ROOT / "docs" / "benchmarks.md"
SECTION = re.compile(
    r"<!-- bench:(?P<name>[\w-]+):start -->\n.*?<!-- bench:(?P=name):end -->", re.S
)

INTRO = """# Benchmarks

Written by `make bench` (`.venv/bin/python -m bench [name]`), which prints one JSON line per
benchmark and rewrites that benchmark's section below; sections of benchmarks not run keep their
last results (each says when and on what it was measured). Do not edit the sections by hand: change
the benchmark in `bench/<name>.py` (a module with `run()` returning a dict, found by
`bench/__main__.py`) and run it again.
"""


def machine_table(machine: dict[str, str]) -> str:
    rows = [
        ("Date", machine["date"]),
        ("CPU", machine["cpu"]),
        ("Cores", machine["cores"]),
        ("Memory", machine["memory"]),
        ("OS", machine["os"]),
        ("Python", machine["python"]),
        ("PostgreSQL", machine["postgresql"]),
        ("Load average (1/5/15 min)", machine.get("load") or "unknown"),
    ]
    lines = ["## Machine of the last run", "", "| | |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in rows]
    return "\n".join(lines)


def generic_body(result: dict) -> str:
    lines = ["| measure | value |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in result.items() if not key.startswith("_")]
    return "\n".join(lines)


def section(name: str, module, result: dict, machine: dict[str, str]) -> str:
    title = getattr(module, "TITLE", name)
    render = getattr(module, "markdown", generic_body)
    body = render(result).strip()
    return (
        f"<!-- bench:{name}:start -->\n## `{name}`: {title}\n\n"
        f"Measured {one_line(machine)}.\n\n{body}\n<!-- bench:{name}:end -->"
    )


def update(new_sections: dict[str, str], machine: dict[str, str]) -> Path:
    existing: dict[str, str] = {}
    if DOC.exists():
        for match in SECTION.finditer(DOC.read_text()):
            existing[match.group("name")] = match.group(0)
    merged = dict(existing)
    merged.update(new_sections)
    parts = [INTRO, machine_table(machine), *merged.values()]
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n\n".join(part.strip() for part in parts) + "\n")
    return DOC
