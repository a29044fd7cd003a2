"""Reading the cancer facts of a source's resources: diagnoses and comorbidities (Conditions), TNM
staging, performance status, and other Observations."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from . import fhir_values as fv
from . import tumour_sites
from .staging import KIND_NAMES, parse_category, parse_stage_group, stage_kind

if TYPE_CHECKING:
    from .normalise import Context, Item

STAGE_GROUP_CODES = {"21908-9": "c", "21902-2": "p"}
STAGE_CATEGORY_CODES = {
    "21905-5": ("t", "c"),
    "21906-3": ("n", "c"),
    "21907-1": ("m", "c"),
    "21899-0": ("t", "p"),
    "21900-6": ("n", "p"),
    "21901-4": ("m", "p"),
}
ECOG_CODES = {(fv.LOINC, "89247-1"), (fv.SNOMED, "423740007")}
KARNOFSKY_CODES = {(fv.LOINC, "89243-0"), (fv.SNOMED, "761869008")}
ECOG_ANSWERS = {
    "LA9622-7": 0,
    "LA9623-5": 1,
    "LA9624-3": 2,
    "LA9625-0": 3,
    "LA9626-8": 4,
    "LA9627-6": 5,
}
KARNOFSKY_ANSWERS = {
    "LA29175-9": 100,
    "LA29176-7": 90,
    "LA29177-5": 80,
    "LA29178-3": 70,
    "LA29179-1": 60,
    "LA29180-9": 50,
    "LA29181-7": 40,
    "LA29182-5": 30,
    "LA29183-3": 20,
    "LA29184-1": 10,
    "LA9627-6": 0,
}

_CANCER_WORDS = re.compile(
    r"malignan|cancer|carcinoma|sarcoma|lymphoma|leuka?emia|melanoma|myeloma|mesothelioma|"
    r"gliom|glioblastoma|neuroblastoma|nephroblastoma|retinoblastoma|medulloblastoma|"
    r"hepatoblastoma|metasta|carcinoid",
    re.IGNORECASE,
)
_NOT_CANCER_WORDS = re.compile(
    r"benign|history of|family history|\bfh\b|screening|fear of|risk of|no evidence of|"
    r"pre-?malignan",
    re.IGNORECASE,
)
_MCODE_CANCER_PROFILES = {
    "mcode-primary-cancer-condition": "primary",
    "mcode-secondary-cancer-condition": "secondary",
}
_EDITION = re.compile(r"(\d+)\s*(?:st|nd|rd|th)?\s+ed", re.IGNORECASE)


# Conditions ----------------------------------------------------------------------------------


def condition_items(condition, context: Context) -> list[Item]:
    codes = fv.code_dicts(condition.code)
    title = fv.title(condition.code, "Condition")
    icd10 = [c["code"] for c in codes if c["code"] and "icd-10" in (c["system"] or "").lower()]
    role = _cancer_role(condition, title, icd10)
    date = fv.first_date(condition.onsetDateTime, condition.onsetPeriod, condition.recordedDate)
    details = {
        "clinical_status": fv.code_of(condition.clinicalStatus),
        "verification_status": fv.code_of(condition.verificationStatus),
    }
    if role is None:
        details["site"] = next((fv.text(s) for s in condition.bodySite or [] if fv.text(s)), None)
        return [context.item(condition, "comorbidity", date, title, codes, details)]
    details.update(_tumour(condition))
    details["role"] = None if role == "cancer" else role
    details["morphology"] = fv.extension_text(condition, "histology-morphology-behavior")
    details["stage_summary"] = next(
        (parse_stage_group(t) or t for s in condition.stage or [] for t in _summary_texts(s)), None
    )
    items = [context.item(condition, "diagnosis", date, title, codes, details)]
    for stage in condition.stage or []:
        if not any(context.resolve(a) is not None for a in stage.assessment or []):
            items.append(_condition_stage(condition, stage, date, context))
    return items


def _summary_texts(stage) -> list[str]:
    return fv.candidate_texts(stage.summary)


def _cancer_role(condition, title: str, icd10: list[str]) -> str | None:
    """ "primary", "secondary", "cancer" (role not stated) or None for a condition that is not a
    cancer. An ICD-10 code outranks words; an mCODE cancer profile outranks both."""
    for profile in fv.profiles(condition):
        for suffix, role in _MCODE_CANCER_PROFILES.items():
            if profile.endswith(suffix):
                return role
    if icd10:
        roles = [icd10_role(code) for code in icd10]
        return next((role for role in roles if role), None)
    if not _CANCER_WORDS.search(title) or _NOT_CANCER_WORDS.search(title):
        return None
    if re.search(r"secondary|metasta", title, re.I):
        return "secondary"
    return "primary" if re.search(r"primary", title, re.I) else "cancer"


def icd10_role(code: str) -> str | None:
    """ "primary" (C00-C97 but C77-C79, and D00-D09 in situ), "secondary" (C77-C79) or None for
    an ICD-10 code that is not a cancer. Also used by internal sources (the cancer registry)."""
    code = code.strip().upper().replace(".", "")
    if len(code) < 3 or not code[1:3].isdigit():
        return None
    letter, number = code[0], int(code[1:3])
    if letter == "C" and 77 <= number <= 79:
        return "secondary"
    if (letter == "C" and number <= 97) or (letter == "D" and number <= 9):
        return "primary"
    return None


def _tumour(condition) -> dict:
    """Site, coarse site group and laterality of a Condition (used for its stage items too)."""
    sites = condition.bodySite or []
    site_texts = [fv.text(site) for site in sites]
    words = [*site_texts, fv.text(condition.code)]
    icd10 = [c.code for c in fv.codings(condition.code) if "icd-10" in (c.system or "").lower()]
    lateral_codes = [
        fv.code_of(ext.valueCodeableConcept)
        for site in sites
        for ext in site.extension or []
        if ext.url.endswith("laterality") and ext.valueCodeableConcept is not None
    ]
    return {
        "site": next((t for t in site_texts if t), None),
        "site_group": next(filter(None, map(tumour_sites.site_from_icd10, icd10)), None)
        or tumour_sites.site_from_words(words),
        "laterality": tumour_sites.laterality(lateral_codes, words),
    }


def _condition_stage(condition, stage, date, context: Context) -> Item:
    kind_words = fv.text(stage.type) or ""
    kind = next(
        (k for k, pattern in (("y", r"post|\by[cp]"), ("p", r"patholog"), ("c", r"clinical"))
         if re.search(pattern, kind_words, re.I)),
        None,
    )  # fmt: skip
    details = stage_details(kind, _summary_texts(stage), {}, None, None, _tumour(condition))
    details["condition"] = f"Condition/{condition.id}"
    return context.item(
        condition, "stage", date, stage_title(details), fv.code_dicts(stage.summary), details
    )


# Observations: staging, performance status, everything else -----------------------------------


def stage_group_kind(observation) -> str | None:
    return next(
        (
            kind
            for code, kind in STAGE_GROUP_CODES.items()
            if fv.has_code(observation.code, fv.LOINC, {code})
        ),
        None,
    )


def _category_axis(concept) -> tuple[str, str] | None:
    return next(
        (v for code, v in STAGE_CATEGORY_CODES.items() if fv.has_code(concept, fv.LOINC, {code})),
        None,
    )


def observation_items(observation, context: Context) -> list[Item]:
    axis = _category_axis(observation.code)
    if axis and f"Observation/{observation.id}" in context.stage_members:
        return []  # read as part of its stage group
    group_kind = stage_group_kind(observation)
    if group_kind:
        return [_stage_from_group(observation, group_kind, context)]
    if axis:
        context.loose_categories.append(observation)
        return []
    codes = {(c.system, c.code) for c in fv.codings(observation.code)}
    if codes & ECOG_CODES:
        return [_performance_status(observation, "ECOG", ECOG_ANSWERS, context)]
    if codes & KARNOFSKY_CODES:
        return [_performance_status(observation, "Karnofsky", KARNOFSKY_ANSWERS, context)]
    details = {
        "value": fv.value_text(observation),
        "status": observation.status,
        "category": fv.unique(fv.code_of(c) for c in observation.category or []),
        "components": [
            {"name": fv.title(c.code, "Component"), "value": fv.value_text(c)}
            for c in observation.component or []
        ],
        "interpretation": fv.unique(fv.text(i) for i in observation.interpretation or []),
    }
    return [
        context.item(
            observation,
            "observation",
            _observation_date(observation),
            fv.title(observation.code, "Observation"),
            fv.code_dicts(observation.code),
            details,
        )
    ]


def _observation_date(observation) -> str | None:
    return fv.first_date(
        observation.effectiveDateTime,
        observation.effectivePeriod,
        observation.effectiveInstant,
        observation.issued,
    )


def _stage_from_group(observation, kind: str, context: Context) -> Item:
    texts = {"t": [], "n": [], "m": []}
    members = [context.resolve(r, observation) for r in observation.hasMember or []]
    for holder in [m for m in members if m is not None] + list(observation.component or []):
        axis = _category_axis(holder.code)
        if axis:
            texts[axis[0]] += fv.candidate_texts(holder.valueCodeableConcept) + [holder.valueString]
    group_texts = fv.candidate_texts(observation.valueCodeableConcept) + [observation.valueString]
    edition, system = _edition(observation.method)
    details = stage_details(
        kind, group_texts, texts, edition, system, _stage_tumour(observation, context)
    )
    return context.item(
        observation,
        "stage",
        _observation_date(observation),
        stage_title(details),
        fv.code_dicts(observation.code, observation.valueCodeableConcept),
        details,
    )


def loose_tnm_items(context: Context) -> list[Item]:
    """T, N and M Observations that no stage group gathers: one stage item per kind, date and
    tumour, with no group."""
    gathered: dict[tuple, list] = {}
    for observation in context.loose_categories:
        kind = _category_axis(observation.code)[1]
        focus = tuple(fv.reference_key(f.reference) for f in observation.focus or [])
        gathered.setdefault((kind, _observation_date(observation), focus), []).append(observation)
    items = []
    for (kind, date, _focus), observations in gathered.items():
        texts = {"t": [], "n": [], "m": []}
        for observation in observations:
            axis = _category_axis(observation.code)[0]
            texts[axis] += fv.candidate_texts(observation.valueCodeableConcept)
            texts[axis].append(observation.valueString)
        first = observations[0]
        edition, system = _edition(first.method)
        details = stage_details(kind, [], texts, edition, system, _stage_tumour(first, context))
        details["also"] = [f"Observation/{o.id}" for o in observations[1:]]
        codes = [c for o in observations for c in fv.code_dicts(o.valueCodeableConcept)]
        items.append(context.item(first, "stage", date, stage_title(details), codes, details))
    return items


def _stage_tumour(observation, context: Context) -> dict:
    """The tumour a stage Observation is about: its focus Condition, or the Condition whose
    stage.assessment points to it, else its own bodySite."""
    condition = next(
        (c for c in (context.resolve(f) for f in observation.focus or []) if c is not None),
        None,
    ) or context.assessed_condition.get(f"Observation/{observation.id}")
    if condition is not None and condition.get_resource_type() == "Condition":
        return {**_tumour(condition), "condition": f"Condition/{condition.id}"}
    site = fv.text(observation.bodySite)
    return {
        "site": site,
        "site_group": tumour_sites.site_from_words([site]),
        "laterality": tumour_sites.laterality(texts=[site]),
        "condition": None,
    }


def _edition(method) -> tuple[str | None, str | None]:
    words = " ".join(fv.candidate_texts(method))
    found = _EDITION.search(words)
    if re.search(r"AJCC|American Joint", words, re.I):
        system = "AJCC"
    elif re.search(r"UICC|TNM Classification", words, re.I):
        system = "UICC"
    else:
        system = None
    return (found.group(1) if found else None), system


def stage_details(kind, group_texts, tnm_texts, edition, system, tumour) -> dict:
    """Canonical values where they read as UICC 8th edition values; otherwise the source's own
    text, named in `unrecognised` so that nothing is lost and nothing is passed off as valid.

    Public so that internal sources (the cancer registry) describe their stages exactly as FHIR
    stages are described, and the merge compares the two: tnm_texts is {"t": [texts], ...};
    tumour is {"site", "site_group", "laterality", ...}."""
    details = {"kind": kind, "group": None, "t": None, "n": None, "m": None}
    unrecognised, prefixes = [], []
    group_texts = [t for t in group_texts if t]
    if group_texts:
        details["group"] = next(filter(None, map(parse_stage_group, group_texts)), None)
        if details["group"] is None:
            details["group"] = group_texts[-1]
            unrecognised.append("group")
    for axis, texts in tnm_texts.items():
        texts = [t for t in texts if t]
        category = next(filter(None, (parse_category(axis, t) for t in texts)), None)
        if category:
            details[axis] = category.value
            prefixes.append(category.prefix)
        elif texts:
            details[axis] = texts[-1]
            unrecognised.append(axis)
    if stage_kind("".join(prefixes)) == "y" or kind is None:
        details["kind"] = stage_kind("".join(prefixes)) or kind
    details.update(edition=edition, system=system, **tumour, unrecognised=unrecognised)
    return details


def stage_title(details: dict) -> str:
    """ "Clinical stage IIB (T2a N1 M0)", or "Clinical staging T2a N1" when there is no group."""
    kind = KIND_NAMES.get(details["kind"] or "", "")
    categories = " ".join(details[a] for a in ("t", "n", "m") if details[a])
    if details["group"]:
        text = f"{kind} stage {details['group']}".strip()
        text = text[0].upper() + text[1:]
        return f"{text} ({categories})" if categories else text
    return f"{kind.capitalize() or 'TNM'} staging {categories}".strip()


def _performance_status(observation, scale: str, answers: dict, context: Context) -> Item:
    value = _performance_value(observation, answers)
    allowed = range(0, 6) if scale == "ECOG" else range(0, 101, 10)
    details = {"scale": scale, "value": value if value in allowed else None}
    if value not in allowed:
        details["recorded_as"] = fv.value_text(observation)
    shown = details["value"] if details["value"] is not None else "(value not readable)"
    return context.item(
        observation,
        "performance_status",
        _observation_date(observation),
        f"{scale} performance status {shown}",
        fv.code_dicts(observation.code, observation.valueCodeableConcept),
        details,
    )


def _performance_value(observation, answers: dict) -> int | None:
    if observation.valueInteger is not None:
        return observation.valueInteger
    if observation.valueQuantity is not None and observation.valueQuantity.value is not None:
        return int(observation.valueQuantity.value)
    for coding in fv.codings(observation.valueCodeableConcept):
        if coding.code in answers:
            return answers[coding.code]
    for text in fv.candidate_texts(observation.valueCodeableConcept) + [observation.valueString]:
        found = re.fullmatch(r"\D*?(\d{1,3})\s*%?", text or "")
        if found:
            return int(found.group(1))
    return None
