"""Letters to the GP up to sending: one per signed version, made in the signing transaction with
the practice frozen then; held until the patient has been told; "Send all letters"; amendments
superseding; rendering once whatever happens to the worker; the sweep of lost messages."""

import hashlib
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Role
from mdt import letter_tasks, letters, outcomes
from mdt.letters import NO_PRACTICE, LetterRelease
from mdt.models import CoreRole, Letter, LetterStatus, Meeting, PatientTold, letter_pdf_path
from mdt.services import ListError
from tests.factories import (
    CaseFactory,
    MeetingFactory,
    PatientFactory,
    PracticeFactory,
    SnapshotFactory,
    chair_starts,
    make_member,
)

pytestmark = pytest.mark.django_db

COMPLETE = {
    "category": "treatment",
    "agreed_diagnosis": "Adenocarcinoma of the right upper lobe",
    "care_plan_intent": "C",
    "planned_treatments": ["01"],
    "plan": "Right upper lobectomy.",
    "gp_actions": "Please review anticoagulation before surgery.",
    "patient_informed": True,
    "informed_by": "Dr Surgeon in clinic",
}


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def enqueued(monkeypatch):
    """The tasks handed to Celery, as (task name, letter id), instead of sending them."""
    sent = []
    for task in (letter_tasks.render_letter, letter_tasks.send_letter_task):
        monkeypatch.setattr(
            task, "delay", lambda letter_id, name=task.name: sent.append((name, letter_id))
        )
    return sent


RENDER = "mdt.letter_tasks.render_letter"
SEND = "mdt.letter_tasks.send_letter_task"


@pytest.fixture
def meeting():
    return MeetingFactory()


@pytest.fixture
def chair(meeting):
    return chair_starts(meeting)


@pytest.fixture
def coordinator(meeting):
    return make_member(meeting.team, role=Role.COORDINATOR)


@pytest.fixture
def clinician(meeting):
    return make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.SURGEON)


@pytest.fixture
def practice():
    return PracticeFactory(name="Old Road Surgery", mesh_mailbox_id="X26ABC2")


def listed(meeting, *, practice=None, no_practice=False, snapshot_summary=None):
    patient = PatientFactory(gp_practice=None if no_practice else practice or PracticeFactory())
    case = CaseFactory(meeting=meeting, patient=patient)
    case.snapshot = SnapshotFactory(patient=patient, summary=snapshot_summary or {})
    case.save()
    return case


def sign(chair, case, django_capture_on_commit_callbacks, **fields):
    """Saves and signs the outcome (or the amendment being drafted), running the on-commit
    callbacks as a real commit would."""
    draft = case.outcomes.filter(signed_at__isnull=True).first()
    revision = draft.revision if draft else 0
    outcomes.save_draft(user=chair, case=case, revision=revision, data={**COMPLETE, **fields})
    with django_capture_on_commit_callbacks(execute=True):
        return outcomes.sign_outcome(user=chair, case=case, revision=revision + 1, snapshot_id=None)


def amend(chair, case, capture, **fields):
    outcomes.start_amendment(user=chair, case=case, reason="Stage corrected after review")
    return sign(chair, case, capture, **fields)


def render(letter, capture):
    with capture(execute=True):
        letter_tasks.render_letter.apply(args=[letter.pk]).get()
    letter.refresh_from_db()
    return letter


def pdf_files(media_root):
    return sorted(path for path in media_root.rglob("*") if path.is_file())


# -- signing -----------------------------------------------------------------------------------


def test_signing_makes_the_letter_in_the_same_transaction_and_enqueues_it_on_commit(
    meeting, chair, practice, enqueued, django_capture_on_commit_callbacks
):
    case = listed(meeting, practice=practice)
    outcomes.save_draft(user=chair, case=case, revision=0, data=COMPLETE)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outcome = outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)
        letter = Letter.objects.get(outcome=outcome)
        assert enqueued == []  # nothing goes to the broker before the signature commits
    for callback in callbacks:
        callback()

    assert enqueued == [(RENDER, letter.pk)]
    assert letter.status == LetterStatus.QUEUED
    assert letter.recipient == practice
    assert letter.recipient_mailbox == "X26ABC2"
    assert letter.manual_reason == ""
    assert letter.supersedes is None


