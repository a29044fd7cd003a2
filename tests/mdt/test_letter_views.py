"""The letters' pages: the GP portal (the practice's letters only, read once, audited), the PDF
(no-store, attachment, for the practice and the team), the meeting's letters panel with "Send all
letters" and "Resend", "the patient has been told", and the letter preview on the console."""

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, Role
from mdt import letters, live
from mdt.models import CoreRole, Letter, LetterStatus, Meeting, Outcome, PatientTold
from records.models import Snapshot
from tests.factories import (
    CaseFactory,
    MeetingFactory,
    MembershipFactory,
    PatientFactory,
    PracticeFactory,
    UserFactory,
    make_member,
)

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.7\n% a test letter\n"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def no_celery(monkeypatch):
    """Letters released or retried are handed to Celery on commit; these tests only look at the
    status they are given."""
    monkeypatch.setattr(letters, "enqueue_render", lambda letter_id: None)
    monkeypatch.setattr(letters, "enqueue_send", lambda letter_id, queue=None: None)


@pytest.fixture
def practice():
    return PracticeFactory(name="Old Road Surgery", mesh_mailbox_id="X26ABC2")


@pytest.fixture
def meeting():
    return MeetingFactory()


def gp_of(practice):
    user = UserFactory()
    MembershipFactory(user=user, organisation=practice, role=Role.GP)
    return user


def signed_outcome(meeting, practice, *, patient_informed=True, **patient):
    patient = PatientFactory(gp_practice=practice, **patient)
    case = CaseFactory(meeting=meeting, patient=patient)
    snapshot = Snapshot.objects.create(patient=patient, reason="test")
    now = timezone.now()
    return Outcome.objects.create(
        case=case,
        recorded_by=UserFactory(),
        discussion_date=timezone.localdate(),
        category="treatment",
        care_plan_intent="C",
        planned_treatments=["01"],
        plan="Right upper lobectomy.",
        patient_informed=patient_informed,
        informed_by="Dr Surgeon in clinic" if patient_informed else "",
        signed_at=now,
        signed_by=UserFactory(),
        snapshot=snapshot,
    )


def make_letter(meeting, practice, status=LetterStatus.SENT, **fields):
    outcome = signed_outcome(meeting, practice, patient_informed=status != LetterStatus.HELD)
    now = timezone.now()
    letter = Letter(outcome=outcome, recipient=practice, status=status, created_at=now)
    if status in (LetterStatus.SENT, LetterStatus.ACKNOWLEDGED, LetterStatus.MANUAL):
        letter.pdf.save("letter.pdf", ContentFile(PDF), save=False)
        letter.sha256 = "0" * 64
        letter.rendered_at = now
    if status in (LetterStatus.SENT, LetterStatus.ACKNOWLEDGED):
        letter.sent_at = fields.pop("sent_at", now)
    for name, value in fields.items():
        setattr(letter, name, value)
    letter.save()
    return letter


def audited(action=None):
    events = AuditEvent.objects.order_by("id")
    if action:
        events = events.filter(action__contains=action)
    return list(events)


# -- the GP portal -----------------------------------------------------------------------------


def test_gp_sees_only_the_letters_sent_to_their_practice_newest_first(client, meeting, practice):
    now = timezone.now()
    older = make_letter(meeting, practice, sent_at=now - timezone.timedelta(days=2))
    newer = make_letter(meeting, practice, status=LetterStatus.ACKNOWLEDGED, sent_at=now)
    held = make_letter(meeting, practice, status=LetterStatus.HELD)
    manual = make_letter(meeting, practice, status=LetterStatus.MANUAL, manual_reason="No box.")
    elsewhere = make_letter(meeting, PracticeFactory())
    client.force_login(gp_of(practice))

    response = client.get(reverse("mdt:gp_letters"))

    assert response.status_code == 200
    body = response.content.decode()
    shown = [f'id="letter-{letter.public_id}"' for letter in (newer, older)]
    assert all(row in body for row in shown)
    assert body.index(shown[0]) < body.index(shown[1])  # newest first
    for hidden in (held, manual, elsewhere):
        assert hidden.outcome.case.patient.family_name not in body
    assert body.count("app-letter-unread") == 2
    assert set(audited()[-1].patient_ids) == {
        older.outcome.case.patient_id,
        newer.outcome.case.patient_id,
    }


