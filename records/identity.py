"""The identity rule, applied to each source's answer: it is shown only when it is, beyond doubt,
about the patient asked for.

The rule: exactly one Patient; it carries exactly one NHS number (the same value twice counts as
one), equal to the one asked for; its birth date equals the demographics service's where both are
known; and every clinical resource references that Patient through subject, patient or
beneficiary, as `Patient/<id>`, an absolute URL ending in `/Patient/<id>`, the Patient entry's
fullUrl, or a logical reference by the asked NHS number. A clinical resource with no patient
reference at all fails the rule too: nothing shows that it is about this patient.

Reasons are shown to clinicians and stored, so they never quote another person's NHS number or
birth date in full: a wrong NHS number is shown by its last four digits."""

from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from datetime import date

from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.resource import Resource

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
# R (restricted) is what PDS uses; V (very restricted) is stricter still, so it counts too.
RESTRICTED_CODES = frozenset({"R", "V"})

# Resources about no one patient: they need not (and usually cannot) reference the Patient.
SHARED_TYPES = frozenset(
    {
        "Organization",
        "Practitioner",
        "PractitionerRole",
        "Location",
        "HealthcareService",
        "Endpoint",
        "Medication",
        "Substance",
        "Device",
        "Schedule",
        "Slot",
        "Questionnaire",
        "Provenance",
        "AuditEvent",
        "Linkage",
        "OperationOutcome",
    }
)
_PATIENT_FIELDS = ("subject", "patient", "beneficiary")


@dataclass(frozen=True)
class IdentityResult:
    ok: bool
    reason: str  # "" when ok; otherwise one sentence for clinicians
    code: str  # "ok" or what failed: see the check_identity docstring
    patient_id: str | None = None
    restricted: bool = False
    deceased: bool | None = None
    birth_date: date | None = None
    family: str | None = None
    given: str | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["birth_date"] = self.birth_date.isoformat() if self.birth_date else None
        return data


def partition(
    resources: Iterable[Resource],
) -> tuple[list[Patient], list[Resource], list[Resource]]:
    """(patients, clinical, shared): the three lists the identity rule treats differently."""
    patients, clinical, shared = [], [], []
    for resource in resources:
        kind = resource.get_resource_type()
        if kind == "Patient":
            patients.append(resource)
        elif kind in SHARED_TYPES:
            shared.append(resource)
        else:
            clinical.append(resource)
    return patients, clinical, shared


def check_identity(
    patients: list[Patient],
    clinical: list[Resource],
    nhs_number: str,
    birth_date: date | None,
    *,
    patient_full_urls: Collection[str] = (),
) -> IdentityResult:
    """codes: no_patient, several_patients, no_nhs_number, several_nhs_numbers,
    nhs_number_mismatch, birth_date_mismatch, unlinked_resource, other_patient.

    Resources of SHARED_TYPES (and Patients) in `clinical` are not asked to reference the Patient,
    so passing every resource of the answer is safe; `partition` splits them beforehand.

    restricted, deceased, names and birth date describe the source's single Patient whenever there
    is one, even when the rule fails; act on them only when ok."""
    patients = distinct_patients(patients)
    if not patients:
        extra = (
            " It sent other records, but none can be matched to this patient." if clinical else ""
        )
        return _fail("no_patient", f"The source has no Patient record for this NHS number.{extra}")
    if len(patients) > 1:
        return _fail(
            "several_patients",
            f"The source returned {len(patients)} different Patient records; "
            "it is not clear which one is this patient.",
        )
    patient = patients[0]
    facts = _facts(patient)
    failure = _check_nhs_number(patient, nhs_number) or _check_birth_date(patient, birth_date)
    if failure is None:
        failure = _check_references(patient, clinical, nhs_number, patient_full_urls)
    if failure:
        return IdentityResult(ok=False, code=failure[0], reason=failure[1], **facts)
    return IdentityResult(ok=True, code="ok", reason="", **facts)


def _fail(code: str, reason: str) -> IdentityResult:
    return IdentityResult(ok=False, code=code, reason=reason)


def distinct_patients(patients: list[Patient]) -> list[Patient]:
    """The same Patient sent twice (e.g. once per page) is one Patient. (Serialising a Patient
    to compare it is costly, so a single one is returned as it is.)"""
    if len(patients) < 2:
        return list(patients)
    seen, distinct = set(), []
    for patient in patients:
        key = patient.model_dump_json()
        if key not in seen:
            seen.add(key)
            distinct.append(patient)
    return distinct


