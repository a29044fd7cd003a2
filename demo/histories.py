"""Coherent oncology histories for the demo region's patients, spread over the region's FHIR
sources as files that `demo.fhir_server` serves.

Each patient gets a tumour site from the team whose MDT list they are on (lung, breast,
colorectal; a patient on no list gets one by chance), and a pathway from the question on the list:
"CT shows new nodule: biopsy?" is a suspected cancer (imaging only), "Confirm stage and plan
treatment" a staged cancer awaiting treatment, "Post-operative histology review" an operated one,
"Liver lesion on CT" a treated one with a new finding; unlisted patients are any of these but the
first. Dates run forwards: referral, imaging, biopsy, diagnosis, clinical staging (6-10 days
later, at the MDT), surgery, pathological staging, systemic therapy; treated patients were
diagnosed 7-18 months ago, the others weeks ago. Everything is fixed by the seed and `as_of`.

Where things happen (each trust's record holds only what it did):
- lung: referral, CT, PET-CT, biopsy, histology, diagnosis and clinical staging at RRK; surgical
  clinic, lobectomy and pathological staging at RWP; carboplatin with pemetrexed (gemcitabine for
  squamous) at RL4.
- breast: triple assessment, histology with ER/PR/HER2, staging, surgery (wide local excision or
  mastectomy with sentinel node biopsy) and endocrine therapy at RWP; epirubicin with
  cyclophosphamide at RL4; radiotherapy at RRK.
- colorectal: colonoscopy and biopsy at RWP; CT chest/abdomen/pelvis, MRI pelvis (rectum),
  staging and resection (anterior resection or right hemicolectomy) at RL4; CAPOX or FOLFOX at
  RRK.
- GP record: the registered patient with address, comorbidities (COPD, type 2 diabetes,
  hypertension, atrial fibrillation, hypothyroidism), repeat medicines, allergies, consultations.
- Every trust also knows every patient from an old, unrelated attendance (except the not_found
  situation below), so a trust's record may hold nothing about the cancer.
- PDS: every patient in the demographics service's shape (id = NHS number), with the GP practice
  and its current registration period.

The treating trust records the diagnosis too (same codes, same onset), so the merge has exact
duplicates to collapse. Medicines are coded with SNOMED CT where the code was checked against a
published source and carry text only otherwise, as many SACT system exports do.

Deliberate situations (listed in `manifest.json` beside the sources):
- stage_conflict: one lung patient (preferably on an MDT list) whose clinical stage group is IIB
  at RRK (cT2a cN1 cM0) but IIIA at RWP (cT2a cN2 cM0 after the surgeons' PET-CT review): two
  21908-9 Observations that disagree, which the case page flags.
- restricted: every patient the index marks restricted has `meta.security` R in PDS with no
  address or telephone there, and no address at the trusts; the GP record still has the address
  (the app must not show it, because one source says restricted).
- deceased: the patients the index marks deceased, or else one patient (preferably on a list),
  have `deceasedDateTime` in PDS and in the GP record, after their last hospital event; the
  trusts have not been told.
- not_found: one patient (preferably on a list) is unknown to one trust that had no part in their
  cancer care: no Patient there, so that source answers not found.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

from django.utils import timezone

from mdt.models import Case, TumourSite
from records.models import Patient

from .region import PRACTICES, TRUSTS

TRUST_SOURCES = ("RRK", "RWP", "RL4")
SOURCES = (*TRUST_SOURCES, "GP")
PDS = "PDS"

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
LOINC = "http://loinc.org"
AJCC = "http://cancerstaging.org"
UCUM = "http://unitsofmeasure.org"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
DIAG_SECTION = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
NHS_VERIFIED = {
    "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
    "valueCodeableConcept": {
        "coding": [
            {
                "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatus",
                "version": "1.0.0",
                "code": "01",
                "display": "Number present and verified",
            }
        ]
    },
}
LONDON = ZoneInfo("Europe/London")

TRUST_NAMES = {code: name for code, name, _ in TRUSTS}
PRACTICE_NAMES = {code: name for code, name, _ in PRACTICES}
TOWNS = {"B": "Birmingham", "WR": "Worcester", "WV": "Wolverhampton", "DY": "Dudley"}
GP_NAMES = ["Dr Sarah Hall", "Dr Jonathan Reeve", "Dr Meera Shah"]
DEMO_GP = ("M85011", "Dr Simon Patel")  # the demo's GP login works at this practice


class Site(StrEnum):
    LUNG = "lung"
    BREAST = "breast"
    COLORECTAL = "colorectal"


class Pathway(StrEnum):
    SUSPECTED = "suspected"  # imaging only, no tissue diagnosis yet
    STAGED = "staged"  # diagnosed and staged, awaiting treatment
    OPERATED = "operated"  # after surgery, awaiting adjuvant decisions
    TREATED = "treated"  # surgery and/or systemic therapy done


TEAM_SITES = {
    TumourSite.LUNG: Site.LUNG,
    TumourSite.BREAST: Site.BREAST,
    TumourSite.COLORECTAL: Site.COLORECTAL,
}
QUESTION_PATHWAYS = {
    "CT shows new 2 cm spiculated nodule: biopsy?": Pathway.SUSPECTED,
    "Confirm stage and plan treatment": Pathway.STAGED,
    "Suitable for SABR?": Pathway.STAGED,
    "Review PET-CT for staging": Pathway.STAGED,
    "Confirm diagnosis and plan surgery": Pathway.STAGED,
    "Neoadjuvant chemotherapy?": Pathway.STAGED,
    "Review MRI extent of disease": Pathway.STAGED,
    "Staging CT and MRI review: plan treatment": Pathway.STAGED,
    "Suitable for resection?": Pathway.STAGED,
    "Post-operative histology review": Pathway.OPERATED,
    "Post-operative histology: further surgery?": Pathway.OPERATED,
    "Liver lesion on CT: refer to HPB?": Pathway.TREATED,
}
# Days between the diagnosis and `as_of`, by pathway: the last event of each pathway falls
# before `as_of` (treated pathways end at most ~190 days after the diagnosis).
DIAGNOSED_DAYS_AGO = {
    Pathway.STAGED: (16, 35),
    Pathway.OPERATED: (58, 85),
    Pathway.TREATED: (215, 548),
}


def sct(code: str, display: str) -> dict:
    return {"system": SNOMED, "code": code, "display": display}


def concept(text: str, *codings: dict) -> dict:
    return {"coding": list(codings), "text": text} if codings else {"text": text}


def org(ods: str) -> dict:
    name = TRUST_NAMES.get(ods) or PRACTICE_NAMES.get(ods) or ods
    return {"identifier": {"system": ODS_SYSTEM, "value": ods}, "display": name}


def person(name: str) -> dict:
    return {"display": name}


def at(day: date, hour: int = 10, minute: int = 0) -> str:
    return datetime.combine(day, time(hour, minute), tzinfo=LONDON).isoformat()


@dataclass(frozen=True)
class Stage:
    t: str
    n: str
    m: str
    group: str


def stage_code(group: str) -> str:
    """AJCC-style code for a stage group as mCODE writes it: IIIA -> 3A, IA3 -> 1A3, IV -> 4."""
    numeral = group.rstrip("ABC0123456789") or group
    roman = {"I": "1", "II": "2", "III": "3", "IV": "4"}
    return roman[numeral] + group[len(numeral) :]


# -- tumour specifics ------------------------------------------------------------------------

# (clinical stage, pathological stage or None when not operable)
LUNG_STAGES = [
    (Stage("T1c", "N0", "M0", "IA3"), Stage("T1c", "N0", "M0", "IA3")),
    (Stage("T2a", "N0", "M0", "IB"), Stage("T2a", "N0", "M0", "IB")),
    (Stage("T2a", "N0", "M0", "IB"), Stage("T2a", "N1", "M0", "IIB")),
    (Stage("T2b", "N0", "M0", "IIA"), Stage("T2b", "N0", "M0", "IIA")),
    (Stage("T2a", "N1", "M0", "IIB"), Stage("T2a", "N1", "M0", "IIB")),
    (Stage("T3", "N0", "M0", "IIB"), Stage("T3", "N0", "M0", "IIB")),
    (Stage("T3", "N1", "M0", "IIIA"), Stage("T3", "N1", "M0", "IIIA")),
    (Stage("T4", "N2", "M0", "IIIB"), None),
    (Stage("T2a", "N2", "M1b", "IVA"), None),
]
CONFLICT_STAGES = (Stage("T2a", "N1", "M0", "IIB"), Stage("T2a", "N1", "M0", "IIB"))
CONFLICT_RWP_STAGE = Stage("T2a", "N2", "M0", "IIIA")
LUNG_LOBES = [
    ("right upper lobe", "C34.1", "Malignant neoplasm: Upper lobe, bronchus or lung"),
    ("left upper lobe", "C34.1", "Malignant neoplasm: Upper lobe, bronchus or lung"),
    ("right middle lobe", "C34.2", "Malignant neoplasm: Middle lobe, bronchus or lung"),
    ("right lower lobe", "C34.3", "Malignant neoplasm: Lower lobe, bronchus or lung"),
    ("left lower lobe", "C34.3", "Malignant neoplasm: Lower lobe, bronchus or lung"),
]
LUNG_SIZES = {"T1c": (21, 30), "T2a": (31, 40), "T2b": (41, 50), "T3": (52, 68), "T4": (72, 90)}

BREAST_STAGES = [
    (Stage("T1c", "N0", "M0", "IA"), Stage("T1c", "N0(sn)", "M0", "IA")),
    (Stage("T2", "N0", "M0", "IIA"), Stage("T2", "N0(sn)", "M0", "IIA")),
    (Stage("T1c", "N0", "M0", "IA"), Stage("T1c", "N1a", "M0", "IIA")),
    (Stage("T2", "N1", "M0", "IIB"), Stage("T2", "N1a", "M0", "IIB")),
    (Stage("T3", "N1", "M0", "IIIA"), Stage("T3", "N1a", "M0", "IIIA")),
]
BREAST_QUADRANTS = [
    ("upper outer quadrant", "C50.4", "Malignant neoplasm: Upper-outer quadrant of breast"),
    ("upper inner quadrant", "C50.2", "Malignant neoplasm: Upper-inner quadrant of breast"),
    ("lower outer quadrant", "C50.5", "Malignant neoplasm: Lower-outer quadrant of breast"),
    ("central portion", "C50.1", "Malignant neoplasm: Central portion of breast"),
]
BREAST_SIZES = {"T1c": (11, 20), "T2": (21, 45), "T3": (52, 70)}
# (ER, PR, HER2) and how often
RECEPTORS = [(True, True, False)] * 7 + [(True, False, True), (False, False, True)]
RECEPTORS += [(False, False, False)]

COLORECTAL_STAGES = [
    (Stage("T2", "N0", "M0", "I"), Stage("T2", "N0", "M0", "I")),
    (Stage("T3", "N0", "M0", "IIA"), Stage("T3", "N0", "M0", "IIA")),
    (Stage("T3", "N0", "M0", "IIA"), Stage("T3", "N1a", "M0", "IIIB")),
    (Stage("T4a", "N0", "M0", "IIB"), Stage("T4a", "N0", "M0", "IIB")),
    (Stage("T3", "N1", "M0", "IIIB"), Stage("T3", "N1b", "M0", "IIIB")),
]
COLORECTAL_SITES = [
    ("sigmoid colon", "C18.7", "Malignant neoplasm: Sigmoid colon", 25),
    ("rectum", "C20", "Malignant neoplasm of rectum", 10),
    ("ascending colon", "C18.2", "Malignant neoplasm: Ascending colon", 0),
]

# name: (SNOMED code, display, ICD-10, repeat medicines)
COMORBIDITIES = {
    "copd": (
        "13645005",
        "Chronic obstructive pulmonary disease",
        "J44.9",
        [
            ("Tiotropium 2.5micrograms/dose solution for inhalation", "Two puffs once a day"),
            ("Salbutamol 100micrograms/dose inhaler", "Two puffs when required"),
        ],
    ),
    "t2dm": (
        "44054006",
        "Type 2 diabetes mellitus",
        "E11.9",
        [("Metformin 500mg tablets", "One tablet twice a day with food")],
    ),
    "hypertension": (
        "38341003",
        "Hypertensive disorder",
        "I10",
        [("Amlodipine 5mg tablets", "One tablet once a day")],
    ),
    "af": (
        "49436004",
        "Atrial fibrillation",
        "I48.9",
        [("Apixaban 5mg tablets", "One tablet twice a day")],
    ),
    "hypothyroidism": (
        "40930008",
        "Hypothyroidism",
        "E03.9",
        [("Levothyroxine sodium 100microgram tablets", "One tablet once a day")],
    ),
}
COMORBIDITY_ODDS = {
    Site.LUNG: {"copd": 0.7, "hypertension": 0.5, "t2dm": 0.3},
    Site.BREAST: {"hypertension": 0.4, "hypothyroidism": 0.25, "t2dm": 0.2},
    Site.COLORECTAL: {"t2dm": 0.4, "hypertension": 0.5, "af": 0.2},
}
BACKGROUND_VISITS = [
    ("EMER", "Emergency department attendance", "Fall: sprained wrist"),
    ("AMB", "Ophthalmology outpatient clinic", "Cataract assessment"),
    ("AMB", "Dermatology outpatient clinic", "Seborrhoeic keratosis"),
    ("AMB", "Audiology outpatient clinic", "Hearing assessment"),
    ("EMER", "Emergency department attendance", "Chest pain: acute coronary syndrome excluded"),
]

# Medicines: (text, SNOMED substance code or None, display)
CARBOPLATIN = ("Carboplatin", "386905002", "Carboplatin")
PEMETREXED = ("Pemetrexed", None, "")
GEMCITABINE = ("Gemcitabine", None, "")
EPIRUBICIN = ("Epirubicin", None, "")
CYCLOPHOSPHAMIDE = ("Cyclophosphamide", None, "")
OXALIPLATIN = ("Oxaliplatin", "395814003", "Oxaliplatin")
CAPECITABINE = ("Capecitabine", "386906001", "Capecitabine")
FLUOROURACIL = ("Fluorouracil", None, "")
FOLINIC_ACID = ("Folinic acid", None, "")


@dataclass
class Chart:
    """One source's record of one patient: its own Patient id and the resources it holds."""

    source: str
    patient_id: str
    resources: list[dict] = field(default_factory=list)
    in_pathway: bool = False  # the source took part in the cancer care
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def add(self, resource: dict, *, pathway: bool = True) -> dict:
        """Adds a resource referencing this chart's Patient; returns a reference to it."""
        rtype = resource["resourceType"]
        rid = f"{self.patient_id}-{next(self._ids)}"
        element = "patient" if rtype == "AllergyIntolerance" else "subject"
        body = {k: v for k, v in resource.items() if k != "resourceType"}
        full = {"resourceType": rtype, "id": rid, element: self.patient_reference(), **body}
        self.resources.append(full)
        self.in_pathway = self.in_pathway or pathway
        return {"reference": f"{rtype}/{rid}"}

    def patient_reference(self) -> dict:
        return {"reference": f"Patient/{self.patient_id}"}


