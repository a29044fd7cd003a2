"""A coordinator schedules a meeting and builds its case list in the browser: adding patients by
NHS number with a preview, correcting a mistyped number, reordering with htmx, closing the list."""

import re
from datetime import date, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import Role
from mdt.models import Case, Meeting
from tests.factories import (
    CaseFactory,
    MeetingFactory,
    PatientFactory,
    TeamFactory,
    make_member,
    synthetic_nhs_number,
)

from .browsing import (
    assert_not_reloaded,
    check_accessibility,
    listed_names,
    log_in,
    mark_page_to_detect_reloads,
    spaced,
    type_nhs_number_and_wait_for_preview,
    wait_for_htmx,
)

pytestmark = pytest.mark.browser


def with_wrong_check_digit(nhs: str) -> str:
    return nhs[:9] + str((int(nhs[9]) + 1) % 10)


@pytest.fixture
def patients():
    return [
        PatientFactory(
            nhs_number=synthetic_nhs_number(501),
            given_name="Grace",
            family_name="Hopper",
            birth_date=date(1946, 3, 9),
        ),
        PatientFactory(
            nhs_number=synthetic_nhs_number(502),
            given_name="Alan",
            family_name="Turing",
            birth_date=date(1952, 6, 23),
        ),
        PatientFactory(
            nhs_number=synthetic_nhs_number(503),
            given_name="Mary",
            family_name="Somerville",
            birth_date=date(1950, 12, 26),
        ),
    ]


def add_patient(page: Page, patient, question: str, referrer: str) -> None:
    type_nhs_number_and_wait_for_preview(page, spaced(patient.nhs_number))
    preview = page.get_by_test_id("patient-preview")
    expect(preview).to_contain_text(patient.full_name)
    expect(preview).to_contain_text(f"Born {patient.birth_date.day} {patient.birth_date:%B %Y}")
    check_accessibility(page, f"with the preview of {patient.full_name}")
    page.locator("#id_question").fill(question)
    page.locator("#id_referrer").fill(referrer)
    page.get_by_role("button", name="Add to the list").click()
    expect(page.locator("#add-case [role=status]")).to_contain_text(
        f"{patient.full_name} (NHS {spaced(patient.nhs_number)}) was added to the list."
    )
    check_accessibility(page, f"after adding {patient.full_name}")


