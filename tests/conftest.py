"""Shared fixtures: the suite runs against PostgreSQL (the settings' DATABASE_URL) and Redis."""

import pytest

from tests.mesh_sandbox import point_settings_at, start_session_sandbox


@pytest.fixture(autouse=True)
def _synthetic_nhs_numbers_allowed(settings):
    # The tests use NHS numbers from the 999 test range, as the demo region does.
    settings.ALLOW_SYNTHETIC_NHS_NUMBERS = True


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Production hashing (PBKDF2) costs ~0.3 s a user; the tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_demographics_service_unless_a_test_starts_one(settings):
    # Tests that need the demographics service start a local one and point this setting at it.
    settings.DEMOGRAPHICS_URL = ""


def pytest_collection_modifyitems(config, items):
    # Browser tests run last: Playwright's sync API leaves an event loop running on the main
    # thread for the rest of the session, and asyncio.run() refuses to start inside it.
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture(scope="session")
def mesh_sandbox(tmp_path_factory):
    """The real mesh-sandbox, once per session (tests/mesh_sandbox.py)."""
    sandbox = start_session_sandbox(tmp_path_factory.mktemp("mesh-sandbox"))
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def mesh_settings(settings, mesh_sandbox):
    """The app's MESH settings pointed at the session's sandbox."""
    return point_settings_at(settings, mesh_sandbox)
