"""Letters over MESH against the real mesh-sandbox (tests/mesh_sandbox.py): sending, tracking by
message id and by local id, the demo practices' inbox process acknowledging, messages surviving a
restart of the sandbox, deliver_letter's claim / recover / retry rules; and the addressing
module on its own (the sandbox does not route GPPROVIDER addresses)."""

import hashlib
import uuid
from datetime import date, timedelta

import psycopg
import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from accounts.models import AuditEvent, Organisation
from demo import practice_inbox
from mdt import mesh, mesh_addressing
from mdt.models import Letter, LetterStatus, Outcome
from tests.factories import CaseFactory, OrganisationFactory, PracticeFactory
from tests.mesh_sandbox import PRACTICE_MAILBOXES, SHARED_KEY

PRACTICE = PRACTICE_MAILBOXES[0]
PDF = b"%PDF-1.7\n% an MDT outcome letter\n%%EOF\n"


def practice_inbox_ids(mailbox: str) -> list[str]:
    with mesh.client(mailbox, "password") as session:
        return session.list_messages()


def send(local_id: str, mailbox: str = PRACTICE, data: bytes = PDF) -> str:
    return mesh.send_document(
        mailbox, data, local_id=local_id, subject="MDT outcome letter", filename="letter.pdf"
    )


# -- the client against the sandbox --------------------------------------------------------------


def test_a_sent_document_reaches_the_practice_and_its_acknowledgement_is_tracked(mesh_settings):
    local_id = str(uuid.uuid4())
    message_id = send(local_id)

    assert mesh.tracking(message_id).status == mesh.ACCEPTED
    assert message_id in practice_inbox_ids(PRACTICE)
    with mesh.client(PRACTICE, "password") as session:
        message = session.retrieve_message(message_id)
        assert message.read() == PDF
        assert message.workflow_id == "GPCONNECT_SEND_DOCUMENT"
        assert message.local_id == local_id
        assert message.sender == "X26ABC1"
        assert message.content_type == "application/pdf"
        message.close()

    # The demo practice's inbox process downloads and acknowledges it.
    assert message_id in practice_inbox.drain_mailbox(PRACTICE)

    state = mesh.tracking(message_id)
    assert state.acknowledged and not state.failed
    assert message_id not in practice_inbox_ids(PRACTICE)


def test_find_by_local_id_finds_what_was_sent_and_nothing_else(mesh_settings):
    local_id = str(uuid.uuid4())
    assert mesh.find_by_local_id(local_id) is None

    message_id = send(local_id)

    found = mesh.find_by_local_id(local_id)
    assert found.message_id == message_id
    assert found.local_id == local_id
    assert found.status == mesh.ACCEPTED
    assert found.recipient == PRACTICE


def test_two_messages_with_one_local_id_are_reported_not_guessed(mesh_settings):
    local_id = str(uuid.uuid4())
    send(local_id)
    send(local_id)
    with pytest.raises(mesh.MeshDuplicateLocalId):
        mesh.find_by_local_id(local_id)


def test_another_mailbox_cannot_see_our_outbox(mesh_settings):
    local_id = str(uuid.uuid4())
    message_id = send(local_id)
    mesh_settings.MESH_MAILBOX_ID = "X26ABC2"
    assert mesh.find_by_local_id(local_id) is None
    with pytest.raises(Exception, match="404"):
        mesh.tracking(message_id)


def test_the_wrong_password_or_shared_key_is_refused(mesh_settings):
    mesh_settings.MESH_MAILBOX_PASSWORD = "not-the-password"
    with pytest.raises(Exception, match="403|Invalid Authentication"):
        send(str(uuid.uuid4()))
    mesh_settings.MESH_MAILBOX_PASSWORD = "password"
    mesh_settings.MESH_SHARED_KEY = SHARED_KEY + "x"
    with pytest.raises(Exception, match="403|Invalid Authentication"):
        send(str(uuid.uuid4()))


