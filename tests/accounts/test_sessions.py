from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from tests.factories import TEST_PASSWORD, MeetingFactory, make_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def user():
    return make_member(MeetingFactory().team, role=Role.COORDINATOR, username="sessionuser")


def login(client, user):
    return client.post("/accounts/login/", {"username": user.username, "password": TEST_PASSWORD})


def shift_session(client, **changes):
    session = client.session
    for key, delta in changes.items():
        session[key] = (timezone.now() - delta).isoformat()
    session.save()


def test_login_and_logout(client, user):
    assert login(client, user).status_code == 302
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


def test_session_ends_after_15_minutes_idle(client, user):
    login(client, user)
    shift_session(client, last_seen=timedelta(minutes=14))
    assert client.get("/").status_code == 200
    shift_session(client, last_seen=timedelta(minutes=16))
    response = client.get("/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.get("/").status_code == 302  # really signed out


def test_session_ends_12_hours_after_login_even_when_active(client, user):
    login(client, user)
    shift_session(client, login_at=timedelta(hours=11, minutes=59))
    assert client.get("/").status_code == 200
    shift_session(client, login_at=timedelta(hours=12, minutes=1))
    assert client.get("/").status_code == 302


def test_htmx_requests_of_an_expired_session_redirect_the_whole_page(client, user):
    login(client, user)
    shift_session(client, last_seen=timedelta(hours=1))
    response = client.get("/", headers={"HX-Request": "true"})
    assert response["HX-Redirect"].startswith("/accounts/login/")


def test_repeated_failures_lock_the_account(client, user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/accounts/login/", {"username": user.username, "password": "wrong"})
    response = login(client, user)  # even the right password is refused now
    assert response.status_code == 429
    assert "Your account is locked" in response.content.decode()


def test_a_wrong_password_says_so_without_saying_which_part(client, user):
    response = client.post("/accounts/login/", {"username": user.username, "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_htmx_requests_when_signed_out_redirect_the_whole_page(client):
    meeting_url = f"/meetings/{MeetingFactory().public_id}/preview/"
    response = client.post(
        meeting_url, {"nhs_number": "9990000026"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 401  # a 302 would be followed inside htmx's request
    assert response["HX-Redirect"].startswith("/accounts/login/")


def test_htmx_requests_when_signed_out_get_no_page_to_swap(client):
    response = client.get("/meetings/", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.content == b""
    assert response["HX-Redirect"] == "/accounts/login/?next=/meetings/"
