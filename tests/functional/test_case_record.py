"""A coordinator adds a patient to a meeting and a real Celery worker gathers their record from the
region's sources (local FHIR servers): the list says the record is being gathered, then the case
page shows the patient banner, each source's status and items badged with their source. "Refresh
all records" on the meeting shows its progress without a reload, counting failed sources; a
source that fails shows its error on the case page while the others still show."""

import re
from datetime import date

import pytest
from playwright.sync_api import Locator, Page, expect

from mdt.models import Case
from mdt.population import request_case_population
from records.models import Patient
from tests.factories import (
    CaseFactory,
    MeetingFactory,
    PatientFactory,
    PracticeFactory,
    synthetic_nhs_number,
)

from .browsing import (
    assert_not_reloaded,
    check_accessibility,
    log_in,
    mark_page_to_detect_reloads,
    spaced,
    type_nhs_number_and_wait_for_preview,
    wait_for_htmx,
)

pytest_plugins = ["tests.functional.celery_worker"]
pytestmark = pytest.mark.browser

# Each answer from a source waits this long (a population is three round trips per source), so
# the list is seen saying "being gathered" and the refresh is seen running.
SOURCE_LATENCY_MS = 400
RECORD_TIMEOUT_S = 20


@pytest.fixture
def practice():
    return PracticeFactory(ods_code="M85011", name="Harborne Medical Practice")


@pytest.fixture
def patients(practice, record_sources):
    # Not in the region's index yet: adding her asks the demographics service.
    franklin = PatientFactory.build(
        nhs_number=synthetic_nhs_number(601),
        given_name="Rosalind",
        family_name="Franklin",
        birth_date=date(1950, 7, 25),
        sex=Patient.Sex.FEMALE,
        gp_practice=practice,
    )
    somerville = PatientFactory(
        nhs_number=synthetic_nhs_number(602),
        given_name="Mary",
        family_name="Somerville",
        birth_date=date(1950, 12, 26),
        gp_practice=practice,
    )
    manifest = record_sources.serve_histories([franklin, somerville])
    # demo.histories makes one patient unknown to a trust with no part in their care; with these
    # two patients it is neither of them, so every source knows both (checked, not assumed).
    assert manifest["situations"]["not_found"] is None, manifest["situations"]
    return franklin, somerville


def case_row(page: Page, patient) -> Locator:
    return page.locator("#case-list tr").filter(
        has=page.get_by_role("link", name=patient.full_name)
    )


def reload_until_text(page: Page, locator: Locator, text: str) -> None:
    """The list is not polled: reloads until the locator shows the text (the worker is done)."""
    for _ in range(RECORD_TIMEOUT_S * 2):
        if locator.count() and locator.inner_text().strip() == text:
            return
        page.wait_for_timeout(500)
        page.reload()
    expect(locator).to_have_text(text)


def described(source) -> str:
    """How the case page names a source: its badge in brackets when that differs."""
    return source.name if source.badge == source.name else f"{source.name} ({source.badge})"


def source_badges(page: Page) -> set[str]:
    return {text.strip() for text in page.locator(".app-source-badge").all_inner_texts()}


def all_sources_rows(page: Page) -> Locator:
    details = page.locator(".app-record-status-card details")
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    return details.locator("li")


WATCH_PROGRESS_SCRIPT = """
() => {
  window.__progressSeen = [];
  const note = () => {
    const bar = document.querySelector("#refresh-progress progress");
    const status = document.querySelector("#refresh-progress p");
    if (bar && status) window.__progressSeen.push(
      {done: Number(bar.value), max: Number(bar.max), text: status.textContent.trim()});
  };
  new MutationObserver(note).observe(document.body, {childList: true, subtree: true});
}
"""


