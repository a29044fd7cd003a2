"""The live meeting in two browsers: the chair starts the meeting, records and signs an outcome on
the console and moves to the next case; an attendee's follower page, opened before the meeting
started, keeps up by itself within 2 seconds without reloading, and says so to screen readers."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import Role
from mdt.models import Case, CoreRole, Outcome
from tests.factories import CaseFactory, MeetingFactory, SnapshotFactory, make_member

from .browsing import (
    assert_not_reloaded,
    check_accessibility,
    log_in,
    mark_page_to_detect_reloads,
)
from .conftest import WATCH_PAGE_SCRIPT

pytestmark = pytest.mark.browser
FOLLOW_WITHIN_MS = 2_000


@pytest.fixture
def attendee_page(browser, base_url, page_problems):
    """A second browser (its own cookies: another person at another screen), watched for the
    same problems as ``page``; the ``page`` fixture reports them for both at the end."""
    context = browser.new_context(base_url=base_url, locale="en-GB", timezone_id="Europe/London")
    context.set_default_timeout(10_000)
    other = context.new_page()
    other.expose_function("__reportProblem", page_problems.record)
    other.add_init_script(WATCH_PAGE_SCRIPT)
    other.on("console", page_problems.on_console)
    other.on("pageerror", lambda error: page_problems.page_errors.append(str(error)))
    other.on("response", page_problems.on_response)
    yield other
    context.close()


@pytest.fixture
def meeting(team):
    meeting = MeetingFactory(team=team, starts_at=timezone.now() + timedelta(minutes=5))
    for position, (given, family) in enumerate([("Grace", "Hopper"), ("Alan", "Turing")], start=1):
        case = CaseFactory(
            meeting=meeting,
            position=position,
            patient__given_name=given,
            patient__family_name=family,
            question=f"Confirm stage and plan treatment ({family})",
        )
        case.snapshot = SnapshotFactory(patient=case.patient)
        case.save()
    return meeting


def test_followers_keep_up_with_the_chair_without_reloading(
    page: Page, attendee_page: Page, team, meeting
):
    chair = make_member(team, role=Role.CHAIR, core_role=CoreRole.CHAIR, username="chair")
    attendee = make_member(
        team, role=Role.CLINICIAN, core_role=CoreRole.SURGEON, username="surgeon"
    )
    first, second = meeting.cases.order_by("position")

    # The attendee opens the follower page before the meeting starts, and checks in.
    log_in(attendee_page, attendee)
    attendee_page.goto(f"/meetings/{meeting.public_id}/live/")
    expect(attendee_page.locator("#live-state")).to_contain_text("The meeting has not started")
    attendee_page.get_by_role("button", name="I'm here").click()
    expect(attendee_page.locator(".app-check-in")).to_contain_text("You are recorded as present")
    check_accessibility(attendee_page, "on the follower page before the meeting")
    mark_page_to_detect_reloads(attendee_page)

    # The chair starts the meeting: the console opens on the first case.
    log_in(page, chair)
    page.goto(f"/meetings/{meeting.public_id}/")
    page.get_by_role("button", name="Start the meeting").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("chair's console")
    expect(page.locator(".app-live-banner")).to_contain_text("HOPPER, Grace")
    expect(page.locator("#console-status")).to_contain_text("Not quorate")
    check_accessibility(page, "on the chair's console")

    started = time.monotonic()
    expect(attendee_page.locator("#live-state .app-live-banner")).to_contain_text(
        "HOPPER, Grace", timeout=FOLLOW_WITHIN_MS
    )
    assert time.monotonic() - started < FOLLOW_WITHIN_MS / 1000

    # The chair records the outcome and signs it; the follower sees it signed.
    form = page.locator("#outcome-form")
    form.get_by_label("Outcome", exact=True).select_option(label="Treatment plan agreed")
    form.get_by_label("Agreed diagnosis").fill("Adenocarcinoma of the right upper lobe")
    form.get_by_label("ICD-10 code").fill("C34.1")
    form.get_by_label("Curative", exact=True).check()
    form.get_by_label("Surgery", exact=True).check()
    form.get_by_label("The plan").fill("Right upper lobectomy with node dissection.")
    form.get_by_label("Action 1", exact=True).fill("Book pre-operative assessment")
    form.get_by_label("Owner of action 1").fill("Lung CNS")
    form.get_by_role("button", name="Sign the outcome").click()
    expect(page.locator(".app-flash")).to_contain_text("The outcome is signed.")
    expect(page.locator("#outcome")).to_contain_text("Right upper lobectomy with node dissection.")
    expect(page.locator("#outcome-form")).to_have_count(0)
    check_accessibility(page, "on the console after signing")
    expect(attendee_page.locator("#live-state .app-live-outcome")).to_contain_text(
        "Signed", timeout=FOLLOW_WITHIN_MS
    )
    expect(attendee_page.locator("#live-state")).to_contain_text("Right upper lobectomy")

    # The chair moves on; the follower shows the next case by itself and announces it.
    page.get_by_role("button", name="Next case").click()
    expect(page.locator(".app-live-banner")).to_contain_text("TURING, Alan")
    started = time.monotonic()
    expect(attendee_page.locator("#live-state .app-live-banner")).to_contain_text(
        "TURING, Alan", timeout=FOLLOW_WITHIN_MS
    )
    assert time.monotonic() - started < FOLLOW_WITHIN_MS / 1000
    expect(attendee_page.locator("#live-announcement")).to_contain_text("Now showing case 2")
    expect(attendee_page.locator("#live-state")).not_to_contain_text("HOPPER")
    assert_not_reloaded(attendee_page)
    check_accessibility(attendee_page, "on the follower page after the case changed")

    # The shared screen's presentation mode.
    attendee_page.goto(f"/meetings/{meeting.public_id}/live/?present=1")
    expect(attendee_page.locator("#live-state .app-live-banner")).to_contain_text("TURING, Alan")
    check_accessibility(attendee_page, "on the follower page in presentation mode")

    signed = Outcome.objects.get(case=first)
    assert signed.is_signed and signed.signed_by == chair
    assert signed.snapshot_id == first.snapshot_id
    assert Case.objects.get(pk=first.pk).status == Case.Status.DISCUSSED
    assert Case.objects.get(pk=second.pk).status == Case.Status.LISTED
