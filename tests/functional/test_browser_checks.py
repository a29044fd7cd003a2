"""The checks every browser test relies on do catch what they are for: a check that never fails
would let CSP, script and accessibility regressions through silently."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import Role
from mdt.models import Letter, LetterStatus, Meeting
from tests.factories import MeetingFactory, MembershipFactory, UserFactory
from tests.mdt.test_letter_reports import letter as signed_letter

from .browsing import check_accessibility, log_in, wait_for_htmx

pytestmark = pytest.mark.browser


def test_browser_checks_catch_csp_violations_script_errors_htmx_errors_and_axe_violations(
    page: Page, page_problems
):
    page.goto("/accounts/login/")
    wait_for_htmx(page)

    # An inline script without the nonce is blocked and reported.
    page.evaluate(
        """() => {
          const script = document.createElement("script");
          script.textContent = "window.__inlineScriptRan = true";
          document.body.append(script);
        }"""
    )
    page.wait_for_function("() => window.__cspViolations.length > 0")
    assert page.evaluate("window.__inlineScriptRan") is None
    with pytest.raises(AssertionError, match="CSP violations"):
        check_accessibility(page, "after an inline script")

    # An uncaught error and a failed htmx request are reported.
    page.evaluate("() => { setTimeout(() => { throw new Error('deliberate failure'); }); }")
    page.evaluate("() => htmx.ajax('GET', '/no-such-page/', {target: 'main'})")
    page.wait_for_function("() => window.__htmxErrors.length > 0")

    # An image without alternative text is a critical axe violation.
    page.evaluate("() => { window.__cspViolations = []; }")
    page.evaluate(
        """() => {
          const image = document.createElement("img");
          image.src = "/static/vendor/nhsuk-frontend/assets/images/favicon.svg";
          document.querySelector("main").append(image);
        }"""
    )
    with pytest.raises(AssertionError, match="image-alt"):
        check_accessibility(page, "with an image without alternative text")

    page.wait_for_timeout(100)  # let the bindings deliver what the page reported
    assert any("script-src" in violation for violation in page_problems.csp)
    assert page_problems.page_errors == ["deliberate failure"]
    assert any("htmx:responseError" in error for error in page_problems.htmx)
    # Seen and checked: clear them so the page fixture's own check passes.
    page_problems.csp.clear()
    page_problems.page_errors.clear()
    page_problems.htmx.clear()


# -- pages checked here: the letters panel while its progress bar polls, and the turnaround report


def _mark_sent(letter: Letter) -> None:
    now = timezone.now()
    Letter.objects.filter(pk=letter.pk).update(
        status=LetterStatus.SENT,
        pdf="letters/checked.pdf",
        sha256="0" * 64,
        rendered_at=now,
        sent_at=now,
        status_changed_at=now,
    )


def test_the_letters_progress_and_the_turnaround_report_pass_the_checks(
    page: Page, team, coordinator
):
    starts_at = timezone.now() - timedelta(days=1)
    meeting = MeetingFactory(
        team=team, starts_at=starts_at, cutoff_at=starts_at, status=Meeting.Status.CONCLUDED
    )
    signed = timezone.now() - timedelta(hours=1)
    signed_letter(meeting, LetterStatus.SENT, signed=signed, sent=signed + timedelta(minutes=5))
    queued = signed_letter(meeting, LetterStatus.QUEUED, signed=signed)
    signed_letter(meeting, LetterStatus.HELD, signed=signed, told=False)

    # The letters panel of a meeting whose letters are on their way: it polls every 2 seconds.
    log_in(page, coordinator)
    page.goto(f"/meetings/{meeting.public_id}/")
    status = page.locator("#letters-status")
    expect(status).to_have_attribute("hx-trigger", "every 2s")
    expect(page.get_by_label("1 of 3 letters sent")).to_have_attribute("value", "1")
    told_by = page.get_by_label("If these patients have now been told the outcome")
    told_by.fill("Sam Patel, lung CNS")
    check_accessibility(page, "on the letters panel with its progress bar")

    # The letter is sent: the next poll shows it, says so once, and stops polling.
    _mark_sent(queued)
    expect(page.get_by_label("2 of 3 letters sent")).to_have_attribute("value", "2")
    expect(page.locator("#letters-announcement-text")).to_have_text("2 of 3 letters sent.")
    expect(status).not_to_have_attribute("hx-trigger", "every 2s")
    expect(told_by).to_have_value("Sam Patel, lung CNS")  # the poll left the form alone
    check_accessibility(page, "on the letters panel with every letter sent or held")
    page.get_by_role("button", name="Log out").click()

    # The administrators' report of the organisation's meetings.
    administrator = UserFactory(username="administrator")
    MembershipFactory(user=administrator, organisation=team.host, role=Role.ADMIN)
    log_in(page, administrator)
    page.get_by_role("link", name="Letter turnaround").first.click()
    row = page.locator(f"#turnaround-{meeting.public_id}")
    expect(row).to_contain_text("Lung MDT")
    check_accessibility(page, "on the letter turnaround report")
