"""The cancer registry as a record source (issue 4): an internal source whose adapter
(registry.source, found through settings.RECORD_SOURCE_ADAPTERS) reads registrations from the
database on the calling thread while the FHIR sources are asked over HTTP; its items are badged
"Cancer registry" and merged with theirs, so a registry stage that differs from a trust's
clinical stage is flagged; no registration is `not_found`; another birth date or NHS number is
`identity_mismatch` with nothing shown; the postcode is never stored in a snapshot."""

import json
from datetime import date
from io import StringIO

import pytest
from django.core.management import call_command

from accounts.models import Organisation
from demo.histories import write_demo_histories
from demo.registry_data import seed_demo_registry
from demo.synthetic import synthetic_nhs_number
from mdt.models import Case, TumourSite
from mdt.population import populate_cases
from records.federation import SourceConfig
from records.internal_sources import InternalAnswer
from records.models import Source, SourceResult
from records.populate import PatientJob, populate_patients, sources_to_ask, summarise_now
from registry.models import Registration, Treatment
from registry.source import answer_for_patients
from tests.factories import (
    CaseFactory,
    MeetingFactory,
    OrganisationFactory,
    PatientFactory,
    TeamFactory,
    make_member,
)

from .conftest import (
    BORN,
    chart,
    condition,
    patient,
    pds_patient,
    populate_one,
    restricted_meta,
    results,
    titles_by_source,
)

pytestmark = pytest.mark.django_db
Status = SourceResult.Status
REGISTRY = "Cancer registry"
LOINC = "http://loinc.org"
DIAGNOSED = date(2025, 3, 1)
REGISTRY_POSTCODE = "WV10 9QZ"


@pytest.fixture
def registry_source():
    organisation = OrganisationFactory(
        ods_code="NDRS",
        name="National Disease Registration Service",
        kind=Organisation.Kind.REGISTRY,
    )
    return Source.objects.create(
        name=REGISTRY, kind=Source.Kind.REGISTRY, organisation=organisation
    )


def register(person, **values) -> Registration:
    """A registration of a right upper lobe adenocarcinoma, cT2a cN1 cM0 (IIB), for the person."""
    fields = {
        "patient": person,
        "submitting_org": "RRK",
        "local_tumour_id": f"T-{person.nhs_number}-{Registration.objects.count() + 1}",
        "submission_date": date(2025, 4, 1),
        "nhs_number": person.nhs_number,
        "family_name": person.family_name,
        "given_name": person.given_name,
        "birth_date": person.birth_date,
        "sex": "2",
        "postcode": REGISTRY_POSTCODE,
        "gp_practice": "M85011",
        "diagnosis_date": DIAGNOSED,
        "icd10": "C34.1",
        "laterality": "R",
        "basis": "7",
        "morphology": "8140/3",
        "grade": "G2",
        "t": "cT2a",
        "n": "cN1",
        "m": "cM0",
        "stage_group": "IIB",
        "tnm_edition": "8",
        "performance_status": "1",
    }
    return Registration.objects.create(**(fields | values))


def stage_group(oid: str, pid: str, group: str, day: str = "2025-03-07") -> dict:
    """A trust's clinical stage group Observation (LOINC 21908-9), UICC TNM 8th edition."""
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "21908-9"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": day,
        "valueCodeableConcept": {"text": group},
        "method": {"text": "UICC TNM 8th edition"},
    }


def lung_cancer(cid: str, pid: str) -> dict:
    return condition(
        cid,
        pid,
        {"system": "http://hl7.org/fhir/sid/icd-10", "code": "C34.1"},
        onset=DIAGNOSED.isoformat(),
        bodySite=[{"text": "right upper lobe"}],
    )


@pytest.fixture
def trust(serve, make_source, ada):
    """A trust whose clinical stage for ada's lung cancer is IIIA."""
    server = serve(
        [
            chart(
                patient("rrk-1", ada.nhs_number),
                lung_cancer("dx-1", "rrk-1"),
                stage_group("st-1", "rrk-1", "IIIA"),
            )
        ]
    )
    return make_source(server, "UHB EPR", organisation=OrganisationFactory(ods_code="RRK"))


def items_from(snapshot, source: str) -> list[dict]:
    return [
        item
        for item in snapshot.summary["record"]["timeline"]
        if source in [origin["source"] for origin in item["sources"]]
    ]


