"""Fixtures for browser tests of the federated record store: the region's record sources as local
FHIR servers, and a real Celery worker (a separate process) that populates cases from them.

Load them with ``pytest_plugins = ["tests.functional.celery_worker"]`` in the test module; that
also adds the worker's log to the report of a test that fails.

How the pieces meet:
- The web side is the live_server thread in the pytest process: it reads django.conf.settings, so
  the ``settings`` fixture points DEMOGRAPHICS_URL at the local demographics service for it, and
  it enqueues with this process's Celery app (``config.celery_app``), whose broker is the
  settings' REDIS_URL (read from the environment at import: ``make test`` uses DB 15).
- The worker is another process: it gets everything through environment variables, DATABASE_URL
  naming the test database pytest-django made (committed data only, hence transactional_db), and
  REDIS_URL set to this process's broker URL, whatever it is, so both sides use one broker.
- Nothing in Redis is flushed (other tests may share the DB): the worker consumes a queue of its
  own, ``e2e-<random>``, and the web side routes tasks there by ``task_default_queue`` while the
  test runs (the router reads it at every send). The queue's keys are deleted afterwards.
- ``celery_env``, ``start_worker`` and ``start_child`` are the pieces of that fixture, for tests
  that run their own broker and processes (tests/functional/letter_faults.py).
- The circuit breaker keeps its state in Redis under the source's id
  (records.breaker.breaker_key), so the test's sources get random ids far above any sequence,
  and their breaker keys are deleted before and after.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection

from config import celery_app
from demo.fhir_server import FhirServer
from demo.histories import PDS, write_demo_histories
from demo.region import TRUSTS
from demo.sources import DEMO_SOURCES
from records.breaker import breaker_key
from records.models import Source
from tests.factories import OrganisationFactory

WORKER_READY_TIMEOUT_S = 30.0
WORKER_STOP_TIMEOUT_S = 10.0
SOURCE_TIMEOUT_S = 3.0
# The record sources the tests use: (folder that demo.histories writes, source name). The trusts'
# sources belong to their organisation, so their badge is the ODS code; the GP record has no
# organisation, so its badge is its name (Source.badge).
RECORD_SOURCES = [(code, name) for name, code, _ in DEMO_SOURCES if code in ("RRK", "RWP", "GP")]
TRUST_NAMES = {code: name for code, name, _ in TRUSTS}

# Starts a child (a Celery worker or beat, a redis-server) so that it is sent SIGTERM if the pytest
# process dies without stopping it (a leftover worker would keep a connection to the test
# database, and the next run could not drop it). PR_SET_PDEATHSIG (1) survives exec; set here, in
# the child, not in a preexec_fn, which is unsafe in a process with threads (the live server,
# Playwright). The exec keeps the process id: signals sent to the child reach the program itself.
_EXEC_WITH_PARENT_DEATH_SIGNAL = """
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
if os.getppid() != int(sys.argv[1]):
    sys.exit("the test process has already gone")
os.execv(sys.argv[2], sys.argv[2:])
"""


# -- the record sources ------------------------------------------------------------------------


@dataclass
class RecordSource:
    code: str  # RRK, RWP or GP: the folder of demo.histories output it serves
    server: FhirServer
    row: Source

    @property
    def name(self) -> str:
        return self.row.name

    @property
    def badge(self) -> str:
        return self.row.badge


class RecordSources:
    """Local FHIR servers standing in for the region's systems, and the demographics service."""

    def __init__(self, data_dir: Path, sources: list[RecordSource], pds: FhirServer):
        self.data_dir = data_dir
        self.sources = sources
        self.pds = pds

    def __getitem__(self, code: str) -> RecordSource:
        return next(source for source in self.sources if source.code == code)

    @property
    def servers(self) -> list[FhirServer]:
        return [*(source.server for source in self.sources), self.pds]

    def serve_histories(self, patients) -> dict:
        """Writes coherent histories for the patients (saved or not: the demographics service
        knows them either way) and serves them; returns demo.histories' manifest."""
        write_demo_histories(patients, self.data_dir)
        for server in self.servers:
            server.reload()
        return json.loads((self.data_dir / "manifest.json").read_text())

    def set_latency(self, ms: int) -> None:
        """Every source (not the demographics service) waits this long before each answer."""
        for source in self.sources:
            source.server.latency_ms = ms

    def reset_breakers(self) -> None:
        client = redis.Redis.from_url(django_settings.REDIS_URL)
        try:
            client.delete(*(breaker_key(s.row.pk) for s in self.sources))
        finally:
            client.close()


@pytest.fixture
def record_sources(tmp_path, transactional_db, settings):
    """The RRK, RWP and GP record sources and the demographics service, serving nothing until
    the test calls serve_histories(patients); the Source rows point at them."""
    data_dir = tmp_path / "fhir"
    started: list[FhirServer] = []
    try:
        for code in (*(code for code, _ in RECORD_SOURCES), PDS):
            (data_dir / code).mkdir(parents=True)
            started.append(FhirServer(data_dir / code, pds=code == PDS).start())
        first_id = 10**12 + secrets.randbelow(10**9) * 100
        sources = []
        for index, (code, name) in enumerate(RECORD_SOURCES):
            server = started[index]
            organisation = None
            if code in TRUST_NAMES:
                organisation = OrganisationFactory(ods_code=code, name=TRUST_NAMES[code])
            row = Source.objects.create(
                pk=first_id + index,
                name=name,
                base_url=server.base_url,
                organisation=organisation,
                timeout_s=SOURCE_TIMEOUT_S,
            )
            sources.append(RecordSource(code, server, row))
        region = RecordSources(data_dir, sources, started[-1])
        region.reset_breakers()
        settings.DEMOGRAPHICS_URL = region.pds.base_url
        yield region
        region.reset_breakers()
    finally:
        for server in started:
            server.stop()


