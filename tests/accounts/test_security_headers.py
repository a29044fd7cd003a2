import re

import pytest
from django.conf import settings

from accounts.models import Role
from tests.factories import CaseFactory, MeetingFactory, make_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client):
    meeting = MeetingFactory()
    CaseFactory(meeting=meeting)
    client.force_login(make_member(meeting.team, role=Role.COORDINATOR))
    return client, meeting


def test_patient_pages_are_never_cached(signed_in):
    client, meeting = signed_in
    response = client.get(f"/meetings/{meeting.public_id}/")
    assert "no-store" in response["Cache-Control"]
    assert 'hx-history="false"' in response.content.decode()


def test_csp_is_strict_and_nonce_based(signed_in):
    client, meeting = signed_in
    response = client.get(f"/meetings/{meeting.public_id}/")
    policy = response["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    body = response.content.decode()
    scripts = re.findall(r"<script[^>]*>", body)
    assert scripts, "the page loads scripts"
    assert all(f'nonce="{nonce}"' in tag for tag in scripts)
    assert " style=" not in body  # no inline style attributes: style-src is 'self' only
    assert "frame-ancestors 'none'" in policy


def test_htmx_is_configured_for_the_csp_and_without_history_cache(signed_in):
    client, meeting = signed_in
    body = client.get(f"/meetings/{meeting.public_id}/").content.decode()
    assert '"includeIndicatorStyles": false' in body
    assert '"historyCacheSize": 0' in body


def test_cookies_and_headers_are_secure_by_default():
    assert settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE
    assert settings.SESSION_COOKIE_HTTPONLY
    assert settings.X_FRAME_OPTIONS == "DENY"
    assert settings.SECURE_CONTENT_TYPE_NOSNIFF


def test_forms_are_csrf_protected(client):
    meeting = MeetingFactory()
    csrf_client = type(client)(enforce_csrf_checks=True)
    csrf_client.force_login(make_member(meeting.team, role=Role.COORDINATOR))
    response = csrf_client.post(f"/meetings/{meeting.public_id}/close/")
    assert response.status_code == 403
    meeting.refresh_from_db()
    assert meeting.status == "planned"


def test_no_nhs_number_or_name_in_any_url(signed_in):
    client, meeting = signed_in
    case = meeting.cases.get()
    body = client.get(f"/meetings/{meeting.public_id}/").content.decode()
    for href in re.findall(r'(?:href|action|hx-post|hx-get)="([^"]+)"', body):
        assert case.patient.nhs_number not in href
        assert case.patient.family_name not in href