@pytest.mark.parametrize("url_name", ["mdt:gp_letters", "mdt:meeting_letters"])
def test_letter_lists_read_a_fixed_number_of_queries(client, meeting, practice, url_name):
    gp, coordinator = gp_of(practice), make_member(meeting.team, role=Role.COORDINATOR)
    user = gp if url_name == "mdt:gp_letters" else coordinator
    url = reverse(url_name, args=[] if url_name == "mdt:gp_letters" else [meeting.public_id])
    client.force_login(user)
    make_letter(meeting, practice)
    with CaptureQueriesContext(connection) as one:
        client.get(url)
    for _ in range(3):
        make_letter(meeting, practice)
    with CaptureQueriesContext(connection) as four:
        client.get(url)
    assert len(four) == len(one)


def test_only_gps_have_a_letters_page(client, meeting, practice):
    coordinator = make_member(meeting.team, role=Role.COORDINATOR)
    client.force_login(coordinator)
    assert client.get(reverse("mdt:gp_letters")).status_code == 403


def test_gps_have_the_letters_link_in_the_header(client, practice):
    client.force_login(gp_of(practice))
    body = client.get(reverse("mdt:dashboard")).content.decode()
    assert reverse("mdt:gp_letters") in body
    assert "Letters from MDTs" in body


def test_opening_a_letter_marks_it_read_once_and_is_audited(client, meeting, practice):
    letter = make_letter(meeting, practice)
    client.force_login(gp_of(practice))
    url = reverse("mdt:gp_letter", args=[letter.public_id])

    first = client.get(url)
    letter.refresh_from_db()
    read_at = letter.read_at
    second = client.get(url)
    letter.refresh_from_db()

    assert (first.status_code, second.status_code) == (200, 200)
    assert read_at is not None and letter.read_at == read_at
    assert letter.acknowledged_at is None  # reading is not MESH's acknowledgement
    assert reverse("mdt:letter_pdf", args=[letter.public_id]) in first.content.decode()
    assert 'class="letter' in first.content.decode()
    assert "letter-preview.css" in first.content.decode()
    events = audited("letter")
    assert [event.action for event in events] == ["read_letter", "view_letter"]
    assert all(event.patient_ids == [letter.outcome.case.patient_id] for event in events)
    assert all(event.object_ref == f"letter:{letter.public_id}" for event in events)


def test_another_practices_gp_gets_404(client, meeting, practice):
    letter = make_letter(meeting, practice)
    client.force_login(gp_of(PracticeFactory()))

    assert client.get(reverse("mdt:gp_letter", args=[letter.public_id])).status_code == 404
    assert client.get(reverse("mdt:letter_pdf", args=[letter.public_id])).status_code == 404
    letter.refresh_from_db()
    assert letter.read_at is None


def test_a_held_letter_is_not_in_the_portal(client, meeting, practice):
    letter = make_letter(meeting, practice, status=LetterStatus.HELD)
    client.force_login(gp_of(practice))
    assert client.get(reverse("mdt:gp_letter", args=[letter.public_id])).status_code == 404


def test_the_team_does_not_mark_a_letter_read(client, meeting, practice):
    letter = make_letter(meeting, practice)
    client.force_login(make_member(meeting.team, role=Role.COORDINATOR))
    assert client.get(reverse("mdt:gp_letter", args=[letter.public_id])).status_code == 404
    letter.refresh_from_db()
    assert letter.read_at is None


# -- the PDF -----------------------------------------------------------------------------------


def test_the_practices_gp_downloads_the_pdf_uncached_and_audited(client, meeting, practice):
    letter = make_letter(meeting, practice)
    client.force_login(gp_of(practice))

    response = client.get(reverse("mdt:letter_pdf", args=[letter.public_id]))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")
    assert "no-store" in response["Cache-Control"]
    [event] = audited("download_letter")
    assert event.patient_ids == [letter.outcome.case.patient_id]


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.CHAIR, Role.CLINICIAN])
def test_the_team_downloads_the_pdf(client, meeting, practice, role):
    letter = make_letter(meeting, practice, status=LetterStatus.MANUAL, manual_reason="No box.")
    client.force_login(make_member(meeting.team, role=role))
    response = client.get(reverse("mdt:letter_pdf", args=[letter.public_id]))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


def test_another_teams_coordinator_gets_404(client, meeting, practice):
    letter = make_letter(meeting, practice)
    other = make_member(MeetingFactory().team, role=Role.COORDINATOR)
    client.force_login(other)
    assert client.get(reverse("mdt:letter_pdf", args=[letter.public_id])).status_code == 404
    assert client.get(reverse("mdt:gp_letter", args=[letter.public_id])).status_code == 404
    assert not audited("download_letter")


# -- the meeting's letters ---------------------------------------------------------------------


