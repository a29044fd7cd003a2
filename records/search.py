"""Searching the region's patient index (by NHS number, or last name and date of birth)."""

from datetime import date

from .models import Patient
from .nhs_numbers import parse_nhs_number


def search_patients(
    *, nhs_number: str = "", family_name: str = "", birth_date: date | None = None, limit: int = 50
) -> list[Patient]:
    """Raises InvalidNHSNumber for a mistyped number."""
    patients = Patient.objects.select_related("gp_practice")
    if nhs_number:
        return list(patients.filter(nhs_number=parse_nhs_number(nhs_number)))
    return list(
        patients.filter(family_name__iexact=family_name.strip(), birth_date=birth_date).order_by(
            "family_name", "given_name"
        )[:limit]
    )
