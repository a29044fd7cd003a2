"""The demographics service's Patient (PDS shape), read from NHS England's PDS sandbox examples."""

import json
from datetime import date
from pathlib import Path

import pytest

from records.demographics import parse_pds_patient

PDS = Path(__file__).resolve().parents[2].parent / "shared" / "fhir-examples" / "pds-sandbox"


def load(name: str) -> dict:
    return json.loads((PDS / name).read_text())


def test_full_pds_patient_gives_name_birth_date_and_current_gp():
    result = parse_pds_patient(load("Patient.json"), today=date(2025, 6, 1))
    assert result.nhs_number == "9000000009"
    assert (result.given_name, result.family_name) == ("Jane", "Smith")
    assert result.birth_date == date(2010, 10, 22)
    assert result.gp_practice_ods == "Y12345"
    assert result.address.startswith("1 Trevelyan Square")
    assert result.postcode == "LS1 6AE"
    assert not result.restricted


def test_a_gp_registration_that_has_ended_is_not_current():
    result = parse_pds_patient(load("Patient.json"), today=date(2026, 11, 25))
    assert result.gp_practice_ods == ""
    assert "no current practice" in result.notes[0]


def test_restricted_patient_is_flagged_and_has_no_address():
    result = parse_pds_patient(load("Sensitive_Patient.json"), today=date(2025, 6, 1))
    assert result.restricted
    assert result.deceased
    assert result.address == ""
    assert result.postcode == ""


def test_minimal_patient_reads_without_name():
    result = parse_pds_patient(load("Minimal_Patient.json"))
    assert result.nhs_number
    assert result.family_name == ""


def test_a_record_without_an_nhs_number_is_refused():
    resource = load("Patient.json")
    resource["identifier"] = []
    with pytest.raises(ValueError, match="exactly one NHS number"):
        parse_pds_patient(resource)