def concluded(meeting):
    Meeting.objects.filter(pk=meeting.pk).update(status=Meeting.Status.CONCLUDED)
    meeting.refresh_from_db()
    return meeting


def test_the_meeting_panel_shows_each_letter(client, meeting, practice):
    sent = make_letter(meeting, practice, status=LetterStatus.ACKNOWLEDGED)
    signed_at = sent.outcome.signed_at
    Letter.objects.filter(pk=sent.pk).update(
        sent_at=signed_at + timezone.timedelta(minutes=12),
        acknowledged_at=signed_at + timezone.timedelta(hours=2, minutes=5),
    )
    failed = make_letter(
        meeting, practice, status=LetterStatus.FAILED, last_error="MESH said no", attempts=5
    )
    manual = make_letter(meeting, practice, status=LetterStatus.MANUAL, manual_reason="No box.")
    concluded(meeting)
    client.force_login(make_member(meeting.team, role=Role.COORDINATOR))

    response = client.get(
        reverse("mdt:meeting_letters", args=[meeting.public_id]), HTTP_HX_REQUEST="true"
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body  # the panel alone, for htmx
    assert "MESH said no" in body and "No box." in body
    assert "12 min" in body and "2 h 5 min" in body  # signing to sent, and to acknowledged
    assert "Old Road Surgery" in body
    assert reverse("mdt:resend_letter", args=[failed.public_id]) in body
    assert reverse("mdt:letter_pdf", args=[manual.public_id]) in body
    assert reverse("mdt:letter_pdf", args=[sent.public_id]) not in body
    assert 'id="send-all-letters"' in body
    assert set(audited()[-1].patient_ids) == {
        letter.outcome.case.patient_id for letter in (sent, failed, manual)
    }


def test_a_clinician_sees_the_letters_but_no_actions(client, meeting, practice):
    make_letter(meeting, practice, status=LetterStatus.FAILED, last_error="MESH said no")
    concluded(meeting)
    client.force_login(make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.SURGEON))

    response = client.get(reverse("mdt:meeting_letters", args=[meeting.public_id]))

    assert response.status_code == 200
    assert "MESH said no" in response.content.decode()
    assert "send-all-letters" not in response.content.decode()
    assert "Resend" not in response.content.decode()


def test_the_meeting_page_loads_the_letters_panel(client, meeting, practice):
    concluded(meeting)
    client.force_login(make_member(meeting.team, role=Role.COORDINATOR))
    body = client.get(reverse("mdt:meeting", args=[meeting.public_id])).content.decode()
    assert reverse("mdt:meeting_letters", args=[meeting.public_id]) in body


def test_send_all_releases_told_letters_and_says_what_it_did(client, meeting, practice):
    held = make_letter(meeting, practice, status=LetterStatus.HELD)
    PatientTold.objects.create(
        case=held.outcome.case,
        outcome=held.outcome,
        told_by="Nurse specialist",
        told_at=timezone.now(),
        recorded_by=UserFactory(),
    )
    concluded(meeting)
    client.force_login(make_member(meeting.team, role=Role.COORDINATOR))

    response = client.post(
        reverse("mdt:send_meeting_letters", args=[meeting.public_id]), follow=True
    )

    held.refresh_from_db()
    assert held.status == LetterStatus.QUEUED
    assert "1 held letter released." in response.content.decode()


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.GP])
def test_send_all_is_for_the_chair_or_the_coordinator(client, meeting, practice, role):
    held = make_letter(meeting, practice, status=LetterStatus.HELD)
    concluded(meeting)
    if role == Role.GP:
        user, expected = gp_of(practice), 404
    else:
        user, expected = make_member(meeting.team, role=role, core_role=CoreRole.SURGEON), 403
    client.force_login(user)

    response = client.post(reverse("mdt:send_meeting_letters", args=[meeting.public_id]))

    assert response.status_code == expected
    held.refresh_from_db()
    assert held.status == LetterStatus.HELD


def test_send_all_before_the_meeting_concluded_says_so(client, meeting, practice):
    client.force_login(make_member(meeting.team, role=Role.CHAIR, core_role=CoreRole.CHAIR))
    response = client.post(
        reverse("mdt:send_meeting_letters", args=[meeting.public_id]), follow=True
    )
    assert "once the meeting has concluded" in response.content.decode()


def test_resend_tries_a_failed_letter_again(client, meeting, practice):
    failed = make_letter(meeting, practice, status=LetterStatus.FAILED, last_error="Timed out")
    client.force_login(make_member(meeting.team, role=Role.COORDINATOR))

    response = client.post(reverse("mdt:resend_letter", args=[failed.public_id]))

    failed.refresh_from_db()
    assert response.status_code == 302
    assert failed.status == LetterStatus.QUEUED
    assert audited("resend_letter")[0].patient_ids == [failed.outcome.case.patient_id]