def test_one_letter_per_signed_version_even_when_the_signature_is_sent_twice(
    meeting, chair, practice, enqueued, django_capture_on_commit_callbacks
):
    case = listed(meeting, practice=practice)
    outcome = sign(chair, case, django_capture_on_commit_callbacks)
    again = outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)
    assert again.pk == outcome.pk
    assert letters.create_letter_for(outcome) == outcome.letter
    assert Letter.objects.filter(outcome__case=case).count() == 1
    assert enqueued == [(RENDER, outcome.letter.pk)]
    with pytest.raises(IntegrityError), transaction.atomic():
        Letter.objects.create(outcome=outcome, status=LetterStatus.QUEUED)


def test_the_recipient_is_frozen_at_signing(
    meeting, chair, practice, enqueued, django_capture_on_commit_callbacks
):
    case = listed(meeting, practice=practice)
    outcome = sign(chair, case, django_capture_on_commit_callbacks)
    patient = case.patient
    patient.gp_practice = PracticeFactory(name="New Lane Practice", mesh_mailbox_id="X26ABC3")
    patient.save()

    letter = render(outcome.letter, django_capture_on_commit_callbacks)
    assert letter.recipient == practice
    assert letter.recipient_mailbox == "X26ABC2"
    assert "Old Road Surgery" in letter.html
    assert "New Lane Practice" not in letter.html


def test_no_registered_practice_means_manual_delivery_saying_why(
    meeting, chair, enqueued, django_capture_on_commit_callbacks, media_root
):
    case = listed(meeting, no_practice=True)
    letter = sign(chair, case, django_capture_on_commit_callbacks).letter
    assert letter.status == LetterStatus.MANUAL
    assert letter.recipient is None
    assert letter.manual_reason == NO_PRACTICE
    assert letter.manual_reason.startswith("No registered GP practice is recorded")

    # Its PDF is still made, for whoever delivers it; it is never handed to MESH.
    letter = render(letter, django_capture_on_commit_callbacks)
    assert letter.status == LetterStatus.MANUAL
    assert letter.sha256 and letter.pdf.name
    assert enqueued == [(RENDER, letter.pk)]


def test_sources_disagreeing_about_the_practice_means_manual_delivery(
    meeting, chair, practice, enqueued, django_capture_on_commit_callbacks
):
    summary = {"demographics": {"gp_practice_ods": "Y99999"}}
    case = listed(meeting, practice=practice, snapshot_summary=summary)
    letter = sign(chair, case, django_capture_on_commit_callbacks).letter
    assert letter.status == LetterStatus.MANUAL
    assert letter.recipient == practice
    assert "disagree" in letter.manual_reason
    assert practice.ods_code in letter.manual_reason and "Y99999" in letter.manual_reason


def test_an_unknown_practice_or_one_without_a_mailbox_means_manual_delivery(
    meeting, chair, enqueued, django_capture_on_commit_callbacks
):
    unknown = listed(
        meeting, no_practice=True, snapshot_summary={"demographics": {"gp_practice_ods": "Y1"}}
    )
    letter = sign(chair, unknown, django_capture_on_commit_callbacks).letter
    assert letter.status == LetterStatus.MANUAL
    assert "Y1" in letter.manual_reason

    no_mailbox = listed(meeting, practice=PracticeFactory(mesh_mailbox_id=""))
    letter = sign(chair, no_mailbox, django_capture_on_commit_callbacks).letter
    assert letter.status == LetterStatus.MANUAL
    assert "no MESH mailbox" in letter.manual_reason


# -- held until the patient has been told ------------------------------------------------------


