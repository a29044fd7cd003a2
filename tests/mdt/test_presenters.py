import pytest

from mdt.presenters import RecordPresenter
from records.models import Snapshot
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def stage(group: str, source: str, resource_id: str) -> dict:
    return {
        "kind": "stage",
        "date": "2026-10-01",
        "title": f"Clinical stage {group}",
        "sources": [{"source": source, "resource_type": "Observation", "resource_id": resource_id}],
    }


def test_items_in_a_conflict_are_marked_and_sections_come_in_clinical_order():
    first, second = stage("IIB", "RRK", "a"), stage("IIIA", "RWP", "b")
    diagnosis = {
        "kind": "diagnosis",
        "date": "2026-09-01",
        "title": "Lung cancer",
        "sources": [{"source": "RRK", "resource_id": "c"}],
    }
    snapshot = Snapshot.objects.create(
        patient=PatientFactory(),
        summary={
            "record": {
                "timeline": [diagnosis, first, second],
                "conflicts": [
                    {"kind": "stage_group", "description": "IIB v IIIA", "items": [first, second]}
                ],
            }
        },
        per_source_status={
            "Trust A": {"status": "ok", "label": "OK", "detail": ""},
            "Trust B": {"status": "timeout", "label": "Timed out", "detail": "No answer in 5 s."},
        },
    )
    record = RecordPresenter(snapshot)
    staging = record.sections[0]
    assert staging.title == "Diagnosis and staging"
    assert [(i["title"], i["conflict"]) for i in staging.items] == [
        ("Clinical stage IIB", True),
        ("Clinical stage IIIA", True),
        ("Lung cancer", False),
    ]
    assert [p["name"] for p in record.problems] == ["Trust B"]
    assert record.problems[0]["tag"] == "orange"
