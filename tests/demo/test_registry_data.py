"""The demo registry: a registration for every diagnosed demo patient, consistent with the trusts'
histories the demo sources serve, and one registry stage that differs from the trust's (flagged
as a conflict on the record: tests/records/test_registry_source.py)."""

import json
from datetime import date

import pytest

from demo.histories import write_demo_histories
from demo.registry_data import seed_demo_registry
from demo.synthetic import synthetic_nhs_number
from mdt.models import TumourSite
from records.tumour_sites import site_from_icd10
from registry.models import Registration, Treatment
from tests.factories import CaseFactory, MeetingFactory, PatientFactory, TeamFactory

pytestmark = pytest.mark.django_db
AS_OF = date(2026, 11, 2)
LISTINGS = [
    (TumourSite.LUNG, "Confirm stage and plan treatment"),
    (TumourSite.LUNG, "Post-operative histology review"),
    (TumourSite.LUNG, "Review PET-CT for staging"),
    (TumourSite.LUNG, "CT shows new 2 cm spiculated nodule: biopsy?"),
    (TumourSite.BREAST, "Post-operative histology: further surgery?"),
    (TumourSite.COLORECTAL, "Liver lesion on CT: refer to HPB?"),
]


@pytest.fixture
def region(tmp_path):
    teams = {site: TeamFactory(tumour_site=site) for site in TumourSite.values}
    patients, cases = [], []
    for n, (site, question) in enumerate(LISTINGS):
        person = PatientFactory(nhs_number=synthetic_nhs_number(800 + n))
        meeting = MeetingFactory(team=teams[site])
        cases.append(CaseFactory(meeting=meeting, patient=person, question=question))
        patients.append(person)
    write_demo_histories(patients, tmp_path, as_of=AS_OF)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    return patients, cases, manifest, tmp_path


def test_every_diagnosed_patient_is_registered_as_the_trusts_recorded_it(region):
    patients, _cases, manifest, _ = region

    count, conflict = seed_demo_registry(patients, as_of=AS_OF)

    diagnosed = [
        p for p in patients if manifest["patients"][p.nhs_number]["pathway"] != "suspected"
    ]
    assert count == len(diagnosed) == len(patients) - 1
    assert conflict is not None
    situations = manifest["situations"]
    assert conflict.nhs_number != (situations["stage_conflict"] or {}).get("nhs_number")
    assert conflict.nhs_number != (situations["not_found"] or {}).get("nhs_number")
    for person in patients:
        facts = manifest["patients"][person.nhs_number]
        registrations = list(Registration.objects.filter(nhs_number=person.nhs_number))
        if facts["pathway"] == "suspected":
            assert registrations == []
            continue
        (registration,) = registrations
        assert registration.patient == person
        assert registration.birth_date == person.birth_date
        assert registration.diagnosis_date.isoformat() == facts["diagnosis"]
        assert site_from_icd10(registration.icd10) == facts["site"]
        assert (registration.tnm_edition, registration.basis) == ("8", "7")
        if person.nhs_number == conflict.nhs_number:
            assert registration.stage_group == conflict.registry_stage
            assert conflict.registry_stage != facts["clinical_stage"] == conflict.trust_stage
        else:
            assert registration.stage_group == facts["clinical_stage"]
        modalities = {(t.modality, t.start_date.isoformat()) for t in registration.treatments.all()}
        if "surgery" in facts:
            assert ("01", facts["surgery"]) in modalities
        if "radiotherapy" in facts:
            assert ("02", facts["radiotherapy"]) in modalities


def test_seeding_the_registry_twice_changes_nothing(region):
    patients, *_ = region
    seed_demo_registry(patients, as_of=AS_OF)
    before = (
        list(Registration.objects.order_by("pk").values()),
        list(Treatment.objects.order_by("pk").values()),
    )

    seed_demo_registry(patients, as_of=AS_OF)

    after = (
        list(Registration.objects.order_by("pk").values()),
        list(Treatment.objects.order_by("pk").values()),
    )
    ignore = {"updated_at"}
    assert [{k: v for k, v in r.items() if k not in ignore} for r in after[0]] == [
        {k: v for k, v in r.items() if k not in ignore} for r in before[0]
    ]
    assert after[1] == before[1]
