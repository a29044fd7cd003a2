"""Shapes a case's frozen record for the case page: sections in clinical order, source badges,
statuses that need attention, and the snapshot's age."""

from dataclasses import dataclass

from django.utils import timezone
from django.utils.timesince import timesince

from records.models import Snapshot, SourceResult

SECTIONS = [
    ("Diagnosis and staging", ["diagnosis", "stage", "performance_status"]),
    ("Pathology", ["pathology"]),
    ("Imaging", ["imaging"]),
    ("Treatments", ["surgery", "procedure", "sact", "radiotherapy"]),
    ("Encounters", ["encounter"]),
    ("Documents", ["document"]),
    ("Comorbidities", ["comorbidity"]),
    ("Medicines", ["medication"]),
    ("Allergies", ["allergy"]),
    ("Other observations and plans", ["observation", "careplan"]),
]
STATUS_TAGS = {
    SourceResult.Status.OK: "green",
    SourceResult.Status.PARTIAL: "yellow",
    SourceResult.Status.NOT_FOUND: "grey",
    SourceResult.Status.SKIPPED: "orange",
    SourceResult.Status.TIMEOUT: "orange",
    SourceResult.Status.ERROR: "red",
    SourceResult.Status.IDENTITY_MISMATCH: "red",
}


@dataclass
class Section:
    title: str
    items: list[dict]


class RecordPresenter:
    def __init__(self, snapshot: Snapshot | None, newer: Snapshot | None = None):
        self.snapshot = snapshot
        self.newer = newer
        summary = snapshot.summary if snapshot else {}
        self.record = summary.get("record") or {}
        self.summary = summary

    @property
    def exists(self) -> bool:
        return self.snapshot is not None

    @property
    def age(self) -> str:
        return timesince(self.snapshot.created_at, timezone.now()) if self.snapshot else ""

    @property
    def sources(self) -> list[dict]:
        if not self.snapshot:
            return []
        rows = []
        for name, status in sorted(self.snapshot.per_source_status.items()):
            rows.append({"name": name, **status, "tag": STATUS_TAGS.get(status["status"], "grey")})
        return rows

    @property
    def problems(self) -> list[dict]:
        """Every source status but ok: shown on the case banner."""
        return [row for row in self.sources if row["status"] != SourceResult.Status.OK]

    @property
    def conflicts(self) -> list[dict]:
        return self.record.get("conflicts") or []

    @property
    def sections(self) -> list[Section]:
        in_conflict = {
            _key(item) for conflict in self.conflicts for item in conflict.get("items") or []
        }
        by_kind = {}
        for item in self.record.get("timeline") or []:
            item = {**item, "conflict": _key(item) in in_conflict}
            by_kind.setdefault(item.get("kind"), []).append(item)
        sections = []
        for title, kinds in SECTIONS:
            items = [item for kind in kinds for item in by_kind.get(kind, [])]
            items.sort(key=lambda item: item.get("date") or "", reverse=True)
            sections.append(Section(title, items))
        return sections

    @property
    def unhandled(self) -> dict:
        return self.summary.get("unhandled") or {}

    @property
    def restricted(self) -> bool:
        return bool(self.summary.get("restricted"))


def _key(item: dict) -> tuple:
    """Identifies a merged item by where it came from."""
    return tuple(sorted((o.get("source"), o.get("resource_id")) for o in item.get("sources") or []))