# -- the Celery worker -------------------------------------------------------------------------


def start_child(argv: list[str], *, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Runs ``argv`` (an absolute program path first) in the repository, its output appended to
    ``log_path``; the child gets SIGTERM if this process dies first."""
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-c", _EXEC_WITH_PARENT_DEATH_SIGNAL, str(os.getpid()), *argv],
            cwd=django_settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


class CeleryProcess:
    """A Celery program (worker or beat) started by start_child, and its log."""

    def __init__(self, process: subprocess.Popen, log_path: Path):
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_until_logged(self, marker: str, what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while marker not in self.log():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"The {what} exited with status {self.process.returncode} before it was "
                    f"ready. Its log:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"The {what} was not ready after {timeout_s:g} s. Its log:\n{self.log()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # warm shutdown: finishes the task in hand
            try:
                self.process.wait(WORKER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: the process dies at once, whatever it was doing (no warm shutdown)."""
        self.process.kill()
        self.process.wait(WORKER_STOP_TIMEOUT_S)

    def assert_no_errors(self) -> None:
        log = self.log()
        problems = [
            line for line in log.splitlines() if " ERROR " in line or line.startswith("Traceback")
        ]
        assert not problems, f"The Celery process logged errors:\n{log}"


class CeleryWorker(CeleryProcess):
    def __init__(self, process: subprocess.Popen, log_path: Path, queue: str):
        super().__init__(process, log_path)
        self.queue = queue

    def wait_until_ready(self, timeout_s: float = WORKER_READY_TIMEOUT_S) -> None:
        self.wait_until_logged(" ready.", "Celery worker", timeout_s)

    def received(self, task_name: str) -> list[str]:
        """The ids of the tasks of that name the worker received, in order, as its log shows
        them: redacted (a run of ten digits reads "[NHS number]": compare with
        accounts.log_redaction.redact(task_id))."""
        pattern = re.compile(rf"Task {re.escape(task_name)}\[([^\]]+)\] received")
        return pattern.findall(self.log())


def _test_database_url() -> str:
    """The database the live server uses (pytest-django's test database, e.g. test_mdt_e2e)."""
    db = connection.settings_dict
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{quote(db['NAME'], safe='')}"


def celery_env(**overrides: str) -> dict[str, str]:
    """The environment of a Celery process of the tests: this process's, with DATABASE_URL
    naming the test database (committed data only, hence transactional_db), and the overrides
    (REDIS_URL above all: the broker both sides use)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": _test_database_url(),
        "DB_CONN_MAX_AGE": "0",  # no connection outlives a task: the flush after the test
        "ALLOW_SYNTHETIC_NHS_NUMBERS": "1",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "PYTHONUNBUFFERED": "1",
        **overrides,
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set by the browser fixture for this process only
    return env


def start_worker(
    *, env: dict[str, str], queue: str, log_path: Path, name: str | None = None
) -> CeleryWorker:
    """A worker with one process (the solo pool) consuming ``queue``, once it is ready."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "--app=config",
        "worker",
        "--pool=solo",
        "--loglevel=INFO",
        f"--queues={queue}",
        f"--hostname={name or queue}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    worker = CeleryWorker(start_child(command, env=env, log_path=log_path), log_path, queue)
    try:
        worker.wait_until_ready()
    except BaseException:
        worker.stop()
        raise
    return worker


def _delete_queue_keys(broker_url: str, queue: str) -> None:
    """The queue (kombu names its exchange after it) and its binding tables."""
    client = redis.Redis.from_url(broker_url)
    try:
        bindings = [f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]
        client.delete(*bindings, *client.scan_iter(match=f"{queue}*", count=1000))
    finally:
        client.close()


@pytest.fixture
def celery_worker(record_sources, transactional_db, tmp_path):
    """A real Celery worker in a separate process, consuming a queue of its own; the tasks the web
    side enqueues during the test go to that queue. Stopped before the test database is flushed
    (it depends on transactional_db, so it is torn down first)."""
    broker_url = celery_app.conf.broker_url
    queue = f"e2e-{secrets.token_hex(6)}"
    env = celery_env(
        REDIS_URL=broker_url,  # the broker and the circuit breaker: the web side's broker
        DEMOGRAPHICS_URL=record_sources.pds.base_url,
        # One failing source must fail for every case, not be skipped once the breaker opens
        # (the breaker has its own tests): a test that sets a fault sees the source's error.
        FEDERATION_BREAKER_FAILURES="1000",
    )
    saved = {
        "task_default_queue": celery_app.conf.task_default_queue,
        "task_always_eager": celery_app.conf.task_always_eager,
    }
    worker = None
    try:
        worker = start_worker(env=env, queue=queue, log_path=tmp_path / "celery-worker.log")
        celery_app.conf.task_default_queue = queue
        celery_app.conf.task_always_eager = False
        yield worker
    finally:
        celery_app.conf.update(saved)
        if worker is not None:
            worker.stop()
        _delete_queue_keys(broker_url, queue)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test that used the worker shows the worker's log in its report."""
    report = yield
    worker = getattr(item, "funcargs", {}).get("celery_worker")
    if report.failed and isinstance(worker, CeleryWorker):
        report.sections.append((f"Celery worker log ({report.when})", worker.log()))
    return report
