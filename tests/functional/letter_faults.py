"""Fixtures for the letter pipeline's fault tests (tests/functional/test_letter_faults.py): a
redis-server of the test's own, real Celery workers and beat against it and the test database,
the session's mesh-sandbox, and what each of them leaves behind as evidence.

Load them with ``pytest_plugins = ["tests.functional.celery_worker",
"tests.functional.letter_faults"]``, and reach everything through the ``fault_rig`` fixture (a
test module that imported these modules itself would keep pytest from rewriting their asserts);
a failing test that used it shows every process's log in its report.

- The broker is a ``redis-server`` on a free port with its files in the test's temporary folder
  (no persistence unless the test asks for an append-only file), started and killed by the
  fixture: the machine's shared Redis is never restarted or flushed. The web side (this
  process's Celery app) publishes to it while the test runs, on the default queue.
- Workers have one process each (the solo pool), so a SIGKILL kills the task in hand with it.
  Their environment shortens the broker's visibility timeout and its restore sweep, the beat
  sweep of stuck letters (its interval and age threshold) and MESH's retry backoff
  (``Timings``), so each recovery mechanism acts within seconds.
- The evidence of which mechanism recovered comes from the processes' logs (the task ids a
  worker received, what each sweep returned), the broker's queue and unacknowledged messages,
  the letter's row, the PDF files under MEDIA_ROOT, and the sandbox's file store.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from django.conf import settings

from config import celery_app
from tests.mesh_sandbox import MeshSandbox, free_port
from tests.polling import wait_for

from .celery_worker import (
    CeleryProcess,
    CeleryWorker,
    celery_env,
    start_child,
    start_worker,
)

REDIS_SERVER = "/usr/bin/redis-server"
QUEUE = "celery"  # Celery's default queue: the broker is the test's own
START_TIMEOUT_S = 30.0
SWEEP_TASK = "mdt.letter_tasks.sweep_stuck_letters"


# -- the broker --------------------------------------------------------------------------------


class RedisServer:
    """A redis-server of the test's own. ``persistent``: an append-only file written on every
    command, so what was queued survives a restart; otherwise a restart loses everything."""

    def __init__(self, directory: Path, *, persistent: bool = False):
        self.directory = directory
        self.persistent = persistent
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def start(self) -> None:
        command = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes" if self.persistent else "no",
            "--appendfsync",
            "always",
        ]
        self.process = start_child(command, env=dict(os.environ), log_path=self.log_path)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: see {self.log_path}")
            try:
                with self.client() as client:
                    client.ping()
                return
            except redis.ConnectionError as error:
                if time.monotonic() > deadline:
                    message = f"redis-server did not answer: see {self.log_path}"
                    raise RuntimeError(message) from error
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: Redis's own shutdown (it writes the append-only file first, if it has one)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def log_path(self) -> Path:
        return self.directory / "redis-server.log"

    def _messages(self, raw: list[bytes]) -> list[tuple[str, str]]:
        """(task name, task id) of Celery messages as kombu stores them in Redis."""
        found = []
        for item in raw:
            message = json.loads(item)
            if isinstance(message, list):  # an unacknowledged one: [message, exchange, key]
                message = message[0]
            headers = message["headers"]
            found.append((headers["task"], headers["id"]))
        return found

    def queued(self, queue: str = QUEUE) -> list[tuple[str, str]]:
        with self.client() as client:
            return self._messages(client.lrange(queue, 0, -1))

    def unacknowledged(self) -> list[tuple[str, str]]:
        """Messages delivered to a worker that has not acknowledged them (kombu's ``unacked``
        hash): redelivered once older than the visibility timeout."""
        with self.client() as client:
            return self._messages(client.hvals("unacked"))


def _drop_broker_connections() -> None:
    """This process's Celery app makes its connections to whatever broker_url says now. Its pools
    are kombu's, one per broker URL for the whole process (kombu.pools), and come back when
    broker_url is put back: they are only forgotten here, never closed (a closed pool refuses
    every later task; one drained with close_pool=False blocks the next acquire for ever)."""
    celery_app._pool = None  # noqa: SLF001
    celery_app.amqp._producer_pool = None  # noqa: SLF001


# -- the processes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Timings:
    """How soon each recovery mechanism acts, in seconds (the settings' defaults are an hour,
    ten minutes, two minutes, a minute...)."""

    visibility_timeout: int = 3  # an unacknowledged message goes back on the queue
    sweep_after: int = 60  # a letter waiting this long is re-enqueued by the sweep
    sweep_interval: float = 1.0  # beat runs the sweep this often
    retry_base: float = 1.0  # MESH backoff: base, doubling up to retry_max
    retry_max: float = 2.0
    send_max_attempts: int = 30

    def env(self) -> dict[str, str]:
        return {
            "CELERY_VISIBILITY_TIMEOUT_S": str(self.visibility_timeout),
            # Look for unacknowledged messages every second (kombu: every 10 x 10 s).
            "CELERY_UNACKED_RESTORE_INTERVAL_S": "1",
            "CELERY_UNACKED_RESTORE_THROTTLE": "1",
            "LETTER_SWEEP_AFTER_S": str(self.sweep_after),
            "LETTER_SWEEP_INTERVAL_S": str(self.sweep_interval),
            "MESH_RETRY_BASE_S": str(self.retry_base),
            "MESH_RETRY_MAX_S": str(self.retry_max),
            "MESH_SEND_MAX_ATTEMPTS": str(self.send_max_attempts),
        }


class FaultRig:
    """One fault test's broker and processes, all stopped at the end of the test."""

    def __init__(self, folder: Path, sandbox: MeshSandbox, media_root: Path):
        self.folder = folder
        self.sandbox = sandbox
        self.media_root = media_root
        self.redis: RedisServer | None = None
        self.timings = Timings()
        self.extra_env: dict[str, str] = {}
        self.workers: list[CeleryWorker] = []
        self.beat: CeleryProcess | None = None
        self._saved_conf: dict | None = None

    def start(
        self, *, persistent: bool = False, env: dict[str, str] | None = None, **timings
    ) -> None:
        """Starts the broker and points this process's Celery app at it. ``timings``: Timings'
        fields; ``env``: more for the workers and beat; ``persistent``: see RedisServer."""
        self.timings, self.extra_env = Timings(**timings), env or {}
        self.redis = RedisServer(self.folder / "redis", persistent=persistent)
        self.redis.start()
        names = ("broker_url", "task_default_queue", "task_always_eager")
        self._saved_conf = {name: celery_app.conf[name] for name in names}
        _drop_broker_connections()
        celery_app.conf.update(broker_url=self.redis.url, task_default_queue=QUEUE)
        celery_app.conf.task_always_eager = False

    def env(self) -> dict[str, str]:
        # The sandbox's settings as point_settings_at gave them to this process, the timings
        # (the retries' among them) over them.
        mesh = {name: str(getattr(settings, name)) for name in dir(settings) if name[:5] == "MESH_"}
        return celery_env(
            **{
                **mesh,
                **self.timings.env(),
                "REDIS_URL": self.redis.url,
                "MEDIA_ROOT": str(self.media_root),
                **self.extra_env,
            }
        )

    def start_worker(self) -> CeleryWorker:
        number = len(self.workers) + 1
        worker = start_worker(
            env=self.env(),
            queue=QUEUE,
            log_path=self.folder / f"worker-{number}.log",
            name=f"faults-{number}",
        )
        self.workers.append(worker)
        return worker

    def start_beat(self, *, wait: bool = True) -> CeleryProcess:
        """Celery beat, its schedule in the test's folder (``wait``: until it has started)."""
        command = [
            sys.executable,
            "-m",
            "celery",
            "--app=config",
            "beat",
            "--loglevel=INFO",
            f"--schedule={self.folder / 'beat-schedule'}",
            f"--pidfile={self.folder / 'beat.pid'}",
            "--max-interval=1",
        ]
        log_path = self.folder / "beat.log"
        self.beat = CeleryProcess(start_child(command, env=self.env(), log_path=log_path), log_path)
        if wait:
            self.wait_for_beat()
        return self.beat

    def wait_for_beat(self) -> None:
        self.beat.wait_until_logged("beat: Starting...", "Celery beat", START_TIMEOUT_S)

    def start_beat_and_worker(self) -> CeleryWorker:
        """Beat and a worker, started side by side (each takes seconds to load the app)."""
        self.start_beat(wait=False)
        worker = self.start_worker()
        self.wait_for_beat()
        return worker

    def logs(self) -> str:
        parts = [(f"worker {n}", w.log()) for n, w in enumerate(self.workers, start=1)]
        if self.beat is not None:
            parts.append(("beat", self.beat.log()))
        if self.redis is not None and self.redis.log_path.exists():
            parts.append(("redis-server", self.redis.log_path.read_text(errors="replace")))
        return "\n".join(f"--- {name} ---\n{text}" for name, text in parts)

    # -- the evidence ---------------------------------------------------------------------

    def sweeps(self, process: CeleryProcess) -> list[int]:
        """What each run of the beat sweep in that worker returned: how many letters it
        re-enqueued."""
        pattern = re.compile(rf"Task {re.escape(SWEEP_TASK)}\[[^\]]+\] succeeded in [\d.]+s: (\d+)")
        return [int(count) for count in pattern.findall(process.log())]

    def pdf_files(self) -> list[Path]:
        return sorted(path for path in self.media_root.rglob("*") if path.is_file())

    def mesh_messages(self, local_id: str) -> list[str]:
        """The ids of every message in the sandbox's file store with this local id, whichever
        mailbox it went to (the store keeps one JSON file per message)."""
        found = []
        for path in self.sandbox.store.glob("*/in/*.json"):
            message = json.loads(path.read_text())
            if (message.get("metadata") or {}).get("local_id") == local_id:
                found.append(message["message_id"])
        return found

    def wait_until(self, predicate: Callable, what: str, timeout_s: float = 60.0):
        """``predicate()``'s first true value, polled; fails with the processes' logs."""
        return wait_for(predicate, what, self.logs, timeout_s)

    def close(self) -> None:
        for process in [*self.workers, *([self.beat] if self.beat else [])]:
            process.stop()
        if self._saved_conf is not None:
            _drop_broker_connections()
            celery_app.conf.update(self._saved_conf)
        if self.redis is not None:
            self.redis.stop()
        if self.sandbox.process is None or self.sandbox.process.poll() is not None:
            self.sandbox.start()  # the session's sandbox, stopped by the test: the next needs it


@pytest.fixture
def fault_rig(transactional_db, mesh_sandbox, mesh_settings, tmp_path):
    """The fault test's rig, not started yet (``rig.start(timings)``). It depends on
    transactional_db, so its processes stop before the test database is flushed."""
    media_root = tmp_path / "media"
    mesh_settings.MEDIA_ROOT = media_root
    rig = FaultRig(tmp_path / "rig", mesh_sandbox, media_root)
    rig.folder.mkdir()
    try:
        yield rig
    finally:
        rig.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing fault test shows the logs of its broker, workers and beat."""
    report = yield
    rig = getattr(item, "funcargs", {}).get("fault_rig")
    if report.failed and isinstance(rig, FaultRig):
        report.sections.append((f"Fault rig logs ({report.when})", rig.logs()))
    return report
