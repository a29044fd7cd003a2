import json
from datetime import date

import pytest
from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient

from records.identity import NHS_NUMBER_SYSTEM, check_identity, partition

ASKED = "9990000026"
BORN = date(1951, 1, 20)


def patient(*numbers, id_="p1", birth="1951-01-20", **extra):
    numbers = numbers or (ASKED,)
    return Patient.model_validate(
        {
            "resourceType": "Patient",
            "id": id_,
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": n} for n in numbers]
            + [{"system": "https://trust.example/mrn", "value": "M123"}],
            **({"birthDate": birth} if birth else {}),
            "name": [{"use": "official", "family": "Anyperson", "given": ["John", "B."]}],
            **extra,
        }
    )


def condition(subject="Patient/p1", id_="c1"):
    subject = subject if isinstance(subject, dict) else {"reference": subject}
    return Condition.model_validate(
        {
            "resourceType": "Condition",
            "id": id_,
            "code": {"text": "Lung cancer"},
            "subject": subject,
        }
    )


def test_one_patient_with_the_asked_nhs_number_and_linked_records_passes():
    result = check_identity([patient()], [condition(), condition(id_="c2")], ASKED, BORN)
    assert result.ok
    assert (result.code, result.reason) == ("ok", "")
    assert result.patient_id == "p1"
    assert (result.family, result.given, result.birth_date) == ("Anyperson", "John B.", BORN)


def test_no_patient_fails():
    result = check_identity([], [condition()], ASKED, BORN)
    assert not result.ok
    assert result.code == "no_patient"
    assert "none can be matched" in result.reason


def test_two_different_patients_fail():
    result = check_identity([patient(), patient(id_="p2")], [], ASKED, BORN)
    assert not result.ok
    assert result.code == "several_patients"


def test_the_same_patient_sent_twice_counts_once():
    assert check_identity([patient(), patient()], [condition()], ASKED, BORN).ok


def test_a_different_nhs_number_fails_and_shows_only_its_last_four_digits():
    result = check_identity([patient("9990000034")], [condition()], ASKED, BORN)
    assert not result.ok
    assert result.code == "nhs_number_mismatch"
    assert result.reason == (
        "The source's Patient record carries a different NHS number (ending 0034) "
        "from the one asked for (999 000 0026)."
    )
    assert "9990000034" not in result.reason


def test_two_different_nhs_numbers_fail():
    result = check_identity([patient(ASKED, "9990000034")], [condition()], ASKED, BORN)
    assert not result.ok
    assert result.code == "several_nhs_numbers"


def test_the_same_nhs_number_twice_is_one_number():
    assert check_identity([patient(ASKED, "999 000 0026")], [condition()], ASKED, BORN).ok


def test_a_patient_without_an_nhs_number_fails():
    no_number = Patient.model_validate({"resourceType": "Patient", "id": "p1"})
    result = check_identity([no_number], [condition()], ASKED, BORN)
    assert result.code == "no_nhs_number"


def test_birth_dates_that_differ_fail_without_quoting_them():
    result = check_identity([patient(birth="1951-01-21")], [condition()], ASKED, BORN)
    assert not result.ok
    assert result.code == "birth_date_mismatch"
    assert "1951" not in result.reason


@pytest.mark.parametrize(
    ("source_birth", "known"), [(None, BORN), ("1951-01-20", None), (None, None)]
)
def test_a_birth_date_missing_on_either_side_is_not_checked(source_birth, known):
    assert check_identity([patient(birth=source_birth)], [condition()], ASKED, known).ok


@pytest.mark.parametrize(
    ("source_birth", "ok"), [("1951", True), ("1951-01", True), ("1951-02", False)]
)
def test_a_partial_birth_date_is_compared_to_its_precision(source_birth, ok):
    assert check_identity([patient(birth=source_birth)], [condition()], ASKED, BORN).ok is ok


