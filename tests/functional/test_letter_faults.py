"""The letter pipeline's faults (issue 6, "nothing lost, nothing doubled"), with real processes: a
Celery worker (one process, the solo pool) and Celery beat against a redis-server of the test's
own and the test database, and the session's mesh-sandbox (tests/functional/letter_faults.py).

Every scenario ends with exactly one PDF per letter under MEDIA_ROOT, whose SHA-256 is the row's,
and at most one MESH message per letter's local id (exactly one for a letter sent), and says
which mechanism recovered the letter and shows the evidence for it:

- a worker killed while rendering: the broker's redelivery of the unacknowledged message after
  the visibility timeout (the same task id, received again), not the sweep;
- Redis restarted with letters queued: without persistence the messages are lost and the beat
  sweep re-enqueues the letters (new task ids); with an append-only file the broker keeps them
  (the same task ids) and the sweep does nothing;
- the MESH sandbox down for a while: the send's retries with backoff (attempts, the last error on
  the meeting's letters page), not the sweep;
- a practice with no MESH mailbox, a restricted patient, an outcome amended after its letter was
  sent: nothing to recover, and nothing done twice.
"""

import hashlib
import io
import re
from datetime import datetime
from itertools import pairwise

import pytest
from django.db import DatabaseError, transaction
from django.urls import reverse
from pypdf import PdfReader

from accounts.log_redaction import redact
from mdt import letter_tasks, mesh, outcomes
from mdt.models import Case, Letter, LetterStatus
from mdt.population import request_case_population
from records.models import Patient
from tests.factories import (
    CaseFactory,
    MeetingFactory,
    PatientFactory,
    PracticeFactory,
    SnapshotFactory,
    chair_starts,
)
from tests.mesh_sandbox import PRACTICE_MAILBOXES

pytest_plugins = ["tests.functional.celery_worker", "tests.functional.letter_faults"]

MAILBOX = PRACTICE_MAILBOXES[0]
RENDER = letter_tasks.render_letter.name
SEND = letter_tasks.send_letter_task.name
SHORT_PLAN = "Right upper lobectomy."
# A letter of several pages, which takes the worker a second or more to render: the window in
# which a fault is made to happen "while rendering".
LONG_PLAN = "\n\n".join(
    f"Step {n}: " + " ".join(["Right upper lobectomy with mediastinal lymph node dissection."] * 6)
    for n in range(1, 25)
)


# -- signing outcomes --------------------------------------------------------------------------


@pytest.fixture
def meeting(transactional_db):
    """A meeting in progress, and its chair."""
    meeting = MeetingFactory()
    chair_starts(meeting)
    return meeting


@pytest.fixture
def practice(transactional_db):
    """A practice whose mailbox the sandbox knows."""
    return PracticeFactory(name="Harborne Medical Practice", mesh_mailbox_id=MAILBOX)


def listed_case(meeting, practice, **patient_fields):
    patient = PatientFactory(gp_practice=practice, **patient_fields)
    case = CaseFactory(meeting=meeting, patient=patient)
    case.snapshot = SnapshotFactory(patient=patient)
    case.save()
    return case


def sign(meeting, case, plan: str = SHORT_PLAN) -> Letter:
    """The chair signs the case's outcome (the patient has been told, so nothing is held); the
    letter is committed with the signature, and its rendering enqueued."""
    outcomes.save_draft(
        user=meeting.chair,
        case=case,
        revision=0,
        data={
            "category": "treatment",
            "care_plan_intent": "C",
            "planned_treatments": ["01"],
            "plan": plan,
            "patient_informed": True,
            "informed_by": "Dr Surgeon in clinic",
        },
    )
    outcome = outcomes.sign_outcome(user=meeting.chair, case=case, revision=1, snapshot_id=None)
    return Letter.objects.get(outcome=outcome)


# -- watching the letters ----------------------------------------------------------------------


def reloaded(letter: Letter) -> Letter:
    return Letter.objects.select_related("outcome", "supersedes").get(pk=letter.pk)


def wait_for_status(rig, letters, status: str, timeout_s: float = 60.0) -> list[Letter]:
    def arrived():
        rows = [reloaded(letter) for letter in letters]
        for row in rows:
            if row.status == LetterStatus.FAILED != status:
                pytest.fail(f"Letter {row.public_id} failed: {row.last_error}\n{rig.logs()}")
        return rows if all(row.status == status for row in rows) else None

    return rig.wait_until(arrived, f"Every letter {status}", timeout_s)


def rendered(letter: Letter) -> Letter | None:
    row = reloaded(letter)
    return row if row.sha256 else None


