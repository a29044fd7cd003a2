import json

import pytest

from records.fhir_parse import read_resource
from records.normalise import KINDS, normalise

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
SUBJECT = {"reference": "Patient/p1"}


def one(resources, kind=None):
    """The single item normalise makes of the resources (of one kind, when given)."""
    items = normalise([read_resource(r) for r in resources], "Trust A").items
    items = [i for i in items if kind is None or i.kind == kind]
    assert len(items) == 1, [i.title for i in items]
    return items[0]


def condition(code, system=ICD10, display=None, **extra):
    coding = {"system": system, "code": code, **({"display": display} if display else {})}
    return {
        "resourceType": "Condition",
        "id": "c1",
        "code": {"coding": [coding]},
        "subject": SUBJECT,
        **extra,
    }


def observation(loinc, id_="o1", **extra):
    return {
        "resourceType": "Observation",
        "id": id_,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": SUBJECT,
        "effectiveDateTime": "2024-03-01",
        **extra,
    }


def concept(code, display=None, system="http://cancerstaging.org"):
    return {
        "coding": [{"system": system, "code": code, **({"display": display} if display else {})}]
    }


# Diagnoses and comorbidities


def test_an_icd10_cancer_code_is_a_primary_diagnosis_with_its_site():
    item = one([condition("C34.1", display="Malignant neoplasm of upper lobe, bronchus or lung")])
    assert item.kind == "diagnosis"
    assert item.details["role"] == "primary"
    assert item.details["site_group"] == "lung"


def test_an_icd10_secondary_code_is_a_secondary_diagnosis():
    item = one([condition("C79.3", display="Secondary malignant neoplasm of brain")])
    assert (item.kind, item.details["role"]) == ("diagnosis", "secondary")


@pytest.mark.parametrize("code", ["D05.1", "C50.9", "C80"])
def test_in_situ_and_unknown_primary_codes_are_diagnoses(code):
    assert one([condition(code)]).kind == "diagnosis"


def test_an_icd10_code_outranks_words_about_cancer():
    item = one([condition("Z85.1", display="Personal history of malignant neoplasm of lung")])
    assert item.kind == "comorbidity"


@pytest.mark.parametrize(
    ("display", "kind"),
    [
        ("Carcinoma of left breast", "diagnosis"),
        ("Diffuse large B-cell lymphoma", "diagnosis"),
        ("Benign neoplasm of colon", "comorbidity"),
        ("Family history of malignant neoplasm of breast", "comorbidity"),
        ("Type 2 diabetes mellitus (disorder)", "comorbidity"),
    ],
)
def test_snomed_conditions_are_sorted_by_their_words(display, kind):
    assert one([condition("123", system=SNOMED, display=display)]).kind == kind


def test_laterality_and_site_come_from_the_body_site():
    item = one(
        [
            condition(
                "254837009",
                system=SNOMED,
                display="Malignant neoplasm of breast (disorder)",
                bodySite=[
                    {
                        "coding": [
                            {
                                "system": SNOMED,
                                "code": "80248007",
                                "display": "Left breast structure",
                            }
                        ]
                    }
                ],
            )
        ]
    )
    assert item.title == "Malignant neoplasm of breast"
    assert (item.details["site"], item.details["site_group"], item.details["laterality"]) == (
        "Left breast structure",
        "breast",
        "left",
    )


def test_a_comorbidity_keeps_its_body_site_but_no_tumour_details():
    copd = condition(
        "J44.9", display="Chronic obstructive pulmonary disease", bodySite=[{"text": "Lung"}]
    )
    item = one([copd])
    assert item.kind == "comorbidity"
    assert item.details == {"clinical_status": None, "verification_status": None, "site": "Lung"}


def test_codes_from_unknown_systems_are_kept_and_shown_as_text():
    item = one([condition("X1", system="https://trust.example/local-codes", display="Local thing")])
    assert item.title == "Local thing"
    assert item.codes == [
        {"system": "https://trust.example/local-codes", "code": "X1", "display": "Local thing"}
    ]


def test_a_code_with_no_words_gets_a_title_that_says_so():
    assert (
        one([condition("X1", system="https://trust.example/local-codes")]).title
        == "Condition (code X1)"
    )


def test_a_condition_stage_with_no_observation_becomes_a_stage_item():
    cancer = condition(
        "C18.7",
        stage=[
            {
                "summary": {"text": "Stage 3B"},
                "type": {"text": "Clinical staging"},
                "assessment": [{"reference": "Observation/not-sent"}],
            }
        ],
    )
    stage = one([cancer], kind="stage")
    assert (stage.details["kind"], stage.details["group"], stage.details["site_group"]) == (
        "c",
        "IIIB",
        "colorectal",
    )