@pytest.mark.parametrize(
    "subject",
    [
        "Patient/p1",
        "https://trust.example/fhir/Patient/p1",
        "Patient/p1/_history/3",
        {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": ASKED}},
    ],
)
def test_every_accepted_form_of_reference_to_the_patient_passes(subject):
    assert check_identity([patient()], [condition(subject)], ASKED, BORN).ok


def test_a_reference_to_the_patient_entrys_full_url_passes():
    result = check_identity(
        [patient()],
        [condition("urn:uuid:5b1e0f3e-0000-4000-8000-000000000001")],
        ASKED,
        BORN,
        patient_full_urls={"urn:uuid:5b1e0f3e-0000-4000-8000-000000000001"},
    )
    assert result.ok


@pytest.mark.parametrize(
    "subject",
    [
        "Patient/p2",
        "https://trust.example/fhir/Patient/p10",
        "https://trust.example/fhir/OtherPatient/p1",
        "Group/p1",
        {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": "9990000034"}},
    ],
)
def test_a_record_about_another_patient_fails(subject):
    result = check_identity([patient()], [condition(), condition(subject, id_="c9")], ASKED, BORN)
    assert not result.ok
    assert result.code == "other_patient"
    assert result.reason == (
        "1 of 2 records from the source refer to a different patient or subject "
        "(for example Condition/c9)."
    )


def test_a_record_with_no_patient_reference_fails():
    unlinked = Observation.model_validate(
        {"resourceType": "Observation", "id": "o7", "status": "final", "code": {"text": "ECOG"}}
    )
    result = check_identity([patient()], [condition(), unlinked], ASKED, BORN)
    assert not result.ok
    assert result.code == "unlinked_resource"
    assert result.reason == (
        "1 of 2 records from the source do not say which patient they are about "
        "(for example Observation/o7)."
    )


def test_a_record_naming_its_patient_only_by_display_is_unlinked():
    result = check_identity([patient()], [condition({"display": "John Anyperson"})], ASKED, BORN)
    assert result.code == "unlinked_resource"


def test_records_that_use_the_patient_field_are_checked_too():
    allergy = AllergyIntolerance.model_validate(
        {"resourceType": "AllergyIntolerance", "id": "a1", "patient": {"reference": "Patient/p2"}}
    )
    assert check_identity([patient()], [allergy], ASKED, BORN).code == "other_patient"


def test_partition_keeps_shared_resources_out_of_the_identity_check():
    organisation = Organization.model_validate(
        {"resourceType": "Organization", "id": "o1", "name": "Trust"}
    )
    patients, clinical, shared = partition([patient(), condition(), organisation])
    assert [p.id for p in patients] == ["p1"]
    assert [c.id for c in clinical] == ["c1"]
    assert [s.id for s in shared] == ["o1"]


def test_restricted_and_deceased_are_read_from_the_patient():
    restricted = patient(
        meta={
            "security": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
            ]
        },
        deceasedBoolean=True,
    )
    result = check_identity([restricted], [], ASKED, BORN)
    assert result.ok
    assert result.restricted
    assert result.deceased is True


def test_a_patient_with_no_security_label_or_death_is_unrestricted_and_not_known_dead():
    result = check_identity([patient()], [], ASKED, BORN)
    assert result.restricted is False
    assert result.deceased is None


def test_a_security_code_r_from_another_system_is_not_restriction():
    other = patient(meta={"security": [{"system": "http://example.org/codes", "code": "R"}]})
    assert check_identity([other], [], ASKED, BORN).restricted is False


def test_the_result_is_json_serialisable():
    data = check_identity([patient()], [condition()], ASKED, BORN).as_dict()
    assert json.loads(json.dumps(data))["birth_date"] == "1951-01-20"


def test_shared_resources_passed_as_clinical_need_not_reference_the_patient():
    organisation = Organization.model_validate(
        {"resourceType": "Organization", "id": "o1", "name": "Trust"}
    )
    assert check_identity([patient()], [condition(), organisation, patient()], ASKED, BORN).ok
