"""Sessions in a long meeting, in the browser: before the idle timeout a dialog offers to stay
signed in; a screen left alone goes to the sign-in page with no patient data; polling does not
keep a session alive, and a poll after the session has ended sends the whole page to sign in."""

import re
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.backends.db import SessionStore
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.session_limits import LAST_SEEN
from tests.factories import CaseFactory, MeetingFactory

from .browsing import check_accessibility, listed_names, log_in, wait_for_htmx

pytestmark = pytest.mark.browser

SIGNED_OUT_PAGE = re.compile(r"/accounts/login/\?next=")


def session_status(page: Page) -> dict:
    """What the dialog's script reads, asked as it asks (a background request)."""
    return page.evaluate(
        """async () => (await fetch("/accounts/session/", {
             headers: {"X-Background-Poll": "1", "Accept": "application/json"}})).json()"""
    )


def server_session(page: Page) -> SessionStore:
    cookie = next(c for c in page.context.cookies() if c["name"] == "sessionid")
    return SessionStore(session_key=cookie["value"])


def assert_no_patient_data(page: Page, case) -> None:
    text = page.content().lower()
    for shown in (case.patient.family_name, case.patient.given_name, case.patient.nhs_number):
        assert shown.lower() not in text, f"{shown} is still on screen"


@pytest.fixture
def listed_case(team):
    meeting = MeetingFactory(team=team)
    return CaseFactory(
        meeting=meeting, patient__given_name="Winifred", patient__family_name="Pollard"
    )


def test_the_warning_offers_to_stay_signed_in_and_a_screen_left_alone_signs_out(
    page: Page, coordinator, listed_case, settings
):
    settings.SESSION_IDLE_TIMEOUT = timedelta(seconds=8)
    settings.SESSION_WARNING_BEFORE = timedelta(seconds=5)
    meeting_url = f"/meetings/{listed_case.meeting.public_id}/"
    log_in(page, coordinator)
    page.goto(meeting_url)
    expect(listed_names(page)).to_have_text([listed_case.patient.full_name])

    # The warning comes before the timeout, with focus on its main action.
    warning = page.get_by_role("dialog", name="You're about to be signed out")
    stay = warning.get_by_role("button", name="Stay signed in")
    expect(warning).to_be_visible(timeout=8_000)
    expect(stay).to_be_focused()
    expect(warning).to_contain_text(re.compile(r"we will sign you out in [1-5] seconds?\."))
    expect(warning.get_by_role("button", name="Sign out")).to_be_visible()
    check_accessibility(page, "with the session timeout warning open")

    # "Stay signed in" keeps the session and closes the warning.
    stay.click()
    expect(warning).to_be_hidden()
    assert session_status(page)["idle_seconds_left"] > 6
    expect(listed_names(page)).to_have_text([listed_case.patient.full_name])

    # Escape does not just hide the warning: it keeps the session too.
    expect(warning).to_be_visible(timeout=8_000)
    page.keyboard.press("Escape")
    expect(warning).to_be_hidden()
    assert session_status(page)["idle_seconds_left"] > 6

    # Left alone, the page goes to the sign-in page, saying why, with no patient data.
    expect(warning).to_be_visible(timeout=8_000)
    page.wait_for_url(SIGNED_OUT_PAGE, timeout=10_000)
    expect(page.locator(".app-flash")).to_contain_text(
        "You were signed out after 8 seconds without activity."
    )
    assert_no_patient_data(page, listed_case)
    check_accessibility(page, "on the sign-in page after the session timed out")
    page.goto(meeting_url)
    expect(page).to_have_url(SIGNED_OUT_PAGE)  # really signed out


def test_polling_does_not_keep_the_session_and_a_poll_after_it_ends_signs_the_page_out(
    page: Page, coordinator, listed_case
):
    meeting_url = f"/meetings/{listed_case.meeting.public_id}/"
    log_in(page, coordinator)
    page.goto(meeting_url)
    wait_for_htmx(page)
    polls = []
    page.on(
        "request",
        lambda request: (
            polls.append(request.headers.get("x-background-poll"))
            if request.url.endswith(meeting_url) and request.headers.get("hx-request")
            else None
        ),
    )
    last_seen = server_session(page)[LAST_SEEN]

    # A poll like the page's own, but without the marker: session.js adds it.
    page.evaluate(
        """(url) => {
          const poll = document.createElement("div");
          poll.setAttribute("hx-get", url);
          poll.setAttribute("hx-trigger", "every 300ms");
          poll.setAttribute("hx-select", "#case-list");
          poll.setAttribute("hx-target", "#case-list");
          poll.setAttribute("hx-swap", "outerHTML");
          document.querySelector("main").append(poll);
          htmx.process(poll);
        }""",
        meeting_url,
    )
    page.wait_for_timeout(1_500)
    assert len(polls) >= 3 and set(polls) == {"1"}, polls
    assert server_session(page)[LAST_SEEN] == last_seen, "a poll extended the session"

    # The session ends (as if the screen had been left for longer than the idle timeout): the
    # next poll sends the whole page to the sign-in page, not just the fragment it polls.
    session = server_session(page)
    ended = timezone.now() - django_settings.SESSION_IDLE_TIMEOUT - timedelta(seconds=1)
    session[LAST_SEEN] = ended.isoformat()
    session.save()
    page.wait_for_url(SIGNED_OUT_PAGE, timeout=5_000)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Sign in")
    expect(page.locator(".app-flash")).to_contain_text("You were signed out after 15 minutes")
    assert_no_patient_data(page, listed_case)
    assert page.url.endswith(f"?next={meeting_url}")


def test_after_signing_out_elsewhere_a_click_sends_the_whole_page_to_sign_in(
    page: Page, coordinator, listed_case
):
    log_in(page, coordinator)
    page.goto(f"/meetings/{listed_case.meeting.public_id}/")
    wait_for_htmx(page)
    server_session(page).delete()  # signed out on another device, or the session removed

    # The sign-in page htmx is redirected to replaces the whole page, not the case list.
    page.get_by_label("Triage for case 1").select_option(index=1)
    page.wait_for_url(SIGNED_OUT_PAGE, timeout=5_000)
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert_no_patient_data(page, listed_case)
