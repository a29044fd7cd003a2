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
from accounts.session_limits import LAST_SEEN
from mdt import letters, live
from mdt.models import CoreRole, Letter, LetterStatus, Meeting, Outcome, PatientTold
from records.models import Snapshot
from tests.factories import (
    TEST_PASSWORD,
    CaseFactory,
    MeetingFactory,
    MembershipFactory,
    PatientFactory,
    PracticeFactory,
    TeamFactory,
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


# -- "Send all letters": what it will do, and its progress -----------------------------------------


def panel(client, meeting):
    return client.get(
        reverse("mdt:meeting_letters", args=[meeting.public_id]), HTTP_HX_REQUEST="true"
    ).content.decode()


def poll(client, meeting, *, sent, failed=0):
    url = reverse("mdt:meeting_letters_progress", args=[meeting.public_id])
    return client.get(url, {"sent": sent, "failed": failed}, HTTP_HX_REQUEST="true")


def told_later(letter):
    return PatientTold.objects.create(
        case=letter.outcome.case,
        outcome=letter.outcome,
        told_by="Nurse specialist",
        told_at=timezone.now(),
        recorded_by=UserFactory(),
    )


def test_send_all_says_what_it_will_do_with_the_counts(client, meeting, practice):
    told_later(make_letter(meeting, practice, status=LetterStatus.HELD))
    make_letter(meeting, practice, status=LetterStatus.FAILED, last_error="Timed out")
    for _ in range(2):
        make_letter(meeting, practice, status=LetterStatus.HELD)
    make_letter(meeting, practice, status=LetterStatus.SENT)
    concluded(meeting)
    client.force_login(make_member(meeting.team, role=Role.COORDINATOR))

    body = panel(client, meeting)

    assert "send 1 held letter whose patient has been told the outcome" in body
    assert "try 1 failed letter again" in body
    assert "leave 2 letters held, because their patients are not recorded as told" in body
    assert 'name="told_by"' in body
    assert "If these patients have now been told the outcome, say who told them" in body
    assert "their letters stay held until someone records that the patient has been told" in body
    assert "<fieldset" in body and "nhsuk-hint" in body
    assert 'data-prevent-double-click="true"' in body


def test_send_all_asks_who_told_only_when_a_patient_is_not_recorded_as_told(
    client, meeting, practice
):
    make_letter(meeting, practice, status=LetterStatus.FAILED, last_error="Timed out")
    concluded(meeting)
    client.force_login(make_member(meeting.team, role=Role.COORDINATOR))

    body = panel(client, meeting)

    assert 'id="send-all-letters"' in body
    assert 'name="told_by"' not in body
    assert "leave" not in body


def test_send_all_with_nothing_waiting_says_so(client, meeting, practice):
    make_letter(meeting, practice, status=LetterStatus.SENT)
    concluded(meeting)
    client.force_login(make_member(meeting.team, role=Role.CHAIR, core_role=CoreRole.CHAIR))
    assert "No letters are held or failed, so there is nothing to send now." in panel(
        client, meeting
    )


def test_send_all_records_who_told_the_patients_and_releases_their_letters(
    client, meeting, practice
):
    untold = make_letter(meeting, practice, status=LetterStatus.HELD)
    concluded(meeting)
    coordinator = make_member(meeting.team, role=Role.COORDINATOR)
    client.force_login(coordinator)

    response = client.post(
        reverse("mdt:send_meeting_letters", args=[meeting.public_id]),
        {"told_by": "Sam Patel, lung cancer nurse specialist"},
        follow=True,
    )

    untold.refresh_from_db()
    assert untold.status == LetterStatus.QUEUED
    [told] = PatientTold.objects.filter(case=untold.outcome.case)
    assert (told.told_by, told.recorded_by) == (
        "Sam Patel, lung cancer nurse specialist",
        coordinator,
    )
    assert "recorded that 1 patient had been told" in response.content.decode()


def test_the_panel_polls_while_a_letter_is_on_its_way(client, meeting, practice):
    make_letter(meeting, practice, status=LetterStatus.SENT)
    make_letter(meeting, practice, status=LetterStatus.QUEUED)
    make_letter(meeting, practice, status=LetterStatus.MANUAL, manual_reason="No box.")
    concluded(meeting)
    client.force_login(make_member(meeting.team, role=Role.COORDINATOR))

    body = panel(client, meeting)

    progress_url = reverse("mdt:meeting_letters_progress", args=[meeting.public_id])
    assert f'hx-get="{progress_url}?sent=1&amp;failed=0"' in body
    assert 'hx-trigger="every 2s"' in body
    assert """hx-headers='{"X-Background-Poll": "1"}'""" in body
    assert '<label class="nhsuk-label" for="letters-progress"' in body
    assert "1 of 2 letters sent" in body  # the letter for manual delivery is not waiting
    assert 'max="2" value="1"' in body
    assert 'role="status" aria-live="polite" id="letters-announcement"' in body
    assert '<span id="letters-announcement-text"></span>' in body  # nothing said on loading


def test_the_panel_does_not_poll_when_nothing_is_on_its_way(client, meeting, practice):
    make_letter(meeting, practice, status=LetterStatus.ACKNOWLEDGED)
    make_letter(meeting, practice, status=LetterStatus.FAILED, last_error="MESH said no")
    make_letter(meeting, practice, status=LetterStatus.SUPERSEDED)
    concluded(meeting)
    client.force_login(make_member(meeting.team, role=Role.COORDINATOR))

    body = panel(client, meeting)

    assert "every 2s" not in body
    assert "1 of 2 letters sent" in body
    assert "1 failed." in body
    assert "Resend" in body


def test_the_progress_poll_announces_the_count_only_when_it_changes(client, meeting, practice):
    make_letter(meeting, practice, status=LetterStatus.SENT)
    sending = make_letter(
        meeting,
        practice,
        status=LetterStatus.SENDING,
        pdf="letters/a.pdf",
        sha256="0" * 64,
        rendered_at=timezone.now(),
    )
    concluded(meeting)
    client.force_login(make_member(meeting.team, role=Role.COORDINATOR))

    unchanged = poll(client, meeting, sent=1).content.decode()
    changed = poll(client, meeting, sent=0).content.decode()
    Letter.objects.filter(pk=sending.pk).update(status=LetterStatus.SENT, sent_at=timezone.now())
    done = poll(client, meeting, sent=1)

    assert "<html" not in unchanged
    assert 'hx-trigger="every 2s"' in unchanged and 'hx-trigger="every 2s"' in changed
    assert "letters-announcement-text" not in unchanged
    assert (
        '<span id="letters-announcement-text" hx-swap-oob="true">1 of 2 letters sent.</span>'
        in changed
    )
    body = done.content.decode()
    assert done.status_code == 200
    assert "every 2s" not in body  # the answer without the trigger stops the polling
    assert 'hx-swap-oob="true">2 of 2 letters sent.</span>' in body
    assert '<div id="send-all-summary" hx-swap-oob="true">' in body
    assert set(audited()[-1].patient_ids) == set(
        Letter.objects.values_list("outcome__case__patient_id", flat=True)
    )


def test_the_progress_poll_refreshes_the_send_all_summary_only_where_the_form_is(
    client, meeting, practice
):
    make_letter(meeting, practice, status=LetterStatus.QUEUED)
    client.force_login(make_member(meeting.team, role=Role.COORDINATOR))  # not concluded yet
    assert "send-all-summary" not in poll(client, meeting, sent=0).content.decode()


def test_the_progress_poll_does_not_extend_the_session(client, meeting, practice):
    make_letter(meeting, practice, status=LetterStatus.QUEUED)
    coordinator = make_member(meeting.team, role=Role.COORDINATOR)
    client.post("/accounts/login/", {"username": coordinator.username, "password": TEST_PASSWORD})
    session = client.session
    last_seen = (timezone.now() - timezone.timedelta(minutes=5)).isoformat()
    session[LAST_SEEN] = last_seen
    session.save()

    # Even without the header: the view is only ever polled.
    response = client.get(reverse("mdt:meeting_letters_progress", args=[meeting.public_id]))

    assert response.status_code == 200
    assert client.session[LAST_SEEN] == last_seen


@pytest.mark.parametrize("who", ["another team", "gp"])
def test_the_progress_poll_is_for_the_meetings_team(client, meeting, practice, who):
    make_letter(meeting, practice, status=LetterStatus.QUEUED)
    if who == "gp":
        client.force_login(gp_of(practice))
    else:
        client.force_login(make_member(MeetingFactory().team, role=Role.COORDINATOR))
    assert poll(client, meeting, sent=0).status_code == 404


def test_the_panel_shows_the_meetings_turnaround(client, meeting, practice):
    for minutes in (10, 20, 60):
        letter = make_letter(meeting, practice, status=LetterStatus.SENT)
        Letter.objects.filter(pk=letter.pk).update(
            sent_at=letter.outcome.signed_at + timezone.timedelta(minutes=minutes)
        )
    client.force_login(make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.SURGEON))

    body = panel(client, meeting)

    assert "Signed to sent" in body
    assert "median 20 min, longest 1 h 0 min" in body
    assert "None acknowledged by the practice yet" in body


