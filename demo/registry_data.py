"""The demo region's cancer registry: a registration (COSD items) with its treatments for every
demo patient with a diagnosed cancer, as the trusts would have submitted it, written with the
ORM (not through the registry's CSV import).

The registrations are read from the same histories the demo FHIR sources serve
(demo.histories.build_demo_histories, same patients, seed and `as_of`): the trust that first
staged the cancer submits it; ICD-10 code, diagnosis date and side come from its Condition;
morphology, grade and basis from the biopsy report; the final pretreatment TNM from its clinical
stage group Observation and the WHO performance status from the first ECOG score; one treatment
per operation day, first systemic anti-cancer therapy, radiotherapy course and endocrine
prescription at each trust. Patients with a suspected cancer only (no tissue diagnosis) have no
registration.

One deliberate situation: for one patient (preferably on a lung MDT list, and not the patient
whose trusts already disagree) the registry holds a different final pretreatment stage from the
trust's clinical stage, so the case page flags the registry's stage against the trust's. It is
returned by seed_demo_registry and named in `REGISTRY_CONFLICT_NOTE`.

`as_of` is the demo histories' date: var/demo-fhir/manifest.json's when the histories have been
written (so the registry matches what the sources serve), otherwise today (the date
`run_demo_sources` will write them with)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from django.conf import settings

from records.models import Patient
from registry.models import Registration, Treatment

from .histories import (
    BREAST_STAGES,
    COLORECTAL_STAGES,
    ICD10,
    LUNG_STAGES,
    SNOMED,
    TRUST_SOURCES,
    BuiltHistories,
    History,
    Pathway,
    Site,
    Stage,
    build_demo_histories,
)

SOURCE_FILE = "demo seed (demo.registry_data)"
REGISTRY_CONFLICT_NOTE = (
    "The registry's final pretreatment stage differs from the trust's clinical stage."
)

STAGE_GROUP_CLINICAL = "21908-9"
ECOG = "89247-1"
SURGICAL = "387713003"
TELERADIOTHERAPY = "33195004"
# SNOMED CT morphologies the demo reports use -> ICD-O-3.
MORPHOLOGY = {"35917007": "8140/3", "28899001": "8070/3", "82711006": "8500/3"}
SITE_STAGES = {
    Site.LUNG: LUNG_STAGES,
    Site.BREAST: BREAST_STAGES,
    Site.COLORECTAL: COLORECTAL_STAGES,
}
SEX = {Patient.Sex.MALE: "1", Patient.Sex.FEMALE: "2"}


@dataclass
class RegistryConflict:
    nhs_number: str
    trust: str
    trust_stage: str
    registry_stage: str


def demo_histories_as_of(data_dir: Path | None = None) -> tuple[date | None, int]:
    """(as_of, seed) of the histories the demo sources serve, or (None, 7) if none are written."""
    manifest = (data_dir or Path(settings.BASE_DIR) / "var" / "demo-fhir") / "manifest.json"
    try:
        written = json.loads(manifest.read_text(encoding="utf-8"))
        return date.fromisoformat(written["as_of"]), int(written["seed"])
    except (OSError, ValueError, KeyError):
        return None, 7


def seed_demo_registry(
    patients: list[Patient], *, seed: int = 7, as_of: date | None = None
) -> tuple[int, RegistryConflict | None]:
    """Writes (or rewrites) the patients' registrations; returns how many, and the conflict."""
    built = build_demo_histories(patients, seed, as_of=as_of)
    conflict_patient = _choose_conflict(built)
    conflict = None
    count = 0
    for patient in built.ordered:
        history = built.histories[patient.nhs_number]
        found = _registration_values(history)
        if found is None:
            continue
        values, treatments, stage = found
        if patient is conflict_patient:
            different = _different_stage(built.plans[patient.nhs_number].site, stage)
            values.update(
                t=f"c{different.t}",
                n=f"c{different.n}",
                m=f"c{different.m}",
                stage_group=different.group,
            )
            conflict = RegistryConflict(
                patient.nhs_number, values["submitting_org"], stage.group, different.group
            )
        registration, _ = Registration.objects.update_or_create(
            submitting_org=values.pop("submitting_org"),
            local_tumour_id=values.pop("local_tumour_id"),
            defaults=values,
        )
        kept = []
        for modality, start, provider in treatments:
            treatment, _ = Treatment.objects.get_or_create(
                registration=registration, modality=modality, start_date=start, provider=provider
            )
            kept.append(treatment.pk)
        registration.treatments.exclude(pk__in=kept).delete()
        count += 1
    return count, conflict


