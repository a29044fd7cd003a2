"""Conformance: the parsing, identity rule, normalisation and merge meet FHIR written by others
(UK Core, mCODE, the FHIR specification, the PDS sandbox) in ../shared/fhir-examples/."""

import copy
import json
from datetime import date
from pathlib import Path

import pytest

from records.fhir_parse import FhirOperationOutcome, parse_bundle
from records.identity import NHS_NUMBER_SYSTEM, check_identity, partition
from records.merge import merge
from records.normalise import normalise

EXAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "fhir-examples"
ALL_FILES = sorted(EXAMPLES.glob("*/*.json"))
TEST_NHS_NUMBER = "9990000026"


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def searchset(resources: list[dict]) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"https://trust.example/fhir/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def single_resources(folder: str) -> list[dict]:
    found = [load(path) for path in sorted((EXAMPLES / folder).glob("*.json"))]
    return [r for r in found if r["resourceType"] not in ("Bundle", "OperationOutcome")]


def summary(folder: str, source: str = "Examples"):
    return normalise(parse_bundle(searchset(single_resources(folder))).resources, source)


def titled(items, kind: str, title: str):
    found = [i for i in items if i.kind == kind and i.title == title]
    assert len(found) == 1, [(i.kind, i.title) for i in items]
    return found[0]


@pytest.fixture(scope="module")
def mcode():
    return summary("mcode", "mCODE")


@pytest.fixture(scope="module")
def spec():
    return summary("r4-spec", "FHIR specification")


@pytest.fixture(scope="module")
def ukcore():
    return summary("ukcore", "UK Core")


def test_the_shared_examples_are_there():
    counts = {
        folder: len(list((EXAMPLES / folder).glob("*.json")))
        for folder in ("ukcore", "mcode", "r4-spec", "pds-sandbox")
    }
    assert counts == {"ukcore": 142, "mcode": 26, "r4-spec": 15, "pds-sandbox": 5}


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_example_parses_with_r4b_models(path):
    data = load(path)
    if data["resourceType"] == "OperationOutcome":
        with pytest.raises(FhirOperationOutcome):
            parse_bundle(data)
        return
    if data["resourceType"] == "Bundle":
        entries = data.get("entry", [])
        parsed = parse_bundle(data)
        assert len(parsed.resources) + len(parsed.warnings) == sum(
            1 for e in entries if "resource" in e
        )
        assert parsed.dropped == sum(1 for e in entries if "resource" not in e)
    else:
        parsed = parse_bundle(searchset([data]))
        assert parsed.dropped == 0, parsed.drop_reasons
        assert [r.get_resource_type() for r in parsed.resources] == [data["resourceType"]]
    assert all(type(r).__module__.startswith("fhir.resources.R4B.") for r in parsed.resources)


def test_the_uk_core_operation_outcome_is_an_error_with_its_text():
    with pytest.raises(FhirOperationOutcome, match="is not in the correct format") as raised:
        parse_bundle(
            (EXAMPLES / "ukcore" / "UKCore-OperationOutcome-DateError-Example.json").read_bytes()
        )
    assert raised.value.codes == ("structure",)


# mCODE: the oncology facts its README documents


def test_mcode_clinical_stage_group_is_IIIC_with_its_t_n_m(mcode):
    stage = titled(mcode.items, "stage", "Clinical stage IIIC (T3 N3 M0)")
    details = stage.details
    assert (details["kind"], details["group"], details["t"], details["n"], details["m"]) == (
        "c",
        "IIIC",
        "T3",
        "N3",
        "M0",
    )
    assert (details["edition"], details["system"]) == ("8", "AJCC")
    assert (details["site_group"], details["laterality"]) == ("lung", "left")
    assert stage.resource_id == "mCODETNMClinicalStageGroupExample01"


def test_mcode_pathological_stage_group_is_read(mcode):
    stage = titled(mcode.items, "stage", "Pathological stage IIIC (T3 N3 M0)")
    assert stage.details["kind"] == "p"


