"""The cancer registry as a record source: registrations become normalised items on the case
page, badged with the registry source's name ("Cancer registry"), merged with what the trusts'
FHIR servers say, so that a registry stage that differs from a trust's is flagged as a conflict.

records.populate calls `answer_for_patients` through settings.RECORD_SOURCE_ADAPTERS (records
never imports this app; see records.internal_sources), once per population run, on the calling
thread: one query for every patient of the run, with their treatments prefetched.

A patient's registrations are those carrying their NHS number, and any linked to their index
entry (Registration.patient) whatever number they carry, so that the identity check sees a
registration linked to this patient under another NHS number and refuses the whole answer.

What each registration gives (dates are the registry's; the registry holds no staging or
performance status date, so those items are dated by the diagnosis, CR2030):
- a `diagnosis`: ICD-10 (CR0370, coded with http://hl7.org/fhir/sid/icd-10), laterality (CR0380),
  morphology (CR0180), grade (CR0410) and basis of diagnosis (CR0390); role, site group and side
  as records.oncology_facts reads them from a trust's Condition;
- a `stage` of kind "c" from the final pretreatment TNM (CR0520/0540/0560, group CR0580, edition
  CR6980), described by records.oncology_facts.stage_details exactly as a FHIR stage is, with the
  tumour's site group and side, so records.merge compares it with the trusts' clinical stages;
- a `performance_status` (CR0510, WHO 0-4; 9, not recorded, gives none);
- an item per treatment (CR2040 modality: surgery, radiotherapy, systemic anti-cancer therapy...).

Audit (SourceResult.raw): the registration rows as dicts, with their treatments, so the snapshot
shows what the registry said. The postcode (CR0080) is never stored there, for any patient: it
is not used for anything shown; a patient may be restricted (no address anywhere) without the
run knowing it yet, since the demographics service's answer can arrive after this source was
read; and a snapshot can never be changed afterwards. The registry keeps the row itself, with its
history, under the id the raw names."""

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime

from django.db.models import Q

from records.federation import SourceConfig
from records.internal_sources import InternalAnswer, PatientRef, RecordIdentity
from records.models import SourceResult
from records.normalise import Item
from records.oncology_facts import icd10_role, stage_details, stage_title
from records.tumour_sites import site_from_icd10

from . import cosd, terms
from .models import Registration, Treatment

ICD10_SYSTEM = "http://hl7.org/fhir/sid/icd-10"
ICDO3_SYSTEM = "http://terminology.hl7.org/CodeSystem/icd-o-3"
Status = SourceResult.Status

SIDES = {"L": "left", "R": "right", "B": "bilateral"}  # M, 8 and 9 say nothing about a side
# CR2040 modality -> the kind of item the case page files it under.
TREATMENT_KINDS = {
    "01": "surgery",
    "02": "radiotherapy",
    "06": "radiotherapy",
    "14": "radiotherapy",
    "03": "sact",
    "04": "sact",
    "07": "sact",
    "13": "sact",
    "12": "medication",
}
# Never copied into a snapshot (see the module docstring).
NOT_KEPT = frozenset({"postcode"})
RAW_FIELDS = [item.field for item in cosd.TUMOUR_ITEMS if item.field not in NOT_KEPT]
RAW_TREATMENT_FIELDS = ["modality", "start_date", "provider", "intent"]


def answer_for_patients(
    source: SourceConfig, patients: Sequence[PatientRef]
) -> dict[str, InternalAnswer]:
    """The registry's answer about each patient, by NHS number: `ok` with their registrations'
    items, or `not_found` when the registry holds no registration for them. `source` is the
    records.federation.SourceConfig of the registry's Source row: its badge names the items."""
    numbers = {p.nhs_number for p in patients}
    number_of = {p.patient_id: p.nhs_number for p in patients if p.patient_id}
    registrations = (
        Registration.objects.filter(Q(nhs_number__in=numbers) | Q(patient_id__in=list(number_of)))
        .prefetch_related("treatments")
        .order_by("diagnosis_date", "pk")
    )
    found: dict[str, list[Registration]] = defaultdict(list)
    for registration in registrations:
        owners = {registration.nhs_number} & numbers
        if registration.patient_id in number_of:
            owners.add(number_of[registration.patient_id])
        for number in owners:
            found[number].append(registration)
    return {p.nhs_number: _answer(source, found.get(p.nhs_number, [])) for p in patients}


def _answer(source: SourceConfig, registrations: list[Registration]) -> InternalAnswer:
    if not registrations:
        return InternalAnswer(
            source,
            status=Status.NOT_FOUND,
            detail="The registry holds no registration for this NHS number.",
        )
    answer = InternalAnswer(
        source,
        raw=[raw_registration(r) for r in registrations],
        identities=[RecordIdentity(r.nhs_number, r.birth_date) for r in registrations],
        records=sum(1 + len(r.treatments.all()) for r in registrations),
    )
    for registration in registrations:
        try:
            answer.items.extend(registration_items(registration, source.badge))
        except Exception as error:  # noqa: BLE001 - one odd row must not hide the others
            answer.dropped += 1
            answer.drop_reasons.append(f"Registration #{registration.pk}: {type(error).__name__}")
    if answer.dropped:
        answer.status = Status.PARTIAL
        answer.detail = f"{answer.dropped} registrations could not be read."
    return answer