@dataclass
class Plan:
    site: Site
    pathway: Pathway
    listed: bool  # on an MDT list: the demo shows the patient's case page
    question: str = ""
    conflict: bool = False


class History:
    """Builds one patient's records at every source."""

    def __init__(self, patient: Patient, plan: Plan, ids: dict[str, str], as_of: date, seed: int):
        self.patient = patient
        self.plan = plan
        self.as_of = as_of
        self.rng = random.Random(f"{seed}:{patient.nhs_number}")
        self.charts = {source: Chart(source, ids[source]) for source in SOURCES}
        self.last_event = as_of - timedelta(days=3650)
        self.summary: dict = {"site": plan.site.value, "pathway": plan.pathway.value}
        self.gp_medicines: list[tuple[str, str, date]] = []  # (medicine, dose, started)

    # -- building blocks ---------------------------------------------------------------------

    def _seen(self, day: date) -> None:
        if day >= self.as_of:
            raise AssertionError(f"event on {day} is not before {self.as_of}")
        self.last_event = max(self.last_event, day)

    def encounter(
        self, source, cls, text, start, *, end=None, reason=None, who=None, pathway=True
    ) -> dict:
        self._seen(end or start)
        classes = {
            "AMB": "ambulatory",
            "IMP": "inpatient encounter",
            "EMER": "emergency",
            "SS": "short stay",
        }
        resource = {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": ACT_CODE, "code": cls, "display": classes[cls]},
            "type": [concept(text)],
            "period": {
                "start": at(start, 9, 30),
                "end": at(end or start, 16 if end else 10, 30 if end else 15),
            },
            "serviceProvider": org(self.ods(source)),
        }
        if who:
            resource["participant"] = [{"individual": person(who)}]
        if reason:
            resource["reasonCode"] = [concept(reason)]
        return self.charts[source].add(resource, pathway=pathway)

    def ods(self, source: str) -> str:
        if source == "GP":
            return self.patient.gp_practice.ods_code if self.patient.gp_practice else "V81999"
        return source

    def imaging(self, source, day, modality, title, conclusion, *, procedure=None, who=None):
        self._seen(day + timedelta(days=1))
        uid = f"2.25.{self.rng.getrandbits(100)}"
        study = {
            "resourceType": "ImagingStudy",
            "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"}],
            "status": "available",
            "started": at(day, 11, 5),
            "modality": [
                {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": modality}
            ],
            "numberOfSeries": 3,
            "numberOfInstances": self.rng.randint(180, 640),
            "description": title,
        }
        if procedure:
            study["procedureCode"] = [concept(title, procedure)]
        study_ref = self.charts[source].add(study)
        report = {
            "resourceType": "DiagnosticReport",
            "status": "final",
            "category": [
                {"coding": [{"system": DIAG_SECTION, "code": "RAD", "display": "Radiology"}]}
            ],
            "code": concept(title, sct("722124004", "Radiology studies report")),
            "effectiveDateTime": at(day, 11, 5),
            "issued": at(day + timedelta(days=1), 15, 40),
            "performer": [org(source)],
            "imagingStudy": [study_ref],
            "conclusion": conclusion,
        }
        if who:
            report["resultsInterpreter"] = [person(who)]
        return self.charts[source].add(report)

    def pathology(
        self, source, collected, reported, title, conclusion, *, morphology, who, results=()
    ):
        self._seen(reported)
        report = {
            "resourceType": "DiagnosticReport",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {"system": DIAG_SECTION, "code": "SP", "display": "Surgical Pathology"}
                    ]
                }
            ],
            "code": concept(
                title, {"system": LOINC, "code": "11529-5", "display": "Surgical pathology study"}
            ),
            "effectiveDateTime": at(collected, 10, 0),
            "issued": at(reported, 14, 20),
            "performer": [org(source)],
            "resultsInterpreter": [person(who)],
            "conclusion": conclusion,
        }
        if morphology:
            report["conclusionCode"] = [concept(morphology[1], sct(*morphology))]
        if results:
            report["result"] = list(results)
        return self.charts[source].add(report)

    def condition(
        self, source, onset, recorded, snomed, icd10, text, *, body_site=None, provisional=False
    ):
        self._seen(recorded)
        status = "provisional" if provisional else "confirmed"
        codings = [sct(*snomed)] if snomed else []
        codings.append({"system": ICD10, "code": icd10[0], "display": icd10[1]})
        resource = {
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]},
            "verificationStatus": {"coding": [{"system": CONDITION_VERIFICATION, "code": status}]},
            "category": [
                {
                    "coding": [
                        {
                            "system": CONDITION_CATEGORY,
                            "code": "problem-list-item",
                            "display": "Problem List Item",
                        }
                    ]
                }
            ],
            "code": concept(text, *codings),
            "onsetDateTime": onset.isoformat(),
            "recordedDate": at(recorded, 12, 0),
        }
        if body_site:
            resource["bodySite"] = [concept(body_site)]
        return self.charts[source].add(resource)

    def staging(self, source, day, stage: Stage, prefix: str, *, who=None) -> dict:
        """T, N and M category Observations and the stage group (clinical c or pathological p)."""
        self._seen(day)
        loinc = {
            "c": [
                ("21905-5", "Primary tumor.clinical [Class] Cancer"),
                ("21906-3", "Regional lymph nodes.clinical [Class] Cancer"),
                ("21907-1", "Distant metastases.clinical [Class] Cancer"),
                ("21908-9", "Stage group.clinical Cancer"),
            ],
            "p": [
                ("21899-0", "Primary tumor.pathology Cancer"),
                ("21900-6", "Regional lymph nodes.pathology Cancer"),
                ("21901-4", "Distant metastases.pathology Cancer"),
                ("21902-2", "Stage group.pathology Cancer"),
            ],
        }[prefix]
        members = []
        for (code, display), category in zip(loinc[:3], (stage.t, stage.n, stage.m), strict=True):
            # Pathological staging has no pM0: absent distant disease stays clinical (cM0).
            own = "c" if category == "M0" else prefix
            text = f"{own}{category}"
            base = category.split("(")[0]
            members.append(
                self._observation(
                    source,
                    day,
                    code,
                    display,
                    valueCodeableConcept=concept(
                        text, {"system": AJCC, "code": f"{own}{base}", "display": base}
                    ),
                    method={"text": "UICC TNM 8th edition"},
                    who=who,
                )
            )
        group = self._observation(
            source,
            day,
            loinc[3][0],
            loinc[3][1],
            valueCodeableConcept=concept(
                stage.group,
                {"system": AJCC, "code": stage_code(stage.group), "display": stage.group},
            ),
            method={"text": "UICC TNM 8th edition"},
            hasMember=members,
            who=who,
        )
        return group

    def _observation(self, source, day, code, display, *, category="survey", who=None, **value):
        resource = {
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
            "code": concept(display, {"system": LOINC, "code": code, "display": display}),
            "effectiveDateTime": at(day, 13, 0),
            **value,
        }
        if who:
            resource["performer"] = [person(who)]
        return self.charts[source].add(resource)

    def ecog(self, source, day, score, who=None) -> dict:
        self._seen(day)
        return self._observation(
            source, day, "89247-1", "ECOG Performance Status score", valueInteger=score, who=who
        )

    def procedure(
        self,
        source,
        day,
        text,
        *,
        code=None,
        who,
        body_site=None,
        reason=None,
        encounter=None,
        surgical=True,
        end=None,
    ) -> dict:
        self._seen(end or day)
        resource = {
            "resourceType": "Procedure",
            "status": "completed",
            "code": concept(text, *([sct(*code)] if code else [])),
            "performer": [{"actor": person(who)}],
        }
        if surgical:
            resource["category"] = concept(
                "Surgical procedure", sct("387713003", "Surgical procedure")
            )
        if end:
            resource["performedPeriod"] = {"start": at(day, 9, 0), "end": at(end, 9, 30)}
        else:
            resource["performedDateTime"] = at(day, 9, 0)
        if body_site:
            resource["bodySite"] = [concept(body_site)]
        if reason:
            resource["reasonReference"] = [reason]
        if encounter:
            resource["encounter"] = encounter
        return self.charts[source].add(resource)

    def systemic_therapy(self, source, start, regimen, drugs, *, cycles, every_days, who, reason):
        """A prescription per drug and, per cycle, a day-case attendance and an administration of
        each drug on day 1."""
        requests = {}
        for name, dose, unit_text in drugs:
            request = {
                "resourceType": "MedicationRequest",
                "status": "completed",
                "intent": "order",
                "category": [concept("Systemic anti-cancer therapy")],
                "medicationCodeableConcept": self._medicine(name),
                "authoredOn": at(start - timedelta(days=2), 15, 0),
                "requester": person(who),
                "reasonReference": [reason],
                "dosageInstruction": [
                    {
                        "text": f"{regimen}: {name} {unit_text} IV on day 1 every {every_days} "
                        f"days for {cycles} cycles",
                        "route": concept("Intravenous"),
                    }
                ],
            }
            requests[name] = (self.charts[source].add(request), dose)
        for cycle in range(cycles):
            day = start + timedelta(days=cycle * every_days)
            visit = self.encounter(
                source,
                "SS",
                "Chemotherapy day unit",
                day,
                who=who,
                reason=f"{regimen} cycle {cycle + 1} of {cycles}",
            )
            for name, (request, dose) in requests.items():
                self.charts[source].add(
                    {
                        "resourceType": "MedicationAdministration",
                        "status": "completed",
                        "medicationCodeableConcept": self._medicine(name),
                        "context": visit,
                        "effectiveDateTime": at(day, 11, 0),
                        "request": request,
                        "dosage": {
                            "text": f"{name} {dose} mg IV (cycle {cycle + 1})",
                            "route": concept("Intravenous"),
                            "dose": {"value": dose, "unit": "mg", "system": UCUM, "code": "mg"},
                        },
                    }
                )
        return start + timedelta(days=(cycles - 1) * every_days)

    @staticmethod
    def _medicine(name: str) -> dict:
        for text, code, display in (
            CARBOPLATIN,
            PEMETREXED,
            GEMCITABINE,
            EPIRUBICIN,
            CYCLOPHOSPHAMIDE,
            OXALIPLATIN,
            CAPECITABINE,
            FLUOROURACIL,
            FOLINIC_ACID,
        ):
            if text == name and code:
                return concept(name, sct(code, display))
        return concept(name)

    def letter(self, source, day, title, author, text, *, pathway=True) -> dict:
        self._seen(day)
        body = f"{title}\n\n{text}\n\n{author}\n{TRUST_NAMES.get(source, source)}\n"
        return self.charts[source].add(
            {
                "resourceType": "DocumentReference",
                "status": "current",
                "type": concept(title),
                "date": at(day, 17, 0),
                "author": [person(author)],
                "custodian": org(self.ods(source)),
                "description": title,
                "content": [
                    {
                        "attachment": {
                            "contentType": "text/plain; charset=utf-8",
                            "language": "en-GB",
                            "title": title,
                            "creation": at(day, 17, 0),
                            "data": base64.b64encode(body.encode("utf-8")).decode("ascii"),
                        }
                    }
                ],
            },
            pathway=pathway,
        )

    def days_ago(self, low: int, high: int) -> date:
        return self.as_of - timedelta(days=self.rng.randint(low, high))

    def diagnosis_date(self) -> date:
        low, high = DIAGNOSED_DAYS_AGO[self.plan.pathway]
        return self.days_ago(low, high)

    # -- tumour sites ------------------------------------------------------------------------

    def lung(self) -> None:
        rng, pathway = self.rng, self.plan.pathway
        lobe, icd, icd_text = rng.choice(LUNG_LOBES)
        squamous = rng.random() < 0.2
        if self.plan.conflict:
            clinical, pathological = CONFLICT_STAGES
        else:
            choices = [s for s in LUNG_STAGES if pathway != Pathway.OPERATED or s[1] is not None]
            clinical, pathological = rng.choice(choices)
        size = rng.randint(*LUNG_SIZES[clinical.t])
        nodes = {
            "N0": "No hilar or mediastinal lymphadenopathy.",
            "N1": f"Enlarged ipsilateral hilar node, {rng.randint(11, 18)} mm short axis.",
            "N2": f"Enlarged subcarinal node, {rng.randint(12, 22)} mm short axis.",
        }[clinical.n]
        distant = (
            "No evidence of distant metastases in the imaged upper abdomen."
            if clinical.m == "M0"
            else f"Solitary {rng.randint(10, 24)} mm left adrenal lesion, suspicious for "
            "metastasis."
        )
        physician, radiologist, pathologist = "Dr Amir Khan", "Dr Grace Liu", "Dr Tom Evans"
        if pathway == Pathway.SUSPECTED:
            ct = self.days_ago(5, 18)
            self.encounter(
                "GP",
                "AMB",
                "GP surgery consultation",
                ct - timedelta(days=24),
                reason="Persistent cough: chest X-ray requested",
                who=self.gp_name,
            )
            self.imaging(
                "RRK",
                ct - timedelta(days=16),
                "DX",
                "Chest X-ray",
                f"Rounded opacity in the {lobe}. CT recommended.",
                who=radiologist,
            )
            self.encounter(
                "RRK",
                "AMB",
                "Respiratory outpatient clinic (urgent suspected cancer)",
                ct - timedelta(days=8),
                who=physician,
                reason="Abnormal chest X-ray",
            )
            self.imaging(
                "RRK",
                ct,
                "CT",
                "CT chest with contrast",
                f"{size} mm spiculated nodule in the {lobe}. {nodes} {distant} "
                "Features suspicious for primary lung cancer; tissue diagnosis advised.",
                procedure=sct("169069000", "Computed tomography of chest"),
                who=radiologist,
            )
            self.condition(
                "RRK",
                ct,
                ct + timedelta(days=1),
                None,
                ("R91", "Abnormal findings on diagnostic imaging of lung"),
                "Lung nodule suspicious for cancer",
                body_site=lobe,
                provisional=True,
            )
            self.summary.update(first_event=(ct - timedelta(days=24)).isoformat())
            return
        dx = self.diagnosis_date()
        self.encounter(
            "GP",
            "AMB",
            "GP surgery consultation",
            dx - timedelta(days=40),
            reason="Cough and haemoptysis: urgent referral for suspected lung cancer",
            who=self.gp_name,
        )
        self.imaging(
            "RRK",
            dx - timedelta(days=37),
            "DX",
            "Chest X-ray",
            f"Mass in the {lobe}. Urgent CT recommended.",
            who=radiologist,
        )
        self.encounter(
            "RRK",
            "AMB",
            "Respiratory outpatient clinic (urgent suspected cancer)",
            dx - timedelta(days=30),
            who=physician,
            reason="Abnormal chest X-ray",
        )
        ct_stage = f"c{clinical.t} c{clinical.n} c{clinical.m}"
        self.imaging(
            "RRK",
            dx - timedelta(days=28),
            "CT",
            "CT chest and upper abdomen with contrast",
            f"{size} mm spiculated mass in the {lobe}. {nodes} {distant} Appearances "
            f"consistent with primary lung cancer, radiologically {ct_stage}.",
            procedure=sct("169069000", "Computed tomography of chest"),
            who=radiologist,
        )
        self.imaging(
            "RRK",
            dx - timedelta(days=18),
            "PT",
            "FDG PET-CT",
            f"FDG-avid {lobe} mass (SUVmax {rng.randint(8, 19)}). "
            + (
                "No FDG-avid nodal disease."
                if clinical.n == "N0"
                else "FDG-avid nodal disease as described on CT."
            )
            + (
                " No distant FDG-avid disease."
                if clinical.m == "M0"
                else " FDG-avid left adrenal metastasis."
            ),
            who=radiologist,
        )
        visit = self.encounter(
            "RRK",
            "SS",
            "Endoscopy unit day case",
            dx - timedelta(days=7),
            who=physician,
            reason="EBUS-guided sampling",
        )
        self.procedure(
            "RRK",
            dx - timedelta(days=7),
            "EBUS-guided transbronchial needle biopsy",
            code=("274319000", "Needle biopsy of lung"),
            who=physician,
            body_site=lobe,
            encounter=visit,
            surgical=False,
        )
        pdl1 = rng.choice([0, 5, 20, 50, 60, 80])
        if squamous:
            histology = ("28899001", "Squamous cell carcinoma")
            biopsy = (
                "Non-small cell carcinoma, squamous cell type: p40 positive, TTF-1 "
                f"negative. PD-L1 (22C3) tumour proportion score {pdl1}%."
            )
        else:
            histology = ("35917007", "Adenocarcinoma")
            biopsy = (
                "Non-small cell carcinoma, adenocarcinoma: TTF-1 positive, p40 negative. "
                f"PD-L1 (22C3) tumour proportion score {pdl1}%. EGFR mutation not "
                "detected; ALK and ROS1 negative."
            )
        self.pathology(
            "RRK",
            dx - timedelta(days=7),
            dx,
            "Histopathology: EBUS-TBNA specimen",
            biopsy,
            morphology=histology,
            who=pathologist,
        )
        snomed = ("254637007", "Non-small cell lung cancer")
        cancer = self.condition(
            "RRK",
            dx,
            dx,
            snomed,
            (icd, icd_text),
            f"Non-small cell lung cancer ({histology[1].lower()}), {lobe}",
            body_site=lobe,
        )
        score = rng.choice([0, 0, 1]) if pathological else rng.choice([1, 1, 2])
        self.ecog("RRK", dx + timedelta(days=3), score, who=physician)
        self.staging("RRK", dx + timedelta(days=6), clinical, "c", who="Lung MDT (UHB)")
        self.encounter(
            "RRK",
            "AMB",
            "Respiratory outpatient clinic (results)",
            dx + timedelta(days=9),
            who=physician,
            reason="Results and MDT outcome",
        )
        self.letter(
            "RRK",
            dx + timedelta(days=9),
            "Respiratory clinic letter",
            physician,
            f"Diagnosis: non-small cell lung cancer ({histology[1].lower()}), {lobe}, "
            f"{ct_stage} (stage {clinical.group}). Performance status {score}. "
            + (
                "The MDT recommended referral for surgical resection."
                if pathological
                else "The MDT recommended systemic anti-cancer therapy."
            ),
        )
        self.summary.update(diagnosis=dx.isoformat(), clinical_stage=clinical.group)
        if pathological or self.plan.conflict:
            surgeon = "Mr Peter Green"
            self.encounter(
                "RWP",
                "AMB",
                "Thoracic surgery outpatient clinic",
                dx + timedelta(days=10),
                who=surgeon,
                reason="Surgical opinion",
            )
            self.condition(
                "RWP",
                dx,
                dx + timedelta(days=10),
                snomed,
                (icd, icd_text),
                f"Non-small cell lung cancer, {lobe}",
                body_site=lobe,
            )
            if self.plan.conflict:
                # The surgeons read the PET-CT as showing a subcarinal node: their stage differs.
                self.staging("RWP", dx + timedelta(days=10), CONFLICT_RWP_STAGE, "c", who=surgeon)
                self.summary.update(rwp_clinical_stage=CONFLICT_RWP_STAGE.group)
        if pathway == Pathway.STAGED:
            return
        if pathological:
            operation = dx + timedelta(days=38)
            stay = self.encounter(
                "RWP",
                "IMP",
                "Thoracic surgery admission",
                operation,
                end=operation + timedelta(days=5),
                who="Mr Peter Green",
                reason="Elective lobectomy",
            )
            self.procedure(
                "RWP",
                operation,
                f"VATS {lobe} lobectomy with mediastinal lymph node dissection",
                code=("173171007", "Lobectomy of lung"),
                who="Mr Peter Green",
                body_site=lobe,
                reason=cancer,
                encounter=stay,
            )
            positive = {"N0": 0, "N1": rng.randint(1, 2), "N2": rng.randint(1, 3)}[pathological.n]
            report = (
                f"{lobe.capitalize()} lobectomy: invasive "
                + ("squamous cell carcinoma" if squamous else "adenocarcinoma, acinar predominant")
                + f", {size} mm, grade 2. {positive} of {rng.randint(9, 16)} lymph nodes "
                f"involved. Margins clear (R0). p{pathological.t} p{pathological.n} "
                "(UICC TNM 8)."
            )
            self.pathology(
                "RWP",
                operation,
                operation + timedelta(days=10),
                "Histopathology: lobectomy specimen",
                report,
                morphology=histology,
                who="Dr Sunil Mehta",
            )
            self.staging(
                "RWP", operation + timedelta(days=10), pathological, "p", who="Dr Sunil Mehta"
            )
            self.letter(
                "RWP",
                operation + timedelta(days=5),
                "Discharge summary",
                "Mr Peter Green",
                f"Operation: VATS {lobe} lobectomy. Uneventful recovery; discharged home on day 5.",
            )
            self.summary.update(
                surgery=operation.isoformat(), pathological_stage=pathological.group
            )
        if pathway == Pathway.OPERATED:
            return
        staged_n = (pathological or clinical).n
        if pathological and staged_n == "N0" and pathological.group in ("IA3", "IB"):
            return  # surveillance only: RL4 takes no part
        start = dx + timedelta(days=70 if pathological else 24)
        oncologist = "Dr Amira Haddad"
        self.encounter(
            "RL4",
            "AMB",
            "Oncology outpatient clinic",
            start - timedelta(days=7),
            who=oncologist,
            reason="Systemic anti-cancer therapy: consent",
        )
        self.ecog(
            "RL4",
            start - timedelta(days=7),
            rng.choice([0, 1]) if pathological else 1,
            who=oncologist,
        )
        partner = (GEMCITABINE, 1900, "1250 mg/m2") if squamous else (PEMETREXED, 900, "500 mg/m2")
        regimen = f"Carboplatin and {partner[0][0].lower()}"
        last = self.systemic_therapy(
            "RL4",
            start,
            regimen,
            [
                ("Carboplatin", rng.randrange(450, 650, 10), "AUC5"),
                (partner[0][0], partner[1], partner[2]),
            ],
            cycles=4,
            every_days=21,
            who=oncologist,
            reason=cancer,
        )
        self.letter(
            "RL4",
            last + timedelta(days=14),
            "Oncology clinic letter",
            oncologist,
            f"{regimen}, 4 cycles completed. Tolerated well. Follow-up CT in three months.",
        )
        self.summary.update(systemic_therapy=start.isoformat())

    def breast(self) -> None:
        rng, pathway = self.rng, self.plan.pathway
        side = rng.choice(["left", "right"])
        quadrant, icd, icd_text = rng.choice(BREAST_QUADRANTS)
        choices = BREAST_STAGES
        clinical, pathological = rng.choice(choices)
        er, pr, her2 = rng.choice(RECEPTORS)
        grade = rng.choice([1, 2, 2, 3]) if er else 3
        size = rng.randint(*BREAST_SIZES[clinical.t])
        surgeon, radiologist, pathologist = "Miss Laura Ward", "Dr Sarah Bennett", "Dr Owen Price"
        site_text = f"{side} breast, {quadrant}"
        age = (self.as_of - self.patient.birth_date).days // 365
        dx = self.diagnosis_date()
        self.encounter(
            "GP",
            "AMB",
            "GP surgery consultation",
            dx - timedelta(days=21),
            reason="Breast lump: urgent referral for suspected cancer",
            who=self.gp_name,
        )
        clinic = dx - timedelta(days=9)
        self.encounter(
            "RWP",
            "AMB",
            "Breast clinic (triple assessment)",
            clinic,
            who=surgeon,
            reason="Breast lump",
        )
        self.imaging(
            "RWP",
            clinic,
            "MG",
            "Mammogram, bilateral",
            f"{size} mm spiculated mass, {site_text}. M5.",
            procedure=sct("71651007", "Mammography"),
            who=radiologist,
        )
        axilla = (
            "Axilla: no abnormal nodes. U5."
            if clinical.n == "N0"
            else "Axilla: two abnormal nodes, one sampled. U5."
        )
        self.imaging(
            "RWP",
            clinic,
            "US",
            "Ultrasound breast and axilla",
            f"{size} mm irregular hypoechoic mass, {site_text}. {axilla}",
            who=radiologist,
        )
        self.procedure(
            "RWP",
            clinic,
            "Ultrasound-guided core biopsy of breast",
            who=radiologist,
            body_site=f"{side} breast",
            surgical=False,
        )
        receptor_obs = []
        for code, display, positive, detail in (
            (
                "85337-4",
                "Estrogen receptor Ag [Presence] in Breast cancer specimen by Immune stain",
                er,
                "Allred 8/8" if er else "Allred 0/8",
            ),
            (
                "85339-0",
                "Progesterone receptor Ag [Presence] in Breast cancer specimen by Immune stain",
                pr,
                "Allred 6/8" if pr else "Allred 0/8",
            ),
            (
                "85319-2",
                "HER2 [Presence] in Breast cancer specimen by Immune stain",
                her2,
                "IHC 3+" if her2 else "IHC 1+",
            ),
        ):
            value = sct("10828004", "Positive") if positive else sct("260385009", "Negative")
            receptor_obs.append(
                self._observation(
                    "RWP",
                    dx,
                    code,
                    display,
                    category="laboratory",
                    valueCodeableConcept=concept(f"{value['display']} ({detail})", value),
                    who=pathologist,
                )
            )
        receptors = (
            f"ER {'positive' if er else 'negative'}, PR {'positive' if pr else 'negative'}"
            f", HER2 {'positive' if her2 else 'negative'}"
        )
        self.pathology(
            "RWP",
            clinic,
            dx,
            "Histopathology: breast core biopsy",
            f"Invasive carcinoma of no special type (ductal), grade {grade}. {receptors}.",
            morphology=("82711006", "Infiltrating duct carcinoma"),
            who=pathologist,
            results=receptor_obs,
        )
        snomed = ("254837009", "Malignant neoplasm of breast")
        cancer = self.condition(
            "RWP",
            dx,
            dx,
            snomed,
            (icd, icd_text),
            f"Invasive ductal carcinoma, {site_text}",
            body_site=site_text,
        )
        if clinical.n != "N0":
            self.imaging(
                "RRK",
                dx + timedelta(days=4),
                "CT",
                "CT chest, abdomen and pelvis",
                "No evidence of distant metastatic disease.",
                procedure=sct("418023006", "Computed tomography of chest, abdomen and pelvis"),
                who="Dr Grace Liu",
            )
        self.ecog("RWP", dx + timedelta(days=5), rng.choice([0, 0, 1]), who=surgeon)
        self.staging(
            "RWP", dx + timedelta(days=7), clinical, "c", who="Breast MDT (Worcestershire)"
        )
        self.letter(
            "RWP",
            dx + timedelta(days=8),
            "Breast clinic letter",
            surgeon,
            f"Diagnosis: invasive ductal carcinoma, grade {grade}, {site_text}; "
            f"{receptors}; c{clinical.t} c{clinical.n} c{clinical.m} (stage "
            f"{clinical.group}). Plan discussed at the MDT: surgery.",
        )
        self.summary.update(diagnosis=dx.isoformat(), clinical_stage=clinical.group)
        if pathway == Pathway.STAGED:
            return
        operation = dx + timedelta(days=28)
        mastectomy = clinical.t == "T3" or self.patient.sex == Patient.Sex.MALE
        name = "mastectomy" if mastectomy else "wide local excision"
        stay = self.encounter(
            "RWP",
            "SS",
            "Breast surgery day case",
            operation,
            who=surgeon,
            reason=f"{side.capitalize()} {name}",
        )
        code = (
            ("172043006", "Simple mastectomy") if mastectomy else ("64368001", "Partial mastectomy")
        )
        self.procedure(
            "RWP",
            operation,
            f"{side.capitalize()} {name}",
            code=code,
            who=surgeon,
            body_site=f"{side} breast",
            reason=cancer,
            encounter=stay,
        )
        self.procedure(
            "RWP",
            operation,
            f"{side.capitalize()} axillary sentinel lymph node biopsy",
            code=("396487001", "Sentinel lymph node biopsy"),
            who=surgeon,
            body_site=f"{side} axilla",
            reason=cancer,
            encounter=stay,
        )
        nodes = (
            "0 of 2 sentinel nodes involved"
            if "0" in pathological.n
            else ("1 of 2 sentinel nodes involved (macrometastasis)")
        )
        self.pathology(
            "RWP",
            operation,
            operation + timedelta(days=10),
            f"Histopathology: {name} and sentinel node specimen",
            f"Invasive carcinoma NST, grade {grade}, {size} mm. {nodes}. Margins "
            f"clear (nearest 4 mm). p{pathological.t} p{pathological.n}.",
            morphology=("82711006", "Infiltrating duct carcinoma"),
            who=pathologist,
        )
        self.staging("RWP", operation + timedelta(days=10), pathological, "p", who=pathologist)
        self.summary.update(surgery=operation.isoformat(), pathological_stage=pathological.group)
        if pathway == Pathway.OPERATED:
            return
        next_day = operation + timedelta(days=35)
        if her2 or not er or grade == 3 or "0" not in pathological.n:
            oncologist = "Dr Amira Haddad"
            self.encounter(
                "RL4",
                "AMB",
                "Oncology outpatient clinic",
                next_day - timedelta(days=7),
                who=oncologist,
                reason="Adjuvant chemotherapy: consent",
            )
            last = self.systemic_therapy(
                "RL4",
                next_day,
                "EC90",
                [("Epirubicin", 170, "90 mg/m2"), ("Cyclophosphamide", 1100, "600 mg/m2")],
                cycles=4,
                every_days=21,
                who=oncologist,
                reason=cancer,
            )
            self.letter(
                "RL4",
                last + timedelta(days=10),
                "Oncology clinic letter",
                oncologist,
                "EC90, 4 cycles completed. Referred for adjuvant radiotherapy.",
            )
            next_day = last + timedelta(days=28)
        if not mastectomy or "0" not in pathological.n:
            clinician = "Dr Helen Marsh"
            self.encounter(
                "RRK",
                "AMB",
                "Clinical oncology outpatient clinic",
                next_day - timedelta(days=10),
                who=clinician,
                reason="Adjuvant radiotherapy planning",
            )
            self.procedure(
                "RRK",
                next_day,
                f"External beam radiotherapy to the {side} breast, 26 Gy in 5 fractions",
                code=("33195004", "Teleradiotherapy procedure"),
                who=clinician,
                body_site=f"{side} breast",
                reason=cancer,
                surgical=False,
                end=next_day + timedelta(days=4),
            )
            self.summary.update(radiotherapy=next_day.isoformat())
            next_day += timedelta(days=21)
        if er:
            drug = "Letrozole 2.5mg tablets" if age >= 55 else "Tamoxifen 20mg tablets"
            self._seen(next_day)
            self.charts["RWP"].add(
                {
                    "resourceType": "MedicationRequest",
                    "status": "active",
                    "intent": "order",
                    "category": [concept("Endocrine therapy")],
                    "medicationCodeableConcept": concept(drug),
                    "authoredOn": at(next_day, 11, 0),
                    "requester": person(surgeon),
                    "reasonReference": [cancer],
                    "dosageInstruction": [{"text": "One tablet once a day for five years"}],
                }
            )
            self.gp_medicines.append((drug, "One tablet once a day", next_day + timedelta(days=28)))
        self.summary.update(systemic_therapy=(operation + timedelta(days=35)).isoformat())

    def colorectal(self) -> None:
        rng, pathway = self.rng, self.plan.pathway
        location, icd, icd_text, distance = rng.choice(COLORECTAL_SITES)
        clinical, pathological = rng.choice(COLORECTAL_STAGES)
        rectum = location == "rectum"
        gastro, surgeon = "Dr Richard Cooper", "Miss Fiona Walsh"
        radiologist, pathologist = "Dr Daniel Reid", "Dr Nadia Rahman"
        dx = self.diagnosis_date()
        fit = dx - timedelta(days=38)
        self.encounter(
            "GP",
            "AMB",
            "GP surgery consultation",
            fit - timedelta(days=4),
            reason="Change in bowel habit: FIT requested",
            who=self.gp_name,
        )
        self._seen(fit)
        self.charts["GP"].add(
            {
                "resourceType": "Observation",
                "status": "final",
                "category": [{"coding": [{"system": OBS_CATEGORY, "code": "laboratory"}]}],
                "code": concept("Faecal immunochemical test (FIT)"),
                "effectiveDateTime": at(fit, 9, 0),
                "valueQuantity": {"value": rng.randint(80, 400), "unit": "ug Hb/g faeces"},
            }
        )
        self.encounter(
            "GP",
            "AMB",
            "GP surgery consultation",
            fit + timedelta(days=5),
            reason="FIT positive: urgent referral for suspected colorectal cancer",
            who=self.gp_name,
        )
        scope = dx - timedelta(days=7)
        visit = self.encounter(
            "RWP", "SS", "Endoscopy unit day case", scope, who=gastro, reason="Urgent colonoscopy"
        )
        self.procedure(
            "RWP",
            scope,
            "Colonoscopy with biopsy and tattoo",
            code=("73761001", "Colonoscopy"),
            who=gastro,
            body_site=location,
            encounter=visit,
            surgical=False,
        )
        where = f"at {distance} cm" if distance else "in the caecal pole region"
        self._seen(scope)
        self.charts["RWP"].add(
            {
                "resourceType": "DiagnosticReport",
                "status": "final",
                "category": [concept("Endoscopy")],
                "code": concept("Colonoscopy report"),
                "effectiveDateTime": at(scope, 11, 0),
                "issued": at(scope, 12, 30),
                "performer": [org("RWP")],
                "resultsInterpreter": [person(gastro)],
                "conclusion": f"Malignant-looking circumferential tumour {where}, {location}; "
                "biopsied and tattooed. Rest of colon normal to the caecum.",
            }
        )
        self.pathology(
            "RWP",
            scope,
            dx,
            "Histopathology: colonic biopsies",
            "Moderately differentiated adenocarcinoma. Mismatch repair proficient "
            "(MLH1, PMS2, MSH2 and MSH6 retained).",
            morphology=("35917007", "Adenocarcinoma"),
            who="Dr Kate Morgan",
        )
        snomed = (
            ("363351006", "Malignant neoplasm of rectum")
            if rectum
            else ("363406005", "Malignant neoplasm of colon")
        )
        self.condition(
            "RWP",
            dx,
            dx,
            snomed,
            (icd, icd_text),
            f"Adenocarcinoma of {location}",
            body_site=location,
        )
        nodes = (
            "No enlarged locoregional nodes."
            if clinical.n == "N0"
            else f"{rng.randint(2, 4)} enlarged locoregional nodes."
        )
        self.imaging(
            "RL4",
            dx + timedelta(days=5),
            "CT",
            "CT chest, abdomen and pelvis with contrast",
            f"Tumour of the {location} with extramural extension, radiologically "
            f"c{clinical.t}. {nodes} No liver or lung metastases.",
            procedure=sct("418023006", "Computed tomography of chest, abdomen and pelvis"),
            who=radiologist,
        )
        if rectum:
            self.imaging(
                "RL4",
                dx + timedelta(days=8),
                "MR",
                "MRI pelvis (rectal staging)",
                f"Mid rectal tumour, mr{clinical.t} {clinical.n}; mesorectal fascia "
                "clear (3 mm); EMVI negative.",
                who=radiologist,
            )
        cancer = self.condition(
            "RL4",
            dx,
            dx + timedelta(days=10),
            snomed,
            (icd, icd_text),
            f"Adenocarcinoma of {location}",
            body_site=location,
        )
        self.ecog("RL4", dx + timedelta(days=10), rng.choice([0, 1, 1]), who=surgeon)
        self.staging(
            "RL4", dx + timedelta(days=10), clinical, "c", who="Colorectal MDT (Wolverhampton)"
        )
        self.encounter(
            "RL4",
            "AMB",
            "Colorectal surgery outpatient clinic",
            dx + timedelta(days=12),
            who=surgeon,
            reason="Results and MDT outcome",
        )
        self.letter(
            "RL4",
            dx + timedelta(days=12),
            "Colorectal clinic letter",
            surgeon,
            f"Diagnosis: adenocarcinoma of the {location}, c{clinical.t} c{clinical.n} "
            f"c{clinical.m} (stage {clinical.group}). The MDT recommended resection.",
        )
        self.summary.update(diagnosis=dx.isoformat(), clinical_stage=clinical.group)
        if pathway == Pathway.STAGED:
            return
        operation = dx + timedelta(days=35)
        if location == "ascending colon":
            name, code = "Laparoscopic right hemicolectomy", None
        else:
            name = (
                "Laparoscopic low anterior resection with defunctioning ileostomy"
                if rectum
                else "Laparoscopic high anterior resection"
            )
            code = ("4558008", "Anterior resection of rectum")
        stay = self.encounter(
            "RL4",
            "IMP",
            "Colorectal surgery admission",
            operation,
            end=operation + timedelta(days=6),
            who=surgeon,
            reason=name,
        )
        self.procedure(
            "RL4",
            operation,
            name,
            code=code,
            who=surgeon,
            body_site=location,
            reason=cancer,
            encounter=stay,
        )
        positive = 0 if pathological.n == "N0" else rng.randint(1, 3)
        self.pathology(
            "RL4",
            operation,
            operation + timedelta(days=12),
            "Histopathology: colorectal resection specimen",
            f"Moderately differentiated adenocarcinoma of the {location}. {positive} "
            f"of {rng.randint(14, 26)} lymph nodes involved. Resection margins clear "
            f"(R0). p{pathological.t} p{pathological.n}.",
            morphology=("35917007", "Adenocarcinoma"),
            who=pathologist,
        )
        self.staging("RL4", operation + timedelta(days=12), pathological, "p", who=pathologist)
        self.letter(
            "RL4",
            operation + timedelta(days=6),
            "Discharge summary",
            surgeon,
            f"Operation: {name}. Discharged home on day 6.",
        )
        self.summary.update(surgery=operation.isoformat(), pathological_stage=pathological.group)
        if pathway == Pathway.OPERATED:
            return
        start = operation + timedelta(days=42)
        oncologist = "Dr James Whitfield"
        last = start
        if pathological.group.startswith("III") or pathological.t == "T4a":
            self.encounter(
                "RRK",
                "AMB",
                "Oncology outpatient clinic",
                start - timedelta(days=7),
                who=oncologist,
                reason="Adjuvant chemotherapy: consent",
            )
            if rng.random() < 0.5:
                regimen, every = "CAPOX", 21
                drugs = [("Oxaliplatin", 250, "130 mg/m2"), ("Capecitabine", 2000, "1000 mg/m2")]
            else:
                regimen, every = "FOLFOX", 14
                drugs = [
                    ("Oxaliplatin", 160, "85 mg/m2"),
                    ("Folinic acid", 700, "350 mg"),
                    ("Fluorouracil", 750, "400 mg/m2 bolus"),
                ]
            last = self.systemic_therapy(
                "RRK",
                start,
                regimen,
                drugs,
                cycles=4,
                every_days=every,
                who=oncologist,
                reason=cancer,
            )
            self.letter(
                "RRK",
                last + timedelta(days=10),
                "Oncology clinic letter",
                oncologist,
                f"Adjuvant {regimen}, 4 cycles completed. Surveillance CT in 3 months.",
            )
            self.summary.update(systemic_therapy=start.isoformat())
        if self.plan.question.startswith("Liver lesion"):
            scan = max(last + timedelta(days=40), operation + timedelta(days=150))
            self.imaging(
                "RL4",
                scan,
                "CT",
                "CT chest, abdomen and pelvis with contrast (surveillance)",
                f"New {rng.randint(12, 24)} mm lesion in liver "
                "segment VII, suspicious for metastasis. No other new disease.",
                procedure=sct("418023006", "Computed tomography of chest, abdomen and pelvis"),
                who=radiologist,
            )

    # -- the GP record and unrelated hospital visits -----------------------------------------

    @property
    def gp_name(self) -> str:
        code = self.ods("GP")
        if code == DEMO_GP[0]:
            return DEMO_GP[1]
        return GP_NAMES[sum(map(ord, code)) % len(GP_NAMES)]

    def gp_record(self) -> None:
        rng = self.rng
        odds = COMORBIDITY_ODDS[self.plan.site]
        for name, chance in odds.items():
            if rng.random() >= chance:
                continue
            code, display, icd, medicines = COMORBIDITIES[name]
            onset = self.as_of - timedelta(days=rng.randint(3 * 365, 15 * 365))
            onset = max(onset, self.patient.birth_date + timedelta(days=30 * 365))
            onset = min(onset, self.as_of - timedelta(days=365))
            self.condition("GP", onset, onset, (code, display), (icd, display), display)
            for text, dose in medicines:
                self.gp_medicines.append((text, dose, onset + timedelta(days=rng.randint(7, 60))))
        for text, dose, start in self.gp_medicines:
            self._seen(start)
            self.charts["GP"].add(
                {
                    "resourceType": "MedicationStatement",
                    "status": "active",
                    "category": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/"
                                "medication-statement-category",
                                "code": "community",
                                "display": "Community",
                            }
                        ]
                    },
                    "medicationCodeableConcept": concept(text),
                    "effectivePeriod": {"start": start.isoformat()},
                    "dateAsserted": at(start, 12, 0),
                    "dosage": [{"text": dose}],
                },
                pathway=False,
            )
        recorded = self.as_of - timedelta(days=rng.randint(2 * 365, 8 * 365))
        if rng.random() < 0.25:
            allergy = {
                "type": "allergy",
                "category": ["medication"],
                "code": concept("Amoxicillin", sct("372687004", "Amoxicillin")),
                "reaction": [
                    {
                        "manifestation": [
                            concept("Urticarial rash", sct("247472004", "Urticarial rash"))
                        ],
                        "severity": "mild",
                    }
                ],
            }
        else:
            allergy = {
                "code": concept(
                    "No known drug allergy", sct("409137002", "No known drug allergy (situation)")
                )
            }
        self._seen(recorded)
        self.charts["GP"].add(
            {
                "resourceType": "AllergyIntolerance",
                "clinicalStatus": {"coding": [{"system": ALLERGY_CLINICAL, "code": "active"}]},
                "verificationStatus": {
                    "coding": [{"system": ALLERGY_VERIFICATION, "code": "confirmed"}]
                },
                **allergy,
                "recordedDate": at(recorded, 11, 0),
            },
            pathway=False,
        )
        review = self.as_of - timedelta(days=rng.randint(400, 900))
        self.encounter(
            "GP",
            "AMB",
            "GP surgery consultation",
            review,
            who=self.gp_name,
            reason="Annual chronic disease review",
            pathway=False,
        )

    def background(self, source: str) -> None:
        cls, text, reason = self.rng.choice(BACKGROUND_VISITS)
        day = self.as_of - timedelta(days=self.rng.randint(2 * 365, 9 * 365))
        self.encounter(source, cls, text, day, reason=reason, pathway=False)

    def build(self) -> None:
        {Site.LUNG: self.lung, Site.BREAST: self.breast, Site.COLORECTAL: self.colorectal}[
            self.plan.site
        ]()
        self.gp_record()
        for source in TRUST_SOURCES:
            if not self.charts[source].in_pathway:
                self.background(source)

    # -- patients ----------------------------------------------------------------------------

    def address(self) -> dict:
        patient = self.patient
        area = "".join(ch for ch in patient.postcode.split(" ")[0] if ch.isalpha())
        address = {"use": "home", "line": [patient.address]}
        if area in TOWNS:
            address["city"] = TOWNS[area]
        if patient.postcode:
            address["postalCode"] = patient.postcode
        return address

    def name(self) -> dict:
        patient = self.patient
        return {"use": "official", "family": patient.family_name, "given": [patient.given_name]}

    def source_patient(self, source: str, deceased_on: date | None) -> dict:
        chart, patient = self.charts[source], self.patient
        identifiers = [
            {"system": NHS_NUMBER_SYSTEM, "value": patient.nhs_number, "extension": [NHS_VERIFIED]}
        ]
        if source != "GP":
            number = chart.patient_id.split("-")[1]
            identifiers.append(
                {
                    "use": "secondary",
                    "type": concept("Hospital number"),
                    "system": f"https://fhir.{source.lower()}.nhs.uk/Id/hospital-number",
                    "value": f"{source}{number}",
                }
            )
        resource = {
            "resourceType": "Patient",
            "id": chart.patient_id,
            "identifier": identifiers,
            "name": [self.name()],
            "gender": patient.sex,
            "birthDate": patient.birth_date.isoformat(),
        }
        # The GP record keeps the address of a restricted patient; the trusts have removed it.
        if source == "GP" or not patient.restricted:
            resource["address"] = [self.address()]
        if patient.gp_practice:
            resource["generalPractitioner"] = [
                {"type": "Organization", **org(patient.gp_practice.ods_code)}
            ]
        if source == "GP":
            resource["managingOrganization"] = org(self.ods("GP"))
            if deceased_on:
                resource["deceasedDateTime"] = at(deceased_on, 6, 0)
        return resource

    def pds_patient(self, registered: date, deceased_on: date | None) -> dict:
        patient = self.patient
        restricted = patient.restricted
        resource = {
            "resourceType": "Patient",
            "id": patient.nhs_number,
            "identifier": [
                {
                    "system": NHS_NUMBER_SYSTEM,
                    "value": patient.nhs_number,
                    "extension": [NHS_VERIFIED],
                }
            ],
            "meta": {
                "versionId": "2",
                "security": [
                    {
                        "system": CONFIDENTIALITY,
                        "code": "R" if restricted else "U",
                        "display": "restricted" if restricted else "unrestricted",
                    }
                ],
            },
            "name": [
                {
                    "id": hashlib.sha256(f"name:{patient.nhs_number}".encode()).hexdigest()[:8],
                    "use": "usual",
                    "period": {"start": patient.birth_date.isoformat()},
                    "given": [patient.given_name],
                    "family": patient.family_name,
                    "prefix": ["Mrs" if patient.sex == Patient.Sex.FEMALE else "Mr"],
                }
            ],
            "gender": patient.sex,
            "birthDate": patient.birth_date.isoformat(),
        }
        if deceased_on:
            resource["deceasedDateTime"] = at(deceased_on, 6, 0)
            resource["extension"] = [
                {
                    "url": "https://fhir.hl7.org.uk/StructureDefinition/"
                    "Extension-UKCore-DeathNotificationStatus",
                    "extension": [
                        {
                            "url": "deathNotificationStatus",
                            "valueCodeableConcept": {
                                "coding": [
                                    {
                                        "system": "https://fhir.hl7.org.uk/CodeSystem/"
                                        "UKCore-DeathNotificationStatus",
                                        "version": "1.0.0",
                                        "code": "2",
                                        "display": "Formal - death notice received from "
                                        "Registrar of Deaths",
                                    }
                                ]
                            },
                        },
                        {"url": "systemEffectiveDate", "valueDateTime": at(deceased_on, 6, 0)},
                    ],
                }
            ]
        if not restricted:
            address = self.address()
            address["id"] = hashlib.sha256(f"addr:{patient.nhs_number}".encode()).hexdigest()[:8]
            address["period"] = {"start": registered.isoformat()}
            resource["address"] = [address]
            resource["telecom"] = [
                {
                    "system": "phone",
                    "use": "home",
                    "value": f"0121496{int(patient.nhs_number[-4:]) % 1000:04d}",
                }
            ]
        if patient.gp_practice:
            resource["generalPractitioner"] = [
                {
                    "id": hashlib.sha256(f"gp:{patient.nhs_number}".encode())
                    .hexdigest()[:8]
                    .upper(),
                    "type": "Organization",
                    "identifier": {
                        "system": ODS_SYSTEM,
                        "value": patient.gp_practice.ods_code,
                        "period": {"start": registered.isoformat()},
                    },
                }
            ]
        return resource


