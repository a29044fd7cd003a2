"""The cancer registry on the case page (issue 4): a clinician opens a case whose record was
gathered from the trusts' FHIR servers and the registry, and sees the registry's items badged
"Cancer registry" beside the trusts' and, where the registry's final pretreatment stage differs
from the trust's clinical stage, the warning that the sources disagree, with both stages marked.

The record is gathered in the test's own process (mdt.population.populate_cases, what the Celery
task calls) before the page is opened; tests/functional/test_case_record.py covers the worker."""

import re
from datetime import date

import pytest
from playwright.sync_api import Page, expect

from accounts.models import Organisation
from demo.registry_data import seed_demo_registry
from mdt.models import TumourSite
from mdt.population import populate_cases
from records.models import Source
from registry.models import Registration
from tests.factories import (
    CaseFactory,
    MeetingFactory,
    OrganisationFactory,
    PatientFactory,
    TeamFactory,
)

from .browsing import check_accessibility, log_in

pytest_plugins = ["tests.functional.celery_worker"]  # the record_sources fixture
pytestmark = pytest.mark.browser

REGISTRY = "Cancer registry"
# A valid UICC 8th edition breast stage that is not the trust's (see registry_stage).
OTHER_BREAST_STAGES = {
    "IA": ("cT1c", "cN0", "cM0", "IA"),
    "IIA": ("cT2", "cN0", "cM0", "IIA"),
}


@pytest.fixture
def team():
    """The coordinator's team (the `coordinator` fixture is a member): a breast MDT, so the demo
    histories give the patient one trust's clinical stage and no other conflict."""
    return TeamFactory(
        name="Breast MDT", tumour_site=TumourSite.BREAST, host=OrganisationFactory(name="Hosts")
    )


def registry_stage(trust_stage: str) -> tuple[str, str, str, str]:
    return OTHER_BREAST_STAGES["IA" if trust_stage != "IA" else "IIA"]


def test_the_case_page_shows_registry_items_badged_and_its_stage_conflict(
    page: Page, team, coordinator, record_sources
):
    person = PatientFactory(given_name="Dorothy", family_name="Hodgkin")
    case = CaseFactory(
        meeting=MeetingFactory(team=team),
        patient=person,
        question="Confirm diagnosis and plan surgery",
        added_by=coordinator,
    )
    manifest = record_sources.serve_histories([person])
    facts = manifest["patients"][person.nhs_number]
    assert (facts["site"], facts["pathway"]) == ("breast", "staged"), facts
    registry = Source.objects.create(
        name=REGISTRY,
        kind=Source.Kind.REGISTRY,
        organisation=OrganisationFactory(
            ods_code="NDRS",
            name="National Disease Registration Service",
            kind=Organisation.Kind.REGISTRY,
        ),
    )
    # The registry as the demo seeds it, but with a stage the trust does not give.
    seed_demo_registry([person], as_of=date.fromisoformat(manifest["as_of"]))
    t, n, m, group = registry_stage(facts["clinical_stage"])
    Registration.objects.filter(nhs_number=person.nhs_number).update(
        t=t, n=n, m=m, stage_group=group
    )

    assert populate_cases([case.pk], reason="test") == 1

    log_in(page, coordinator)
    page.goto(f"/cases/{case.public_id}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("HODGKIN, Dorothy")
    expect(page.locator(".app-record-status-card")).to_contain_text("Every source answered.")
    details = page.locator(".app-record-status-card details")
    details.locator("summary").click()
    expect(details.locator("li").filter(has_text=REGISTRY)).to_contain_text(
        re.compile(rf"^OK {REGISTRY}, \d+ ms, 1 resources")
    )
    assert registry.badge == REGISTRY

    # The registry's items, badged, beside the trust's (RWP diagnosed and staged her).
    staging = page.locator(".app-record-table").first
    registry_rows = staging.locator("tr").filter(
        has=page.locator(".app-source-badge", has_text=re.compile(rf"^{REGISTRY}$"))
    )
    expect(registry_rows.filter(has_text="Malignant neoplasm")).to_have_count(1)
    expect(registry_rows.filter(has_text=f"Clinical stage {group}")).to_have_count(1)
    expect(registry_rows.filter(has_text="WHO performance status")).to_have_count(1)
    trust_rows = staging.locator("tr").filter(
        has=page.locator(".app-source-badge", has_text=re.compile(r"^RWP$"))
    )
    expect(trust_rows.filter(has_text=f"Clinical stage {facts['clinical_stage']}")).to_have_count(1)

    # The disagreement is called out and both stages are marked, never settled.
    callout = page.locator(".app-conflicts")
    expect(callout).to_contain_text("The sources disagree")
    # The registry's stage is dated by the diagnosis, before the trust's staging: it comes first.
    expect(callout).to_contain_text(
        re.compile(
            rf"clinical stage group of the breast cancer: {group} \({REGISTRY}, [^)]+\); "
            rf"{facts['clinical_stage']} \(RWP, [^)]+\)\."
        )
    )
    marked = page.locator("tr.app-conflict")
    expect(marked).to_have_count(2)
    expect(marked.filter(has_text=REGISTRY)).to_contain_text("Sources disagree")
    expect(marked.filter(has_text="RWP")).to_contain_text("Sources disagree")
    check_accessibility(page, "on a case page with registry items and a stage conflict")
