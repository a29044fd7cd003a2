"""The benchmarks, run by `make bench` (`python -m bench [name ...]`).

A benchmark is a module ``bench/<name>.py`` with a ``run()`` that returns a dict starting with
``{"bench": "<name>", ...}``; ``python -m bench`` discovers every such module (modules whose name
starts with an underscore are helpers), prints one JSON line per benchmark and rewrites that
benchmark's section of docs/benchmarks.md. A module may also define ``TITLE`` (the section
heading) and ``markdown(result) -> str`` (the section body); without them the section is a plain
table of the result. Keys of the result that start with an underscore are details for the
section body and are not printed.

Helpers for benchmarks that measure the product path:
``bench._django`` (the dedicated benchmark database, migrated, and Django set up against it),
``bench._server`` (gunicorn started as ``make run`` starts it, on a free localhost port),
``bench._http`` (an httpx client that keeps the app's Secure cookies itself and signs in).
"""