def test_mcode_ecog_is_0_and_karnofsky_is_90(mcode):
    ecog = titled(mcode.items, "performance_status", "ECOG performance status 0")
    karnofsky = titled(mcode.items, "performance_status", "Karnofsky performance status 90")
    assert ecog.details == {"scale": "ECOG", "value": 0}
    assert karnofsky.details == {"scale": "Karnofsky", "value": 90}


def test_mcode_partial_lobectomy_is_surgery(mcode):
    surgery = titled(mcode.items, "surgery", "Partial lobectomy of lung")
    assert surgery.date == "2019-03-01"
    assert surgery.details["laterality"] == "left"


def test_mcode_brachytherapy_is_radiotherapy(mcode):
    assert (
        titled(mcode.items, "radiotherapy", "Brachytherapy").details["intent"]
        == "Curative - procedure intent"
    )


def test_mcode_gefitinib_is_sact_taken_orally(mcode):
    gefitinib = [i for i in mcode.items if i.kind == "sact" and "gefitinib" in i.title]
    assert [g.details["status"] for g in gefitinib] == ["active", "stopped"]
    assert {g.details["route"] for g in gefitinib} == {"Oral use"}
    assert gefitinib[0].title == "gefitinib 250 MG Oral Tablet"


def test_mcode_non_small_cell_lung_cancer_is_the_primary_diagnosis(mcode):
    nsclc = titled(mcode.items, "diagnosis", "Non-small cell lung cancer")
    assert {
        k: nsclc.details[k]
        for k in ("role", "site_group", "laterality", "morphology", "stage_summary")
    } == {
        "role": "primary",
        "site_group": "lung",
        "laterality": "left",
        "morphology": "Adenocarcinoma",
        "stage_summary": "IIIC",
    }


def test_mcode_brain_secondary_is_a_secondary_diagnosis(mcode):
    brain = titled(mcode.items, "diagnosis", "Secondary malignant neoplasm of brain")
    assert (brain.details["role"], brain.details["site_group"]) == ("secondary", "brain")


def test_mcode_type_2_diabetes_is_a_comorbidity(mcode):
    assert titled(mcode.items, "comorbidity", "Type 2 diabetes mellitus").date == "2018-04-01"


def test_mcode_tumour_marker_and_genomics_are_kept(mcode):
    marker = titled(
        mcode.items, "observation", "Epidermal growth factor receptor Ag [Presence] in Tissue"
    )
    assert marker.details["value"] == "Positive"
    assert (
        titled(mcode.items, "pathology", "Genetic variant reporting panel").details["results"] == 2
    )
    variants = [i for i in mcode.items if i.title == "Genetic variant assessment"]
    genes = {
        c["value"] for v in variants for c in v.details["components"] if c["name"] == "Gene studied"
    }
    assert genes == {"STK11", "BRCA1"}


def test_mcode_types_not_summarised_are_counted(mcode):
    assert mcode.unhandled == {"Specimen": 1}
    assert mcode.supporting == {"Patient": 2}


def test_every_mcode_resource_is_accounted_for(mcode):
    """The six T, N and M Observations are read into their stage groups; everything else that is
    not supporting or unhandled has an item of its own."""
    resources = single_resources("mcode")
    with_items = {i.resource_id for i in mcode.items}
    tnm_members = {r["id"] for r in resources if "Category" in r["id"]}
    assert len(tnm_members) == 6
    leftovers = {r["id"] for r in resources} - with_items - tnm_members
    assert len(leftovers) == sum(mcode.unhandled.values()) + sum(mcode.supporting.values())


# FHIR specification: the Roel case


def test_roel_malignancy_is_a_diagnosis_of_the_head_and_neck(spec):
    malignancy = titled(spec.items, "diagnosis", "Malignant neoplastic disease")
    assert malignancy.resource_id == "f202"
    assert malignancy.date == "2012-12-01"
    assert (malignancy.details["site"], malignancy.details["site_group"]) == (
        "Entire head and neck",
        "head and neck",
    )
    assert malignancy.details["clinical_status"] == "resolved"


