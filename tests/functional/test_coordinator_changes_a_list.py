"""A coordinator changes a meeting's list in the browser: triage without a reload, removing a
case with a reason, and adding a case after the cut-off with a reason."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from mdt.models import Case
from tests.factories import CaseFactory, MeetingFactory, PatientFactory, synthetic_nhs_number

from .browsing import (
    assert_not_reloaded,
    check_accessibility,
    listed_names,
    log_in,
    mark_page_to_detect_reloads,
    type_nhs_number_and_wait_for_preview,
)

pytestmark = pytest.mark.browser


def test_coordinator_triages_a_case_without_a_reload_and_removes_another_with_a_reason(
    page: Page, team, coordinator
):
    meeting = MeetingFactory(team=team)
    kept = CaseFactory(meeting=meeting, position=1, patient__family_name="Lovelace")
    removed = CaseFactory(meeting=meeting, position=2, patient__family_name="Babbage")
    log_in(page, coordinator)
    page.goto(f"/meetings/{meeting.public_id}/")
    mark_page_to_detect_reloads(page)

    # With JavaScript the triage saves as soon as it is chosen: no Save button.
    triage = page.get_by_label("Triage for case 1")
    expect(page.locator("#case-list").get_by_role("button", name="Save").first).to_be_hidden()
    triage.select_option(label="Standard of care (ratify)")
    expect(page.get_by_label("Triage for case 1")).to_have_value(Case.Triage.STANDARD_OF_CARE)
    check_accessibility(page, "after changing a case's triage")
    assert_not_reloaded(page)
    kept.refresh_from_db()
    assert kept.triage == Case.Triage.STANDARD_OF_CARE

    # Removing a case asks for the reason, which is recorded.
    page.get_by_role("link", name="Remove case 2 from the list").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Remove {removed.patient.full_name} from the list"
    )
    check_accessibility(page, "on the remove-a-case page")
    page.get_by_role("button", name="Remove from the list").click()
    expect(page.locator(".nhsuk-error-summary").get_by_role("link")).to_have_text(
        ["Give the reason for removing this case from the list."]
    )
    check_accessibility(page, "on the remove-a-case page with its error summary")
    page.get_by_label("Reason for removing the case").fill("Listed in error")
    page.get_by_role("button", name="Remove from the list").click()
    expect(page.locator(".app-flash")).to_contain_text("Case removed from the list.")
    expect(listed_names(page)).to_have_text([kept.patient.full_name])
    check_accessibility(page, "on the list after removing a case")
    removed.refresh_from_db()
    assert removed.status == Case.Status.REMOVED
    assert removed.removed_reason == "Listed in error"


def test_coordinator_adds_a_case_after_the_cut_off_only_with_a_reason(
    page: Page, team, coordinator
):
    starts_at = timezone.now() + timedelta(hours=20)
    meeting = MeetingFactory(
        team=team, starts_at=starts_at, cutoff_at=starts_at - timedelta(days=1)
    )
    patient = PatientFactory(nhs_number=synthetic_nhs_number(541))
    log_in(page, coordinator)
    page.goto(f"/meetings/{meeting.public_id}/")
    mark_page_to_detect_reloads(page)

    type_nhs_number_and_wait_for_preview(page, patient.nhs_number)
    page.locator("#id_question").fill("Urgent: plan treatment")
    page.locator("#id_referrer").fill("Dr R Franklin")
    page.get_by_role("button", name="Add to the list").click()
    expect(page.locator("#add-case .nhsuk-error-summary").get_by_role("link")).to_have_text(
        ["The cut-off for this meeting has passed. Give the reason for adding this case late."]
    )
    expect(page.locator("#id_question")).to_have_value("Urgent: plan treatment")
    check_accessibility(page, "with the error for a late case without a reason")
    assert meeting.cases.count() == 0

    page.get_by_label("Reason for adding after the cut-off").fill("Scan reported today")
    page.get_by_role("button", name="Add to the list").click()
    expect(page.locator("#add-case [role=status]")).to_contain_text("was added to the list.")
    row = page.locator("#case-list tbody tr")
    expect(row).to_contain_text("Added late")
    expect(row).to_contain_text("Scan reported today")
    assert_not_reloaded(page)
    check_accessibility(page, "after adding a case late")
    assert meeting.cases.get().late_reason == "Scan reported today"
