"""Shared fixtures: the suite runs against PostgreSQL (the settings' DATABASE_URL) and Redis."""

import pytest


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