def _choose_conflict(built: BuiltHistories) -> Patient | None:
    """A diagnosed patient with no other situation, on a list if possible, lung first."""
    plans, used = built.plans, set(built.situations.used)
    if built.not_found:
        used.add(built.not_found[0])
    candidates = [
        p
        for p in built.ordered
        if p.nhs_number not in used and plans[p.nhs_number].pathway != Pathway.SUSPECTED
    ]
    candidates.sort(
        key=lambda p: (
            not plans[p.nhs_number].listed,
            plans[p.nhs_number].site != Site.LUNG,
            p.nhs_number,
        )
    )
    return candidates[0] if candidates else None


def _different_stage(site: Site, stage: Stage) -> Stage:
    """The next clinical stage of the site's list with another stage group: a registry stage
    that is valid UICC 8th edition but not the trust's."""
    stages = [clinical for clinical, _ in SITE_STAGES[site]]
    start = next((i for i, s in enumerate(stages) if s.group == stage.group), -1)
    for offset in range(1, len(stages) + 1):
        candidate = stages[(start + offset) % len(stages)]
        if candidate.group != stage.group:
            return candidate
    raise AssertionError(f"no other stage group for {site}")


# Reading a history ---------------------------------------------------------------------------


def _registration_values(history: History):
    """(registration fields, [(modality, start, provider)], the trust's clinical Stage), or None
    for a patient with no staged cancer."""
    staged = _first_clinical_stage(history)
    if staged is None:
        return None
    trust, group_observation = staged
    resources = history.charts[trust].resources
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    cancer = next(
        (r for r in resources if r["resourceType"] == "Condition" and _icd10(r)), None
    ) or next(
        r
        for source in TRUST_SOURCES
        for r in history.charts[source].resources
        if r["resourceType"] == "Condition" and _icd10(r)
    )
    categories = {}
    for member in group_observation.get("hasMember") or []:
        observation = by_ref[member["reference"]]
        text = observation["valueCodeableConcept"]["text"]
        categories[text[1].lower()] = text  # "cT2a" is the T category, as the trust wrote it
    stage = Stage(
        categories.get("t", ""),
        categories.get("n", ""),
        categories.get("m", ""),
        group_observation["valueCodeableConcept"]["text"],
    )
    biopsy = _first_pathology(history)
    patient = history.patient
    site_text = " ".join(c.get("text", "") for c in cancer.get("bodySite") or [])
    if re.search(r"\bleft\b", site_text):
        side = "L"
    elif re.search(r"\bright\b", site_text):
        side = "R"
    else:  # a colon has no side; a lung or breast whose side the trust did not give
        side = "8" if history.plan.site == Site.COLORECTAL else "9"
    grade = re.search(r"grade (\d)", (biopsy or {}).get("conclusion", ""))
    ecog = _first(history, lambda r: _has_code(r.get("code"), ECOG))
    values = {
        "submitting_org": trust,
        "local_tumour_id": "T" + hashlib.sha256(patient.nhs_number.encode()).hexdigest()[:10],
        "submission_date": history.as_of - timedelta(days=1),
        "submitting_org_known": True,
        "patient": patient,
        "nhs_number": patient.nhs_number,
        "family_name": patient.family_name,
        "given_name": patient.given_name,
        "birth_date": patient.birth_date,
        "sex": SEX.get(patient.sex, "9"),
        "postcode": patient.postcode,
        "gp_practice": patient.gp_practice.ods_code if patient.gp_practice else "",
        "diagnosis_date": date.fromisoformat(cancer["onsetDateTime"][:10]),
        "icd10": _icd10(cancer),
        "laterality": side,
        "basis": "7" if biopsy else "1",
        "morphology": _morphology(biopsy),
        "topography": "",
        "grade": f"G{grade.group(1)}" if grade else "",
        "t": stage.t,
        "n": stage.n,
        "m": stage.m,
        "stage_group": stage.group,
        "tnm_edition": "8",
        "performance_status": str(ecog["valueInteger"]) if ecog else "9",
        "source_file": SOURCE_FILE,
        "source_line": None,
    }
    return values, _treatments(history), stage


