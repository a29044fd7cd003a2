"""The letter pipeline with a real Celery worker (a separate process on its own queue): signing an
outcome commits its letter, the commit enqueues rendering, and the worker stores the PDF whose
SHA-256 is the one on the row."""

import hashlib
import re
from pathlib import Path

import pytest

from mdt import outcomes
from mdt.models import Letter, LetterStatus
from tests.factories import (
    CaseFactory,
    MeetingFactory,
    PatientFactory,
    PracticeFactory,
    SnapshotFactory,
    chair_starts,
)
from tests.polling import wait_for

pytest_plugins = ["tests.functional.celery_worker"]

RENDER_TIMEOUT_S = 60.0


@pytest.fixture
def media_root(tmp_path, monkeypatch, settings) -> Path:
    """One folder for the letters' files, for this process and the worker (which takes its
    settings from the environment when the celery_worker fixture starts it, after this)."""
    root = tmp_path / "media"
    monkeypatch.setenv("MEDIA_ROOT", str(root))
    settings.MEDIA_ROOT = root
    return root


def test_signing_an_outcome_gets_its_letter_rendered_by_the_worker(
    media_root, transactional_db, celery_worker
):
    meeting = MeetingFactory()
    chair = chair_starts(meeting)
    practice = PracticeFactory(name="Old Road Surgery", mesh_mailbox_id="X26ABC2")
    patient = PatientFactory(gp_practice=practice)
    case = CaseFactory(meeting=meeting, patient=patient)
    case.snapshot = SnapshotFactory(patient=patient)
    case.save()
    outcomes.save_draft(
        user=chair,
        case=case,
        revision=0,
        data={
            "category": "treatment",
            "care_plan_intent": "C",
            "planned_treatments": ["01"],
            "plan": "Right upper lobectomy.",
            "patient_informed": True,
            "informed_by": "Dr Surgeon in clinic",
        },
    )

    outcome = outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)
    letter = Letter.objects.get(outcome=outcome)  # committed with the signature
    assert letter.recipient == practice

    def rendered():
        row = Letter.objects.get(pk=letter.pk)
        return row if row.sha256 else None

    letter = wait_for(rendered, "Rendering the letter", celery_worker.log, RENDER_TIMEOUT_S)
    # Rendered, then handed over to sending (whatever sending has made of it since).
    assert letter.status != LetterStatus.QUEUED
    assert letter.rendered_at is not None
    path = media_root / letter.pdf.name
    assert path.name == f"{letter.public_id}.pdf"
    assert [p for p in media_root.rglob("*") if p.is_file()] == [path]
    content = path.read_bytes()
    assert content.startswith(b"%PDF-")
    assert hashlib.sha256(content).hexdigest() == letter.sha256
    assert "Old Road Surgery" in letter.html
    # The worker logs the task's end just after its commit. (A task id may have ten digits in a
    # row, which the log redaction replaces with "[NHS number]": hence .+ for the id.)
    succeeded = re.compile(r"Task mdt\.letter_tasks\.render_letter\[.+\] succeeded")
    wait_for(lambda: succeeded.search(celery_worker.log()), "The task's end", celery_worker.log, 10)
    # ...and handed the letter over to sending (mdt.mesh), whatever became of that here.
    handed_over = re.compile(r"Task mdt\.letter_tasks\.send_letter_task\[.+\] received")
    wait_for(lambda: handed_over.search(celery_worker.log()), "The handover", celery_worker.log, 10)
