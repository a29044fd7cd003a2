"""A typed summary of one source's FHIR resources: the facts an MDT looks at (diagnoses, staging,
performance status, reports, treatments...), each keeping its source and resource id.

Resource types with no place in the summary are counted in `unhandled`, never dropped silently;
types that only serve to resolve references (Patient, Organization, Medication...) are counted in
`supporting`; resources marked entered-in-error are counted and left out."""

from collections import Counter
from dataclasses import asdict, dataclass, field

from . import care_facts, oncology_facts
from . import fhir_values as fv

KINDS = (
    "diagnosis",
    "stage",
    "performance_status",
    "comorbidity",
    "pathology",
    "imaging",
    "surgery",
    "sact",
    "radiotherapy",
    "procedure",
    "medication",
    "encounter",
    "document",
    "allergy",
    "careplan",
    "observation",
)
SUPPORTING_TYPES = frozenset(
    {
        "Patient",
        "Organization",
        "Practitioner",
        "PractitionerRole",
        "Location",
        "Medication",
        "HealthcareService",
        "Endpoint",
        "Substance",
    }
)


@dataclass
class Item:
    kind: str
    date: str | None
    title: str
    codes: list[dict]
    source: str
    resource_type: str
    resource_id: str | None
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Normalised:
    source: str
    items: list[Item] = field(default_factory=list)
    unhandled: dict[str, int] = field(default_factory=dict)
    supporting: dict[str, int] = field(default_factory=dict)
    entered_in_error: int = 0

    def of_kind(self, kind: str) -> list[Item]:
        return [item for item in self.items if item.kind == kind]

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "items": [item.as_dict() for item in self.items],
            "unhandled": dict(self.unhandled),
            "supporting": dict(self.supporting),
            "entered_in_error": self.entered_in_error,
        }


def normalise(resources: list, source: str) -> Normalised:
    context = Context(resources, source)
    unhandled, supporting, entered_in_error = Counter(), Counter(), 0
    items = []
    for resource in resources:
        resource_type = resource.get_resource_type()
        handler = _HANDLERS.get(resource_type)
        if resource_type in SUPPORTING_TYPES:
            supporting[resource_type] += 1
        elif handler is None:
            unhandled[resource_type] += 1
        elif _entered_in_error(resource):
            entered_in_error += 1
        else:
            items.extend(handler(resource, context))
    items.extend(oncology_facts.loose_tnm_items(context))
    return Normalised(
        source=source,
        items=items,
        unhandled=dict(unhandled),
        supporting=dict(supporting),
        entered_in_error=entered_in_error,
    )


def _entered_in_error(resource) -> bool:
    if getattr(resource, "status", None) == "entered-in-error":
        return True
    return fv.code_of(getattr(resource, "verificationStatus", None)) == "entered-in-error"


class Context:
    """What handlers need beyond their own resource: other resources by reference, which TNM
    category Observations belong to a stage group, which Condition a stage Observation assesses."""

    def __init__(self, resources: list, source: str):
        self.source = source
        self.index = {f"{r.get_resource_type()}/{r.id}": r for r in resources if r.id}
        self.stage_members: set[str] = set()
        self.assessed_condition: dict[str, object] = {}
        self.loose_categories: list = []
        for resource in resources:
            if _entered_in_error(resource):
                continue
            kind = resource.get_resource_type()
            if kind == "Observation" and oncology_facts.stage_group_kind(resource):
                for member in resource.hasMember or []:
                    self.stage_members.add(fv.reference_key(member.reference))
            if kind == "Condition":
                for stage in resource.stage or []:
                    for assessment in stage.assessment or []:
                        self.assessed_condition[fv.reference_key(assessment.reference)] = resource

    def resolve(self, reference, owner=None):
        if reference is None or not reference.reference:
            return None
        if reference.reference.startswith("#") and owner is not None:
            wanted = reference.reference[1:]
            return next((c for c in owner.contained or [] if c.id == wanted), None)
        return self.index.get(fv.reference_key(reference.reference))

    def item(self, resource, kind, date, title, codes, details) -> Item:
        return Item(
            kind=kind,
            date=date,
            title=title,
            codes=codes,
            source=self.source,
            resource_type=resource.get_resource_type(),
            resource_id=resource.id,
            details=details,
        )


_HANDLERS = {
    "Condition": oncology_facts.condition_items,
    "Observation": oncology_facts.observation_items,
    "DiagnosticReport": care_facts.diagnostic_report_items,
    "ImagingStudy": care_facts.imaging_study_items,
    "Procedure": care_facts.procedure_items,
    "MedicationStatement": care_facts.medication_items,
    "MedicationRequest": care_facts.medication_items,
    "MedicationAdministration": care_facts.medication_items,
    "MedicationDispense": care_facts.medication_items,
    "Encounter": care_facts.encounter_items,
    "DocumentReference": care_facts.document_reference_items,
    "Composition": care_facts.composition_items,
    "AllergyIntolerance": care_facts.allergy_items,
    "CarePlan": care_facts.careplan_items,
}