def being_rendered(letter: Letter) -> bool:
    """The worker holds the letter's row lock from the start of rendering until its commit (and
    only then: sending starts after the commit), so a lock on a letter without a PDF means a
    render in progress."""
    try:
        with transaction.atomic():
            list(Letter.objects.select_for_update(nowait=True).filter(pk=letter.pk))
    except DatabaseError:
        return not rendered(letter)
    return False


def rendering_started(rig, letter: Letter) -> None:
    """Waits for the worker to be rendering the letter; fails loudly if it was done first."""

    def started():
        if being_rendered(letter):
            return True
        if rendered(letter):
            pytest.fail(
                "Could not set up the fault: the letter was rendered before the test saw the "
                f"worker rendering it.\n{rig.logs()}"
            )
        return False

    rig.wait_until(started, "The worker starting to render the letter", 30)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def received_from_mesh(letter: Letter) -> bytes:
    """The document as the practice receives it from its MESH mailbox."""
    with mesh.client(letter.recipient_mailbox, "password") as session:
        message = session.retrieve_message(letter.mesh_message_id)
        try:
            return message.read()
        finally:
            message.close()


def pages_text(pdf: bytes) -> str:
    """The PDF's text, its line breaks and spacing collapsed so phrases can be searched for."""
    pages = PdfReader(io.BytesIO(pdf)).pages
    return " ".join(re.sub(r"\s+", " ", page.extract_text() or "") for page in pages)


def assert_nothing_doubled(rig, letters, *, sent: bool = True) -> None:
    """One PDF per letter under MEDIA_ROOT, whose SHA-256 is the row's, and nothing else there;
    one MESH message per letter's local id, the one MESH tracking finds and the row records
    (none for a letter that is not to be sent)."""
    files = rig.pdf_files()
    rows = [reloaded(letter) for letter in letters]
    assert len(files) == len(rows), files
    for row in rows:
        ours = [path for path in files if path.name == f"{row.public_id}.pdf"]
        assert ours == [rig.media_root / row.pdf.name]
        assert sha256(ours[0].read_bytes()) == row.sha256
        local_id = str(row.public_id)
        if sent:
            assert rig.mesh_messages(local_id) == [row.mesh_message_id]
            assert mesh.find_by_local_id(local_id).message_id == row.mesh_message_id
        else:
            assert rig.mesh_messages(local_id) == []
            assert mesh.find_by_local_id(local_id) is None


def letters_page(client, meeting) -> str:
    client.force_login(meeting.chair)
    response = client.get(reverse("mdt:meeting_letters", args=[meeting.public_id]))
    assert response.status_code == 200
    return response.content.decode()


def letter_row(page: str, letter: Letter) -> str:
    match = re.search(rf'id="meeting-letter-{letter.public_id}">(.*?)</tr>', page, re.S)
    assert match, f"No row for letter {letter.public_id} on the meeting's letters page"
    return match.group(1)


def failed_attempts_logged_at(log: str, letter: Letter) -> list[float]:
    """When the worker logged each failed attempt to send the letter (mdt.mesh)."""
    marker = f"Letter {letter.public_id} not sent (attempt"
    return [
        datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()  # noqa: DTZ007
        for line in log.splitlines()
        if marker in line
    ]


# -- the scenarios -----------------------------------------------------------------------------


def test_a_worker_killed_while_rendering_is_recovered_by_redelivery(fault_rig, meeting, practice):
    rig = fault_rig
    # Redelivery after 3 s; the sweep would re-enqueue the letter only after 30 s.
    rig.start(visibility_timeout=3, sweep_after=30)
    doomed = rig.start_beat_and_worker()
    letter = sign(meeting, listed_case(meeting, practice), plan=LONG_PLAN)

    rendering_started(rig, letter)
    doomed.kill()

    killed = reloaded(letter)
    if killed.sha256:  # committed between the test seeing the render and the kill
        pytest.fail(f"Could not set up the fault: rendered before the kill.\n{rig.logs()}")
    assert killed.status == LetterStatus.QUEUED
    (received,) = doomed.received(RENDER)
    assert f"{RENDER}[{received}] succeeded" not in doomed.log()
    # The broker still holds the message the worker took and never acknowledged.
    (unacknowledged,) = [tid for name, tid in rig.redis.unacknowledged() if name == RENDER]
    assert redact(unacknowledged) == received

    rescuer = rig.start_worker()
    (row,) = wait_for_status(rig, [letter], LetterStatus.SENT)

    # Redelivery recovered it: the new worker's first render was the killed worker's message...
    assert rescuer.received(RENDER)[0] == received
    assert f"{RENDER} for letter {letter.pk} was redelivered by the broker" in rescuer.log()
    assert RENDER not in {name for name, _ in rig.redis.unacknowledged()}
    # ...and the sweep, running all along, re-enqueued nothing.
    sweeps = rig.sweeps(rescuer)
    assert sweeps and set(sweeps) == {0}, f"sweeps: {sweeps}"
    assert row.attempts == 1
    assert len(PdfReader(io.BytesIO(received_from_mesh(row))).pages) >= 2  # the long letter
    assert_nothing_doubled(rig, [letter])


