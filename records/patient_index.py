"""Looking patients up: the demographics service is the authority; the region's patient index
keeps what it last said, and answers alone (saying so) when the service is down."""

from dataclasses import dataclass

from accounts.models import Organisation

from .demographics import Demographics, DemographicsUnavailable, fetch_demographics
from .models import Patient
from .nhs_numbers import InvalidNHSNumber, parse_nhs_number


class UnknownPatient(LookupError):
    pass


@dataclass
class PatientLookup:
    patient: Patient
    notice: str = ""  # e.g. the demographics service was down and the index answered


def apply_demographics(demographics: Demographics, patient: Patient | None = None) -> Patient:
    """Brings the index entry in line with the demographics service (creating it if new)."""
    practice = None
    if demographics.gp_practice_ods:
        practice = Organisation.objects.filter(
            ods_code=demographics.gp_practice_ods, kind=Organisation.Kind.GP_PRACTICE
        ).first()
    values = {
        "given_name": demographics.given_name,
        "family_name": demographics.family_name,
        "sex": demographics.sex if demographics.sex in Patient.Sex.values else "unknown",
        "gp_practice": practice,
        "deceased": demographics.deceased,
        # Restricted is sticky here: any source saying so is enough (records.populate also sets it).
        "restricted": demographics.restricted or bool(patient and patient.restricted),
    }
    if demographics.birth_date:
        values["birth_date"] = demographics.birth_date
    if not demographics.restricted:
        values["address"] = demographics.address
        values["postcode"] = demographics.postcode
    else:
        values["address"] = ""
        values["postcode"] = ""
    patient, _ = Patient.objects.update_or_create(
        nhs_number=demographics.nhs_number, defaults=values
    )
    return patient


def find_patient(typed_nhs_number: str) -> Patient:
    """The indexed patient, asking the demographics service only for an NHS number the index
    does not know yet (the add-case preview has just refreshed the index from it)."""
    return lookup_patient(typed_nhs_number, prefer_index=True).patient


def lookup_patient(typed_nhs_number: str, *, prefer_index: bool = False) -> PatientLookup:
    """Raises InvalidNHSNumber or UnknownPatient, each with a message for the user."""
    nhs = parse_nhs_number(typed_nhs_number)
    indexed = Patient.objects.select_related("gp_practice").filter(nhs_number=nhs).first()
    if prefer_index and indexed is not None:
        return PatientLookup(indexed)
    try:
        demographics = fetch_demographics(nhs)
    except DemographicsUnavailable as down:
        if indexed is None:
            raise UnknownPatient(
                f"{down} The region's patient index does not know this NHS number either, so "
                "the patient cannot be added now. Try again in a few minutes."
            ) from down
        return PatientLookup(
            indexed,
            notice=f"{down} These details are from the region's patient index, last updated "
            f"{indexed.updated_at:%d %B %Y}.",
        )
    if demographics is None:
        raise UnknownPatient(
            "No patient with this NHS number is known to the demographics service. "
            "Check the number, or ask the referring team to confirm it."
        )
    return PatientLookup(apply_demographics(demographics, indexed))


__all__ = ["InvalidNHSNumber", "PatientLookup", "UnknownPatient", "find_patient", "lookup_patient"]