def test_coordinator_builds_a_list_with_a_corrected_nhs_number(
    page: Page, team, coordinator, patients
):
    hopper, turing, somerville = patients
    log_in(page, coordinator)
    check_accessibility(page, "on the dashboard")

    # Schedule a meeting on the Meetings page.
    page.get_by_role("navigation").get_by_role("link", name="Meetings").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Meetings")
    check_accessibility(page, "on the Meetings page")
    meeting_day = timezone.localdate() + timedelta(days=14)
    page.locator("#id_team").select_option(label="Lung MDT")
    page.locator("#id_date").fill(meeting_day.isoformat())
    page.locator("#id_time").fill("09:30")
    page.locator("#id_cutoff_days").fill("2")
    page.locator("#id_weeks").fill("1")
    page.get_by_role("button", name="Schedule").click()
    expect(page.locator(".app-flash")).to_contain_text("Meeting scheduled.")
    meeting = Meeting.objects.get(team=team)
    assert timezone.localtime(meeting.starts_at).date() == meeting_day
    assert timezone.localtime(meeting.cutoff_at).date() == meeting_day - timedelta(days=2)

    # Open it from the list of upcoming meetings.
    page.get_by_role("navigation").get_by_role("link", name="Meetings").click()
    upcoming = page.get_by_role("table", name="Upcoming meetings")
    upcoming.get_by_role("link", name="Lung MDT").click()
    heading = f"Lung MDT, {meeting_day.day} {meeting_day:%B %Y}, 09:30"
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    expect(page.locator("#case-list")).to_contain_text("No cases are listed for this meeting yet.")
    check_accessibility(page, "on the new meeting's page")
    mark_page_to_detect_reloads(page)

    # The first NHS number is mistyped: the preview says so at once...
    mistyped = spaced(with_wrong_check_digit(hopper.nhs_number))
    type_nhs_number_and_wait_for_preview(page, mistyped)
    expect(page.get_by_test_id("patient-preview-error")).to_contain_text(
        "the last digit does not match"
    )
    expect(page.get_by_test_id("patient-preview")).to_have_count(0)
    check_accessibility(page, "with the preview's error for a mistyped NHS number")

    # ...and adding it anyway shows the error in the swapped form, keeping what was typed.
    page.locator("#id_question").fill("Confirm stage and plan treatment")
    page.locator("#id_referrer").fill("Dr R Franklin")
    page.get_by_role("button", name="Add to the list").click()
    summary = page.locator("#add-case .nhsuk-error-summary")
    expect(summary).to_contain_text("There is a problem")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("link")).to_have_text(
        [
            "This is not a valid NHS number: the last digit does not match. "
            "Check the number for a mistyped digit."
        ]
    )
    expect(page.locator("#id_nhs_number")).to_have_value(mistyped)
    expect(page.locator("#id_nhs_number-error")).to_contain_text("the last digit does not match")
    expect(page.locator("#id_nhs_number")).to_have_accessible_description(
        re.compile("the last digit does not match")
    )
    expect(page.locator("#id_question")).to_have_value("Confirm stage and plan treatment")
    expect(page.locator("#id_referrer")).to_have_value("Dr R Franklin")
    assert Case.objects.count() == 0
    assert_not_reloaded(page)
    check_accessibility(page, "with the add form's error summary for a mistyped NHS number")

    # The error summary links to the field with the mistake.
    summary.get_by_role("link").click()
    expect(page.locator("#id_nhs_number")).to_be_focused()

    # Corrected, the preview shows who it is before the patient is added.
    add_patient(page, hopper, "Confirm stage and plan treatment", "Dr R Franklin")
    expect(page.locator("#id_nhs_number")).to_have_value("")
    expect(page.locator("#id_nhs_number")).to_be_focused()
    expect(page.locator("#id_question")).to_have_value("")
    expect(listed_names(page)).to_have_text([hopper.full_name])
    add_patient(page, turing, "Suitable for surgery?", "Dr J Snow")
    add_patient(page, somerville, "Review biopsy result", "Dr E Anderson")
    expect(listed_names(page)).to_have_text(
        [hopper.full_name, turing.full_name, somerville.full_name]
    )
    expect(page.get_by_role("heading", name="Case list")).to_contain_text("(3)")
    assert_not_reloaded(page)

    # Reorder with the Up and Down buttons, without reloading the page; a keyboard user keeps
    # focus on the button of the case they moved.
    page.get_by_role("button", name="move case 1 down").focus()
    page.keyboard.press("Enter")
    expect(listed_names(page)).to_have_text(
        [turing.full_name, hopper.full_name, somerville.full_name]
    )
    expect(page.get_by_role("button", name="move case 2 down")).to_be_focused()
    check_accessibility(page, "after moving a case down")
    page.get_by_role("button", name="move case 3 up").click()
    expect(listed_names(page)).to_have_text(
        [turing.full_name, somerville.full_name, hopper.full_name]
    )
    check_accessibility(page, "after moving a case up")
    expect(page.get_by_role("button", name="move case 1 up")).to_be_disabled()
    expect(page.get_by_role("button", name="move case 3 down")).to_be_disabled()
    assert_not_reloaded(page)

    # Close the list: it keeps its order and can no longer be changed.
    page.get_by_role("button", name="Close the list").click()
    expect(page.locator(".app-flash")).to_contain_text("The list is closed.")
    expect(listed_names(page)).to_have_text(
        [turing.full_name, somerville.full_name, hopper.full_name]
    )
    expect(page.locator("#add-case")).to_have_count(0)
    expect(page.get_by_role("button", name="move case 1 down")).to_have_count(0)
    expect(page.get_by_role("button", name="Close the list")).to_have_count(0)
    check_accessibility(page, "on the closed list")
    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.LIST_CLOSED
    assert meeting.list_closed_by == coordinator
    assert [case.patient for case in meeting.cases.listed().order_by("position")] == [
        turing,
        somerville,
        hopper,
    ]


