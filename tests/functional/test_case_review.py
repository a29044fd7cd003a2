"""A radiologist prepares for the meeting in the browser: "my cases" shows the case waiting for
their review, the case page takes the review (saved, refused without a note, then marked done,
without a reload), and the coordinator's meeting page then shows radiology done."""

import pytest
from playwright.sync_api import Page, expect

from accounts.models import Role
from mdt.models import CoreRole, Review
from tests.factories import CaseFactory, MeetingFactory, make_member

from .browsing import (
    assert_not_reloaded,
    check_accessibility,
    log_in,
    mark_page_to_detect_reloads,
    wait_for_htmx,
)

pytestmark = pytest.mark.browser


def test_radiologist_reviews_a_case_and_the_coordinator_sees_it_done(page: Page, team, coordinator):
    meeting = MeetingFactory(team=team)
    case = CaseFactory(meeting=meeting, position=1, patient__family_name="Hodgkin")
    other = CaseFactory(meeting=meeting, position=2, patient__family_name="Crick")
    radiologist = make_member(
        team, role=Role.CLINICIAN, core_role=CoreRole.RADIOLOGIST, username="radiologist"
    )

    log_in(page, radiologist)
    row = page.locator(f"#my-case-{case.public_id}")
    expect(page.locator(".app-my-reviews")).to_contain_text("2 cases need your review")
    expect(row).to_contain_text("Radiology: Your review")
    expect(row).to_contain_text("Pathology: Not done")
    check_accessibility(page, "on the dashboard with my cases")

    row.get_by_role("link", name=case.patient.full_name).click()
    reviews = page.locator("#reviews")
    expect(reviews.get_by_role("heading", level=2)).to_have_text("Reviews before the meeting")
    expect(reviews).to_contain_text("Still needs the radiology and pathology reviews.")
    check_accessibility(page, "on the case page before the review")
    mark_page_to_detect_reloads(page)

    note = page.get_by_label("Your radiology review note")
    note.fill("CT chest: 28 mm spiculated RUL mass")
    reviews.get_by_role("button", name="Save").click()
    expect(reviews.locator("[role=status]")).to_have_text(
        "Information: Radiology review saved, not marked done."
    )
    wait_for_htmx(page)
    assert not Review.objects.get(case=case).is_done

    # Marking done without a note is refused with the NHS error summary.
    page.get_by_label("Your radiology review note").fill("")
    reviews.get_by_role("button", name="Mark review done").click()
    expect(reviews.locator(".nhsuk-error-summary").get_by_role("link")).to_have_text(
        ["Write a short review note before marking the review done."]
    )
    check_accessibility(page, "with the review's error summary")

    page.get_by_label("Your radiology review note").fill(
        "CT chest: 28 mm spiculated RUL mass, no nodal or distant disease"
    )
    reviews.get_by_role("button", name="Mark review done").click()
    expect(reviews.locator("[role=status]")).to_contain_text("Radiology review marked done.")
    expect(reviews.locator("#review-radiologist .nhsuk-tag")).to_have_text("Done")
    expect(reviews).to_contain_text("Still needs the pathology review.")
    expect(reviews.get_by_role("button", name="Mark as not done")).to_be_visible()
    assert_not_reloaded(page)
    check_accessibility(page, "after marking the review done")
    saved = Review.objects.get(case=case)
    assert (saved.reviewer, saved.is_done) == (radiologist, True)

    page.get_by_role("button", name="Log out").click()
    log_in(page, coordinator)
    page.goto(f"/meetings/{meeting.public_id}/")
    expect(page.locator(f"#case-{case.public_id} .app-readiness")).to_have_text("Needs pathology")
    expect(page.locator(f"#case-{other.public_id} .app-readiness")).to_have_text(
        "Needs radiology, pathology"
    )
    check_accessibility(page, "on the meeting page with readiness")