def test_roel_ct_report_is_imaging_with_its_conclusion(spec):
    report = titled(spec.items, "imaging", "CT of head-neck")
    assert report.details["conclusion"] == "CT brains: large tumor sphenoid/clivus."
    assert report.details["conclusion_codes"] == ["Malignant tumor of craniopharyngeal duct"]


def test_roel_chemotherapy_is_sact_and_its_care_plan_names_the_regimen(spec):
    assert titled(spec.items, "sact", "Chemotherapy").date == "2013-01-28"
    plan = titled(spec.items, "careplan", "Chemotherapy")
    assert plan.details["activities"][0]["product"] == "TPF (Docetaxel, Cisplatin, Fluorouracil)"
    assert plan.details["addresses"] == ["Malignant neoplastic disease"]


def test_spec_types_not_summarised_are_counted(spec):
    assert spec.unhandled == {"Linkage": 1, "Provenance": 1}


# UK Core


def test_uk_core_ct_chest_report_and_study_are_imaging(ukcore):
    report = titled(ukcore.items, "imaging", "Radiology studies report: CT Chest Scan")
    assert report.date == "2024-04-19"
    assert report.details["performer"] == ["LEEDS TEACHING HOSPITALS NHS TRUST"]
    # The published example carries no conclusion; the summary says so rather than inventing one.
    assert report.details["conclusion"] is None
    study = titled(ukcore.items, "imaging", "CT Surview 180, Thoracic segment of trunk")
    assert (study.date, study.details["modalities"]) == ("2023-01-24", ["CT"])


def test_uk_core_report_conclusions_are_kept(ukcore):
    conclusions = [i.details["conclusion"] for i in ukcore.items if i.details.get("conclusion")]
    assert conclusions == [
        "Mild soft tissue injury with slight bruising, consistent with minor trauma. "
        "No clinical evidence of fracture or joint dislocation."
    ]


def test_uk_core_entered_in_error_allergy_is_left_out(ukcore):
    assert ukcore.entered_in_error == 1
    assert len([i for i in ukcore.items if i.kind == "allergy"]) == 6


def test_uk_core_encounter_names_its_provider(ukcore):
    encounter = titled(ukcore.items, "encounter", "Seen in hospital ward")
    assert encounter.details["provider"] == "LEEDS TEACHING HOSPITALS NHS TRUST"


def test_uk_core_types_not_summarised_are_counted(ukcore):
    assert ukcore.unhandled["Immunization"] == 10
    assert ukcore.unhandled["ServiceRequest"] == 5
    assert "Observation" not in ukcore.unhandled


@pytest.mark.parametrize("folder", ["ukcore", "r4-spec"])
def test_every_summarised_resource_has_an_item(folder):
    normalised = summary(folder)
    resources = single_resources(folder)
    counted = (
        sum(normalised.unhandled.values())
        + sum(normalised.supporting.values())
        + normalised.entered_in_error
    )
    assert (
        len({(i.resource_type, i.resource_id) for i in normalised.items})
        == len(resources) - counted
    )


def test_summaries_of_all_examples_are_json_serialisable(mcode, spec, ukcore):
    for normalised in (mcode, spec, ukcore):
        assert json.loads(json.dumps(normalised.as_dict()))["source"] == normalised.source


# The identity rule on data written elsewhere: mCODE served behind an NHS test number


def mcode_behind_an_nhs_number(*, edit=None) -> dict:
    resources = [
        copy.deepcopy(r) for r in single_resources("mcode") if r["id"] != "mCODEPatientExample02"
    ]
    patient = next(r for r in resources if r["id"] == "mCODEPatientExample01")
    patient["identifier"].append({"system": NHS_NUMBER_SYSTEM, "value": TEST_NHS_NUMBER})
    if edit:
        edit(resources)
    return searchset(resources)


def identity_of(bundle: dict):
    parsed = parse_bundle(bundle)
    patients, clinical, _shared = partition(parsed.resources)
    return check_identity(patients, clinical, TEST_NHS_NUMBER, date(1951, 1, 20)), clinical