# -- the plug-in -------------------------------------------------------------------------------


def test_sources_to_ask_include_enabled_registry_sources(registry_source, trust):
    disabled = Source.objects.create(name="Old registry", kind=Source.Kind.REGISTRY, enabled=False)

    asked = sources_to_ask()

    assert registry_source in asked and trust in asked and disabled not in asked
    assert registry_source.badge == REGISTRY  # its name, not its organisation's code (NDRS)
    assert trust.badge == "RRK"


def test_registry_items_are_badged_and_merged_with_a_fhir_source_and_the_stage_conflict_flagged(
    ada, trust, registry_source, demographics
):
    demographics(pds_patient(ada.nhs_number))
    registration = register(ada)
    Treatment.objects.create(
        registration=registration, modality="01", start_date=date(2025, 4, 8), provider="RWP"
    )
    Treatment.objects.create(
        registration=registration, modality="03", start_date=date(2025, 5, 20), provider="RL4"
    )

    snapshot = populate_one(ada)

    stored = results(snapshot)
    assert {name: r.status for name, r in stored.items()} == {
        "UHB EPR": Status.OK,
        REGISTRY: Status.OK,
    }
    status = snapshot.per_source_status[REGISTRY]
    assert status["badge"] == REGISTRY
    assert status["counts"]["resources"] == 3  # the registration and its two treatments
    assert titles_by_source(snapshot)[REGISTRY] == {
        "Malignant neoplasm: Upper lobe, bronchus or lung (C34.1), right",
        "Clinical stage IIB (T2a N1 M0)",
        "WHO performance status 1",
        "Surgery (RWP)",
        "Chemotherapy (RL4)",
    }
    by_kind = {item["kind"]: item for item in items_from(snapshot, REGISTRY)}
    assert set(by_kind) == {"diagnosis", "stage", "performance_status", "surgery", "sact"}
    diagnosis = by_kind["diagnosis"]
    assert diagnosis["date"] == "2025-03-01"
    assert {"system": "http://hl7.org/fhir/sid/icd-10", "code": "C34.1"}.items() <= (
        diagnosis["codes"][0].items()
    )
    assert diagnosis["details"]["role"] == "primary"
    assert diagnosis["details"]["site_group"] == "lung"
    assert diagnosis["details"]["laterality"] == "right"
    assert diagnosis["details"]["conclusion"] == (
        "Adenocarcinoma, NOS (8140/3); grade G2 (moderately differentiated); "
        "basis of diagnosis: histology of a primary tumour"
    )
    stage = by_kind["stage"]["details"]
    assert {k: stage[k] for k in ("kind", "group", "t", "n", "m", "edition", "site_group")} == {
        "kind": "c",
        "group": "IIB",
        "t": "T2a",
        "n": "N1",
        "m": "M0",
        "edition": "8",
        "site_group": "lung",
    }
    # The registry's IIB against the trust's IIIA: flagged, not settled.
    (conflict,) = snapshot.summary["record"]["conflicts"]
    assert conflict["kind"] == "stage_group"
    assert conflict["description"] == (
        "Sources disagree on the clinical stage group of the lung cancer: "
        "IIB (Cancer registry, 2025-03-01); IIIA (RRK, 2025-03-07)."
    )
    # The same diagnosis from both sources is not a clash of primary sites.
    assert [c["kind"] for c in snapshot.summary["record"]["conflicts"]] == ["stage_group"]
    # For audit: the registration as the registry holds it, without the postcode.
    (raw,) = stored[REGISTRY].raw
    assert raw["id"] == registration.pk
    assert raw["stage_group"] == "IIB" and raw["nhs_number"] == ada.nhs_number
    assert [t["modality"] for t in raw["treatments"]] == ["01", "03"]
    assert "postcode" not in raw


def test_a_registry_stage_that_agrees_with_the_trust_is_no_conflict(
    ada, trust, registry_source, demographics
):
    demographics(pds_patient(ada.nhs_number))
    register(ada, t="cT2a", n="cN2", m="cM0", stage_group="IIIA")

    snapshot = populate_one(ada)

    assert snapshot.summary["record"]["conflicts"] == []
    assert "Clinical stage IIIA (T2a N2 M0)" in titles_by_source(snapshot)[REGISTRY]