def test_double_clicked_add_to_the_list_adds_the_patient_once(page: Page, team, coordinator):
    meeting = MeetingFactory(team=team)
    patient = PatientFactory(nhs_number=synthetic_nhs_number(511))
    log_in(page, coordinator)
    page.goto(f"/meetings/{meeting.public_id}/")
    type_nhs_number_and_wait_for_preview(page, patient.nhs_number)
    page.locator("#id_question").fill("Confirm stage and plan treatment")
    page.locator("#id_referrer").fill("Dr R Franklin")
    sent_form = page.locator("#add-case form").evaluate(
        "form => Object.fromEntries(new FormData(form))"
    )

    page.get_by_role("button", name="Add to the list").dblclick()
    expect(page.locator("#add-case [role=status]")).to_contain_text("was added to the list.")
    wait_for_htmx(page)
    expect(listed_names(page)).to_have_text([patient.full_name])
    assert meeting.cases.count() == 1

    # The same form sent again (a retried request, or a click the browser did not stop) is
    # recognised by its submission id and changes nothing.
    resent = page.request.post(
        f"/meetings/{meeting.public_id}/cases/", form=sent_form, headers={"HX-Request": "true"}
    )
    assert resent.status == 200
    assert meeting.cases.count() == 1
    page.reload()
    expect(listed_names(page)).to_have_text([patient.full_name])
    check_accessibility(page, "on the list after a double-clicked add")


def test_another_teams_user_gets_page_not_found_for_the_meeting(page: Page, team):
    meeting = MeetingFactory(team=team)
    case = CaseFactory(
        meeting=meeting,
        patient=PatientFactory(
            nhs_number=synthetic_nhs_number(521), given_name="Rosalind", family_name="Franklin"
        ),
    )
    other_team = TeamFactory(name="Breast MDT")
    outsider = make_member(other_team, role=Role.COORDINATOR, username="outsider")
    log_in(page, outsider)

    response = page.goto(f"/meetings/{meeting.public_id}/")
    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    body = page.locator("body")
    expect(body).not_to_contain_text("FRANKLIN")
    expect(body).not_to_contain_text("Rosalind")
    expect(body).not_to_contain_text(spaced(case.patient.nhs_number))
    expect(body).not_to_contain_text("Lung MDT")
    check_accessibility(page, "on the page-not-found page")

    # The htmx endpoints of the meeting are just as closed to them.
    csrf_token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    preview = page.request.post(
        f"/meetings/{meeting.public_id}/preview/",
        form={"nhs_number": case.patient.nhs_number},
        headers={"X-CSRFToken": csrf_token, "HX-Request": "true"},
    )
    assert preview.status == 404
    assert "Franklin" not in preview.text() and "FRANKLIN" not in preview.text()


def test_coordinator_is_told_what_is_wrong_with_an_nhs_number_or_an_empty_form(
    page: Page, team, coordinator
):
    meeting = MeetingFactory(team=team)
    log_in(page, coordinator)
    page.goto(f"/meetings/{meeting.public_id}/")
    check_accessibility(page, "on the meeting's page")
    mark_page_to_detect_reloads(page)
    preview_error = page.get_by_test_id("patient-preview-error")

    for typed, explanation in [
        ("999 123", "An NHS number is 10 digits; you entered 6."),
        ("999 12A 4567", "An NHS number can only contain numbers, spaces and dashes."),
        (
            spaced(synthetic_nhs_number(531)),
            "The region's patient index does not know this NHS number either",
        ),
    ]:
        type_nhs_number_and_wait_for_preview(page, typed)
        expect(preview_error).to_contain_text(explanation)
        check_accessibility(page, f"with the preview's error for {typed!r}")

    page.locator("#id_nhs_number").fill("")
    page.get_by_role("button", name="Add to the list").click()
    summary = page.locator("#add-case .nhsuk-error-summary")
    expect(summary.get_by_role("link")).to_have_text(
        [
            "Enter the patient's NHS number.",
            "Enter the question for the MDT.",
            "Enter the referring clinician.",
        ]
    )
    expect(page.locator("#id_question-error")).to_contain_text("Enter the question for the MDT.")
    expect(page.locator("#id_referrer-error")).to_contain_text("Enter the referring clinician.")
    assert_not_reloaded(page)
    check_accessibility(page, "with the add form's error summary for an empty form")
    assert meeting.cases.count() == 0