def test_the_mcode_record_behind_a_test_nhs_number_passes_the_identity_rule():
    result, clinical = identity_of(mcode_behind_an_nhs_number())
    assert result.ok, result.reason
    assert result.patient_id == "mCODEPatientExample01"
    assert (result.family, result.given) == ("Anyperson", "John B.")
    assert len(clinical) == 24


def test_one_mcode_record_about_patient_02_fails_the_identity_rule():
    def point_ecog_elsewhere(resources):
        ecog = next(r for r in resources if r["id"] == "mCODEECOGPerformanceStatusExample01")
        ecog["subject"] = {"reference": "Patient/mCODEPatientExample02"}

    result, _ = identity_of(mcode_behind_an_nhs_number(edit=point_ecog_elsewhere))
    assert not result.ok
    assert result.code == "other_patient"
    assert "Observation/mCODEECOGPerformanceStatusExample01" in result.reason


def test_the_mcode_record_with_both_patients_fails_the_identity_rule():
    def add_eve(resources):
        resources.append(load(EXAMPLES / "mcode" / "Patient-mCODEPatientExample02.json"))

    result, _ = identity_of(mcode_behind_an_nhs_number(edit=add_eve))
    assert result.code == "several_patients"


def test_the_mcode_record_asked_for_with_another_birth_date_fails():
    parsed = parse_bundle(mcode_behind_an_nhs_number())
    patients, clinical, _ = partition(parsed.resources)
    result = check_identity(patients, clinical, TEST_NHS_NUMBER, date(1951, 1, 21))
    assert result.code == "birth_date_mismatch"


# PDS: restriction and death


def pds_patient(name: str):
    (patient,) = parse_bundle(searchset([load(EXAMPLES / "pds-sandbox" / name)])).resources
    return patient


def test_the_pds_sensitive_patient_is_restricted_and_deceased():
    result = check_identity(
        [pds_patient("Sensitive_Patient.json")], [], "9000000025", date(2010, 10, 22)
    )
    assert result.ok
    assert result.restricted is True
    assert result.deceased is True


def test_an_ordinary_pds_patient_is_not_restricted():
    result = check_identity([pds_patient("Patient.json")], [], "9000000009", date(2010, 10, 22))
    assert (result.ok, result.restricted) == (True, False)


def test_the_pds_search_result_matches_its_nhs_number():
    parsed = parse_bundle((EXAMPLES / "pds-sandbox" / "PatientSearch.json").read_bytes())
    patients, clinical, _ = partition(parsed.resources)
    assert check_identity(patients, clinical, "9000000009", date(2010, 10, 22)).ok
    assert check_identity(patients, clinical, "9000000017", None).code == "nhs_number_mismatch"


# Merge of data written elsewhere


def test_the_mcode_record_from_two_sources_merges_into_one_with_both_sources(mcode):
    other = summary("mcode", "Second trust")
    merged = merge(mcode.items + other.items)
    assert len(merged.timeline) == len(mcode.items)
    assert all(item.source_names == ["mCODE", "Second trust"] for item in merged.timeline)
    assert merged.conflicts == []
    assert json.loads(json.dumps(merged.as_dict()))["timeline"][0]["date"] == "2018-04-01"


def test_a_second_source_staging_the_mcode_cancer_IIIA_is_a_conflict(mcode):
    resources = single_resources("mcode")
    for resource in resources:
        if resource["id"] == "mCODETNMClinicalStageGroupExample01":
            resource["valueCodeableConcept"]["coding"][0].update(code="3A", display="IIIA")
    restaged = normalise(parse_bundle(searchset(resources)).resources, "Second trust")
    merged = merge(mcode.items + restaged.items)
    (conflict,) = merged.conflicts
    assert conflict.kind == "stage_group"
    assert [i.details["group"] for i in conflict.items] == ["IIIA", "IIIC"]
    assert conflict.description.startswith(
        "Sources disagree on the clinical stage group of the lung cancer"
    )
