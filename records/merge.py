"""Merging the summaries of several sources into one record: a timeline with exact duplicates
collapsed (every source kept), sections for the case page, and conflicts flagged, never settled.

Exact duplicate: same kind and same date; the same fact by code (a coding, system and code, in
common) or by title (compared case-, space- and punctuation-blind); and equal values where the
value is the point (a stage's kind, group, T, N, M, site and laterality; a performance status'
scale and value; an observation's value and components; a report's conclusion; a medicine's
dose and route; a status). For stages and performance status the values alone decide. The first
item seen gives the title and details; codes are pooled, and details the first lacks are filled
from the others.

Conflicts:
- two stage groups of the same kind (clinical vs clinical; clinical vs pathological never
  conflicts) that differ, for the same tumour: same site group and no opposite laterality. A
  stage with no site is taken to be about the same tumour only when the record holds at most one
  primary cancer (none or one site among cancer diagnoses not called secondary), since then there
  is no other tumour it could belong to;
- two different primary sites (or opposite sides of one site) among the diagnoses the sources
  call primary."""

import json
import re
from dataclasses import asdict, dataclass, field, is_dataclass
from itertools import combinations

from .normalise import KINDS, Item
from .staging import KIND_NAMES

SECTIONS = {
    "diagnosis_and_staging": ("diagnosis", "stage", "performance_status"),
    "pathology": ("pathology",),
    "imaging": ("imaging",),
    "treatments": ("surgery", "sact", "radiotherapy", "procedure"),
    "encounters": ("encounter",),
    "documents": ("document",),
    "allergies": ("allergy",),
    "comorbidities": ("comorbidity",),
    "medications": ("medication",),
    "care_plans": ("careplan",),
    "observations": ("observation",),
}
_VALUE_FIELDS = {
    "stage": ("kind", "group", "t", "n", "m", "site_group", "laterality"),
    "performance_status": ("scale", "value"),
    "diagnosis": ("role", "clinical_status", "verification_status", "laterality"),
    "comorbidity": ("clinical_status", "verification_status"),
    "observation": ("value", "status", "components"),
    "pathology": ("conclusion", "status"),
    "imaging": ("conclusion", "status"),
    "document": ("status",),
    "surgery": ("status", "laterality"),
    "radiotherapy": ("status", "laterality"),
    "procedure": ("status", "laterality"),
    "sact": ("status", "dose", "route"),
    "medication": ("status", "dose", "route"),
    "encounter": ("status", "provider"),
    "allergy": ("clinical_status", "verification_status"),
    "careplan": ("status",),
}
_VALUE_DECIDES = {"stage", "performance_status"}


@dataclass
class MergedItem:
    kind: str
    date: str | None
    title: str
    codes: list[dict]
    resource_type: str
    details: dict
    sources: list[dict] = field(default_factory=list)  # {source, resource_type, resource_id}

    def as_dict(self) -> dict:
        # What dataclasses.asdict gives, without its generic (and, for a whole record, costly)
        # walk: the values are JSON-like already (dicts, lists, strings, numbers).
        return {
            "kind": self.kind,
            "date": self.date,
            "title": self.title,
            "codes": _json_copy(self.codes),
            "resource_type": self.resource_type,
            "details": _json_copy(self.details),
            "sources": _json_copy(self.sources),
        }

    @property
    def source_names(self) -> list[str]:
        return list(dict.fromkeys(s["source"] for s in self.sources))


@dataclass
class Conflict:
    kind: str  # "stage_group" or "primary_site"
    description: str
    items: list[MergedItem]

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "description": self.description,
            "items": [item.as_dict() for item in self.items],
        }


@dataclass
class Merged:
    timeline: list[MergedItem]
    sections: dict[str, list[MergedItem]]
    conflicts: list[Conflict]

    def as_dict(self) -> dict:
        # Each item once: the sections hold the timeline's items again (the same dict in both
        # places of the result, which is serialised, not changed).
        plain = {id(item): item.as_dict() for item in self.timeline}

        def as_plain(item: MergedItem) -> dict:
            return plain.get(id(item)) or item.as_dict()

        return {
            "timeline": [plain[id(item)] for item in self.timeline],
            "sections": {
                name: [as_plain(i) for i in items] for name, items in self.sections.items()
            },
            "conflicts": [
                {
                    "kind": conflict.kind,
                    "description": conflict.description,
                    "items": [as_plain(i) for i in conflict.items],
                }
                for conflict in self.conflicts
            ],
        }