# -- writing the region --------------------------------------------------------------------


def _local_ids(patients: list[Patient]) -> dict[str, dict[str, str]]:
    """Each source's own Patient id for each NHS number: stable, different per source."""
    ids: dict[str, dict[str, str]] = {}
    for source in SOURCES:
        used: set[str] = set()
        for patient in patients:
            salt = 0
            while True:
                digest = hashlib.sha256(f"{source}:{patient.nhs_number}:{salt}".encode())
                candidate = (
                    f"{source.lower()}-{int(digest.hexdigest(), 16) % 9_000_000 + 1_000_000}"
                )
                if candidate not in used:
                    break
                salt += 1
            used.add(candidate)
            ids.setdefault(patient.nhs_number, {})[source] = candidate
    return ids


def _listings(patients: list[Patient]) -> dict[int, tuple[Site | None, str]]:
    """The team site and question of each patient's first listing, by patient pk."""
    pks = [p.pk for p in patients if p.pk is not None]
    listings: dict[int, tuple[Site | None, str]] = {}
    cases = (
        Case.objects.filter(patient_id__in=pks)
        .select_related("meeting__team")
        .order_by("meeting__starts_at", "position")
    )
    for case in cases:
        listings.setdefault(
            case.patient_id, (TEAM_SITES.get(case.meeting.team.tumour_site), case.question)
        )
    return listings