def test_coordinator_adds_a_patient_and_sees_their_record_from_every_source(
    page: Page, team, coordinator, patients, record_sources, celery_worker
):
    franklin, somerville = patients
    rrk, rwp, gp = record_sources["RRK"], record_sources["RWP"], record_sources["GP"]
    record_sources.set_latency(SOURCE_LATENCY_MS)
    meeting = MeetingFactory(team=team)
    listed_earlier = CaseFactory(
        meeting=meeting, patient=somerville, question="Review biopsy result", added_by=coordinator
    )
    request_case_population(listed_earlier)  # the worker gathers her record meanwhile

    # Add a patient the region's index does not know yet: the demographics service does.
    log_in(page, coordinator)
    page.goto(f"/meetings/{meeting.public_id}/")
    type_nhs_number_and_wait_for_preview(page, spaced(franklin.nhs_number))
    expect(page.get_by_test_id("patient-preview")).to_contain_text("FRANKLIN, Rosalind")
    page.locator("#id_question").fill("Confirm stage and plan treatment")
    page.locator("#id_referrer").fill("Dr R Gosling")
    page.get_by_role("button", name="Add to the list").click()
    expect(page.locator("#add-case [role=status]")).to_contain_text(
        f"FRANKLIN, Rosalind (NHS {spaced(franklin.nhs_number)}) was added to the list."
    )
    franklin_status = case_row(page, franklin).locator(".app-record-status")
    expect(franklin_status).to_have_text("Record: being gathered")
    check_accessibility(page, "with a record being gathered")

    # The worker gathers it from every source; the list says so once the page is reloaded.
    reload_until_text(page, franklin_status, "Record: all sources")
    expect(case_row(page, somerville).locator(".app-record-status")).to_have_text(
        "Record: all sources"
    )

    # The case page: the patient banner, every source's status and items from each source.
    case_row(page, franklin).get_by_role("link", name="FRANKLIN, Rosalind").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("FRANKLIN, Rosalind")
    banner = page.get_by_role("region", name="Patient")
    expect(banner).to_contain_text(f"NHS number{spaced(franklin.nhs_number)}")
    expect(banner).to_contain_text("Born25 July 1950")
    expect(banner).to_contain_text("GP practiceHarborne Medical Practice (M85011)")
    status_card = page.locator(".app-record-status-card")
    expect(status_card).to_contain_text("Every source answered.")
    expect(all_sources_rows(page)).to_have_text(
        [
            re.compile(rf"^OK {re.escape(described(source))}, \d+ ms")
            for source in sorted(record_sources.sources, key=lambda s: s.name)
        ]
    )
    assert {rrk.badge, rwp.badge, gp.badge} == {"RRK", "RWP", "GP record"}
    assert {rrk.badge, rwp.badge, gp.badge} <= source_badges(page)
    for badge in (rrk.badge, rwp.badge, gp.badge):
        badged = page.locator(".app-record-table .app-source-badge").filter(
            has_text=re.compile(rf"^{re.escape(badge)}$")
        )
        expect(badged.first).to_be_visible()
    expect(page.get_by_role("button", name="Refresh the record")).to_be_visible()
    check_accessibility(page, "on the case page")

    # One source fails; "Refresh all records" shows the progress without reloading the page.
    rwp.server.fault = "http500"
    page.get_by_role("link", name=re.compile("^Back to Lung MDT")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Lung MDT")
    mark_page_to_detect_reloads(page)
    page.evaluate(WATCH_PROGRESS_SCRIPT)
    page.get_by_role("button", name="Refresh all records").click()
    progress = page.locator("#refresh-progress p")
    expect(progress).to_have_text("Refreshing records: 0 of 2 cases done.")
    expect(progress).to_have_text(
        "Records refreshed: 2 of 2 cases, 2 source answers incomplete.",
        timeout=RECORD_TIMEOUT_S * 1000,
    )
    # Screen readers hear it from a live region that stays in the page while the bar is swapped.
    expect(page.get_by_role("status").filter(has_text="Records refreshed")).to_have_text(
        "Records refreshed: 2 of 2 cases, 2 source answers incomplete."
    )
    # ...and the case list re-reads its record statuses when the refresh is done.
    expect(page.locator("#case-list")).to_contain_text("Record: 1 source incomplete")
    bar = page.locator("#refresh-progress progress")
    expect(bar).to_have_attribute("value", "2")
    expect(bar).to_have_attribute("max", "2")
    seen = page.evaluate("window.__progressSeen")
    counted = [state["done"] for state in seen]
    assert counted[0] == 0 and counted[-1] == 2, seen
    assert counted == sorted(counted), f"the progress went backwards: {seen}"
    assert all(state["max"] == 2 for state in seen), seen
    assert_not_reloaded(page)
    check_accessibility(page, "after the refresh's progress was swapped in")
    wait_for_htmx(page)
    assert page.locator("#refresh-progress").get_attribute("hx-trigger") is None, (
        "the progress should stop polling once every case is done"
    )

    # The failed source shows its error on the case; the other sources' items still show.
    page.reload()
    expect(case_row(page, franklin).locator(".app-record-status")).to_have_text(
        "Record: 1 source incomplete"
    )
    case_row(page, franklin).get_by_role("link", name="FRANKLIN, Rosalind").click()
    problems = page.locator(".app-source-problems li")
    expect(problems).to_have_count(1)
    expect(problems).to_contain_text(f"Error {rwp.name}: ")
    expect(problems.locator(".nhsuk-tag")).to_have_text("Error")
    expect(page.locator(".app-record-status-card")).not_to_contain_text("Every source answered.")
    expect(all_sources_rows(page).filter(has_text=rwp.name)).to_contain_text("Error")
    for source in (rrk, gp):
        expect(all_sources_rows(page).filter(has_text=source.name)).to_contain_text(
            re.compile(rf"^OK {re.escape(source.name)}")
        )
    badges = source_badges(page)
    assert {rrk.badge, gp.badge} <= badges and rwp.badge not in badges, badges
    check_accessibility(page, "on the case page with a failed source")

    case = Case.objects.get(meeting=meeting, patient__nhs_number=franklin.nhs_number)
    assert case.snapshot.per_source_status[rwp.name]["status"] == "error"
    assert case.added_by == coordinator
    celery_worker.assert_no_errors()