def test_a_letter_is_held_until_the_patient_has_been_told(
    meeting, chair, clinician, practice, enqueued, django_capture_on_commit_callbacks
):
    case = listed(meeting, practice=practice)
    letter = sign(
        chair, case, django_capture_on_commit_callbacks, patient_informed=False, informed_by=""
    ).letter
    assert letter.status == LetterStatus.HELD
    assert enqueued == []
    assert render(letter, django_capture_on_commit_callbacks).sha256 == ""  # not rendered

    told_at = timezone.now() - timedelta(hours=2)
    with django_capture_on_commit_callbacks(execute=True):
        told = letters.record_patient_told(
            user=clinician, case=case, told_by="Sam Nurse, lung CNS", told_at=told_at
        )
    assert told.outcome == letter.outcome
    letter.refresh_from_db()
    assert letter.status == LetterStatus.QUEUED
    assert enqueued == [(RENDER, letter.pk)]

    letter = render(letter, django_capture_on_commit_callbacks)
    assert letter.status == LetterStatus.RENDERED
    assert "Sam Nurse, lung CNS told the patient the outcome" in letter.html
    assert "has not yet been told" not in letter.html


def test_recording_the_patient_told_needs_a_member_of_the_team_and_a_signed_outcome(
    meeting, chair, practice, enqueued, django_capture_on_commit_callbacks
):
    case = listed(meeting, practice=practice)
    outsider = make_member(MeetingFactory().team, role=Role.CLINICIAN)
    with pytest.raises(ListError, match="not signed"):
        letters.record_patient_told(user=chair, case=case, told_by="Dr A")
    sign(chair, case, django_capture_on_commit_callbacks, patient_informed=False, informed_by="")
    with pytest.raises(ListError, match="team"):
        letters.record_patient_told(user=outsider, case=case, told_by="Dr A")
    with pytest.raises(ListError, match="who told"):
        letters.record_patient_told(user=chair, case=case, told_by="  ")
    with pytest.raises(ListError, match="future"):
        letters.record_patient_told(
            user=chair, case=case, told_by="Dr A", told_at=timezone.now() + timedelta(days=1)
        )
    assert not PatientTold.objects.exists()
    assert case.outcomes.get().letter.status == LetterStatus.HELD


def test_a_manual_letter_is_held_too_and_released_for_manual_delivery(
    meeting, chair, clinician, enqueued, django_capture_on_commit_callbacks
):
    case = listed(meeting, no_practice=True)
    letter = sign(
        chair, case, django_capture_on_commit_callbacks, patient_informed=False, informed_by=""
    ).letter
    assert letter.status == LetterStatus.HELD
    assert letter.manual_reason == NO_PRACTICE
    with django_capture_on_commit_callbacks(execute=True):
        letters.record_patient_told(user=clinician, case=case, told_by="Dr Surgeon")
    letter.refresh_from_db()
    assert letter.status == LetterStatus.MANUAL


def test_send_all_releases_told_and_failed_letters_but_not_untold_ones(
    meeting, chair, coordinator, clinician, enqueued, django_capture_on_commit_callbacks
):
    untold, told, failed_sending, failed_rendering, sent = (
        listed(meeting, practice=PracticeFactory(mesh_mailbox_id=f"X26ABC{n}")) for n in range(5)
    )
    not_told = {"patient_informed": False, "informed_by": ""}
    untold_letter = sign(chair, untold, django_capture_on_commit_callbacks, **not_told).letter
    told_letter = sign(chair, told, django_capture_on_commit_callbacks, **not_told).letter
    # Told after signing, recorded without releasing (as if by an older version of the app).
    PatientTold.objects.create(
        case=told,
        outcome=told_letter.outcome,
        told_by="Dr Surgeon",
        told_at=timezone.now(),
        recorded_by=clinician,
    )
    failed_after_render = render(
        sign(chair, failed_sending, django_capture_on_commit_callbacks).letter,
        django_capture_on_commit_callbacks,
    )
    failed_before_render = sign(chair, failed_rendering, django_capture_on_commit_callbacks).letter
    Letter.objects.filter(pk__in=[failed_after_render.pk, failed_before_render.pk]).update(
        status=LetterStatus.FAILED, attempts=8, last_error="MESH said no"
    )
    sent_letter = render(
        sign(chair, sent, django_capture_on_commit_callbacks).letter,
        django_capture_on_commit_callbacks,
    )
    Letter.objects.filter(pk=sent_letter.pk).update(status=LetterStatus.SENT)

    with pytest.raises(ListError, match="concluded"):
        letters.release_meeting_letters(user=coordinator, meeting=meeting)
    Meeting.objects.filter(pk=meeting.pk).update(status=Meeting.Status.CONCLUDED)
    with pytest.raises(ListError, match="chair or the MDT coordinator"):
        letters.release_meeting_letters(user=clinician, meeting=meeting)

    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        result = letters.release_meeting_letters(user=coordinator, meeting=meeting)
    assert result == LetterRelease(released=1, retried=2, still_held=1)
    assert "1 held letter released; 2 failed letters sent again." in result.message
    assert "1 letter still held" in result.message

    status = dict(Letter.objects.values_list("pk", "status"))
    assert status[untold_letter.pk] == LetterStatus.HELD
    assert status[told_letter.pk] == LetterStatus.QUEUED
    assert status[failed_after_render.pk] == LetterStatus.RENDERED
    assert status[failed_before_render.pk] == LetterStatus.QUEUED
    assert status[sent_letter.pk] == LetterStatus.SENT
    assert sorted(enqueued) == sorted(
        [
            (RENDER, told_letter.pk),
            (SEND, failed_after_render.pk),
            (RENDER, failed_before_render.pk),
        ]
    )
    assert Letter.objects.get(pk=failed_after_render.pk).attempts == 0

    # A second click finds nothing more to do.
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        again = letters.release_meeting_letters(user=chair, meeting=meeting)
    assert again == LetterRelease(released=0, retried=0, still_held=1)
    assert enqueued == []