@pytest.mark.parametrize(
    ("persistent", "mechanism"),
    [(False, "the beat sweep"), (True, "the broker's append-only file")],
    ids=["lost-then-swept", "kept-by-the-append-only-file"],
)
def test_redis_restarted_with_letters_queued(fault_rig, meeting, practice, persistent, mechanism):
    rig = fault_rig
    # Without persistence the sweep must recover the lost messages (after 3 s); with it, the
    # messages survive, and the sweep would act only after 60 s.
    rig.start(persistent=persistent, visibility_timeout=3, sweep_after=60 if persistent else 3)
    worker = rig.start_beat_and_worker()
    # The worker (one process) is busy rendering a letter while the others queue up.
    busy = sign(meeting, listed_case(meeting, practice), plan=LONG_PLAN)
    rendering_started(rig, busy)
    waiting = [sign(meeting, listed_case(meeting, practice)) for _ in range(2)]
    queued = [tid for name, tid in rig.redis.queued() if name == RENDER]
    if len(queued) != len(waiting) or not being_rendered(busy):
        pytest.fail(f"Could not set up the fault: {len(queued)} letters queued.\n{rig.logs()}")

    rig.redis.restart()

    survived = [tid for name, tid in rig.redis.queued() if name == RENDER]
    assert survived == (queued if persistent else [])
    rows = wait_for_status(rig, [busy, *waiting], LetterStatus.SENT)

    # The one worker reconnected to the new Redis and did all of it.
    assert worker.process.poll() is None and len(rig.workers) == 1
    received = set(worker.received(RENDER))
    queued_ids = {redact(tid) for tid in queued}
    sweeps = rig.sweeps(worker)
    assert sweeps, "the beat sweep never ran"
    if persistent:  # the broker kept the messages: the worker rendered those very ones
        assert queued_ids <= received, mechanism
        assert set(sweeps) == {0}, f"{mechanism}, not the sweep: {sweeps}"
    else:  # lost: the sweep re-enqueued the waiting letters as new messages
        assert not queued_ids & received, mechanism
        assert sum(sweeps) >= len(waiting), f"{mechanism}: {sweeps}"
        assert "The sweep re-enqueued" in worker.log()
    assert all(row.attempts == 1 for row in rows)
    assert_nothing_doubled(rig, [busy, *waiting])


def test_mesh_down_for_a_while_is_recovered_by_the_retries(
    fault_rig, meeting, practice, client, mesh_sandbox
):
    rig = fault_rig
    rig.start(visibility_timeout=10, sweep_after=60, retry_base=1, retry_max=2)
    mesh_sandbox.stop()  # started again by the fixture if the test fails before it does
    worker = rig.start_beat_and_worker()
    letters = [sign(meeting, listed_case(meeting, practice)) for _ in range(2)]

    def failed_twice():
        # Two attempts made and the second one's failure recorded (waiting for the next), not
        # merely claimed: an attempt in flight when MESH comes back would succeed.
        rows = [reloaded(letter) for letter in letters]
        done = all(
            row.attempts >= 2 and row.status == LetterStatus.RENDERED and row.last_error
            for row in rows
        )
        return rows if done else None

    down = rig.wait_until(failed_twice, "A second failed attempt to send each letter")
    page = letters_page(client, meeting)
    for row in down:
        # Waiting for its next attempt, the last error kept.
        assert row.last_error.startswith("ConnectionError")
        assert f"Last error: {row.last_error[:40]}" in letter_row(page, row)

    mesh_sandbox.start()
    rows = wait_for_status(rig, letters, LetterStatus.SENT)

    log = worker.log()
    for row in rows:
        assert row.attempts >= 3 and not row.last_error and row.next_attempt_at is None
        # Every failed attempt was logged, and tried again after its backoff (1 s, then 2 s).
        failed = failed_attempts_logged_at(log, row)
        assert len(failed) == row.attempts - 1
        gaps = [later - earlier for earlier, later in pairwise(failed)]
        assert all(gap >= 0.9 * rig.timings.retry_base for gap in gaps), gaps
    assert len(worker.received(SEND)) >= sum(row.attempts for row in rows)
    sweeps = rig.sweeps(worker)
    assert sweeps and set(sweeps) == {0}, f"the retries, not the sweep: {sweeps}"
    assert "Last error" not in letters_page(client, meeting)
    assert_nothing_doubled(rig, letters)