def _first_clinical_stage(history: History) -> tuple[str, dict] | None:
    found = [
        (_day(r["effectiveDateTime"]), TRUST_SOURCES.index(source), source, r)
        for source in TRUST_SOURCES
        for r in history.charts[source].resources
        if r["resourceType"] == "Observation" and _has_code(r.get("code"), STAGE_GROUP_CLINICAL)
    ]
    if not found:
        return None
    _, _, source, observation = min(found, key=lambda f: f[:2])
    return source, observation


def _first_pathology(history: History) -> dict | None:
    reports = [
        r
        for source in TRUST_SOURCES
        for r in history.charts[source].resources
        if r["resourceType"] == "DiagnosticReport" and r.get("conclusionCode")
    ]
    return min(reports, key=lambda r: r["issued"]) if reports else None


def _first(history: History, wanted) -> dict | None:
    found = [
        r
        for source in TRUST_SOURCES
        for r in history.charts[source].resources
        if r["resourceType"] == "Observation" and wanted(r)
    ]
    return min(found, key=lambda r: r["effectiveDateTime"]) if found else None


def _treatments(history: History) -> list[tuple[str, date, str]]:
    """(CR2040 modality, start, provider ODS code): one per modality, start and trust."""
    found: set[tuple[str, date, str]] = set()
    systemic: dict[tuple[str, str], date] = {}
    for source in TRUST_SOURCES:
        for r in history.charts[source].resources:
            kind = r["resourceType"]
            if kind == "Procedure" and _has_code(r.get("category"), SURGICAL):
                found.add(
                    (
                        "01",
                        _day(r.get("performedDateTime") or r["performedPeriod"]["start"]),
                        source,
                    )
                )
            elif kind == "Procedure" and _has_code(r.get("code"), TELERADIOTHERAPY):
                start = _day(r.get("performedDateTime") or r["performedPeriod"]["start"])
                found.add(("02", start, source))
            elif kind == "MedicationAdministration":
                day = _day(r["effectiveDateTime"])
                systemic[("03", source)] = min(day, systemic.get(("03", source), day))
            elif kind == "MedicationRequest" and any(
                c.get("text") == "Endocrine therapy" for c in r.get("category") or []
            ):
                day = _day(r["authoredOn"])
                systemic[("04", source)] = min(day, systemic.get(("04", source), day))
    found.update((modality, day, source) for (modality, source), day in systemic.items())
    return sorted(found, key=lambda t: (t[1], t[0], t[2]))


def _icd10(condition: dict) -> str:
    return next(
        (
            c["code"]
            for c in condition.get("code", {}).get("coding") or []
            if c.get("system") == ICD10 and c["code"].startswith("C")
        ),
        "",
    )


def _morphology(report: dict | None) -> str:
    if not report:
        return ""
    for concept in report.get("conclusionCode") or []:
        for coding in concept.get("coding") or []:
            if coding.get("system") == SNOMED and coding.get("code") in MORPHOLOGY:
                return MORPHOLOGY[coding["code"]]
    return ""


def _has_code(concept, code: str) -> bool:
    return any(c.get("code") == code for c in (concept or {}).get("coding") or [])


def _day(value: str) -> date:
    return datetime.fromisoformat(value).date() if "T" in value else date.fromisoformat(value)
