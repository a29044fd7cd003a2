"""In the browser: a coordinator finds a patient in the cancer registry by a misspelt last name and
adds them to a meeting from the result, without leaving the page; an administrator watches an
import's progress bar turn into its report."""

import re
from datetime import date

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import Role
from mdt.models import Case
from registry.models import ImportRun, QuarantinedRow
from tests.factories import MeetingFactory, MembershipFactory, PatientFactory, UserFactory
from tests.registry.registrations import make_registration

from .browsing import (
    assert_not_reloaded,
    check_accessibility,
    log_in,
    mark_page_to_detect_reloads,
    wait_for_htmx,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def meeting(team):
    return MeetingFactory(team=team)


@pytest.fixture
def registered():
    smith = PatientFactory(family_name="Smith", given_name="John", birth_date=date(1951, 4, 2))
    make_registration(smith, icd10="C34.1", postcode="B15 2TH", diagnosis_date=date(2025, 9, 1))
    restricted = PatientFactory(
        family_name="Smyth", given_name="Ruth", restricted=True, address="", postcode=""
    )
    make_registration(restricted, icd10="C50.9", postcode="QX9 9ZZ")
    make_registration(PatientFactory(family_name="Jones"), icd10="C34.1")
    return smith


def test_coordinator_finds_a_misspelt_name_and_adds_the_patient_to_a_meeting(
    page: Page, team, coordinator, meeting, registered
):
    smith = registered
    log_in(page, coordinator)
    page.get_by_role("navigation").get_by_role("link", name="Cancer registry").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Search the cancer registry")
    check_accessibility(page, "on the registry search page")

    # A search without a purpose is refused; the error summary says why.
    page.locator("#id_name").fill("Smyth")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("alert", name="There is a problem")).to_contain_text(
        "Choose why you are searching the registry."
    )
    check_accessibility(page, "with the search's error summary")

    page.get_by_label("Adding the patient to an MDT list").check()
    page.get_by_role("button", name="Search").click()
    results = page.get_by_test_id("registry-result")
    expect(results).to_have_count(2)
    # The spelling typed first, then the close one; the restricted patient's postcode is hidden.
    expect(results.first.get_by_role("heading")).to_have_text("SMYTH, Ruth")
    expect(results.nth(1).get_by_role("heading")).to_have_text("SMITH, John")
    expect(results.first).to_contain_text("Restricted record")
    expect(results.nth(1)).to_contain_text("B15 2TH")
    expect(page.locator("main")).not_to_contain_text("QX9 9ZZ")
    expect(page.locator("main")).not_to_contain_text("JONES")
    assert "Smyth" not in page.url and "/registry/search/" in page.url
    check_accessibility(page, "with the registry search's results")
    mark_page_to_detect_reloads(page)

    # "Add to a meeting" opens the form in place, for the patient the index knows.
    page.get_by_role("button", name=re.compile(r"^Add to a meeting\W+SMITH, John$")).click()
    slot = page.locator("#add-r2")
    expect(slot.get_by_test_id("patient-preview")).to_contain_text("SMITH, John")
    expect(slot.get_by_test_id("patient-preview")).to_contain_text("Born 2 April 1951")
    expect(page.locator("#id_r2-meeting")).to_be_focused()
    check_accessibility(page, "with the add-to-a-meeting form open")

    # A missing question is explained in place, keeping the choice made.
    meeting_label = f"Lung MDT, {timezone.localtime(meeting.starts_at):%-d %B %Y, %H:%M}"
    page.locator("#id_r2-meeting").select_option(label=meeting_label)
    page.locator("#id_r2-referrer").fill("Dr R Franklin")
    slot.get_by_role("button", name="Add to the list").click()
    summary = slot.locator(".nhsuk-error-summary")
    expect(summary).to_contain_text("Enter the question for the MDT.")
    expect(summary).to_be_focused()
    expect(page.locator("#id_r2-referrer")).to_have_value("Dr R Franklin")
    check_accessibility(page, "with the add form's error summary")
    summary.get_by_role("link").click()
    expect(page.locator("#id_r2-question")).to_be_focused()

    page.locator("#id_r2-question").fill("Registry stage is T2 N1: confirm and plan")
    slot.get_by_role("button", name="Add to the list").click()
    added = slot.get_by_test_id("registry-added")
    expect(added).to_contain_text("SMITH, John (NHS")
    expect(added).to_contain_text(f"was added to the list of {meeting_label}")
    expect(added).to_be_focused()
    check_accessibility(page, "after adding the patient to the meeting")
    assert_not_reloaded(page)

    case = Case.objects.get()
    assert (case.meeting, case.patient, case.added_by) == (meeting, smith, coordinator)
    assert case.question == "Registry stage is T2 N1: confirm and plan"

    added.get_by_role("link").click()
    expect(page.locator("#case-list")).to_contain_text("SMITH, John")


def test_administrator_watches_an_import_turn_from_progress_into_its_report(page: Page):
    administrator = UserFactory(username="registry-admin")
    MembershipFactory(user=administrator, role=Role.ADMIN)
    run = ImportRun.objects.create(
        kind=ImportRun.Kind.TUMOURS,
        file_name="september.csv",
        status=ImportRun.Status.RUNNING,
        bytes_total=2_000_000,
        bytes_read=500_000,
        rows_read=2500,
        requested_by=administrator,
    )
    log_in(page, administrator)
    page.get_by_role("navigation").get_by_role("link", name="Registry imports").click()
    check_accessibility(page, "on the registry imports page")
    page.get_by_role("link", name="september.csv").click()

    progress = page.locator("progress#import-progress")
    expect(progress).to_have_attribute("value", "25")
    expect(page.get_by_text("Read 0.5 of 2.0 MB (2,500 rows)")).to_be_visible()
    check_accessibility(page, "with an import's progress bar")
    mark_page_to_detect_reloads(page)

    # The worker moves on, then finishes: the polled fragment follows without a reload.
    ImportRun.objects.filter(pk=run.pk).update(bytes_read=1_500_000, rows_read=7500)
    expect(progress).to_have_attribute("value", "75")
    QuarantinedRow.objects.create(
        run=run, line=42, reasons=["CR2030: 2999-01-01 is in the future."], values={}
    )
    ImportRun.objects.filter(pk=run.pk).update(
        status=ImportRun.Status.DONE,
        rows_read=10_000,
        rows_created=9_999,
        rows_quarantined=1,
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    expect(page.get_by_role("heading", name="Report")).to_be_visible()
    expect(progress).to_have_count(0)
    expect(page.get_by_test_id("import-counts")).to_contain_text("10,000")
    expect(page.get_by_role("table", name="Rows set aside")).to_contain_text("42")
    expect(page.locator("#import-announcement")).to_contain_text("Import done")
    wait_for_htmx(page)
    check_accessibility(page, "with the import's report")
    assert_not_reloaded(page)
