"""The demo histories: valid FHIR R4, each source's own patient ids, coherent dates, the tumour
site of the patient's team, and the four deliberate demo situations."""

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class

from demo.fhir_server import FhirServer
from demo.histories import SOURCES, write_demo_histories
from mdt.models import TumourSite
from records.demographics import parse_pds_patient
from tests.factories import CaseFactory, MeetingFactory, PatientFactory, TeamFactory

pytestmark = pytest.mark.django_db

AS_OF = date(2026, 3, 2)
NHS = "https://fhir.nhs.uk/Id/nhs-number"
SURGICAL = "387713003"
LISTINGS = [
    ("lung staged", TumourSite.LUNG, "Confirm stage and plan treatment"),
    ("lung operated", TumourSite.LUNG, "Post-operative histology review"),
    ("lung suspected", TumourSite.LUNG, "CT shows new 2 cm spiculated nodule: biopsy?"),
    ("breast staged", TumourSite.BREAST, "Confirm diagnosis and plan surgery"),
    ("breast operated", TumourSite.BREAST, "Post-operative histology: further surgery?"),
    ("colorectal staged", TumourSite.COLORECTAL, "Suitable for resection?"),
    ("colorectal treated", TumourSite.COLORECTAL, "Liver lesion on CT: refer to HPB?"),
]


def build_region(out: Path, *, unlisted: int = 5, **write_options) -> SimpleNamespace:
    teams = {site: TeamFactory(tumour_site=site) for site in TumourSite.values}
    patients, named = [], {}
    for name, site, question in LISTINGS:
        patient = PatientFactory()
        CaseFactory(meeting=MeetingFactory(team=teams[site]), patient=patient, question=question)
        patients.append(patient)
        named[name] = patient
    patients += [PatientFactory() for _ in range(unlisted)]
    named["restricted"] = PatientFactory(restricted=True)
    patients.append(named["restricted"])
    counts = write_demo_histories(patients, out, seed=7, **({"as_of": AS_OF} | write_options))
    manifest = json.loads((out / "manifest.json").read_text())
    return SimpleNamespace(
        out=out, patients=patients, named=named, counts=counts, manifest=manifest
    )


@pytest.fixture
def region(tmp_path) -> SimpleNamespace:
    return build_region(tmp_path / "fhir")


def chart(region, source: str, nhs_number: str) -> list[dict]:
    """The resources a source holds for a patient, its Patient first ([] if unknown there)."""
    pid = region.manifest["patients"][nhs_number]["ids"].get(source)
    if pid is None:
        return []
    bundle = json.loads((region.out / source / f"{pid}.json").read_text())
    return [entry["resource"] for entry in bundle["entry"]]


def everything(region, nhs_number: str) -> list[dict]:
    return [r for source in SOURCES for r in chart(region, source, nhs_number)[1:]]


def day_of(value: str) -> date:
    return datetime.fromisoformat(value).date() if "T" in value else date.fromisoformat(value)


def dates_in(resource: dict) -> list[date]:
    found = []
    for key in (
        "effectiveDateTime",
        "performedDateTime",
        "onsetDateTime",
        "recordedDate",
        "started",
        "issued",
        "date",
        "authoredOn",
        "dateAsserted",
    ):
        if key in resource:
            found.append(day_of(resource[key]))
    for key in ("period", "performedPeriod", "effectivePeriod"):
        for end in ("start", "end"):
            if end in resource.get(key, {}):
                found.append(day_of(resource[key][end]))
    return found


def codes(concept: dict) -> set[str]:
    return {coding.get("code") for coding in concept.get("coding", [])}


def first(resources, test, when) -> date | None:
    days = [when(r) for r in resources if test(r)]
    return min(days) if days else None


def stage_groups(resources: list[dict], loinc: str) -> set[str]:
    return {
        r["valueCodeableConcept"]["text"]
        for r in resources
        if r["resourceType"] == "Observation" and loinc in codes(r["code"])
    }


def cancer_diagnoses(resources: list[dict]) -> list[dict]:
    return [
        r
        for r in resources
        if r["resourceType"] == "Condition"
        and r["verificationStatus"]["coding"][0]["code"] == "confirmed"
        and any(c.get("code", "").startswith("C") for c in r["code"]["coding"])
    ]


def test_every_written_resource_is_valid_fhir_r4(region):
    validated = 0
    for path in sorted(region.out.glob("*/*.json")):
        document = json.loads(path.read_text())
        model = get_fhir_model_class(document["resourceType"])
        model.model_validate(document)
        for entry in document.get("entry", []):
            resource = entry["resource"]
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
            validated += 1
    assert validated == sum(region.counts[source] for source in SOURCES)
    assert region.counts["PDS"] == len(region.patients)


