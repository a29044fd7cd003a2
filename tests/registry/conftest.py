"""Registry rows for the tests: a valid tumour and treatment row (by field name), and a writer for
small CSV files with COSD item numbers as headers."""

import csv

import pytest

from demo.synthetic import synthetic_nhs_number
from registry import cosd


def tumour_row(**changes) -> dict[str, str]:
    row = {
        "submitting_org": "RRK",
        "local_tumour_id": "T1",
        "submission_date": "2024-03-01",
        "nhs_number": synthetic_nhs_number(1),
        "family_name": "Smith",
        "given_name": "Ada",
        "birth_date": "1950-01-31",
        "sex": "2",
        "postcode": "B1 1AA",
        "gp_practice": "M85011",
        "diagnosis_date": "2023-05-01",
        "icd10": "C34.1",
        "laterality": "L",
        "basis": "7",
        "morphology": "8140/3",
        "topography": "C34.1",
        "grade": "G2",
        "t": "cT2a",
        "n": "N1",
        "m": "M0",
        "stage_group": "IIIA",
        "tnm_edition": "8",
        "performance_status": "1",
    }
    row.update(changes)
    return row


def treatment_row(**changes) -> dict[str, str]:
    row = {
        "submitting_org": "RRK",
        "local_tumour_id": "T1",
        "modality": "01",
        "start_date": "2023-06-01",
        "provider": "RRK02",
        "intent": "C",
    }
    row.update(changes)
    return row


@pytest.fixture
def write_csv(tmp_path):
    """Writes rows (dicts by field name) under headers: item numbers unless given."""

    def write(rows, *, items=cosd.TUMOUR_ITEMS, name="tumours.csv", headers=None):
        fields = [item.field for item in items]
        if headers is None:
            headers = [item.number for item in items]
        path = tmp_path / name
        with open(path, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(headers)
            for row in rows:
                writer.writerow(row if isinstance(row, list) else [row[f] for f in fields])
        return path

    return write
