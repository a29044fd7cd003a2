"""Reading the care a source records: reports and imaging, procedures, medicines, encounters,
documents, allergies and care plans."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from . import fhir_values as fv
from . import tumour_sites

if TYPE_CHECKING:
    from .normalise import Context, Item

_RADIOTHERAPY_WORDS = re.compile(
    r"radiotherap|radiation|brachytherap|teletherap|irradiat|\bsabr\b|\bsbrt\b|\bimrt\b|"
    r"stereotactic|proton beam",
    re.IGNORECASE,
)
_SACT_PROCEDURE_WORDS = re.compile(
    r"chemotherap|immunotherap|systemic anti-?cancer|\bsact\b", re.IGNORECASE
)
_SURGERY_WORDS = re.compile(
    r"ectomy|otomy|ostomy|plasty|pexy|rrhaphy|resection|excision|amputation|transplant|"
    r"surgical|surgery|operation|reconstruction|repair of",
    re.IGNORECASE,
)
# Systemic anti-cancer drugs by name or stem: a heuristic for sources that do not use mCODE's
# cancer-related medication profiles. JAK inhibitors (-citinib, filgotinib) are not anti-cancer.
_SACT_DRUGS = re.compile(
    r"(?<!ci)(?<!filgo)tinib|ciclib|rafenib|parib|platin\b|taxel|rubicin|fluorouracil|"
    r"capecitabine|gemcitabine|pemetrexed|cyclophosphamide|ifosfamide|etoposide|irinotecan|"
    r"vinorelbine|vincristine|vinblastine|temozolomide|bleomycin|mitomycin|topotecan|"
    r"dacarbazine|bendamustine|chlorambucil|lenalidomide|bortezomib|trastuzumab|pertuzumab|"
    r"bevacizumab|cetuximab|panitumumab|rituximab|nivolumab|pembrolizumab|atezolizumab|"
    r"durvalumab|ipilimumab|avelumab|cemiplimab|tamoxifen|letrozole|anastrozole|exemestane|"
    r"fulvestrant|enzalutamide|abiraterone|apalutamide|bicalutamide|goserelin|leuprorelin|"
    r"degarelix|\bTPF\b",
    re.IGNORECASE,
)
_PATHOLOGY_CATEGORIES = {
    "LAB", "PAT", "SP", "CP", "CG", "GE", "HM", "CH", "IMM", "MB", "MCB", "MYC", "VR", "SR",
    "TX", "BLB", "BG", "OSL", "394915009", "394597005", "394595002", "LP7839-6",
}  # fmt: skip
_IMAGING_CATEGORIES = {
    "RAD", "RX", "CT", "NMR", "NMS", "RUS", "VUS", "OUS", "CUS", "XRC", "394914008", "LP29684-5",
}  # fmt: skip
_IMAGING_WORDS = re.compile(
    r"radiolog|imaging|\bCT\b|computed tomograph|\bMRI?\b|magnetic resonance|x-?ray|radiograph|"
    r"ultraso|\bPET\b|mammogra|\bscan\b",
    re.IGNORECASE,
)
_PATHOLOGY_WORDS = re.compile(
    r"patholog|histolog|cytolog|biopsy|laborator|haematolog|hematolog|biochem|microbiolog|"
    r"genomic|genetic|molecular",
    re.IGNORECASE,
)

# Reports and imaging -------------------------------------------------------------------------


def _report_kind(report) -> str:
    categories = [c for concept in report.category or [] for c in fv.codings(concept)]
    codes = {(c.code or "").upper() for c in categories}
    if codes & _IMAGING_CATEGORIES:
        return "imaging"
    if codes & _PATHOLOGY_CATEGORIES:
        return "pathology"
    words = " ".join(
        filter(None, [*(fv.text(c) for c in report.category or []), fv.text(report.code)])
    )
    if _IMAGING_WORDS.search(words):
        return "imaging"
    if _PATHOLOGY_WORDS.search(words):
        return "pathology"
    return "document"


def diagnostic_report_items(report, context: Context) -> list[Item]:
    title = fv.title(report.code, "Report")
    requested = fv.unique(r.display for r in report.basedOn or [])
    if requested and requested[0].lower() not in title.lower():
        title = f"{title}: {requested[0]}"
    details = {
        "conclusion": report.conclusion,
        "conclusion_codes": fv.unique(fv.text(c) for c in report.conclusionCode or []),
        "status": report.status,
        "category": fv.unique(fv.text(c) or fv.code_of(c) for c in report.category or []),
        "performer": _displays(report.performer, context),
        "results": len(report.result or []),
        "has_attachment": bool(report.presentedForm),
    }
    date = fv.first_date(report.effectiveDateTime, report.effectivePeriod, report.issued)
    return [
        context.item(report, _report_kind(report), date, title, fv.code_dicts(report.code), details)
    ]


def imaging_study_items(study, context: Context) -> list[Item]:
    series = study.series or []
    modalities = fv.unique(
        [c.code for c in study.modality or []] + [s.modality.code for s in series]
    )
    sites = fv.unique(fv.text(s.bodySite) for s in series if s.bodySite is not None)
    described = (
        study.description
        or fv.text((study.procedureCode or [None])[0])
        or next((s.description for s in series if s.description), None)
        or "Imaging study"
    )
    title = (
        described if any(m in described for m in modalities) else " ".join([*modalities, described])
    )
    if sites:
        title = f"{title}, {', '.join(sites)}"
    details = {
        "modalities": modalities,
        "body_sites": sites,
        "series": study.numberOfSeries if study.numberOfSeries is not None else len(series),
        "instances": study.numberOfInstances,
        "status": study.status,
        "reason": fv.unique(fv.text(r) for r in study.reasonCode or []),
    }
    codes = fv.code_dicts(
        *(study.procedureCode or []), *(study.modality or []), *(s.modality for s in series)
    )
    return [context.item(study, "imaging", fv.first_date(study.started), title, codes, details)]


def _displays(references, context: Context) -> list[str]:
    """Names of referenced people or organisations: the reference's display, else the name of the
    resource it points to when the source sent it."""
    names = []
    for reference in references or []:
        target = context.resolve(reference)
        name = reference.display or (_name_of(target) if target is not None else None)
        names.append(name)
    return fv.unique(names)


def _name_of(resource) -> str | None:
    name = getattr(resource, "name", None)
    if isinstance(name, str):
        return name
    if isinstance(name, list) and name:
        first = name[0]
        return first.text or " ".join([*(first.given or []), first.family or ""]).strip() or None
    return None


# Procedures and medicines --------------------------------------------------------------------


def _procedure_kind(procedure, title: str) -> str:
    joined = " ".join(fv.profiles(procedure))
    if "radiation-procedure" in joined or "radiotherapy" in joined:
        return "radiotherapy"
    if "surgical-procedure" in joined:
        return "surgery"
    words = " ".join(filter(None, [title, fv.text(procedure.category)]))
    if _RADIOTHERAPY_WORDS.search(words):
        return "radiotherapy"
    if _SACT_PROCEDURE_WORDS.search(words):
        return "sact"
    if fv.has_code(procedure.category, fv.SNOMED, {"387713003"}) or _SURGERY_WORDS.search(words):
        return "surgery"
    return "procedure"


def procedure_items(procedure, context: Context) -> list[Item]:
    title = fv.title(procedure.code, "Procedure")
    sites = [fv.text(s) for s in procedure.bodySite or []]
    details = {
        "status": procedure.status,
        "body_site": next((s for s in sites if s), None),
        "laterality": tumour_sites.laterality(texts=sites),
        "intent": fv.extension_text(procedure, "treatment-intent"),
        "reason": fv.unique(
            [fv.text(r) for r in procedure.reasonCode or []]
            + [_reference_title(r, context) for r in procedure.reasonReference or []]
        ),
        "performer": _displays([p.actor for p in procedure.performer or []], context),
        "outcome": fv.text(procedure.outcome),
    }
    date = fv.first_date(
        procedure.performedDateTime, procedure.performedPeriod, procedure.performedString
    )
    kind = _procedure_kind(procedure, title)
    return [context.item(procedure, kind, date, title, fv.code_dicts(procedure.code), details)]


def _reference_title(reference, context: Context) -> str | None:
    target = context.resolve(reference)
    if target is not None and getattr(target, "code", None) is not None:
        return fv.text(target.code)
    return reference.display


def _medicine(resource, context: Context) -> tuple[str, list[dict], str]:
    """(name, codes, words to look for anti-cancer drugs in) of a Medication* resource."""
    concept = resource.medicationCodeableConcept
    ingredients = []
    if concept is None and resource.medicationReference is not None:
        medication = context.resolve(resource.medicationReference, resource)
        if medication is not None:
            concept = medication.code
            ingredients = _ingredient_names(medication, resource, context)
        else:
            return resource.medicationReference.display or "Medicine (not named)", [], ""
    name = fv.title(concept, "Medicine")
    return name, fv.code_dicts(concept), " ".join([name, *ingredients])


def _ingredient_names(medication, owner, context: Context) -> list[str]:
    names = []
    for ingredient in medication.ingredient or []:
        if ingredient.itemCodeableConcept is not None:
            names.append(fv.text(ingredient.itemCodeableConcept))
        elif ingredient.itemReference is not None:
            target = context.resolve(ingredient.itemReference, owner)
            names.append(
                fv.text(target.code) if target is not None else ingredient.itemReference.display
            )
    return [n for n in names if n]


def _dosage(resource) -> dict:
    if resource.get_resource_type() == "MedicationAdministration":
        dosage = resource.dosage
        if dosage is None:
            return {"dose": None, "route": None, "dosage": None}
        return {
            "dose": fv.quantity(dosage.dose),
            "route": fv.text(dosage.route),
            "dosage": dosage.text,
        }
    dosages = (
        getattr(resource, "dosage", None) or getattr(resource, "dosageInstruction", None) or []
    )
    if not dosages:
        return {"dose": None, "route": None, "dosage": None}
    first = dosages[0]
    dose = next(
        (
            fv.quantity(d.doseQuantity)
            for d in first.doseAndRate or []
            if d.doseQuantity is not None
        ),
        None,
    )
    return {"dose": dose, "route": fv.text(first.route), "dosage": first.text}


def medication_items(resource, context: Context) -> list[Item]:
    name, codes, words = _medicine(resource, context)
    cancer_profile = any("cancer-related-medication" in p for p in fv.profiles(resource))
    kind = "sact" if cancer_profile or _SACT_DRUGS.search(words) else "medication"
    date = fv.first_date(
        *(
            getattr(resource, name, None)
            for name in (
                "effectiveDateTime",
                "effectivePeriod",
                "authoredOn",
                "whenHandedOver",
                "whenPrepared",
                "dateAsserted",
            )
        )
    )
    details = {
        "status": resource.status,
        **_dosage(resource),
        "treatment_intent": fv.extension_text(resource, "treatment-intent"),
        "termination_reason": fv.extension_text(resource, "termination-reason"),
        "reason": fv.unique(fv.text(r) for r in getattr(resource, "reasonCode", None) or []),
    }
    return [context.item(resource, kind, date, name, codes, details)]


# Encounters, documents, allergies, care plans ---------------------------------------------------


def encounter_items(encounter, context: Context) -> list[Item]:
    encounter_class = encounter.class_fhir
    class_words = fv.text(encounter_class) or (encounter_class.code if encounter_class else None)
    title = (
        next((fv.text(t) for t in encounter.type or [] if fv.text(t)), None)
        or class_words
        or "Encounter"
    )
    provider = encounter.serviceProvider
    provider_name = None
    if provider is not None:
        target = context.resolve(provider)
        provider_name = provider.display or (_name_of(target) if target is not None else None)
        if provider_name is None and provider.identifier is not None:
            provider_name = provider.identifier.value
    details = {
        "provider": provider_name,
        "provider_reference": provider.reference if provider is not None else None,
        "class": class_words,
        "status": encounter.status,
        "end": fv.iso_date(encounter.period.end) if encounter.period else None,
        "reason": fv.unique(fv.text(r) for r in encounter.reasonCode or []),
    }
    codes = fv.code_dicts(*(encounter.type or []))
    return [
        context.item(encounter, "encounter", fv.first_date(encounter.period), title, codes, details)
    ]


def document_reference_items(document, context: Context) -> list[Item]:
    attachments = [c.attachment for c in document.content or []]
    title = (
        fv.text(document.type)
        or document.description
        or next((a.title for a in attachments if a.title), None)
        or next((fv.text(c) for c in document.category or [] if fv.text(c)), None)
        or "Document"
    )
    details = {
        "description": document.description,
        "status": document.status,
        "doc_status": document.docStatus,
        "content_types": fv.unique(a.contentType for a in attachments),
        "urls": fv.unique(a.url for a in attachments),
        "author": _displays(document.author, context),
        "custodian": _displays([document.custodian] if document.custodian else [], context),
    }
    date = fv.first_date(
        document.date,
        document.context.period if document.context else None,
        *(a.creation for a in attachments),
    )
    return [context.item(document, "document", date, title, fv.code_dicts(document.type), details)]


def composition_items(composition, context: Context) -> list[Item]:
    title = composition.title or fv.title(composition.type, "Document")
    details = {"status": composition.status, "type": fv.text(composition.type)}
    return [
        context.item(
            composition,
            "document",
            fv.first_date(composition.date),
            title,
            fv.code_dicts(composition.type),
            details,
        )
    ]


def allergy_items(allergy, context: Context) -> list[Item]:
    details = {
        "clinical_status": fv.code_of(allergy.clinicalStatus),
        "verification_status": fv.code_of(allergy.verificationStatus),
        "criticality": allergy.criticality,
        "type": allergy.type,
        "category": list(allergy.category or []),
        "reactions": fv.unique(
            fv.text(m) for r in allergy.reaction or [] for m in r.manifestation or []
        ),
        "severity": next((r.severity for r in allergy.reaction or [] if r.severity), None),
    }
    date = fv.first_date(allergy.onsetDateTime, allergy.onsetPeriod, allergy.recordedDate)
    title = fv.title(allergy.code, "Allergy or intolerance")
    return [context.item(allergy, "allergy", date, title, fv.code_dicts(allergy.code), details)]


def careplan_items(plan, context: Context) -> list[Item]:
    activities = []
    for activity in plan.activity or []:
        detail = activity.detail
        if detail is None:
            continue
        product = None
        if detail.productReference is not None:
            medication = context.resolve(detail.productReference, plan)
            if medication is not None:
                ingredients = _ingredient_names(medication, plan, context)
                product = fv.text(medication.code)
                product = f"{product} ({', '.join(ingredients)})" if ingredients else product
        activities.append(
            {"title": fv.text(detail.code), "status": detail.status, "product": product}
        )
    title = (
        plan.title
        or plan.description
        or next((fv.text(c) for c in plan.category or [] if fv.text(c)), None)
        or next((a["title"] for a in activities if a["title"]), None)
        or "Care plan"
    )
    details = {
        "status": plan.status,
        "intent": plan.intent,
        "activities": activities,
        "addresses": fv.unique(_reference_title(r, context) for r in plan.addresses or []),
    }
    date = fv.first_date(plan.period, plan.created)
    codes = fv.code_dicts(*(plan.category or []))
    return [context.item(plan, "careplan", date, title, codes, details)]
