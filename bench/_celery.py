"""A real Celery worker started as ``make run`` starts it (scripts/serve.sh: ``celery -A config
worker --concurrency=2``), against the benchmark database and a benchmark-only Redis database,
and always stopped again. Also the bench-only Redis database itself: flushed before use, so that
no queue or circuit-breaker state of an earlier run (or of the demo, which uses database 0) is
seen."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._django import ROOT

START_TIMEOUT_S = 60.0
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"


def redis_url() -> str:
    """BENCH_REDIS_URL, else database 14 of the local Redis (the demo uses 0, the tests others)."""
    return os.environ.get("BENCH_REDIS_URL") or DEFAULT_REDIS_URL


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def _celery() -> str:
    beside = Path(sys.executable).parent / "celery"
    return str(beside if beside.exists() else ROOT / ".venv" / "bin" / "celery")


class CeleryWorker:
    """``with CeleryWorker(env) as worker:`` runs ``celery -A config worker`` (prefork, the
    given concurrency) until the block ends (normally, on an error or on Ctrl-C); entering
    returns once the worker answers a ping over the broker."""

    def __init__(self, env: dict[str, str], concurrency: int = 2, loglevel: str = "WARNING"):
        self.env = env
        self.concurrency = concurrency
        self.loglevel = loglevel  # INFO logs each task's "succeeded in <seconds>"
        self.broker_url = env["REDIS_URL"]
        self.node = f"bench-{os.getpid()}@{socket.gethostname()}"
        self.process: subprocess.Popen | None = None
        self.ready_s: float | None = None
        self._log = None

    def command(self) -> list[str]:
        return [
            _celery(),
            "-A",
            "config",
            "worker",
            f"--concurrency={self.concurrency}",
            f"--loglevel={self.loglevel}",
            "-n",
            self.node,
        ]

    def __enter__(self) -> "CeleryWorker":
        self._log = tempfile.TemporaryFile(mode="w+b", prefix="bench-celery-")
        started = time.monotonic()
        self.process = subprocess.Popen(  # noqa: S603 - our own command line
            self.command(),
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the benchmark, which stops the worker
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        self.ready_s = time.monotonic() - started
        return self

    def _wait_until_ready(self) -> None:
        from celery import Celery

        control = Celery("bench-control", broker=self.broker_url, set_as_current=False)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the Celery worker exited with {self.process.returncode}:\n"
                        f"{self.log_tail()}"
                    )
                replies = control.control.ping(destination=[self.node], timeout=0.5)
                if any(self.node in reply for reply in replies or []):
                    return
        finally:
            control.close()
        raise RuntimeError(
            f"the Celery worker did not answer in {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}"
        )

    def log_mark(self) -> int:
        """The size of the log so far, for log_since() and failures_since()."""
        return os.fstat(self._log.fileno()).st_size if self._log is not None else 0

    def log_since(self, mark: int) -> str:
        """What the worker logged after the mark. (pread: the worker writes through the same
        file offset, which must not move under it.)"""
        if self._log is None:
            return ""
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        return os.pread(fd, max(0, size - mark), mark).decode("utf-8", "replace")

    def failures_since(self, mark: int) -> list[str]:
        """The worker's "Task ... raised unexpected: <exception>" lines logged after the mark:
        there is no result backend to ask how a task ended."""
        text = self.log_since(mark)
        return [line.strip() for line in text.splitlines() if "raised unexpected" in line]

    def log_tail(self, lines: int = 40) -> str:
        if self._log is None:
            return ""
        fd = self._log.fileno()
        text = os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def __exit__(self, exc_type, exc, tb) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            # SIGTERM is Celery's warm shutdown: the children finish their current task.
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                # The session (process group) was created for this worker alone.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        if exc_type is not None and self._log is not None:
            print(f"bench: Celery worker log (last lines):\n{self.log_tail()}", file=sys.stderr)
        if self._log is not None:
            self._log.close()
            self._log = None
