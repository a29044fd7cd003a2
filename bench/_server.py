"""gunicorn started as ``make run`` starts it (scripts/serve.sh: ``gunicorn config.wsgi:application
--bind HOST:PORT --workers ${WEB_WORKERS:-3} --access-logfile -``), on a free loopback port, and
always stopped again."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ._django import ROOT

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _gunicorn() -> str:
    beside = Path(sys.executable).parent / "gunicorn"
    return str(beside if beside.exists() else ROOT / ".venv" / "bin" / "gunicorn")


class Gunicorn:
    """``with Gunicorn(env) as server:`` serves the app at ``server.url`` until the block ends
    (normally, on an error or on Ctrl-C)."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.workers = env.get("WEB_WORKERS") or "3"
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.process: subprocess.Popen | None = None
        self._log = None

    def command(self) -> list[str]:
        return [
            _gunicorn(),
            "config.wsgi:application",
            "--bind",
            f"{HOST}:{self.port}",
            "--workers",
            self.workers,
            "--access-logfile",
            "-",
        ]

    def __enter__(self) -> "Gunicorn":
        self._log = tempfile.TemporaryFile(mode="w+b", prefix="bench-gunicorn-")
        self.process = subprocess.Popen(  # noqa: S603 - our own command line
            self.command(),
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the benchmark, which stops the server
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"gunicorn exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/healthz/").status_code == 200:
                        return
                time.sleep(0.1)
        raise RuntimeError(
            f"gunicorn did not answer in {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def __exit__(self, exc_type, exc, tb) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()  # SIGTERM to the master: it stops its workers
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                # The session (process group) was created for this gunicorn alone.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        if exc_type is not None and self._log is not None:
            print(f"bench: gunicorn log (last lines):\n{self.log_tail()}", file=sys.stderr)
        if self._log is not None:
            self._log.close()
            self._log = None
