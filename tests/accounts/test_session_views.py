"""The session timeout warning's endpoints: the status (a background poll, never activity) and
"Stay signed in" (activity, CSRF-protected)."""

from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Role
from accounts.session_limits import LAST_SEEN
from tests.factories import MeetingFactory, make_member

pytestmark = pytest.mark.django_db
STATUS = "/accounts/session/"
STAY = "/accounts/session/stay-signed-in/"
AS_SESSION_JS_ASKS = {"X-Background-Poll": "1", "Accept": "application/json"}


@pytest.fixture
def user(client):
    user = make_member(MeetingFactory().team, role=Role.CLINICIAN)
    client.force_login(user)
    return user


def set_session(client, **ago):
    session = client.session
    for key, delta in ago.items():
        session[key] = (timezone.now() - delta).isoformat()
    session.save()


def seen_ago(client) -> timedelta:
    return timezone.now() - datetime.fromisoformat(client.session[LAST_SEEN])


def test_the_status_says_how_long_is_left_before_each_limit(client, user):
    set_session(client, login_at=timedelta(hours=1), last_seen=timedelta(minutes=5))
    status = client.get(STATUS, headers={"X-Background-Poll": "1"}).json()
    assert status["idle_seconds_left"] == pytest.approx(10 * 60, abs=2)
    assert status["absolute_seconds_left"] == pytest.approx(11 * 3600, abs=2)
    assert status["idle_timeout_seconds"] == 15 * 60
    assert status["warning_seconds"] == 2 * 60


def test_the_status_follows_the_settings(client, user, settings):
    settings.SESSION_IDLE_TIMEOUT = timedelta(seconds=20)
    settings.SESSION_WARNING_BEFORE = timedelta(seconds=5)
    set_session(client, login_at=timedelta(minutes=1), last_seen=timedelta(seconds=3))
    status = client.get(STATUS).json()
    assert status["idle_seconds_left"] == pytest.approx(17, abs=1)
    assert (status["idle_timeout_seconds"], status["warning_seconds"]) == (20, 5)


def test_asking_for_the_status_never_extends_the_session_even_without_the_header(client, user):
    set_session(client, login_at=timedelta(hours=1), last_seen=timedelta(minutes=10))
    assert client.get(STATUS).status_code == 200
    assert seen_ago(client) > timedelta(minutes=9, seconds=59)


def test_the_status_of_an_ended_session_sends_the_page_to_sign_in(client, user):
    set_session(client, login_at=timedelta(hours=1), last_seen=timedelta(minutes=16))
    response = client.get(
        STATUS, headers={**AS_SESSION_JS_ASKS, "Referer": "http://testserver/meetings/"}
    )
    assert response.status_code == 401
    assert response["HX-Redirect"] == "/accounts/login/?next=/meetings/"


def test_the_status_when_signed_out_sends_the_page_to_sign_in(client):
    response = client.get(STATUS, headers=AS_SESSION_JS_ASKS)
    assert response.status_code == 401 and response["HX-Redirect"] == "/accounts/login/"


def test_stay_signed_in_extends_the_session(client, user):
    set_session(client, login_at=timedelta(hours=1), last_seen=timedelta(minutes=14))
    response = client.post(STAY)
    assert response.status_code == 200
    assert response.json()["idle_seconds_left"] == pytest.approx(15 * 60, abs=2)
    assert seen_ago(client) < timedelta(seconds=5)


def test_stay_signed_in_cannot_pass_the_absolute_limit(client, user):
    set_session(client, login_at=timedelta(hours=11, minutes=59), last_seen=timedelta(minutes=1))
    status = client.post(STAY).json()
    assert status["absolute_seconds_left"] == pytest.approx(60, abs=2)


def test_stay_signed_in_is_too_late_once_the_session_has_ended(client, user):
    set_session(client, login_at=timedelta(hours=1), last_seen=timedelta(minutes=16))
    response = client.post(STAY, headers={"Accept": "application/json"})  # as session.js posts
    assert response.status_code == 401 and response["HX-Redirect"].startswith("/accounts/login/")
    assert client.get("/").status_code == 302


def test_stay_signed_in_needs_the_csrf_token(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/")  # sets the CSRF cookie
    set_session(client, login_at=timedelta(hours=1), last_seen=timedelta(minutes=10))
    assert client.post(STAY).status_code == 403
    assert seen_ago(client) > timedelta(minutes=9, seconds=59)
    token = client.cookies["csrftoken"].value
    assert client.post(STAY, headers={"X-CSRFToken": token}).status_code == 200
    assert seen_ago(client) < timedelta(seconds=5)


def test_each_endpoint_takes_only_its_method(client, user):
    assert client.post(STATUS).status_code == 405
    assert client.get(STAY).status_code == 405