def test_messages_and_their_tracking_survive_a_sandbox_restart(mesh_settings, mesh_sandbox):
    acknowledged_id = str(uuid.uuid4())
    waiting_id = str(uuid.uuid4())
    first = send(acknowledged_id)
    practice_inbox.drain_mailbox(PRACTICE)
    second = send(waiting_id)

    mesh_sandbox.restart()

    assert mesh.find_by_local_id(acknowledged_id).message_id == first
    assert mesh.tracking(first).acknowledged
    assert mesh.find_by_local_id(waiting_id).message_id == second
    assert second in practice_inbox_ids(PRACTICE)
    assert second in practice_inbox.drain_mailbox(PRACTICE)
    assert mesh.tracking(second).acknowledged


# -- deliver_letter ------------------------------------------------------------------------------


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def practice(db):
    return PracticeFactory(name="Harborne Medical Practice", mesh_mailbox_id=PRACTICE)


def rendered_letter(practice, *, mailbox=None, status=LetterStatus.RENDERED, data=PDF, **fields):
    case = CaseFactory(patient__gp_practice=practice)
    outcome = Outcome.objects.create(
        case=case, discussion_date=date.today(), recorded_by=case.added_by
    )
    letter = Letter(
        outcome=outcome,
        recipient=practice,
        recipient_mailbox=practice.mesh_mailbox_id if mailbox is None else mailbox,
        status=status,
        sha256=hashlib.sha256(data).hexdigest(),
        rendered_at=timezone.now(),
        **fields,
    )
    letter.pdf.save("letter.pdf", ContentFile(data), save=False)
    letter.save()
    return letter


@pytest.mark.django_db
def test_a_rendered_letter_is_sent_once_with_its_uuid_as_local_id(
    mesh_settings, media_root, practice
):
    practice_inbox.drain_mailbox(PRACTICE)
    letter = rendered_letter(practice)

    delivery = mesh.deliver_letter(letter.pk)

    letter.refresh_from_db()
    assert delivery.outcome == "sent"
    assert letter.status == LetterStatus.SENT
    assert letter.mesh_message_id == delivery.message_id
    assert letter.sent_at and letter.attempts == 1 and not letter.last_error
    assert mesh.find_by_local_id(str(letter.public_id)).message_id == letter.mesh_message_id
    assert AuditEvent.objects.filter(
        action="send_letter", object_ref=f"letter:{letter.public_id}"
    ).exists()

    # A second message for the same letter (a duplicated task) changes nothing.
    assert mesh.deliver_letter(letter.pk).outcome == "unchanged"
    assert practice_inbox_ids(PRACTICE) == [letter.mesh_message_id]


@pytest.mark.django_db
def test_a_letter_left_sending_is_found_in_mesh_and_not_sent_again(
    mesh_settings, media_root, practice
):
    practice_inbox.drain_mailbox(PRACTICE)
    letter = rendered_letter(practice, status=LetterStatus.SENDING, attempts=1)
    # The worker that claimed it got it into MESH, then died before recording the message id.
    message_id = send(str(letter.public_id))

    delivery = mesh.deliver_letter(letter.pk)

    letter.refresh_from_db()
    assert delivery.outcome == "recovered"
    assert letter.status == LetterStatus.SENT
    assert letter.mesh_message_id == message_id
    assert practice_inbox_ids(PRACTICE) == [message_id]


@pytest.mark.django_db
def test_a_letter_left_sending_that_mesh_never_got_is_sent(mesh_settings, media_root, practice):
    letter = rendered_letter(practice, status=LetterStatus.SENDING, attempts=1)

    delivery = mesh.deliver_letter(letter.pk)

    letter.refresh_from_db()
    assert delivery.outcome == "sent"
    assert letter.status == LetterStatus.SENT and letter.attempts == 2


@pytest.mark.django_db
def test_a_letter_already_sent_twice_is_failed_not_sent_a_third_time(
    mesh_settings, media_root, practice
):
    letter = rendered_letter(practice, status=LetterStatus.SENDING, attempts=1)
    send(str(letter.public_id))
    send(str(letter.public_id))

    delivery = mesh.deliver_letter(letter.pk)

    letter.refresh_from_db()
    assert delivery.outcome == "failed"
    assert letter.status == LetterStatus.FAILED
    assert "more than one message" in letter.last_error


