"""NHS England's mesh-sandbox, the local MESH server (scripts/mesh-sandbox.sh, in its own
virtualenv from `make mesh-sandbox`), on a free loopback port, in file store mode under a folder
of the caller's, with the given practice mailboxes registered; always stopped again. The tests
(tests/mesh_sandbox.py) and the letters benchmark (bench/letters.py) run one each; `make run`
runs its own through scripts/serve.sh.

The sandbox knows the trust's sending mailbox (SENDER) from its package data and registers one
mailbox per folder of its store when it starts, all with the password PASSWORD; authentication is
MESH's own, with the shared key SHARED_KEY."""

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
SENDER = "X26ABC1"  # the trust's sending mailbox, canned in the sandbox
PASSWORD = "password"  # noqa: S105 - not a secret: the sandbox's fixed one
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def install() -> None:
    """Makes the sandbox's virtualenv if it is missing or out of date (`make mesh-sandbox`)."""
    installed = subprocess.run(  # noqa: S603 - our own script
        [str(SCRIPT), "install"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if installed.returncode != 0:
        raise RuntimeError(
            "mesh-sandbox's virtualenv could not be made (scripts/mesh-sandbox.sh install): "
            + (installed.stderr or installed.stdout).strip()[-500:]
        )


@dataclass
class MeshSandbox:
    """``with MeshSandbox(store, port, log, mailboxes) as sandbox:`` serves MESH at
    ``sandbox.url`` until the block ends; ``start()``/``stop()``/``restart()`` for finer control
    (messages survive a restart: they are files in ``store``)."""

    store: Path
    port: int
    log: Path
    mailboxes: tuple[str, ...] = ()
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app_env(self) -> dict[str, str]:
        """The app's MESH_* settings (environment variables) for sending through this sandbox."""
        return {
            "MESH_URL": self.url,
            "MESH_MAILBOX_ID": SENDER,
            "MESH_MAILBOX_PASSWORD": PASSWORD,
            "MESH_SHARED_KEY": SHARED_KEY,
        }

    def start(self) -> None:
        env = {
            **os.environ,
            "MESH_SANDBOX_STORE": str(self.store),
            "MESH_SANDBOX_PORT": str(self.port),
            "MESH_SHARED_KEY": SHARED_KEY,
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own script
                [str(SCRIPT), "run", *self.mailboxes],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped with its server
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mesh-sandbox exited: see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
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

    def __enter__(self) -> "MeshSandbox":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
