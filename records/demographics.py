"""The demographics service (NHS England's Personal Demographics Service shape): the authority
for a patient's name, birth date, registered GP practice (current registration only), restricted
and deceased status. A FHIR R4 Patient read by NHS number."""

from dataclasses import asdict, dataclass, field
from datetime import date

import httpx
from django.conf import settings
from django.utils import timezone
from fhir.resources.R4B.patient import Patient as FhirPatient

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"


class DemographicsUnavailable(Exception):
    """The service did not answer (down, too slow, or an error): the message says so plainly."""


@dataclass
class Demographics:
    nhs_number: str
    given_name: str = ""
    family_name: str = ""
    birth_date: date | None = None
    sex: str = "unknown"
    address: str = ""
    postcode: str = ""
    gp_practice_ods: str = ""
    restricted: bool = False
    deceased: bool = False
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["birth_date"] = self.birth_date.isoformat() if self.birth_date else None
        return data


def _current(period, today: date) -> bool:
    if period is None:
        return True
    start = period.start.date() if hasattr(period.start, "date") else period.start
    end = period.end.date() if hasattr(period.end, "date") else period.end
    return (start is None or start <= today) and (end is None or today <= end)


def parse_pds_patient(resource: dict, today: date | None = None) -> Demographics:
    """Raises ValueError if the resource is not a valid FHIR R4 Patient."""
    today = today or timezone.localdate()
    patient = FhirPatient.model_validate(resource)
    numbers = [i.value for i in patient.identifier or [] if i.system == NHS_NUMBER_SYSTEM]
    if len(set(numbers)) != 1:
        raise ValueError("the demographics record does not carry exactly one NHS number")
    result = Demographics(nhs_number=numbers[0])
    names = patient.name or []
    name = next(
        (n for n in names if n.use in ("usual", "official") and _current(n.period, today)),
        names[0] if names else None,
    )
    if name is not None:
        result.given_name = " ".join(name.given or [])
        result.family_name = name.family or ""
    result.birth_date = patient.birthDate
    result.sex = patient.gender or "unknown"
    result.restricted = any(
        s.system == CONFIDENTIALITY_SYSTEM and s.code in ("R", "V")
        for s in (patient.meta.security if patient.meta and patient.meta.security else [])
    )
    result.deceased = bool(patient.deceasedBoolean or patient.deceasedDateTime)
    home = next(
        (a for a in patient.address or [] if a.use == "home" and _current(a.period, today)), None
    )
    if home is not None and not result.restricted:
        result.address = ", ".join(home.line or [])
        result.postcode = home.postalCode or ""
    for practitioner in patient.generalPractitioner or []:
        identifier = practitioner.identifier
        if identifier and identifier.system == ODS_SYSTEM and _current(identifier.period, today):
            result.gp_practice_ods = identifier.value
            break
    else:
        if patient.generalPractitioner:
            result.notes.append("The GP registration on record has ended: no current practice.")
    return result


def _client_kwargs() -> dict:
    return {
        "timeout": httpx.Timeout(settings.DEMOGRAPHICS_TIMEOUT_S),
        "headers": {"Accept": "application/fhir+json"},
    }


def _interpret(response: httpx.Response) -> Demographics | None:
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise DemographicsUnavailable(
            f"The demographics service answered with an error ({response.status_code})."
        )
    try:
        return parse_pds_patient(response.json())
    except ValueError as error:
        raise DemographicsUnavailable(
            "The demographics service sent a record that could not be read."
        ) from error


def fetch_demographics(nhs_number: str) -> Demographics | None:
    """None when the service does not know the NHS number."""
    if not settings.DEMOGRAPHICS_URL:
        raise DemographicsUnavailable("No demographics service is configured.")
    try:
        with httpx.Client(**_client_kwargs()) as client:
            response = client.get(f"{settings.DEMOGRAPHICS_URL}/Patient/{nhs_number}")
    except httpx.TimeoutException as error:
        raise DemographicsUnavailable("The demographics service did not answer in time.") from error
    except httpx.HTTPError as error:
        raise DemographicsUnavailable("The demographics service could not be reached.") from error
    return _interpret(response)


async def fetch_demographics_async(
    client: httpx.AsyncClient, nhs_number: str
) -> Demographics | None:
    if not settings.DEMOGRAPHICS_URL:
        raise DemographicsUnavailable("No demographics service is configured.")
    try:
        response = await client.get(
            f"{settings.DEMOGRAPHICS_URL}/Patient/{nhs_number}",
            **{"timeout": settings.DEMOGRAPHICS_TIMEOUT_S},
        )
    except httpx.TimeoutException as error:
        raise DemographicsUnavailable("The demographics service did not answer in time.") from error
    except httpx.HTTPError as error:
        raise DemographicsUnavailable("The demographics service could not be reached.") from error
    return _interpret(response)