@pytest.mark.django_db
def test_mesh_down_retries_with_backoff_then_fails_showing_the_last_error(
    mesh_settings, media_root, practice, django_capture_on_commit_callbacks, monkeypatch
):
    from mdt import letter_tasks

    scheduled = []
    monkeypatch.setattr(
        letter_tasks.send_letter_task,
        "apply_async",
        lambda args, eta: scheduled.append((args[0], eta)),
    )
    mesh_settings.MESH_URL = "http://127.0.0.1:9"  # nothing listens there
    mesh_settings.MESH_SEND_MAX_ATTEMPTS = 3
    mesh_settings.MESH_RETRY_BASE_S = 60
    letter = rendered_letter(practice)

    for wait in (timedelta(seconds=60), timedelta(seconds=120)):
        Letter.objects.filter(pk=letter.pk).update(next_attempt_at=None)  # the wait is over
        before = timezone.now()
        with django_capture_on_commit_callbacks(execute=True):
            delivery = mesh.deliver_letter(letter.pk)
        after = timezone.now()
        letter.refresh_from_db()
        assert delivery.outcome == "retry"
        assert letter.status == LetterStatus.RENDERED
        assert "ConnectionError" in letter.last_error
        assert before + wait <= letter.next_attempt_at <= after + wait
        assert scheduled[-1] == (letter.pk, letter.next_attempt_at)
        # A message arriving before the wait is over changes nothing.
        assert mesh.deliver_letter(letter.pk).outcome == "waiting"
    assert len(scheduled) == 2

    Letter.objects.filter(pk=letter.pk).update(next_attempt_at=timezone.now())
    delivery = mesh.deliver_letter(letter.pk)
    letter.refresh_from_db()
    assert delivery.outcome == "failed"
    assert letter.status == LetterStatus.FAILED and letter.attempts == 3
    assert "ConnectionError" in letter.last_error and letter.next_attempt_at is None


@pytest.mark.django_db
def test_a_letter_without_a_mailbox_needs_manual_delivery(mesh_settings, media_root):
    practice = PracticeFactory(name="Paper Lane Surgery", mesh_mailbox_id="")
    letter = rendered_letter(practice, mailbox="")

    delivery = mesh.deliver_letter(letter.pk)

    letter.refresh_from_db()
    assert delivery.outcome == "manual"
    assert letter.status == LetterStatus.MANUAL
    assert "has no MESH mailbox" in letter.manual_reason


@pytest.mark.django_db
def test_a_pdf_that_no_longer_matches_its_hash_is_not_sent(mesh_settings, media_root, practice):
    letter = rendered_letter(practice)
    with open(letter.pdf.path, "wb") as handle:
        handle.write(PDF + b"tampered")

    delivery = mesh.deliver_letter(letter.pk)

    letter.refresh_from_db()
    assert delivery.outcome == "failed"
    assert "SHA-256" in letter.last_error
    assert mesh.find_by_local_id(str(letter.public_id)) is None


@pytest.mark.django_db
def test_a_letter_another_worker_is_sending_is_left_to_it(mesh_settings, media_root, practice):
    letter = rendered_letter(practice)
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", (0x4D455348, letter.pk))
        assert mesh.deliver_letter(letter.pk).outcome == "busy"
    letter.refresh_from_db()
    assert letter.status == LetterStatus.RENDERED and letter.attempts == 0


@pytest.mark.django_db
def test_acknowledgements_are_polled_and_the_unpolled_practice_stays_sent(
    mesh_settings, media_root, practice
):
    unpolled = PracticeFactory(
        ods_code=practice_inbox.UNPOLLED_PRACTICE, mesh_mailbox_id=PRACTICE_MAILBOXES[2]
    )
    read = rendered_letter(practice)
    unread = rendered_letter(unpolled)
    assert mesh.deliver_letter(read.pk).outcome == "sent"
    assert mesh.deliver_letter(unread.pk).outcome == "sent"

    assert mesh.poll_acknowledgements()["acknowledged"] == 0
    practice_inbox.poll_once([PRACTICE])
    counts = mesh.poll_acknowledgements()

    assert counts["acknowledged"] == 1
    read.refresh_from_db()
    unread.refresh_from_db()
    assert read.status == LetterStatus.ACKNOWLEDGED and read.acknowledged_at
    assert unread.status == LetterStatus.SENT and unread.acknowledged_at is None


