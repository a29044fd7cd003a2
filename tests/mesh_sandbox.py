"""The real mesh-sandbox (NHS England's local MESH server) for the tests that send letters; its
fixtures (``mesh_sandbox``, ``mesh_settings``) are in tests/conftest.py.

Started once per session from its own virtualenv (scripts/mesh-sandbox.sh; `make test` makes the
virtualenv first) on a free port, in file store mode with a temporary folder, with the mailboxes
the tests use registered (demo/mesh_sandbox.py runs it). A virtualenv that cannot be made fails
the tests that need it.
"""

from pathlib import Path

from demo.mesh_sandbox import PASSWORD, SENDER, SHARED_KEY, MeshSandbox, free_port, install

__all__ = ["PRACTICE_MAILBOXES", "SHARED_KEY", "MeshSandbox", "free_port"]

# The practices' mailboxes (the trust's sending mailbox, SENDER, is canned in the sandbox).
PRACTICE_MAILBOXES = ("M85011OT001", "M85020OT001", "M88004OT001")


def start_session_sandbox(base: Path) -> MeshSandbox:
    """Installs (if needed) and starts a sandbox storing its messages under ``base``."""
    install()  # `make test` installs it: a failure here is a real failure
    sandbox = MeshSandbox(
        store=base / "store",
        port=free_port(),
        log=base / "sandbox.log",
        mailboxes=PRACTICE_MAILBOXES,
    )
    sandbox.start()
    return sandbox


def point_settings_at(settings, sandbox: MeshSandbox):
    """The app's MESH settings (the pytest-django ``settings`` fixture) pointed at a sandbox."""
    settings.MESH_URL = sandbox.url
    settings.MESH_MAILBOX_ID = SENDER
    settings.MESH_MAILBOX_PASSWORD = PASSWORD
    settings.MESH_SHARED_KEY = SHARED_KEY
    settings.MESH_CLIENT_CERT = ""
    settings.MESH_CA_BUNDLE = ""
    settings.MESH_TIMEOUT_S = 10
    return settings