def test_the_case_page_shows_registry_items_badged_and_the_conflict(
    client, ada, trust, registry_source, demographics
):
    demographics(pds_patient(ada.nhs_number))
    register(ada)
    case = CaseFactory(patient=ada)

    populate_cases([case.pk], reason="test")

    case = Case.objects.get(pk=case.pk)
    client.force_login(make_member(case.meeting.team))
    page = client.get(f"/cases/{case.public_id}/").content.decode()
    assert 'app-source-badge">Cancer registry</strong>' in page
    assert "Clinical stage IIB (T2a N1 M0)" in page
    assert "The sources disagree" in page
    assert "IIB (Cancer registry, 2025-03-01); IIIA (RRK, 2025-03-07)" in page


def test_a_patient_with_no_registration_is_not_found_and_the_other_sources_still_show(
    ada, trust, registry_source, demographics
):
    demographics(pds_patient(ada.nhs_number))
    register(PatientFactory())  # someone else's

    snapshot = populate_one(ada)

    stored = results(snapshot)
    assert stored[REGISTRY].status == Status.NOT_FOUND
    assert stored[REGISTRY].detail == "The registry holds no registration for this NHS number."
    assert stored[REGISTRY].raw == []
    assert stored["UHB EPR"].status == Status.OK
    assert REGISTRY not in titles_by_source(snapshot)


def test_a_birth_date_different_from_the_demographics_service_is_identity_mismatch(
    ada, trust, registry_source, demographics
):
    demographics(pds_patient(ada.nhs_number, birth_date=BORN.isoformat()))
    register(ada, birth_date=date(1951, 6, 2))

    snapshot = populate_one(ada)

    result = results(snapshot)[REGISTRY]
    assert result.status == Status.IDENTITY_MISMATCH
    assert result.detail == (
        "Nothing from this source is shown: A record from the source has a different birth "
        "date from the demographics service."
    )
    assert "1951" not in result.detail
    assert REGISTRY not in titles_by_source(snapshot)
    assert snapshot.summary["record"]["conflicts"] == []  # its stage is not shown, so no clash
    assert results(snapshot)["UHB EPR"].status == Status.OK


def test_a_registration_linked_to_the_patient_under_another_nhs_number_is_identity_mismatch(
    ada, trust, registry_source, demographics
):
    demographics(pds_patient(ada.nhs_number))
    register(ada, nhs_number="9990000018")

    snapshot = populate_one(ada)

    result = results(snapshot)[REGISTRY]
    assert result.status == Status.IDENTITY_MISMATCH
    assert "different NHS number (ending 0018)" in result.detail
    assert REGISTRY not in titles_by_source(snapshot)


def test_a_restricted_patients_registry_postcode_appears_nowhere_in_the_snapshot(
    client, registry_source, demographics
):
    ada = PatientFactory(birth_date=BORN, postcode=REGISTRY_POSTCODE)
    demographics(pds_patient(ada.nhs_number, meta=restricted_meta(), address=[]))
    register(ada)
    case = CaseFactory(patient=ada)

    populate_cases([case.pk], reason="test")

    case = Case.objects.get(pk=case.pk)
    snapshot = case.snapshot
    assert snapshot.summary["restricted"] is True
    assert results(snapshot)[REGISTRY].status == Status.OK
    assert titles_by_source(snapshot)[REGISTRY]  # the record itself still shows
    stored = json.dumps(
        [
            snapshot.summary,
            snapshot.per_source_status,
            [(r.raw, r.detail, r.counts) for r in snapshot.results.all()],
        ]
    )
    assert REGISTRY_POSTCODE not in stored
    client.force_login(make_member(case.meeting.team))
    assert REGISTRY_POSTCODE not in client.get(f"/cases/{case.public_id}/").content.decode()


def test_the_registry_answers_every_patient_of_a_run_in_one_query_and_its_treatments_in_another(
    registry_source, django_assert_num_queries
):
    people = [PatientFactory() for _ in range(5)]
    for person in people[:4]:
        registration = register(person)
        Treatment.objects.create(
            registration=registration, modality="02", start_date=date(2025, 6, 1)
        )
    jobs = [PatientJob(p.pk, p.nhs_number, p.birth_date) for p in people]

    with django_assert_num_queries(2):
        answers = answer_for_patients(SourceConfig.of(registry_source), jobs)

    assert all(isinstance(answer, InternalAnswer) for answer in answers.values())
    assert [answers[p.nhs_number].status for p in people] == [Status.OK] * 4 + [Status.NOT_FOUND]
    kinds = [item.kind for item in answers[people[0].nhs_number].items]
    assert kinds == ["diagnosis", "stage", "performance_status", "radiotherapy"]