# -- the administrators' turnaround report ---------------------------------------------------------


def held_days_ago(team, days: int) -> Meeting:
    starts_at = timezone.now() - timezone.timedelta(days=days)
    return MeetingFactory(team=team, starts_at=starts_at, cutoff_at=starts_at)


REPORT = reverse("mdt:letter_turnaround")


def test_the_report_shows_the_last_four_weeks_of_the_organisations_meetings(
    client, trust, administrator, practice
):
    recent = held_days_ago(TeamFactory(host=trust, name="Lung MDT"), 3)
    sent = make_letter(recent, practice, status=LetterStatus.SENT)
    Letter.objects.filter(pk=sent.pk).update(
        sent_at=sent.outcome.signed_at + timezone.timedelta(minutes=12)
    )
    make_letter(recent, practice, status=LetterStatus.MANUAL, manual_reason="No box.")
    old = held_days_ago(recent.team, 40)
    elsewhere = held_days_ago(TeamFactory(name="Elsewhere MDT"), 3)
    client.force_login(administrator)
    events_before = AuditEvent.objects.count()

    response = client.get(REPORT)

    body = response.content.decode()
    assert response.status_code == 200
    assert f'id="turnaround-{recent.public_id}"' in body
    assert f'id="turnaround-{old.public_id}"' not in body
    assert f'id="turnaround-{elsewhere.public_id}"' not in body
    assert "Lung MDT" in body and "Elsewhere MDT" not in body
    assert "12 min" in body
    today = timezone.localdate()
    assert f'value="{(today - timezone.timedelta(weeks=4)).isoformat()}"' in body
    assert f'value="{today.isoformat()}"' in body
    for patient_letter in Letter.objects.select_related("outcome__case__patient"):
        assert patient_letter.outcome.case.patient.family_name not in body
    assert AuditEvent.objects.count() == events_before  # no patient shown, nothing to audit
    # The administrator is on none of the teams, so no link to a page they could not open.
    assert reverse("mdt:meeting_letters", args=[recent.public_id]) not in body


