"""Looking patients up in the region's patient index."""

from .models import Patient
from .nhs_numbers import InvalidNHSNumber, parse_nhs_number


class UnknownPatient(LookupError):
    pass


def find_patient(typed_nhs_number: str) -> Patient:
    """Raises InvalidNHSNumber or UnknownPatient, each with a message for the user."""
    nhs = parse_nhs_number(typed_nhs_number)
    patient = Patient.objects.select_related("gp_practice").filter(nhs_number=nhs).first()
    if patient is None:
        raise UnknownPatient(
            "No patient with this NHS number is known to the region's patient index. "
            "Check the number, or ask the referring team to confirm it."
        )
    return patient


__all__ = ["InvalidNHSNumber", "UnknownPatient", "find_patient"]