# Staging


def test_a_clinical_stage_group_gathers_its_t_n_m_members():
    group = observation(
        "21908-9",
        id_="g",
        valueCodeableConcept=concept("3C", "IIIC"),
        method={"text": "AJCC Cancer Staging Manual 8th Edition"},
        hasMember=[
            {"reference": "Observation/t"},
            {"reference": "Observation/n"},
            {"reference": "Observation/m"},
        ],
    )
    members = [
        observation("21905-5", id_="t", valueCodeableConcept=concept("cT3")),
        observation("21906-3", id_="n", valueCodeableConcept=concept("cN3")),
        observation("21907-1", id_="m", valueCodeableConcept=concept("cM0")),
    ]
    stage = one([group, *members])
    assert stage.kind == "stage"
    assert stage.title == "Clinical stage IIIC (T3 N3 M0)"
    assert {k: stage.details[k] for k in ("kind", "group", "t", "n", "m", "edition", "system")} == {
        "kind": "c",
        "group": "IIIC",
        "t": "T3",
        "n": "N3",
        "m": "M0",
        "edition": "8",
        "system": "AJCC",
    }


def test_a_stage_group_can_carry_its_categories_as_components():
    group = observation(
        "21902-2",
        valueCodeableConcept=concept(
            "1222806003", "American Joint Committee on Cancer stage IIA", SNOMED
        ),
        component=[
            {
                "code": {"coding": [{"system": LOINC, "code": "21899-0"}]},
                "valueCodeableConcept": {"text": "pT2"},
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "21900-6"}]},
                "valueCodeableConcept": {"text": "pN0"},
            },
        ],
    )
    stage = one([group])
    assert (
        stage.details["kind"],
        stage.details["group"],
        stage.details["t"],
        stage.details["n"],
    ) == (
        "p",
        "IIA",
        "T2",
        "N0",
    )


def test_a_post_therapy_prefix_makes_the_stage_post_therapy():
    group = observation(
        "21902-2",
        valueCodeableConcept={"text": "ypStage IIA"},
        component=[
            {"code": {"coding": [{"system": LOINC, "code": "21899-0"}]}, "valueString": "ypT2"}
        ],
    )
    assert one([group]).details["kind"] == "y"


def test_t_n_m_observations_without_a_group_are_gathered_into_one_stage_item():
    stage = one(
        [
            observation("21905-5", id_="t", valueCodeableConcept=concept("cT2a")),
            observation("21906-3", id_="n", valueCodeableConcept=concept("cN1")),
            observation("21907-1", id_="m", valueCodeableConcept=concept("cM0")),
        ]
    )
    assert (stage.details["group"], stage.details["t"], stage.details["n"], stage.details["m"]) == (
        None,
        "T2a",
        "N1",
        "M0",
    )
    assert stage.title == "Clinical staging T2a N1 M0"
    assert stage.details["also"] == ["Observation/n", "Observation/m"]


def test_a_stage_value_that_is_not_uicc8_is_kept_as_written_and_named():
    stage = one([observation("21908-9", valueCodeableConcept={"text": "Stage 5Z"})])
    assert stage.details["group"] == "Stage 5Z"
    assert stage.details["unrecognised"] == ["group"]


def test_a_stage_group_member_that_is_not_a_tnm_category_keeps_its_own_item():
    group = observation(
        "21908-9",
        id_="g",
        valueCodeableConcept={"text": "IIA"},
        hasMember=[{"reference": "Observation/grade"}],
    )
    grade = observation(
        "33732-9", id_="grade", code={"text": "Histological grade"}, valueString="G2"
    )
    normalised = normalise([read_resource(group), read_resource(grade)], "Trust A")
    assert sorted(i.kind for i in normalised.items) == ["observation", "stage"]


def test_a_stage_focused_on_a_condition_takes_its_site():
    cancer = condition("C50.4", bodySite=[{"text": "Right breast"}])
    group = observation(
        "21908-9", valueCodeableConcept={"text": "IIA"}, focus=[{"reference": "Condition/c1"}]
    )
    stage = one([cancer, group], kind="stage")
    assert (
        stage.details["site_group"],
        stage.details["laterality"],
        stage.details["condition"],
    ) == (
        "breast",
        "right",
        "Condition/c1",
    )


