"""Small readers that turn R4B datatypes (CodeableConcept, Quantity, Period, value[x]...) into the
plain text, dates and code dicts a summary stores."""

import re
from datetime import date, datetime
from decimal import Decimal

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"

# Codes some sources send without a display; the summary still needs words for them.
KNOWN_DISPLAYS = {
    "21908-9": "Clinical stage group",
    "21902-2": "Pathological stage group",
    "21905-5": "Clinical primary tumour (T) category",
    "21906-3": "Clinical regional nodes (N) category",
    "21907-1": "Clinical distant metastases (M) category",
    "21899-0": "Pathological primary tumour (T) category",
    "21900-6": "Pathological regional nodes (N) category",
    "21901-4": "Pathological distant metastases (M) category",
    "89247-1": "ECOG performance status",
    "89243-0": "Karnofsky performance status",
    "88040-1": "Response to cancer treatment",
    "69548-6": "Genetic variant assessment",
    "53041-0": "Genomic region studied",
    "81247-9": "Genetic variant reporting panel",
    "48018-6": "Gene studied",
    "81252-9": "Discrete genetic variant",
    "81290-9": "Genomic DNA change (gHGVS)",
    "48002-0": "Genomic source class",
}

_SEMANTIC_TAG = re.compile(
    r"\s*\((?:disorder|procedure|finding|body structure|qualifier value|situation|"
    r"observable entity|morphologic abnormality|regime/therapy|substance|product|"
    r"medicinal product|clinical drug|record artifact|event|specimen|tumor staging|"
    r"staging scale|attribute|physical object|environment|cell structure|cell|organism)\)\s*$",
    re.IGNORECASE,
)


def clean(text: str | None) -> str | None:
    """Whitespace collapsed and a SNOMED semantic tag such as " (disorder)" removed."""
    if not text:
        return None
    text = _SEMANTIC_TAG.sub("", " ".join(str(text).split()))
    return text or None


def codings(*concepts) -> list:
    """The Coding objects of CodeableConcepts or Codings (None skipped)."""
    found = []
    for concept in concepts:
        if concept is None:
            continue
        found.extend(
            getattr(concept, "coding", None) or ([concept] if hasattr(concept, "code") else [])
        )
    return found


def code_dicts(*concepts) -> list[dict]:
    """Every coding as {system, code, display}; codes from systems we do not know are kept."""
    return [
        {"system": c.system, "code": c.code, "display": c.display}
        for c in codings(*concepts)
        if c.code or c.display
    ]


def has_code(concept, system: str, codes) -> bool:
    return any(c.system == system and c.code in codes for c in codings(concept))


def text(concept) -> str | None:
    """The words of a CodeableConcept or Coding: its text, else the first display, else a known
    display for its code."""
    if concept is None:
        return None
    if getattr(concept, "text", None):
        return clean(concept.text)
    for coding in codings(concept):
        if coding.display:
            return clean(coding.display)
    for coding in codings(concept):
        if coding.code in KNOWN_DISPLAYS:
            return KNOWN_DISPLAYS[coding.code]
    return None


def title(concept, fallback: str) -> str:
    """Human text for a title: the concept's words, else the fallback with the bare code."""
    words = text(concept)
    if words:
        return words
    code = next((c.code for c in codings(concept) if c.code), None)
    return f"{fallback} (code {code})" if code else fallback


def code_of(concept) -> str | None:
    """The first code of a status-like CodeableConcept ("active", "confirmed")."""
    return next((c.code for c in codings(concept) if c.code), None)


def candidate_texts(concept) -> list[str]:
    """Codes, displays and text of a concept, in that order: what a value parser should try."""
    found = []
    for coding in codings(concept):
        found += [coding.code, coding.display]
    found.append(getattr(concept, "text", None) if concept is not None else None)
    return [t for t in found if t]


def iso_date(value) -> str | None:
    """An ISO date (or a partial one, "2019-04") from a date, dateTime, instant or Period. A
    dateTime keeps the calendar date it was written in, whatever its time zone."""
    if value is None:
        return None
    if hasattr(value, "start") and hasattr(value, "end"):
        return iso_date(value.start) or iso_date(value.end)
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    partial = re.match(r"\d{4}(?:-\d{2}(?:-\d{2})?)?", str(value))
    return partial.group(0) if partial else None


def first_date(*values) -> str | None:
    for value in values:
        found = iso_date(value)
        if found:
            return found
    return None


def number(value) -> str:
    if isinstance(value, Decimal):
        value = value.normalize()
        return f"{value:f}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def quantity(q) -> str | None:
    if q is None or q.value is None:
        return None
    unit = q.unit or q.code
    return f"{number(q.value)} {unit}" if unit else number(q.value)


def value_text(holder) -> str | None:
    """The value[x] of an Observation or one of its components, as text."""

    def get(name):
        return getattr(holder, name, None)

    if get("valueQuantity") is not None:
        return quantity(get("valueQuantity"))
    if get("valueCodeableConcept") is not None:
        return text(get("valueCodeableConcept")) or code_of(get("valueCodeableConcept"))
    if get("valueString") is not None:
        return get("valueString")
    if get("valueBoolean") is not None:
        return "yes" if get("valueBoolean") else "no"
    if get("valueInteger") is not None:
        return str(get("valueInteger"))
    if get("valueRange") is not None:
        low, high = quantity(get("valueRange").low), quantity(get("valueRange").high)
        return f"{low or ''} to {high or ''}".strip()
    if get("valueRatio") is not None:
        ratio = get("valueRatio")
        return f"{quantity(ratio.numerator)} / {quantity(ratio.denominator)}"
    for name in ("valueDateTime", "valuePeriod"):
        if get(name) is not None:
            return iso_date(get(name))
    if get("valueTime") is not None:
        return str(get("valueTime"))
    if get("dataAbsentReason") is not None:
        return f"not recorded: {text(get('dataAbsentReason')) or code_of(get('dataAbsentReason'))}"
    return None


def profiles(resource) -> list[str]:
    return list(resource.meta.profile or []) if resource.meta else []


def extension_text(resource, url_suffix: str) -> str | None:
    """The text of the first extension whose URL ends with url_suffix."""
    for extension in getattr(resource, "extension", None) or []:
        if extension.url and extension.url.endswith(url_suffix):
            concept = extension.valueCodeableConcept or extension.valueCoding
            if concept is not None:
                return text(concept)
            return extension.valueString or (
                extension.valueReference and extension.valueReference.display
            )
    return None


def reference_key(reference: str | None) -> str | None:
    """ "Type/id" from a relative or absolute reference, without its _history part."""
    if not reference or reference.startswith("#"):
        return None
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


def unique(values) -> list:
    seen = []
    for value in values:
        if value and value not in seen:
            seen.append(value)
    return seen