def test_send_all_releases_untold_letters_when_the_coordinator_confirms_who_told_them(
    meeting, chair, coordinator, enqueued, django_capture_on_commit_callbacks
):
    not_told = {"patient_informed": False, "informed_by": ""}
    first, second = (
        sign(chair, listed(meeting), django_capture_on_commit_callbacks, **not_told).letter
        for _ in range(2)
    )
    Meeting.objects.filter(pk=meeting.pk).update(status=Meeting.Status.CONCLUDED)

    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        result = letters.release_meeting_letters(
            user=coordinator, meeting=meeting, told_by="  Lung CNS team in clinic "
        )
    assert result == LetterRelease(released=2, confirmed_told=2)
    assert result.message == "2 held letters released; recorded that 2 patients had been told."
    assert sorted(enqueued) == sorted([(RENDER, first.pk), (RENDER, second.pk)])
    told = PatientTold.objects.filter(case__meeting=meeting)
    assert sorted(told.values_list("case_id", flat=True)) == sorted(
        [first.outcome.case_id, second.outcome.case_id]
    )
    assert set(told.values_list("told_by", "recorded_by")) == {
        ("Lung CNS team in clinic", coordinator.pk)
    }
    # The letter says who told the patient.
    assert "Lung CNS team in clinic" in render(first, django_capture_on_commit_callbacks).html
    # A second confirmation records nothing more.
    again = letters.release_meeting_letters(user=coordinator, meeting=meeting, told_by="Again")
    assert again == LetterRelease()
    assert told.count() == 2


# -- amendments --------------------------------------------------------------------------------


def test_an_amendment_gets_a_new_letter_superseding_the_first(
    meeting, chair, practice, enqueued, django_capture_on_commit_callbacks
):
    case = listed(meeting, practice=practice)
    first = render(
        sign(chair, case, django_capture_on_commit_callbacks).letter,
        django_capture_on_commit_callbacks,
    )
    Letter.objects.filter(pk=first.pk).update(status=LetterStatus.SENT)
    # The patient has moved practice since: the amendment goes to where they are now.
    moved_to = PracticeFactory(mesh_mailbox_id="X26ABC3")
    case.patient.gp_practice = moved_to
    case.patient.save()

    amendment = amend(chair, case, django_capture_on_commit_callbacks, stage_group="IIA")
    second = render(amendment.letter, django_capture_on_commit_callbacks)
    assert second.pk != first.pk
    assert second.supersedes == first
    assert first.superseded_by == second
    assert second.recipient == moved_to
    assert Letter.objects.get(pk=first.pk).recipient == practice
    assert "This letter replaces the letter of" in second.html
    assert str(first.outcome.public_id) in second.html
    assert Letter.objects.filter(outcome__case=case).count() == 2