def _plan(patient: Patient, listing: tuple[Site | None, str] | None, seed: int) -> Plan:
    rng = random.Random(f"plan:{seed}:{patient.nhs_number}")
    site, question = listing if listing else (None, "")
    if site is None:
        sites = [Site.LUNG, Site.COLORECTAL]
        sites += [Site.BREAST] * (2 if patient.sex == Patient.Sex.FEMALE else 0)
        site = rng.choice(sites)
    pathway = QUESTION_PATHWAYS.get(question)
    if pathway is None:
        pathway = rng.choice([Pathway.STAGED, Pathway.OPERATED, Pathway.TREATED, Pathway.TREATED])
    if pathway == Pathway.SUSPECTED and site != Site.LUNG:
        pathway = Pathway.STAGED
    return Plan(site=site, pathway=pathway, listed=listing is not None, question=question)


@dataclass
class Situations:
    conflict: Patient | None
    deceased: list[Patient]
    used: set[str]  # NHS numbers already given a situation


def _choose_situations(ordered: list[Patient], plans: dict[str, Plan]) -> Situations:
    """The stage conflict and the deceased patient, preferring patients on an MDT list (so the
    demo shows them); the index's restricted and deceased patients keep their own situation."""
    candidates = sorted(ordered, key=lambda p: (not plans[p.nhs_number].listed, p.nhs_number))
    used = {p.nhs_number for p in ordered if p.restricted or p.deceased}
    free = [p for p in candidates if p.nhs_number not in used]
    conflict = next(
        (
            p
            for p in free
            if plans[p.nhs_number].site == Site.LUNG
            and plans[p.nhs_number].pathway != Pathway.SUSPECTED
        ),
        None,
    ) or next((p for p in free if not plans[p.nhs_number].listed), None)
    if conflict is not None:
        plan = plans[conflict.nhs_number]
        plan.site, plan.conflict = Site.LUNG, True
        if plan.pathway == Pathway.SUSPECTED:
            plan.pathway = Pathway.STAGED
        used.add(conflict.nhs_number)
    deceased = [p for p in ordered if p.deceased]
    if not deceased:
        deceased = [p for p in candidates if p.nhs_number not in used][:1]
        used.update(p.nhs_number for p in deceased)
    return Situations(conflict=conflict, deceased=deceased, used=used)