def _compact(number: str | None) -> str:
    return "".join((number or "").split())


def _spaced(number: str) -> str:
    return f"{number[:3]} {number[3:6]} {number[6:]}" if len(number) == 10 else number


def _check_nhs_number(patient: Patient, asked: str) -> tuple[str, str] | None:
    numbers = {
        _compact(identifier.value)
        for identifier in patient.identifier or []
        if identifier.system == NHS_NUMBER_SYSTEM and identifier.value
    }
    if not numbers:
        return "no_nhs_number", "The source's Patient record carries no NHS number."
    if len(numbers) > 1:
        return (
            "several_nhs_numbers",
            f"The source's Patient record carries {len(numbers)} different NHS numbers.",
        )
    (number,) = numbers
    if number != _compact(asked):
        return (
            "nhs_number_mismatch",
            f"The source's Patient record carries a different NHS number (ending {number[-4:]}) "
            f"from the one asked for ({_spaced(_compact(asked))}).",
        )
    return None


def _check_birth_date(patient: Patient, known: date | None) -> tuple[str, str] | None:
    theirs = patient.birthDate
    if known is None or theirs is None:
        return None
    # FHIR allows a partial birth date ("1951" or "1951-01"): compare to the precision given.
    text = theirs.isoformat() if isinstance(theirs, date) else str(theirs)
    if known.isoformat().startswith(text):
        return None
    return (
        "birth_date_mismatch",
        "The source's Patient record has a different birth date from the demographics service.",
    )


def _check_references(
    patient: Patient, clinical: list[Resource], nhs_number: str, full_urls: Collection[str]
) -> tuple[str, str] | None:
    unlinked, other = [], []
    clinical = [r for r in clinical if r.get_resource_type() not in SHARED_TYPES | {"Patient"}]
    for resource in clinical:
        references = _patient_references(resource)
        label = f"{resource.get_resource_type()}/{resource.id or '(no id)'}"
        if not references:
            unlinked.append(label)
        elif not all(_is_this_patient(r, patient, nhs_number, full_urls) for r in references):
            other.append(label)
    if other:
        return (
            "other_patient",
            f"{_count(other, len(clinical))} from the source refer to a different patient "
            f"or subject (for example {other[0]}).",
        )
    if unlinked:
        return (
            "unlinked_resource",
            f"{_count(unlinked, len(clinical))} from the source do not say which patient they are "
            f"about (for example {unlinked[0]}).",
        )
    return None


def _count(labels: list[str], total: int) -> str:
    return f"{len(labels)} of {total} records"


def _patient_references(resource: Resource) -> list:
    references = []
    for name in _PATIENT_FIELDS:
        value = getattr(resource, name, None)
        for reference in value if isinstance(value, list) else [value]:
            if reference is not None and (reference.reference or reference.identifier):
                references.append(reference)
    return references


def _is_this_patient(
    reference, patient: Patient, nhs_number: str, full_urls: Collection[str]
) -> bool:
    if reference.reference:
        target = reference.reference.split("/_history/")[0]
        if target in full_urls:
            return True
        if not patient.id:
            return False
        own = f"Patient/{patient.id}"
        absolute = target.startswith(("http://", "https://")) and target.endswith(f"/{own}")
        return target == own or absolute
    identifier = reference.identifier
    return identifier.system == NHS_NUMBER_SYSTEM and _compact(identifier.value) == _compact(
        nhs_number
    )


def _facts(patient: Patient) -> dict:
    security = (patient.meta.security or []) if patient.meta else []
    restricted = any(
        coding.system == CONFIDENTIALITY_SYSTEM and coding.code in RESTRICTED_CODES
        for coding in security
    )
    if patient.deceasedDateTime is not None:
        deceased = True
    else:
        deceased = patient.deceasedBoolean
    name = _main_name(patient)
    return {
        "patient_id": patient.id,
        "restricted": restricted,
        "deceased": deceased,
        "birth_date": patient.birthDate if isinstance(patient.birthDate, date) else None,
        "family": name.family if name else None,
        "given": (" ".join(name.given or []) or None) if name else None,
    }


def _main_name(patient: Patient):
    names = patient.name or []
    for use in ("official", "usual"):
        for name in names:
            if name.use == use:
                return name
    return names[0] if names else None