def test_an_amendment_after_the_patient_was_told_is_not_held(
    meeting, chair, clinician, practice, enqueued, django_capture_on_commit_callbacks
):
    case = listed(meeting, practice=practice)
    not_told = {"patient_informed": False, "informed_by": ""}
    sign(chair, case, django_capture_on_commit_callbacks, **not_told)
    with django_capture_on_commit_callbacks(execute=True):
        letters.record_patient_told(user=clinician, case=case, told_by="Dr Surgeon")
    amendment = amend(chair, case, django_capture_on_commit_callbacks, **not_told)
    assert amendment.letter.status == LetterStatus.QUEUED


@pytest.mark.parametrize("unsent", ["held", "queued", "rendered", "failed"])
def test_an_amendment_before_the_first_letter_left_supersedes_it_so_only_one_goes(
    unsent, meeting, chair, clinician, practice, enqueued, django_capture_on_commit_callbacks
):
    case = listed(meeting, practice=practice)
    told = {} if unsent != "held" else {"patient_informed": False, "informed_by": ""}
    first = sign(chair, case, django_capture_on_commit_callbacks, **told).letter
    if unsent in ("rendered", "failed"):
        first = render(first, django_capture_on_commit_callbacks)
    if unsent == "failed":
        Letter.objects.filter(pk=first.pk).update(status=LetterStatus.FAILED)
    assert Letter.objects.get(pk=first.pk).status == unsent

    enqueued.clear()
    amendment = amend(chair, case, django_capture_on_commit_callbacks)
    first.refresh_from_db()
    assert first.status == LetterStatus.SUPERSEDED
    # The old letter's queued tasks find nothing to do; the new letter goes.
    letter_tasks.render_letter.apply(args=[first.pk]).get()
    letter_tasks.send_letter_task.apply(args=[first.pk]).get()
    first.refresh_from_db()
    assert first.status == LetterStatus.SUPERSEDED
    assert first.mesh_message_id == ""
    second = render(amendment.letter, django_capture_on_commit_callbacks)
    assert second.supersedes == first
    # The GP never had the first letter, so the amendment's letter does not claim to replace it.
    assert "This letter replaces the letter of" not in second.html
    assert "This is amendment 1 of the outcome" in second.html
    # Neither "Send all letters" nor "the patient has been told" brings the first one back.
    Meeting.objects.filter(pk=meeting.pk).update(status=Meeting.Status.CONCLUDED)
    letters.release_meeting_letters(user=chair, meeting=meeting, told_by="Dr Surgeon")
    letters.record_patient_told(user=clinician, case=case, told_by="Dr Surgeon")
    assert Letter.objects.get(pk=first.pk).status == LetterStatus.SUPERSEDED


def test_an_amendment_names_the_last_letter_that_left_when_one_in_between_never_did(
    meeting, chair, practice, enqueued, django_capture_on_commit_callbacks
):
    case = listed(meeting, practice=practice)
    first = render(
        sign(chair, case, django_capture_on_commit_callbacks).letter,
        django_capture_on_commit_callbacks,
    )
    Letter.objects.filter(pk=first.pk).update(status=LetterStatus.SENT)
    middle = amend(chair, case, django_capture_on_commit_callbacks).letter  # queued, never left
    last = render(
        amend(chair, case, django_capture_on_commit_callbacks).letter,
        django_capture_on_commit_callbacks,
    )
    assert Letter.objects.get(pk=middle.pk).status == LetterStatus.SUPERSEDED
    assert Letter.objects.get(pk=first.pk).status == LetterStatus.SENT
    assert last.supersedes == middle
    assert letters.replaced_letter(last) == first
    assert "This letter replaces the letter of" in last.html
    assert str(first.outcome.public_id) in last.html
    assert str(middle.outcome.public_id) not in last.html


# -- rendering ---------------------------------------------------------------------------------