@dataclass
class BuiltHistories:
    """Every patient's history, built in memory (what write_demo_histories writes)."""

    as_of: date
    ordered: list[Patient]  # by NHS number
    plans: dict[str, Plan]  # by NHS number
    situations: Situations
    histories: dict[str, History]  # by NHS number
    not_found: tuple[str, str] | None  # (NHS number, the trust that does not know them)


def build_demo_histories(
    patients: list[Patient], seed: int = 7, *, as_of: date | None = None
) -> BuiltHistories:
    """The histories write_demo_histories writes, without writing them: the same patients, seed
    and `as_of` give the same histories (demo.registry_data registers the same cancers)."""
    as_of = as_of or timezone.localdate()
    ordered = sorted(patients, key=lambda p: p.nhs_number)
    listings = _listings(ordered)
    ids = _local_ids(ordered)
    plans = {p.nhs_number: _plan(p, listings.get(p.pk), seed) for p in ordered}
    chosen = _choose_situations(ordered, plans)
    histories: dict[str, History] = {}
    for patient in ordered:
        history = History(patient, plans[patient.nhs_number], ids[patient.nhs_number], as_of, seed)
        history.build()
        histories[patient.nhs_number] = history

    # One patient (preferably listed) unknown to a trust that had no part in their cancer care.
    not_found = None
    for patient in sorted(ordered, key=lambda p: (not plans[p.nhs_number].listed, p.nhs_number)):
        if patient.nhs_number in chosen.used:
            continue
        history = histories[patient.nhs_number]
        absent = next((s for s in ("RL4", "RWP", "RRK") if not history.charts[s].in_pathway), None)
        if absent:
            not_found = (patient.nhs_number, absent)
            break
    return BuiltHistories(as_of, ordered, plans, chosen, histories, not_found)