# Performance status


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"valueInteger": 1}, 1),
        ({"valueCodeableConcept": concept("LA9624-3", "Ambulatory", LOINC)}, 2),
        ({"valueCodeableConcept": {"text": "ECOG 3"}}, 3),
        ({"valueInteger": 7}, None),
    ],
)
def test_ecog_is_read_from_an_integer_or_a_coded_answer(value, expected):
    item = one([observation("89247-1", **value)])
    assert item.kind == "performance_status"
    assert item.details["scale"] == "ECOG"
    assert item.details["value"] == expected


def test_an_ecog_value_out_of_range_is_kept_as_recorded():
    item = one([observation("89247-1", valueInteger=7)])
    assert item.details["recorded_as"] == "7"
    assert item.title == "ECOG performance status (value not readable)"


def test_karnofsky_is_read_from_its_coded_answer():
    item = one([observation("89243-0", valueCodeableConcept=concept("LA29177-5", system=LOINC))])
    assert (item.details["scale"], item.details["value"], item.title) == (
        "Karnofsky",
        80,
        "Karnofsky performance status 80",
    )


def test_other_observations_keep_their_value_and_components():
    blood_pressure = observation(
        "85354-9",
        code={"text": "Blood pressure"},
        component=[
            {"code": {"text": "Systolic"}, "valueQuantity": {"value": 142, "unit": "mmHg"}},
            {"code": {"text": "Diastolic"}, "valueQuantity": {"value": 94, "unit": "mmHg"}},
        ],
    )
    item = one([blood_pressure])
    assert item.kind == "observation"
    assert item.details["components"] == [
        {"name": "Systolic", "value": "142 mmHg"},
        {"name": "Diastolic", "value": "94 mmHg"},
    ]


# Reports


def report(category, code_text, **extra):
    return {
        "resourceType": "DiagnosticReport",
        "id": "r1",
        "status": "final",
        "category": [{"coding": [{"system": V2_0074, "code": category}]}] if category else [],
        "code": {"text": code_text},
        "subject": SUBJECT,
        **extra,
    }


@pytest.mark.parametrize(
    ("category", "code_text", "kind"),
    [
        ("SP", "Histopathology report", "pathology"),
        ("LAB", "Full blood count", "pathology"),
        ("RAD", "Radiology report", "imaging"),
        (None, "MRI pelvis", "imaging"),
        (None, "Cytology report", "pathology"),
        ("EC", "12 lead ECG report", "document"),
    ],
)
def test_reports_are_pathology_or_imaging_by_category_then_words(category, code_text, kind):
    assert one([report(category, code_text)]).kind == kind


def test_a_report_keeps_its_conclusion_and_the_request_it_answers():
    item = one(
        [
            report(
                "RAD",
                "Radiology studies report",
                conclusion="Spiculated 3 cm mass, left upper lobe.",
                basedOn=[{"display": "CT chest, abdomen and pelvis"}],
                effectiveDateTime="2024-02-01T23:30:00+01:00",
            )
        ]
    )
    assert item.title == "Radiology studies report: CT chest, abdomen and pelvis"
    assert item.details["conclusion"] == "Spiculated 3 cm mass, left upper lobe."
    assert item.date == "2024-02-01"


# Treatments


def procedure(display, **extra):
    return {
        "resourceType": "Procedure",
        "id": "pr1",
        "status": "completed",
        "code": {"coding": [{"system": SNOMED, "code": "1", "display": display}]},
        "subject": SUBJECT,
        "performedDateTime": "2024-04-01",
        **extra,
    }


@pytest.mark.parametrize(
    ("display", "kind"),
    [
        ("Right hemicolectomy (procedure)", "surgery"),
        ("Stereotactic ablative radiotherapy", "radiotherapy"),
        ("Chemotherapy", "sact"),
        ("CT guided biopsy of lung", "procedure"),
        ("Colonoscopy", "procedure"),
    ],
)
def test_procedures_are_sorted_into_surgery_radiotherapy_sact_or_other(display, kind):
    assert one([procedure(display)]).kind == kind


def test_an_mcode_surgical_profile_decides_whatever_the_words():
    profiled = procedure(
        "Thing done",
        meta={
            "profile": [
                "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-related-surgical-procedure"
            ]
        },
    )
    assert one([profiled]).kind == "surgery"


def medication_request(name, **extra):
    return {
        "resourceType": "MedicationRequest",
        "id": "mr1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": name},
        "subject": SUBJECT,
        "authoredOn": "2024-05-01",
        **extra,
    }


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("Pembrolizumab 100mg/4ml concentrate", "sact"),
        ("Osimertinib 80mg tablets", "sact"),
        ("Carboplatin 450mg/45ml", "sact"),
        ("Metformin 500mg tablets", "medication"),
        ("Tofacitinib 5mg tablets", "medication"),
    ],
)
def test_medicines_are_sact_or_other_medication(name, kind):
    assert one([medication_request(name)]).kind == kind