def test_every_resource_references_its_own_sources_patient(region):
    for source in SOURCES:
        for path in (region.out / source).glob("*.json"):
            resources = [e["resource"] for e in json.loads(path.read_text())["entry"]]
            patient, rest = resources[0], resources[1:]
            assert patient["resourceType"] == "Patient"
            assert patient["id"] == path.stem
            assert patient["id"].startswith(f"{source.lower()}-")
            reference = {"reference": f"Patient/{patient['id']}"}
            for resource in rest:
                element = (
                    "patient" if resource["resourceType"] == "AllergyIntolerance" else "subject"
                )
                assert resource[element] == reference, (source, resource["id"])
            assert len({r["id"] for r in resources}) == len(resources)


def test_each_source_patient_carries_the_index_identity(region):
    for patient in region.patients:
        ids = region.manifest["patients"][patient.nhs_number]["ids"]
        assert len(set(ids.values())) == len(ids)
        for source in ids:
            record = chart(region, source, patient.nhs_number)[0]
            numbers = [i["value"] for i in record["identifier"] if i["system"] == NHS]
            assert numbers == [patient.nhs_number]
            assert record["birthDate"] == patient.birth_date.isoformat()
            assert record["name"][0]["family"] == patient.family_name
            assert record["name"][0]["given"] == [patient.given_name]


def test_dates_run_from_diagnosis_to_staging_to_treatment(region):
    for patient in region.patients:
        resources = everything(region, patient.nhs_number)
        for resource in resources:
            for day in dates_in(resource):
                assert patient.birth_date < day < AS_OF, resource["id"]

        def effective(r):
            return day_of(r.get("effectiveDateTime") or r.get("performedDateTime"))

        diagnosis = first(
            cancer_diagnoses(resources), lambda r: True, lambda r: day_of(r["onsetDateTime"])
        )
        clinical = first(resources, lambda r: "21908-9" in codes(r.get("code", {})), effective)
        surgery = first(
            resources,
            lambda r: r["resourceType"] == "Procedure" and SURGICAL in codes(r.get("category", {})),
            lambda r: day_of(r["performedDateTime"]),
        )
        pathological = first(resources, lambda r: "21902-2" in codes(r.get("code", {})), effective)
        therapy = first(
            resources, lambda r: r["resourceType"] == "MedicationAdministration", effective
        )
        chain = [d for d in (diagnosis, clinical, surgery, pathological, therapy) if d is not None]
        assert chain == sorted(chain), patient.nhs_number
        summary = region.manifest["patients"][patient.nhs_number]
        if summary["pathway"] == "treated":
            assert 183 <= (AS_OF - diagnosis).days <= 548
        if summary["pathway"] != "suspected":
            assert diagnosis is not None and clinical is not None


def test_the_tumour_site_and_pathway_follow_the_mdt_listing(region):
    expected_icd = {TumourSite.LUNG: ("C34",), TumourSite.BREAST: ("C50",)}
    expected_icd[TumourSite.COLORECTAL] = ("C18", "C19", "C20")
    for name, site, _ in LISTINGS:
        resources = everything(region, region.named[name].nhs_number)
        diagnoses = cancer_diagnoses(resources)
        surgery = [
            r
            for r in resources
            if r["resourceType"] == "Procedure" and SURGICAL in codes(r.get("category", {}))
        ]
        if name == "lung suspected":
            assert diagnoses == []
            assert any(r["resourceType"] == "ImagingStudy" for r in resources)
            continue
        icd = {c["code"] for d in diagnoses for c in d["code"]["coding"] if "icd-10" in c["system"]}
        assert icd and all(code.startswith(expected_icd[site]) for code in icd), name
        assert bool(surgery) == (name.endswith("operated") or name.endswith("treated")), name
    liver = everything(region, region.named["colorectal treated"].nhs_number)
    assert any("liver" in r.get("conclusion", "") for r in liver)


def test_the_lung_pathway_has_the_expected_kinds_of_evidence(region):
    resources = everything(region, region.named["lung operated"].nhs_number)
    kinds = {r["resourceType"] for r in resources}
    assert {"Condition", "DiagnosticReport", "ImagingStudy", "Observation", "Procedure"} <= kinds
    assert {"Encounter", "DocumentReference", "AllergyIntolerance"} <= kinds
    loincs = set().union(
        *(codes(r["code"]) for r in resources if r["resourceType"] == "Observation")
    )
    assert {"21905-5", "21906-3", "21907-1", "21908-9", "89247-1", "21902-2"} <= loincs
    ecog = [r for r in resources if "89247-1" in codes(r.get("code", {}))]
    assert all(isinstance(r["valueInteger"], int) for r in ecog)
    histology = [r for r in resources if r["resourceType"] == "DiagnosticReport"]
    assert any(
        "TTF-1" in r.get("conclusion", "") or "p40" in r.get("conclusion", "") for r in histology
    )
    providers = {
        r["serviceProvider"]["identifier"]["value"]
        for r in resources
        if r["resourceType"] == "Encounter"
    }
    assert {"RRK", "RWP"} <= providers


def test_one_patient_has_clinical_stage_groups_that_disagree_between_rrk_and_rwp(region):
    conflict = region.manifest["situations"]["stage_conflict"]
    number = conflict["nhs_number"]

    rrk = stage_groups(chart(region, "RRK", number), "21908-9")
    rwp = stage_groups(chart(region, "RWP", number), "21908-9")

    assert rrk == {conflict["RRK"]} and rwp == {conflict["RWP"]}
    assert rrk != rwp
    assert region.manifest["patients"][number]["listed"]  # it shows on a demo MDT list