def test_resend_is_refused_to_a_clinician_and_to_another_team(client, meeting, practice):
    failed = make_letter(meeting, practice, status=LetterStatus.FAILED, last_error="Timed out")
    url = reverse("mdt:resend_letter", args=[failed.public_id])
    client.force_login(make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.SURGEON))
    assert client.post(url).status_code == 403
    client.force_login(make_member(MeetingFactory().team, role=Role.COORDINATOR))
    assert client.post(url).status_code == 404
    failed.refresh_from_db()
    assert failed.status == LetterStatus.FAILED


# -- the patient has been told -----------------------------------------------------------------


def test_recording_the_patient_told_releases_the_held_letter(client, meeting, practice):
    held = make_letter(meeting, practice, status=LetterStatus.HELD)
    case = held.outcome.case
    client.force_login(make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.SURGEON))

    response = client.post(
        reverse("mdt:record_patient_told", args=[case.public_id]),
        {"told_by": "Clinical nurse specialist", "told_at": ""},
        follow=True,
    )

    held.refresh_from_db()
    assert held.status == LetterStatus.QUEUED
    [told] = PatientTold.objects.filter(case=case)
    assert told.told_by == "Clinical nurse specialist"
    body = response.content.decode()
    assert "1 held letter released." in body
    assert "Told by Clinical nurse specialist" in body
    assert audited("record_patient_told")[0].patient_ids == [case.patient_id]


def test_recording_the_patient_told_needs_who(client, meeting, practice):
    held = make_letter(meeting, practice, status=LetterStatus.HELD)
    client.force_login(make_member(meeting.team, role=Role.COORDINATOR))
    response = client.post(
        reverse("mdt:record_patient_told", args=[held.outcome.case.public_id]),
        {"told_by": ""},
        follow=True,
    )
    assert "Say who told the patient" in response.content.decode()
    assert not PatientTold.objects.exists()


def test_the_history_page_has_the_patient_told_form(client, meeting, practice):
    held = make_letter(meeting, practice, status=LetterStatus.HELD)
    client.force_login(make_member(meeting.team, role=Role.COORDINATOR))
    body = client.get(
        reverse("mdt:outcome_history", args=[held.outcome.case.public_id])
    ).content.decode()
    assert reverse("mdt:record_patient_told", args=[held.outcome.case.public_id]) in body


def test_another_team_cannot_record_the_patient_told(client, meeting, practice):
    held = make_letter(meeting, practice, status=LetterStatus.HELD)
    client.force_login(make_member(MeetingFactory().team, role=Role.COORDINATOR))
    response = client.post(
        reverse("mdt:record_patient_told", args=[held.outcome.case.public_id]),
        {"told_by": "Someone"},
    )
    assert response.status_code == 404
    assert not PatientTold.objects.exists()


# -- the preview on the console ----------------------------------------------------------------


def test_the_console_offers_the_letter_preview_of_the_draft(client, meeting, practice):
    chair = make_member(meeting.team, role=Role.CHAIR, core_role=CoreRole.CHAIR)
    case = CaseFactory(meeting=meeting, patient=PatientFactory(gp_practice=practice))
    live.start_meeting(user=chair, meeting=meeting)
    Outcome.objects.create(
        case=case,
        recorded_by=chair,
        discussion_date=timezone.localdate(),
        category="treatment",
        plan="Right upper lobectomy.",
    )
    client.force_login(chair)

    console = client.get(reverse("mdt:console", args=[meeting.public_id]))
    preview = client.get(reverse("mdt:letter_preview", args=[case.public_id]))

    assert reverse("mdt:letter_preview", args=[case.public_id]) in console.content.decode()
    assert "letter-preview.css" in console.content.decode()
    assert preview.status_code == 200
    body = preview.content.decode()
    assert "Right upper lobectomy." in body
    assert "Old Road Surgery" in body
    assert audited()[-1].patient_ids == [case.patient_id]


def test_the_preview_is_for_those_who_run_the_meeting(client, meeting, practice):
    case = CaseFactory(meeting=meeting, patient=PatientFactory(gp_practice=practice))
    url = reverse("mdt:letter_preview", args=[case.public_id])
    client.force_login(make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.SURGEON))
    assert client.get(url).status_code == 403
    client.force_login(gp_of(practice))
    assert client.get(url).status_code == 404