def test_dose_and_route_are_read_from_the_dosage():
    item = one(
        [
            medication_request(
                "Ondansetron 8mg tablets",
                dosageInstruction=[
                    {
                        "text": "8mg twice a day",
                        "route": {"text": "Oral"},
                        "doseAndRate": [{"doseQuantity": {"value": 8, "unit": "mg"}}],
                    }
                ],
            )
        ]
    )
    assert (item.details["dose"], item.details["route"], item.details["dosage"]) == (
        "8 mg",
        "Oral",
        "8mg twice a day",
    )


def test_a_medicine_named_by_a_contained_medication_is_resolved():
    administration = {
        "resourceType": "MedicationAdministration",
        "id": "ma1",
        "status": "completed",
        "contained": [
            {"resourceType": "Medication", "id": "m", "code": {"text": "Docetaxel 160mg"}}
        ],
        "medicationReference": {"reference": "#m"},
        "subject": SUBJECT,
        "effectiveDateTime": "2024-05-02",
        "dosage": {"dose": {"value": 160, "unit": "mg"}, "route": {"text": "Intravenous"}},
    }
    item = one([administration])
    assert (item.kind, item.title, item.details["dose"]) == ("sact", "Docetaxel 160mg", "160 mg")


# Encounters, allergies, the rest


def test_an_encounter_names_its_provider_from_the_organisation_sent():
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "AMB",
            "display": "ambulatory",
        },
        "type": [{"text": "Oncology clinic"}],
        "subject": SUBJECT,
        "period": {"start": "2024-01-10T09:00:00Z"},
        "serviceProvider": {"reference": "Organization/o1"},
    }
    organisation = {
        "resourceType": "Organization",
        "id": "o1",
        "name": "Worcestershire Acute Hospitals",
    }
    normalised = normalise([read_resource(encounter), read_resource(organisation)], "Trust A")
    (item,) = normalised.items
    assert (item.kind, item.title, item.date) == ("encounter", "Oncology clinic", "2024-01-10")
    assert item.details["provider"] == "Worcestershire Acute Hospitals"
    assert normalised.supporting == {"Organization": 1}


def test_entered_in_error_records_are_left_out_and_counted():
    wrong = {
        "resourceType": "AllergyIntolerance",
        "id": "a1",
        "verificationStatus": {"coding": [{"code": "entered-in-error"}]},
        "code": {"text": "Penicillin"},
        "patient": SUBJECT,
    }
    normalised = normalise([read_resource(wrong)], "Trust A")
    assert normalised.items == []
    assert normalised.entered_in_error == 1


def test_resource_types_with_no_place_are_counted_not_dropped():
    immunisation = {
        "resourceType": "Immunization",
        "id": "i1",
        "status": "completed",
        "vaccineCode": {"text": "Influenza"},
        "patient": SUBJECT,
        "occurrenceDateTime": "2023-10-01",
    }
    normalised = normalise([read_resource(immunisation), read_resource(immunisation)], "Trust A")
    assert normalised.unhandled == {"Immunization": 2}


def test_every_item_keeps_its_source_and_resource_id():
    item = one([condition("C61")])
    assert (item.source, item.resource_type, item.resource_id) == ("Trust A", "Condition", "c1")


def test_the_summary_is_json_serialisable():
    resources = [
        condition("C34.1"),
        observation("89247-1", valueInteger=1),
        procedure("Lobectomy of lung"),
    ]
    data = normalise([read_resource(r) for r in resources], "Trust A").as_dict()
    assert json.loads(json.dumps(data)) == data
    assert {i["kind"] for i in data["items"]} <= set(KINDS)


@pytest.mark.parametrize(
    ("performed", "expected"),
    [
        ({"performedDateTime": "2019-03"}, "2019-03"),
        ({"performedDateTime": "2019-03-01T23:30:00-05:00"}, "2019-03-01"),
        ({"performedPeriod": {"start": "2019-03-01T09:00:00Z"}}, "2019-03-01"),
        ({"performedString": "Spring 2019"}, None),
    ],
)
def test_dates_are_iso_calendar_dates_as_written_or_none(performed, expected):
    resource = procedure("Lobectomy of lung")
    del resource["performedDateTime"]
    assert one([{**resource, **performed}]).date == expected