def test_a_restricted_patient_is_restricted_in_pds_but_the_gp_record_keeps_the_address(region):
    restricted = region.named["restricted"]
    assert region.manifest["situations"]["restricted"] == [restricted.nhs_number]
    pds = json.loads((region.out / "PDS" / f"{restricted.nhs_number}.json").read_text())

    demographics = parse_pds_patient(pds, today=AS_OF)

    assert pds["meta"]["security"][0]["code"] == "R"
    assert "address" not in pds and "telecom" not in pds
    assert demographics.restricted and demographics.address == ""
    assert chart(region, "GP", restricted.nhs_number)[0]["address"][0]["line"] == [
        restricted.address
    ]
    for trust in ("RRK", "RWP", "RL4"):
        assert "address" not in chart(region, trust, restricted.nhs_number)[0]


def test_pds_records_carry_the_current_gp_registration(region):
    for patient in region.patients:
        pds = json.loads((region.out / "PDS" / f"{patient.nhs_number}.json").read_text())

        demographics = parse_pds_patient(pds, today=AS_OF)

        assert pds["id"] == patient.nhs_number
        assert demographics.nhs_number == patient.nhs_number
        assert demographics.birth_date == patient.birth_date
        assert demographics.gp_practice_ods == patient.gp_practice.ods_code
        assert demographics.notes == []


def test_one_patient_has_died_after_their_last_recorded_event(region):
    (death,) = region.manifest["situations"]["deceased"]
    number, died = death["nhs_number"], date.fromisoformat(death["date"])
    pds = json.loads((region.out / "PDS" / f"{number}.json").read_text())

    assert parse_pds_patient(pds, today=AS_OF).deceased
    assert day_of(pds["deceasedDateTime"]) == died
    assert day_of(chart(region, "GP", number)[0]["deceasedDateTime"]) == died
    assert all(day <= died for r in everything(region, number) for day in dates_in(r))
    assert died < AS_OF
    for trust in ("RRK", "RWP", "RL4"):
        assert "deceasedDateTime" not in chart(region, trust, number)[0]


def test_a_patient_the_index_marks_deceased_is_the_deceased_one(tmp_path):
    region = build_region(tmp_path / "fhir", unlisted=2)
    marked = region.patients[-2]
    marked.deceased = True
    marked.save()

    write_demo_histories(region.patients, tmp_path / "again", seed=7, as_of=AS_OF)

    manifest = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert [d["nhs_number"] for d in manifest["situations"]["deceased"]] == [marked.nhs_number]


def test_one_patient_is_unknown_to_one_trust(region):
    missing = region.manifest["situations"]["not_found"]
    number, source = missing["nhs_number"], missing["source"]
    ids = region.manifest["patients"][number]["ids"]
    assert source not in ids and len(ids) == 3
    search = {"identifier": f"{NHS}|{number}"}

    with FhirServer(region.out / source) as absent, FhirServer(region.out / "GP") as gp:
        assert httpx.get(f"{absent.base_url}/Patient", params=search).json()["total"] == 0
        found = httpx.get(f"{gp.base_url}/Patient", params=search).json()

    assert found["entry"][0]["resource"]["id"] == ids["GP"]


def test_a_trust_serves_a_patients_history_by_their_own_id(region):
    number = region.named["lung operated"].nhs_number
    with FhirServer(region.out / "RWP") as rwp, httpx.Client() as client:
        found = client.get(f"{rwp.base_url}/Patient", params={"identifier": f"{NHS}|{number}"})
        pid = found.json()["entry"][0]["resource"]["id"]
        procedures = client.get(f"{rwp.base_url}/Procedure", params={"patient": pid}).json()

    assert pid == region.manifest["patients"][number]["ids"]["RWP"]
    texts = [e["resource"]["code"]["text"] for e in procedures["entry"]]
    assert any("lobectomy" in text for text in texts)


def test_the_same_seed_writes_the_same_files(region, tmp_path):
    write_demo_histories(region.patients, tmp_path / "twin", seed=7, as_of=AS_OF)
    write_demo_histories(region.patients, tmp_path / "other", seed=8, as_of=AS_OF)

    def contents(root):
        return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*.json"))}

    assert contents(region.out) == contents(tmp_path / "twin")
    assert contents(region.out) != contents(tmp_path / "other")


def test_writing_again_leaves_no_stale_files(region):
    stale = region.out / "RRK" / "rrk-0000000.json"
    stale.write_text("{}")

    write_demo_histories(region.patients[:3], region.out, seed=7, as_of=AS_OF)

    assert not stale.exists()
    assert len(list((region.out / "PDS").glob("*.json"))) == 3


def test_histories_are_dated_relative_to_today_by_default(tmp_path):
    patient = PatientFactory()

    write_demo_histories([patient], tmp_path)

    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert date.fromisoformat(manifest["as_of"]) >= date.today() - timedelta(days=1)