def test_rendering_twice_makes_one_pdf_and_hands_over_once(
    meeting, chair, practice, enqueued, django_capture_on_commit_callbacks, media_root
):
    case = listed(meeting, practice=practice)
    letter = sign(chair, case, django_capture_on_commit_callbacks).letter
    letter = render(letter, django_capture_on_commit_callbacks)
    first = (letter.sha256, letter.rendered_at, letter.pdf.name)
    letter = render(letter, django_capture_on_commit_callbacks)  # a duplicated message

    assert (letter.sha256, letter.rendered_at, letter.pdf.name) == first
    assert letter.status == LetterStatus.RENDERED
    assert letter.pdf.name == f"letters/{letter.created_at:%Y/%m}/{letter.public_id}.pdf"
    files = pdf_files(media_root)
    assert files == [media_root / letter.pdf.name]
    assert hashlib.sha256(files[0].read_bytes()).hexdigest() == letter.sha256
    assert files[0].read_bytes().startswith(b"%PDF-")
    assert letter.title.startswith("MDT outcome letter")
    assert enqueued == [(RENDER, letter.pk), (SEND, letter.pk)]


def test_a_worker_killed_after_writing_the_file_leaves_one_pdf(
    meeting, chair, practice, enqueued, django_capture_on_commit_callbacks, media_root
):
    case = listed(meeting, practice=practice)
    letter = sign(chair, case, django_capture_on_commit_callbacks).letter
    # The killed worker wrote (part of) the file; its transaction never committed.
    leftover = media_root / letter_pdf_path(letter, "")
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"%PDF-1.7 half a file")

    letter = render(letter, django_capture_on_commit_callbacks)
    assert letter.status == LetterStatus.RENDERED
    assert pdf_files(media_root) == [leftover]
    assert hashlib.sha256(leftover.read_bytes()).hexdigest() == letter.sha256
    assert leftover.read_bytes() != b"%PDF-1.7 half a file"


def test_a_rendering_that_keeps_failing_marks_the_letter_failed(
    meeting, chair, practice, enqueued, django_capture_on_commit_callbacks, monkeypatch
):
    case = listed(meeting, practice=practice)
    letter = sign(chair, case, django_capture_on_commit_callbacks).letter

    def broken(*args, **kwargs):
        raise ValueError("no fonts")

    monkeypatch.setattr(letters, "render_letter_pdf", broken)
    assert letter_tasks.render_letter.apply(args=[letter.pk]).get() == "failed"
    letter.refresh_from_db()
    assert letter.status == LetterStatus.FAILED
    assert letter.attempts == letter_tasks.RENDER_RETRIES + 1
    assert "no fonts" in letter.last_error
    assert not letter.sha256


def test_a_manual_letter_that_cannot_be_rendered_ends_failed_and_resend_renders_it_again(
    meeting, chair, coordinator, enqueued, django_capture_on_commit_callbacks, monkeypatch
):
    case = listed(meeting, no_practice=True)
    letter = sign(chair, case, django_capture_on_commit_callbacks).letter
    assert letter.status == LetterStatus.MANUAL

    def broken(*args, **kwargs):
        raise ValueError("no fonts")

    with monkeypatch.context() as patched:
        patched.setattr(letters, "render_letter_pdf", broken)
        assert letter_tasks.render_letter.apply(args=[letter.pk]).get() == "failed"
    letter.refresh_from_db()
    assert letter.status == LetterStatus.FAILED  # shown with Resend, not left waiting for ever
    assert letter.pk not in set(letters.stuck_letters(timedelta(0)).values_list("pk", flat=True))

    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        letters.resend_letter(user=coordinator, letter=letter)
    letter.refresh_from_db()
    assert letter.status == LetterStatus.MANUAL
    assert enqueued == [(RENDER, letter.pk)]


def redelivered_render(letter_id: int) -> str:
    """Runs render_letter as a worker does for a message the broker delivered again (the worker
    that had it died before acknowledging it)."""
    task = letter_tasks.render_letter
    task.push_request(delivery_info={"redelivered": True}, retries=0)
    try:
        return task(letter_id)
    finally:
        task.pop_request()