def raw_registration(registration: Registration) -> dict:
    """The registration as the registry holds it, for audit, without the items in NOT_KEPT."""
    row = {"id": registration.pk}
    row.update({name: _plain(getattr(registration, name)) for name in RAW_FIELDS})
    row.update(
        source_file=registration.source_file,
        source_line=registration.source_line,
        updated_at=_plain(registration.updated_at),
        treatments=[
            {"id": t.pk, **{name: _plain(getattr(t, name)) for name in RAW_TREATMENT_FIELDS}}
            for t in registration.treatments.all()
        ],
    )
    return row


def _sentence(text: str) -> str | None:
    return text[:1].upper() + text[1:] if text else None


def _plain(value):
    return value.isoformat() if isinstance(value, date | datetime) else value


# Items --------------------------------------------------------------------------------------


def registration_items(registration: Registration, badge: str) -> list[Item]:
    tumour = _tumour(registration)
    items = [_diagnosis(registration, tumour, badge)]
    if any((registration.t, registration.n, registration.m, registration.stage_group)):
        items.append(_stage(registration, tumour, badge))
    if registration.performance_status in {"0", "1", "2", "3", "4"}:
        items.append(_performance_status(registration, badge))
    items.extend(_treatment(registration, t, tumour, badge) for t in registration.treatments.all())
    return items


def _tumour(registration: Registration) -> dict:
    code = terms.icd10_code(registration.icd10)
    subcategory = terms.ICD10_SUBCATEGORIES.get(code)
    return {
        "site": subcategory or terms.ICD10_CATEGORIES.get(code[:3]),
        "site_group": site_from_icd10(code),
        "laterality": SIDES.get(registration.laterality.strip().upper()),
    }


def _item(kind, day, title, codes, badge, resource_type, resource_id, details) -> Item:
    return Item(
        kind=kind,
        date=day.isoformat() if day else None,
        title=title,
        codes=codes,
        source=badge,
        resource_type=resource_type,
        resource_id=resource_id,
        details=details,
    )


def _diagnosis(registration: Registration, tumour: dict, badge: str) -> Item:
    code = terms.icd10_code(registration.icd10)
    title = f"{terms.icd10_title(code)} ({code})"
    if tumour["laterality"]:
        title += f", {tumour['laterality']}"
    codes = [{"system": ICD10_SYSTEM, "code": code, "display": terms.icd10_title(code)}]
    morphology = terms.morphology_text(registration.morphology)
    if morphology:
        codes.append(
            {
                "system": ICDO3_SYSTEM,
                "code": terms.morphology_code(registration.morphology),
                "display": morphology,
            }
        )
    basis = cosd.BASIS_OF_DIAGNOSIS.get(registration.basis.strip())
    grade = registration.grade.strip().upper()
    grade_text = f"grade {grade} ({terms.GRADES[grade]})" if grade in terms.GRADES else None
    said = [morphology, grade_text, f"basis of diagnosis: {basis.lower()}" if basis else None]
    details = {
        **tumour,
        "role": icd10_role(code),
        # The registry does not say whether the cancer is active; it registers confirmed ones.
        "clinical_status": None,
        "verification_status": "confirmed",
        "morphology": morphology,
        "grade": grade or None,
        "basis": basis,
        "stage_summary": registration.stage_group or None,
        "submitting_org": registration.submitting_org,
        "registration": registration.pk,
        # Shown under the title on the case page.
        "conclusion": _sentence("; ".join(filter(None, said))),
    }
    return _item(
        "diagnosis",
        registration.diagnosis_date,
        title,
        codes,
        badge,
        "Registration",
        f"registration-{registration.pk}",
        details,
    )


def _stage(registration: Registration, tumour: dict, badge: str) -> Item:
    edition = registration.tnm_edition.strip()
    details = stage_details(
        "c",  # the final pretreatment TNM: clinical (a y prefix would still make it post-therapy)
        [registration.stage_group.strip()],
        {axis: [getattr(registration, axis).strip()] for axis in ("t", "n", "m")},
        str(int(edition)) if edition.isdigit() else (edition or None),
        "UICC",
        tumour,
    )
    details.update(condition=None, registration=registration.pk, dated_by="diagnosis date")
    return _item(
        "stage",
        registration.diagnosis_date,
        stage_title(details),
        [],
        badge,
        "Registration",
        f"registration-{registration.pk}-stage",
        details,
    )


def _performance_status(registration: Registration, badge: str) -> Item:
    value = int(registration.performance_status)
    return _item(
        "performance_status",
        registration.diagnosis_date,
        f"WHO performance status {value}",
        [],
        badge,
        "Registration",
        f"registration-{registration.pk}-performance-status",
        {"scale": "WHO", "value": value, "dated_by": "diagnosis date"},
    )


def _treatment(registration: Registration, treatment: Treatment, tumour: dict, badge: str) -> Item:
    modality = treatment.modality.strip()
    name = cosd.MODALITIES.get(modality, f"Cancer treatment (modality {modality})")
    title = f"{name} ({treatment.provider})" if treatment.provider else name
    details = {
        "status": None,  # the registry records a start date, not whether it was completed
        "laterality": None,
        "dose": None,
        "route": None,
        "modality": modality,
        "provider": treatment.provider or None,
        "intent_code": treatment.intent or None,
        "reason": [terms.icd10_title(registration.icd10)],
        "registration": registration.pk,
        "site_group": tumour["site_group"],
    }
    return _item(
        TREATMENT_KINDS.get(modality, "procedure"),
        treatment.start_date,
        title,
        [],
        badge,
        "Treatment",
        f"treatment-{treatment.pk}",
        details,
    )