def test_a_practice_without_a_mailbox_needs_manual_delivery(fault_rig, meeting, client):
    rig = fault_rig
    rig.start(sweep_after=3)
    worker = rig.start_beat_and_worker()
    paper = PracticeFactory(name="Paper Lane Surgery", mesh_mailbox_id="")
    letter = sign(meeting, listed_case(meeting, paper))
    assert reloaded(letter).status == LetterStatus.MANUAL

    row = rig.wait_until(lambda: rendered(letter), "Rendering the letter")
    # More sweeps, long after the letter would count as stuck were it waiting for anything.
    later = len(rig.sweeps(worker)) + rig.timings.sweep_after + 2
    rig.wait_until(lambda: len(rig.sweeps(worker)) >= later, "More sweeps")

    after = reloaded(letter)
    assert after.status == LetterStatus.MANUAL and after.rendered_at == row.rendered_at
    assert after.manual_reason.startswith("Paper Lane Surgery (")
    assert "has no MESH mailbox recorded" in after.manual_reason
    assert set(rig.sweeps(worker)) == {0}
    assert worker.received(SEND) == []
    assert_nothing_doubled(rig, [letter], sent=False)
    shown = letter_row(letters_page(client, meeting), letter)
    assert "Needs manual delivery" in shown
    assert "has no MESH mailbox recorded" in shown
    assert reverse("mdt:letter_pdf", args=[letter.public_id]) in shown


def test_a_restricted_patients_letter_has_no_address_anywhere(
    fault_rig, meeting, practice, record_sources
):
    rig = fault_rig
    rig.start(env={"DEMOGRAPHICS_URL": record_sources.pds.base_url})
    rig.start_beat_and_worker()
    address, postcode = "14 Quiet Lane, Kings Norton", "B38 9QT"
    patient = PatientFactory(gp_practice=practice, address=address, postcode=postcode)
    case = CaseFactory(meeting=meeting, patient=patient)
    assert not patient.restricted  # until the demographics service says so
    # The demographics service labels her restricted (meta.security R) and gives no address;
    # her GP record still has it.
    served = Patient.objects.get(pk=patient.pk)
    served.restricted = True
    record_sources.serve_histories([served])
    request_case_population(case)

    rig.wait_until(
        lambda: Case.objects.filter(pk=case.pk, snapshot__isnull=False).exists(),
        "Gathering the patient's record",
    )
    patient.refresh_from_db()
    assert patient.restricted and not patient.address and not patient.postcode
    case.refresh_from_db()
    letter = sign(meeting, case)
    (row,) = wait_for_status(rig, [letter], LetterStatus.SENT)

    delivered = received_from_mesh(row)
    assert sha256(delivered) == row.sha256
    text = pages_text(delivered)
    assert "Not shown: this patient’s record is restricted." in text
    metadata = str(PdfReader(io.BytesIO(delivered)).metadata)
    for document in (text, metadata, row.html):
        for part in ("Quiet Lane", "Kings Norton", postcode, "B38"):
            assert part not in document
    assert_nothing_doubled(rig, [letter])


def test_an_outcome_amended_after_its_letter_was_sent_gets_a_superseding_letter(
    fault_rig, meeting, practice, client
):
    rig = fault_rig
    rig.start()
    rig.start_beat_and_worker()
    case = listed_case(meeting, practice)
    (first,) = wait_for_status(rig, [sign(meeting, case)], LetterStatus.SENT)

    outcomes.start_amendment(user=meeting.chair, case=case, reason="The plan was changed.")
    outcomes.save_draft(
        user=meeting.chair, case=case, revision=1, data={"plan": "Stereotactic radiotherapy."}
    )
    amended = outcomes.sign_outcome(user=meeting.chair, case=case, revision=2, snapshot_id=None)
    (second,) = wait_for_status(rig, [Letter.objects.get(outcome=amended)], LetterStatus.SENT)

    # The first letter had gone: it stays sent, and the new one supersedes it and says so.
    assert reloaded(first).status == LetterStatus.SENT
    assert second.supersedes == first
    reference = str(first.outcome.public_id)
    assert reference in pages_text(received_from_mesh(first)).replace(" ", "")
    text = pages_text(received_from_mesh(second))
    assert "This letter replaces the letter of" in text
    assert "(amendment 1: The plan was changed.)" in text
    assert reference in text.replace(" ", "")
    assert "Stereotactic radiotherapy." in text
    shown = letters_page(client, meeting)
    assert "(amendment 1)" in letter_row(shown, second)
    assert "(amendment 1)" not in letter_row(shown, first)
    assert_nothing_doubled(rig, [first, second])
