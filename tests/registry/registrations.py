"""Tumour registrations made directly (not through the importer) for the search and page tests:
valid by default, linked to the patient's index entry when a patient is given."""

from datetime import date
from itertools import count

from demo.synthetic import synthetic_nhs_number
from registry.models import Registration

_tumour_ids = count(1)


def make_registration(patient=None, **values) -> Registration:
    fields = {
        "submitting_org": "RRK",
        "local_tumour_id": f"T{next(_tumour_ids)}",
        "submission_date": date(2024, 3, 1),
        "nhs_number": synthetic_nhs_number(7000 + next(_tumour_ids)),
        "family_name": "Registered",
        "given_name": "Ada",
        "birth_date": date(1950, 1, 31),
        "sex": "2",
        "postcode": "B1 1AA",
        "gp_practice": "M85011",
        "diagnosis_date": date(2023, 5, 1),
        "icd10": "C34.1",
        "t": "cT2a",
        "n": "N1",
        "m": "M0",
        "stage_group": "IIIA",
        "tnm_edition": "8",
    }
    if patient is not None:
        fields.update(
            patient=patient,
            nhs_number=patient.nhs_number,
            family_name=patient.family_name,
            given_name=patient.given_name,
            birth_date=patient.birth_date,
        )
    fields.update(values)
    return Registration.objects.create(**fields)