def test_a_letter_that_keeps_killing_its_worker_ends_failed_instead_of_coming_back_for_ever(
    meeting, chair, practice, enqueued, django_capture_on_commit_callbacks
):
    letter = sign(chair, listed(meeting, practice=practice), django_capture_on_commit_callbacks)
    letter = letter.letter
    # Workers died with it in hand before: each redelivery counted one attempt (as below).
    for _ in range(letter_tasks.RENDER_RETRIES - 1):
        letters.note_render_error(
            letter.pk, letter_tasks.RenderInterrupted("the worker stopped"), final=False
        )
    letter.refresh_from_db()
    assert letter.attempts == letter_tasks.RENDER_RETRIES - 1
    assert redelivered_render(letter.pk) == "failed"
    letter.refresh_from_db()
    assert letter.status == LetterStatus.FAILED
    assert "the worker rendering it stopped before it finished" in letter.last_error
    assert not letter.sha256


def test_a_redelivered_render_after_one_lost_worker_renders_the_letter(
    meeting, chair, practice, enqueued, django_capture_on_commit_callbacks
):
    letter = sign(chair, listed(meeting, practice=practice), django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        assert redelivered_render(letter.letter.pk) == LetterStatus.RENDERED
    rendered = Letter.objects.get(pk=letter.letter.pk)
    assert rendered.sha256 and rendered.attempts == 0 and rendered.last_error == ""


def test_a_rendered_letter_must_have_its_pdf_and_hash(
    meeting, chair, practice, enqueued, django_capture_on_commit_callbacks
):
    case = listed(meeting, practice=practice)
    letter = sign(chair, case, django_capture_on_commit_callbacks).letter
    with pytest.raises(IntegrityError), transaction.atomic():
        Letter.objects.filter(pk=letter.pk).update(status=LetterStatus.RENDERED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Letter.objects.filter(pk=letter.pk).update(status=LetterStatus.MANUAL)


# -- the sweep ---------------------------------------------------------------------------------


def test_the_sweep_re_enqueues_only_letters_stuck_waiting_for_a_worker(
    meeting, chair, enqueued, django_capture_on_commit_callbacks, settings
):
    settings.LETTER_SWEEP_AFTER = timedelta(minutes=10)
    made = {}
    names = (
        "queued",
        "fresh",
        "rendered",
        "sending",
        "held",
        "manual",
        "manual_done",
        "retry_later",
    )
    for name in names:
        case = listed(meeting, practice=PracticeFactory(mesh_mailbox_id="X26ABC1"))
        made[name] = sign(chair, case, django_capture_on_commit_callbacks).letter
    for name in ("rendered", "sending", "manual_done", "retry_later"):
        render(made[name], django_capture_on_commit_callbacks)
    Letter.objects.filter(pk=made["sending"].pk).update(status=LetterStatus.SENDING)
    old = timezone.now() - timedelta(minutes=11)
    Letter.objects.filter(pk=made["held"].pk).update(status=LetterStatus.HELD)
    for name in ("manual", "manual_done"):
        Letter.objects.filter(pk=made[name].pk).update(
            status=LetterStatus.MANUAL, manual_reason=NO_PRACTICE
        )
    Letter.objects.exclude(pk=made["fresh"].pk).update(status_changed_at=old)
    Letter.objects.filter(pk=made["retry_later"].pk).update(
        next_attempt_at=timezone.now() + timedelta(minutes=5)
    )

    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert letter_tasks.sweep_stuck_letters.apply().get() == 4
    assert sorted(enqueued) == sorted(
        [
            (RENDER, made["queued"].pk),
            (SEND, made["rendered"].pk),
            (SEND, made["sending"].pk),
            (RENDER, made["manual"].pk),
        ]
    )
    # Their clock starts again: the next sweep does not pile duplicates on a slow worker.
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert letter_tasks.sweep_stuck_letters.apply().get() == 0
    assert enqueued == []


def test_a_broker_that_is_down_does_not_undo_the_signature(
    meeting, chair, practice, monkeypatch, django_capture_on_commit_callbacks
):
    def down(letter_id):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(letter_tasks.render_letter, "delay", down)
    case = listed(meeting, practice=practice)
    outcome = sign(chair, case, django_capture_on_commit_callbacks)
    assert outcome.letter.status == LetterStatus.QUEUED
    assert letters.stuck_letters(timedelta(0)).filter(pk=outcome.letter.pk).exists()
