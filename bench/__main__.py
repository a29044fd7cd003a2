"""``python -m bench [name ...]``: runs the named benchmarks (all of them without a name), prints
one JSON line per benchmark on stdout (progress goes to stderr) and updates docs/benchmarks.md."""

import argparse
import importlib
import json
import pkgutil
import signal
import sys
import traceback

import bench

from . import _machine, _report


def discover() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.iter_modules(bench.__path__)
        if not info.name.startswith("_") and not info.ispkg
    )


def _stop_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # so that `finally` blocks stop the servers we started


def main(argv: list[str] | None = None) -> int:
    available = discover()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {available})")
    parser.add_argument(
        "--no-docs", action="store_true", help="print the results without updating the docs"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in available]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; available: {', '.join(available)}")
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    sections: dict[str, str] = {}
    machine: dict[str, str] | None = None
    failed: list[str] = []
    for name in args.names or available:
        module = importlib.import_module(f"bench.{name}")
        print(f"bench: running {name}", file=sys.stderr, flush=True)
        try:
            result = module.run()
        except Exception:  # report it and go on with the other benchmarks
            traceback.print_exc()
            failed.append(name)
            continue
        printed = {key: value for key, value in result.items() if not key.startswith("_")}
        print(json.dumps(printed), flush=True)
        if not args.no_docs:
            machine = machine or _machine.describe()
            sections[name] = _report.section(name, module, result, machine)
    if sections:
        path = _report.update(sections, machine)
        print(f"bench: wrote {path}", file=sys.stderr)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