def _json_copy(value):
    """A deep copy of a JSON-like value (dicts, lists and tuples of strings, numbers...), as
    dataclasses.asdict copies it."""
    if isinstance(value, dict):
        return {key: _json_copy(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_json_copy(inner) for inner in value]
    if isinstance(value, tuple):
        return tuple(_json_copy(inner) for inner in value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


def merge(items: list[Item]) -> Merged:
    """One timeline, oldest first, undated items last."""
    timeline = sorted(_collapse(items), key=_order)
    sections = {
        name: [item for item in timeline if item.kind in kinds] for name, kinds in SECTIONS.items()
    }
    conflicts = _stage_conflicts(timeline) + _primary_site_conflicts(timeline)
    return Merged(timeline=timeline, sections=sections, conflicts=conflicts)


def _order(item: MergedItem) -> tuple:
    kind = KINDS.index(item.kind) if item.kind in KINDS else len(KINDS)
    return (item.date is None, item.date or "", kind, item.title.casefold())


# Duplicates ----------------------------------------------------------------------------------


def _collapse(items: list[Item]) -> list[MergedItem]:
    buckets: dict[str, list[MergedItem]] = {}
    merged = []
    for item in items:
        bucket = buckets.setdefault(_bucket_key(item), [])
        same = next((m for m in bucket if _same_fact(m, item)), None)
        if same is None:
            same = MergedItem(
                kind=item.kind,
                date=item.date,
                title=item.title,
                codes=[dict(c) for c in item.codes],
                resource_type=item.resource_type,
                details=dict(item.details),
            )
            bucket.append(same)
            merged.append(same)
        else:
            _absorb(same, item)
        same.sources.append(
            {
                "source": item.source,
                "resource_type": item.resource_type,
                "resource_id": item.resource_id,
            }
        )
    return merged


def _bucket_key(item: Item) -> str:
    values = [item.details.get(name) for name in _VALUE_FIELDS.get(item.kind, ("status",))]
    return json.dumps([item.kind, item.date, values], sort_keys=True, default=str)


def _same_fact(merged: MergedItem, item: Item) -> bool:
    if item.kind in _VALUE_DECIDES:
        return True
    return bool(_code_set(merged.codes) & _code_set(item.codes)) or (
        _plain(merged.title) == _plain(item.title)
    )


def _code_set(codes: list[dict]) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in codes if c.get("system") and c.get("code")}


def _plain(title: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", title.casefold()).split())


def _absorb(merged: MergedItem, item: Item) -> None:
    for code in item.codes:
        if code not in merged.codes:
            merged.codes.append(dict(code))
    for name, value in item.details.items():
        if merged.details.get(name) in (None, "", []) and value not in (None, "", []):
            merged.details[name] = value


# Conflicts -----------------------------------------------------------------------------------


def _site_key(item: MergedItem) -> str | None:
    site = item.details.get("site_group") or item.details.get("site")
    return _plain(site) if site else None


def _primary_tumour_count(timeline: list[MergedItem]) -> int:
    """Distinct tumours among cancer diagnoses not called secondary: by site, and by side within a
    site. A diagnosis with no site is taken to be one of the others (or the only one)."""
    sides: dict[str, set] = {}
    unknown = False
    for item in timeline:
        if item.kind != "diagnosis" or item.details.get("role") == "secondary":
            continue
        site = _site_key(item)
        if site is None:
            unknown = True
            continue
        side = item.details.get("laterality")
        sides.setdefault(site, set()).update({side} if side in ("left", "right") else set())
    count = sum(max(1, len(s)) for s in sides.values())
    return count or (1 if unknown else 0)


def _compatible_sides(a: MergedItem, b: MergedItem) -> bool:
    sides = {a.details.get("laterality"), b.details.get("laterality")}
    return not {"left", "right"} <= sides


def _same_tumour(a: MergedItem, b: MergedItem, single_primary: bool) -> bool:
    site_a, site_b = _site_key(a), _site_key(b)
    if site_a is None or site_b is None:
        return single_primary
    return site_a == site_b and _compatible_sides(a, b)


def _groups(edges: list[tuple[MergedItem, MergedItem]]) -> list[list[MergedItem]]:
    """Connected groups of items from pairwise edges, each in timeline order of first mention."""
    groups: list[list[MergedItem]] = []
    for a, b in edges:
        touching = [g for g in groups if any(x is a or x is b for x in g)]
        joined = [x for g in touching for x in g]
        for x in (a, b):
            if not any(x is y for y in joined):
                joined.append(x)
        groups = [g for g in groups if all(g is not t for t in touching)] + [joined]
    return groups


def _mention(item: MergedItem, value: str) -> str:
    return f"{value} ({', '.join(item.source_names)}, {item.date or 'undated'})"


def _stage_conflicts(timeline: list[MergedItem]) -> list[Conflict]:
    single_primary = _primary_tumour_count(timeline) <= 1
    stages = [
        i
        for i in timeline
        if i.kind == "stage" and i.details.get("group") and i.details.get("kind")
    ]
    edges = [
        (a, b)
        for a, b in combinations(stages, 2)
        if a.details["kind"] == b.details["kind"]
        and _plain(a.details["group"]) != _plain(b.details["group"])
        and _same_tumour(a, b, single_primary)
    ]
    conflicts = []
    for group in _groups(edges):
        group.sort(key=_order)
        kind = KIND_NAMES.get(group[0].details["kind"], group[0].details["kind"])
        site = next(
            (i.details.get("site_group") or i.details.get("site") for i in group if _site_key(i)),
            None,
        )
        about = f" of the {site} cancer" if site else ""
        said = "; ".join(_mention(i, i.details["group"]) for i in group)
        conflicts.append(
            Conflict(
                kind="stage_group",
                description=f"Sources disagree on the {kind} stage group{about}: {said}.",
                items=group,
            )
        )
    return conflicts


def _primary_site_conflicts(timeline: list[MergedItem]) -> list[Conflict]:
    primaries = [
        i
        for i in timeline
        if i.kind == "diagnosis" and i.details.get("role") == "primary" and _site_key(i)
    ]
    clash = any(
        _site_key(a) != _site_key(b) or not _compatible_sides(a, b)
        for a, b in combinations(primaries, 2)
    )
    if not clash:
        return []

    def place(item: MergedItem) -> str:
        site = item.details.get("site_group") or item.details.get("site")
        side = item.details.get("laterality")
        return f"{site}, {side}" if side else site

    said = "; ".join(_mention(i, place(i)) for i in primaries)
    return [
        Conflict(
            kind="primary_site",
            description=f"Sources name different primary sites for the cancer: {said}.",
            items=primaries,
        )
    ]