def write_demo_histories(
    patients: list[Patient], out_dir: Path, seed: int = 7, *, as_of: date | None = None
) -> dict[str, int]:
    """Writes `out_dir/<SOURCE>/<patient id>.json` (a collection Bundle per patient, the Patient
    first) for RRK, RWP, RL4 and GP, `out_dir/PDS/<NHS number>.json` for every patient, and
    `out_dir/manifest.json` (the situations, and each patient's site, pathway and ids), last.
    Returns the number of resources written per source (patients for PDS)."""
    built = build_demo_histories(patients, seed, as_of=as_of)
    as_of, ordered, histories = built.as_of, built.ordered, built.histories
    out_dir = Path(out_dir)
    conflict, deceased = built.situations.conflict, built.situations.deceased
    not_found = built.not_found

    deaths: dict[str, date] = {}
    for patient in deceased:
        history = histories[patient.nhs_number]
        gap = (as_of - history.last_event).days
        deaths[patient.nhs_number] = history.last_event + timedelta(days=max(0, min(12, gap - 1)))

    for folder in (*SOURCES, PDS):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
        for old in (out_dir / folder).glob("*.json"):
            old.unlink()
    counts = dict.fromkeys((*SOURCES, PDS), 0)
    manifest_patients = {}
    for patient in ordered:
        history = histories[patient.nhs_number]
        died = deaths.get(patient.nhs_number)
        for source in SOURCES:
            if not_found == (patient.nhs_number, source):
                continue
            if source == "GP" and patient.gp_practice is None:
                continue
            chart = history.charts[source]
            resources = [history.source_patient(source, died), *chart.resources]
            bundle = {
                "resourceType": "Bundle",
                "id": f"{chart.patient_id}-record",
                "type": "collection",
                "timestamp": at(as_of, 7, 0),
                "entry": [{"resource": resource} for resource in resources],
            }
            _write(out_dir / source / f"{chart.patient_id}.json", bundle)
            counts[source] += len(resources)
        rng = random.Random(f"registered:{seed}:{patient.nhs_number}")
        registered = max(
            as_of - timedelta(days=rng.randint(365, 20 * 365)),
            patient.birth_date + timedelta(days=18 * 365),
        )
        _write(out_dir / PDS / f"{patient.nhs_number}.json", history.pds_patient(registered, died))
        counts[PDS] += 1
        manifest_patients[patient.nhs_number] = {
            **history.summary,
            "listed": history.plan.listed,
            "ids": {
                source: history.charts[source].patient_id
                for source in SOURCES
                if not_found != (patient.nhs_number, source)
                and (source != "GP" or patient.gp_practice is not None)
            },
        }
    situations = {
        "stage_conflict": conflict
        and {
            "nhs_number": conflict.nhs_number,
            "RRK": CONFLICT_STAGES[0].group,
            "RWP": CONFLICT_RWP_STAGE.group,
        },
        "restricted": [p.nhs_number for p in ordered if p.restricted],
        "deceased": [
            {"nhs_number": number, "date": day.isoformat()} for number, day in deaths.items()
        ],
        "not_found": not_found and {"nhs_number": not_found[0], "source": not_found[1]},
    }
    _write(
        out_dir / "manifest.json",
        {
            "seed": seed,
            "as_of": as_of.isoformat(),
            "counts": counts,
            "situations": situations,
            "patients": manifest_patients,
        },
    )
    return counts


def _write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
