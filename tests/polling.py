"""Waiting for another process (a Celery worker, beat, MESH) to have done something."""

import time


def wait_for(predicate, what: str, logs, timeout_s: float = 60.0, every_s: float = 0.1):
    """``predicate()``'s first true value, polled; fails saying what did not happen, with
    ``logs()`` (the worker's, the fault rig's processes')."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen in {timeout_s:g} s.\n{logs()}")
        time.sleep(every_s)
