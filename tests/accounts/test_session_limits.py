"""Polling does not keep a session alive: only what the user does is activity, and a background
request to a session that has ended gets the sign-in page for the whole page, with no patient
data."""

from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Role
from accounts.session_limits import LAST_SEEN, LOGIN_AT
from tests.factories import CaseFactory, MeetingFactory, PatientFactory, make_member

pytestmark = pytest.mark.django_db
BACKGROUND_POLL = {"HX-Request": "true", "X-Background-Poll": "1"}


@pytest.fixture
def meeting():
    return MeetingFactory()


@pytest.fixture
def patient(meeting):
    patient = PatientFactory(given_name="Winifred", family_name="Pollard")
    CaseFactory(meeting=meeting, patient=patient)
    return patient


@pytest.fixture
def user(client, meeting):
    user = make_member(meeting.team, role=Role.COORDINATOR)
    client.force_login(user)
    return user


def set_session(client, **ago):
    session = client.session
    for key, delta in ago.items():
        session[key] = (timezone.now() - delta).isoformat()
    session.save()


def seen_ago(client) -> timedelta:
    return timezone.now() - datetime.fromisoformat(client.session[LAST_SEEN])


def meeting_url(meeting) -> str:
    return f"/meetings/{meeting.public_id}/"


def test_a_background_poll_does_not_extend_the_session(client, user, meeting):
    set_session(client, login_at=timedelta(hours=1), last_seen=timedelta(minutes=10))
    response = client.get(f"{meeting_url(meeting)}refresh/progress/", headers=BACKGROUND_POLL)
    assert response.status_code == 200
    assert seen_ago(client) > timedelta(minutes=9, seconds=59)


def test_a_request_the_user_makes_extends_the_session(client, user, meeting):
    set_session(client, login_at=timedelta(hours=1), last_seen=timedelta(minutes=10))
    assert client.get(meeting_url(meeting), headers={"HX-Request": "true"}).status_code == 200
    assert seen_ago(client) < timedelta(seconds=5)


def test_polling_all_along_does_not_stop_the_idle_timeout(client, user, meeting):
    progress = f"{meeting_url(meeting)}refresh/progress/"
    set_session(client, login_at=timedelta(hours=1), last_seen=timedelta(minutes=14))
    assert client.get(progress, headers=BACKGROUND_POLL).status_code == 200
    set_session(client, last_seen=timedelta(minutes=15, seconds=1))
    assert client.get(progress, headers=BACKGROUND_POLL).status_code == 401
    assert client.get("/").status_code == 302  # signed out


def test_an_expired_background_poll_sends_the_whole_page_to_sign_in_with_no_patient_data(
    client, user, meeting, patient
):
    page = f"http://testserver{meeting_url(meeting)}"
    set_session(client, login_at=timedelta(hours=1), last_seen=timedelta(minutes=16))
    response = client.get(meeting_url(meeting), headers={**BACKGROUND_POLL, "HX-Current-URL": page})
    assert response.status_code == 401
    assert response["HX-Redirect"] == f"/accounts/login/?next={meeting_url(meeting)}"
    assert response.content == b""
    for shown in (patient.family_name, patient.nhs_number, patient.given_name):
        assert shown not in str(response.headers)
    signed_in_page = client.get(response["HX-Redirect"])
    assert "You were signed out after 15 minutes without activity." in signed_in_page.text
    assert patient.family_name not in signed_in_page.text


def test_a_background_poll_after_the_absolute_limit_is_refused_too(client, user, meeting):
    set_session(client, login_at=timedelta(hours=12, seconds=1), last_seen=timedelta(seconds=5))
    response = client.get(f"{meeting_url(meeting)}refresh/progress/", headers=BACKGROUND_POLL)
    assert response.status_code == 401 and response["HX-Redirect"].startswith("/accounts/login/")
    signed_in_page = client.get(response["HX-Redirect"])
    assert "because you signed in more than 12 hours ago" in signed_in_page.text


def test_a_background_request_without_htmx_is_refused_the_same_way(client, user):
    set_session(client, login_at=timedelta(hours=1), last_seen=timedelta(minutes=16))
    response = client.get("/", headers={"X-Background-Poll": "1", "Referer": "http://testserver/"})
    assert response.status_code == 401 and response["HX-Redirect"] == "/accounts/login/?next=/"


def test_a_page_from_another_site_is_not_where_sign_in_returns_to(client, user):
    set_session(client, login_at=timedelta(hours=1), last_seen=timedelta(minutes=16))
    response = client.get("/", headers={**BACKGROUND_POLL, "HX-Current-URL": "https://evil.test/"})
    assert response["HX-Redirect"] == "/accounts/login/"


def test_an_expired_page_request_still_redirects_to_sign_in(client, user, meeting):
    set_session(client, login_at=timedelta(hours=1), last_seen=timedelta(minutes=16))
    response = client.get(meeting_url(meeting))
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={meeting_url(meeting)}"


def test_the_timeouts_and_the_message_follow_the_settings(client, user, settings):
    settings.SESSION_IDLE_TIMEOUT = timedelta(seconds=10)
    set_session(client, login_at=timedelta(minutes=1), last_seen=timedelta(seconds=9))
    assert client.get("/").status_code == 200
    set_session(client, last_seen=timedelta(seconds=11))
    response = client.get("/", follow=True)
    assert "You were signed out after 10 seconds without activity." in response.text


def test_a_post_refused_by_the_csrf_check_is_not_activity(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    set_session(client, login_at=timedelta(hours=1), last_seen=timedelta(minutes=10))
    assert client.post("/accounts/session/stay-signed-in/").status_code == 403
    assert seen_ago(client) > timedelta(minutes=9, seconds=59)


def test_a_new_session_starts_both_clocks(client, user):
    assert client.get("/").status_code == 200
    assert LOGIN_AT in client.session and seen_ago(client) < timedelta(seconds=5)