def test_values_the_uicc_lists_do_not_hold_are_shown_as_written_and_named(registry_source):
    person = PatientFactory()
    register(person, t="T9", n="N1", m="M0", stage_group="", performance_status="9")
    job = PatientJob(person.pk, person.nhs_number, person.birth_date)

    answer = answer_for_patients(SourceConfig.of(registry_source), [job])[person.nhs_number]

    (stage,) = [item for item in answer.items if item.kind == "stage"]
    assert stage.details["t"] == "T9" and stage.details["unrecognised"] == ["t"]
    assert stage.title == "Clinical staging T9 N1 M0"
    assert not [item for item in answer.items if item.kind == "performance_status"]  # 9: none


def test_a_failing_adapter_is_an_error_for_that_source_only(
    ada, trust, registry_source, demographics, settings
):
    demographics(pds_patient(ada.nhs_number))
    settings.RECORD_SOURCE_ADAPTERS = {"registry": "tests.records.test_registry_source.broken"}

    snapshot = populate_one(ada)

    stored = results(snapshot)
    assert stored[REGISTRY].status == Status.ERROR
    assert stored[REGISTRY].detail == "The source could not be read (RuntimeError)."
    assert stored["UHB EPR"].status == Status.OK


def test_a_kind_with_no_adapter_is_skipped_unless_asked_and_then_an_error_that_says_so(
    ada, registry_source, settings
):
    settings.RECORD_SOURCE_ADAPTERS = {}
    assert sources_to_ask() == []

    (snapshot,) = populate_patients([ada.pk], reason="test", sources=[registry_source])
    result = results(snapshot)[REGISTRY]
    assert result.status == Status.ERROR
    assert "No adapter is configured for sources of kind 'registry'" in result.detail


def broken(source, patients):
    raise RuntimeError("the registry's database is being restored")


def test_record_summary_includes_the_registry(ada, trust, registry_source, demographics):
    demographics(pds_patient(ada.nhs_number))
    register(ada)
    out = StringIO()

    call_command("record_summary", ada.nhs_number, "--json", stdout=out)

    printed = json.loads(out.getvalue())
    assert printed["sources"][REGISTRY]["status"] == Status.OK
    assert printed["summary"]["record"]["conflicts"][0]["kind"] == "stage_group"
    assessed, answers = summarise_now(ada.nhs_number, [registry_source])
    assert [a.source.name for a in answers.answers] == [REGISTRY]
    assert any(i.source == REGISTRY for i in assessed.items)


# -- the demo region's registry ----------------------------------------------------------------


def test_the_demo_registrys_stage_conflict_is_flagged_against_the_demo_trusts_stage(
    tmp_path, serve, make_source, registry_source, settings
):
    as_of = date(2026, 11, 2)
    team = TeamFactory(tumour_site=TumourSite.LUNG)
    questions = ["Confirm stage and plan treatment", "Post-operative histology review"] * 2
    people = [PatientFactory(nhs_number=synthetic_nhs_number(900 + n)) for n in range(4)]
    cases = [
        CaseFactory(meeting=MeetingFactory(team=team), patient=p, question=q)
        for p, q in zip(people, questions, strict=True)
    ]
    write_demo_histories(people, tmp_path, as_of=as_of)
    _count, conflict = seed_demo_registry(people, as_of=as_of)
    for code in ("RRK", "RWP", "RL4", "GP"):
        make_source(serve(data_dir=tmp_path / code), code, timeout_s=5)
    settings.DEMOGRAPHICS_URL = serve(data_dir=tmp_path / "PDS", pds=True).base_url
    (case,) = [c for c in cases if c.patient.nhs_number == conflict.nhs_number]

    populate_cases([case.pk], reason="test")

    case.refresh_from_db()
    snapshot = case.snapshot
    assert snapshot.per_source_status[REGISTRY]["status"] == Status.OK
    (flagged,) = snapshot.summary["record"]["conflicts"]
    assert flagged["kind"] == "stage_group"
    assert f"{conflict.registry_stage} (Cancer registry, " in flagged["description"]
    assert f"{conflict.trust_stage} ({conflict.trust}, " in flagged["description"]