def test_the_report_filters_by_dates_and_team(client, trust, administrator):
    lung, breast = TeamFactory(host=trust, name="Lung MDT"), TeamFactory(host=trust, name="Breast")
    lung_old, lung_new = held_days_ago(lung, 60), held_days_ago(lung, 2)
    breast_old = held_days_ago(breast, 60)
    client.force_login(administrator)
    first = (timezone.localdate() - timezone.timedelta(days=70)).isoformat()
    last = (timezone.localdate() - timezone.timedelta(days=50)).isoformat()

    body = client.get(REPORT, {"start": first, "end": last, "team": lung.pk}).content.decode()

    assert f'id="turnaround-{lung_old.public_id}"' in body
    assert f'id="turnaround-{lung_new.public_id}"' not in body
    assert f'id="turnaround-{breast_old.public_id}"' not in body


def test_the_report_links_meetings_of_teams_the_administrator_is_on(client, trust):
    mine, theirs = (
        held_days_ago(TeamFactory(host=trust), 1),
        held_days_ago(TeamFactory(host=trust), 1),
    )
    user = make_member(mine.team, role=Role.COORDINATOR)
    MembershipFactory(user=user, organisation=trust, role=Role.ADMIN)
    client.force_login(user)

    body = client.get(REPORT).content.decode()

    assert reverse("mdt:meeting_letters", args=[mine.public_id]) in body
    assert reverse("mdt:meeting_letters", args=[theirs.public_id]) not in body
    assert f'id="turnaround-{theirs.public_id}"' in body


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"start": "2025-03-10", "end": "2025-03-01"}, "The last date must be the same as"),
        ({"start": "10 March"}, "Enter the first date as a real date"),
        ({"team": "999999"}, "Choose one of your organisation"),
    ],
)
def test_the_report_says_what_is_wrong_with_the_filter(client, administrator, query, error):
    held_days_ago(TeamFactory(), 1)  # another organisation's team: never a choice
    client.force_login(administrator)
    body = client.get(REPORT, query).content.decode()
    assert "There is a problem" in body
    assert error in body
    assert "app-turnaround-table" not in body


def test_another_organisations_team_is_not_a_choice(client, administrator, trust):
    elsewhere = TeamFactory(name="Elsewhere MDT")
    TeamFactory(host=trust, name="Lung MDT")
    client.force_login(administrator)
    body = client.get(REPORT, {"team": elsewhere.pk}).content.decode()
    assert "Choose one of your organisation" in body
    assert "Elsewhere MDT" not in body


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.CLINICIAN, Role.CHAIR, Role.GP])
def test_the_report_is_for_administrators(client, meeting, role):
    client.force_login(make_member(meeting.team, role=role))
    assert client.get(REPORT).status_code == 403


def test_the_report_reads_a_fixed_number_of_queries(
    client, trust, administrator, practice, django_assert_max_num_queries
):
    team = TeamFactory(host=trust)
    make_letter(held_days_ago(team, 1), practice)
    client.force_login(administrator)
    with CaptureQueriesContext(connection) as one:
        client.get(REPORT)
    for days in range(2, 12):
        meeting = held_days_ago(team, days)
        make_letter(meeting, practice)
        make_letter(meeting, practice, status=LetterStatus.HELD)

    with django_assert_max_num_queries(len(one)):
        body = client.get(REPORT).content.decode()

    assert body.count('id="turnaround-') == 11


def test_administrators_have_the_report_in_the_header(client, administrator, meeting):
    client.force_login(administrator)
    body = client.get(reverse("mdt:dashboard")).content.decode()
    assert REPORT in body and "Letter turnaround" in body
    client.force_login(make_member(meeting.team, role=Role.COORDINATOR))
    assert REPORT not in client.get(reverse("mdt:dashboard")).content.decode()
