"""The real mesh-sandbox (NHS England's local MESH server) for the tests that send letters; its
fixtures (``mesh_sandbox``, ``mesh_settings``) are in tests/conftest.py.

Started once per session from its own virtualenv (scripts/mesh-sandbox.sh; `make test` makes the
virtualenv first) on a free port, in file store mode with a temporary folder, with the mailboxes
the tests use registered. A virtualenv that cannot be made fails the tests that need it.
"""

import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "mesh-sandbox.sh"
SHARED_KEY = "TestKey"
# The trust's sending mailbox (canned in the sandbox) and the practices' mailboxes.
SENDER = "X26ABC1"
PRACTICE_MAILBOXES = ("M85011OT001", "M85020OT001", "M88004OT001")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class MeshSandbox:
    store: Path
    port: int
    log: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "MESH_SANDBOX_STORE": str(self.store),
            "MESH_SANDBOX_PORT": str(self.port),
            "MESH_SHARED_KEY": SHARED_KEY,
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own script
                [str(SCRIPT), "run", *PRACTICE_MAILBOXES],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mesh-sandbox exited: see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"mesh-sandbox did not answer on {self.url}: see {self.log}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


def start_session_sandbox(base: Path) -> MeshSandbox:
    """Installs (if needed) and starts a sandbox storing its messages under ``base``."""
    installed = subprocess.run(  # noqa: S603 - our own script
        [str(SCRIPT), "install"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if installed.returncode != 0:  # `make test` installs it: a failure here is a real failure
        raise RuntimeError(
            "mesh-sandbox's virtualenv could not be made (scripts/mesh-sandbox.sh install): "
            + (installed.stderr or installed.stdout).strip()[-500:]
        )
    sandbox = MeshSandbox(store=base / "store", port=_free_port(), log=base / "sandbox.log")
    sandbox.start()
    return sandbox


def point_settings_at(settings, sandbox: MeshSandbox):
    """The app's MESH settings (the pytest-django ``settings`` fixture) pointed at a sandbox."""
    settings.MESH_URL = sandbox.url
    settings.MESH_MAILBOX_ID = SENDER
    settings.MESH_MAILBOX_PASSWORD = "password"
    settings.MESH_SHARED_KEY = SHARED_KEY
    settings.MESH_CLIENT_CERT = ""
    settings.MESH_CA_BUNDLE = ""
    settings.MESH_TIMEOUT_S = 10
    return settings