# -- the demo practices' inbox process -----------------------------------------------------------


def test_every_demo_practice_has_a_mailbox_id_the_sandbox_accepts():
    ids = practice_inbox.practice_mailbox_ids()
    assert len(ids) == len(set(ids)) == 10
    assert all(mesh_addressing.mailbox_for(PracticeFactory.build(mesh_mailbox_id=i)) for i in ids)
    assert practice_inbox.practice_mailbox_id(practice_inbox.UNPOLLED_PRACTICE) in ids


@pytest.mark.django_db
def test_the_inbox_process_polls_the_demo_practices_but_one(capsys):
    for code in ("M85011", "M85020", practice_inbox.UNPOLLED_PRACTICE):
        PracticeFactory(ods_code=code, mesh_mailbox_id=practice_inbox.practice_mailbox_id(code))
    PracticeFactory(ods_code="Y99999", mesh_mailbox_id="Y99999OT001")  # not a demo practice

    assert practice_inbox.polled_mailboxes() == ["M85011OT001", "M85020OT001"]
    call_command("run_practice_inbox", "--list-mailboxes")
    assert "M88004OT001" in capsys.readouterr().out.split()


# -- addressing ----------------------------------------------------------------------------------


def test_gp_provider_address_follows_gp_connect_send_document():
    address = mesh_addressing.gp_provider_address("999 000 0018", date(1950, 3, 7), "O'Brien-Smith")
    assert address == "GPPROVIDER_9990000018_19500307_O'BRIEN-SMITH"
    assert (
        mesh_addressing.gp_provider_address("9990000018", date(2001, 12, 31), " van der Berg ")
        == "GPPROVIDER_9990000018_20011231_VANDERBERG"
    )


@pytest.mark.parametrize(
    ("nhs_number", "birth_date", "surname"),
    [
        ("9990000017", date(1950, 3, 7), "Smith"),  # wrong check digit
        ("999000001", date(1950, 3, 7), "Smith"),
        ("", date(1950, 3, 7), "Smith"),
        ("9990000018", None, "Smith"),
        ("9990000018", date(1950, 3, 7), " - "),
    ],
)
def test_gp_provider_address_refuses_what_mesh_could_not_route(nhs_number, birth_date, surname):
    with pytest.raises(ValueError, match="needed|NHS number"):
        mesh_addressing.gp_provider_address(nhs_number, birth_date, surname)


def test_the_mailbox_of_a_practice_or_why_there_is_none():
    assert mesh_addressing.mailbox_for(
        PracticeFactory.build(mesh_mailbox_id=" m85011ot001 ")
    ) == mesh_addressing.MailboxAddress("M85011OT001")
    none = mesh_addressing.mailbox_for(None)
    assert not none and "no GP practice" in none.reason
    blank = mesh_addressing.mailbox_for(
        PracticeFactory.build(name="Paper Lane", mesh_mailbox_id="")
    )
    assert not blank and "no MESH mailbox" in blank.reason
    trust = OrganisationFactory.build(kind=Organisation.Kind.TRUST, mesh_mailbox_id="RRKOT001")
    assert not mesh_addressing.mailbox_for(trust)
    bad = mesh_addressing.mailbox_for(PracticeFactory.build(mesh_mailbox_id="M85 011"))
    assert not bad and "invalid" in bad.reason


def test_the_envelope_carries_no_patient_identifiers(settings):
    letter = Letter(public_id=uuid.UUID("12345678-1234-5678-1234-567812345678"))
    assert mesh_addressing.local_id(letter) == "12345678-1234-5678-1234-567812345678"
    assert mesh_addressing.subject(letter) == "MDT outcome letter"
    assert mesh_addressing.filename(letter) == (
        "mdt-outcome-12345678-1234-5678-1234-567812345678.pdf"
    )
    assert mesh_addressing.workflow_id() == "GPCONNECT_SEND_DOCUMENT"
