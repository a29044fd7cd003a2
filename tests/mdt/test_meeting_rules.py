"""The live meeting's rules: starting, moving between cases, discussion time, deferring and the
carry-over when the meeting is concluded."""

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from accounts.models import Role
from mdt import conclusion, live, outcomes
from mdt.models import Case, CoreRole, DiscussionPeriod, Meeting
from mdt.services import ListError
from tests.factories import CaseFactory, MeetingFactory, SnapshotFactory, make_member
from tests.mdt.test_outcomes import COMPLETE

pytestmark = pytest.mark.django_db


@pytest.fixture
def meeting():
    return MeetingFactory()


@pytest.fixture
def chair(meeting):
    user = make_member(meeting.team, role=Role.CHAIR, core_role=CoreRole.CHAIR)
    meeting.chair = user
    meeting.save()
    return user


@pytest.fixture
def coordinator(meeting):
    return make_member(meeting.team, role=Role.COORDINATOR)


@pytest.fixture
def cases(meeting):
    made = []
    for position in (1, 2, 3):
        case = CaseFactory(meeting=meeting, position=position)
        case.snapshot = SnapshotFactory(patient=case.patient)
        case.save()
        made.append(case)
    return made


def sign(chair, case):
    outcomes.save_draft(user=chair, case=case, revision=0, data=COMPLETE)
    return outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)


def test_starting_closes_the_list_and_shows_the_first_case(coordinator, meeting, cases):
    started = live.start_meeting(user=coordinator, meeting=meeting)
    assert started.status == Meeting.Status.IN_PROGRESS
    assert started.list_closed_at is not None
    assert started.current_case == cases[0]
    again = live.start_meeting(user=coordinator, meeting=meeting)
    assert again.started_at == started.started_at
    assert DiscussionPeriod.objects.filter(case=cases[0]).count() == 1


def test_clinicians_cannot_run_the_meeting(meeting, cases):
    surgeon = make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.SURGEON)
    with pytest.raises(ListError, match="chair or the MDT coordinator"):
        live.start_meeting(user=surgeon, meeting=meeting)


def test_every_change_for_followers_bumps_the_live_version(chair, meeting, cases):
    meeting = live.start_meeting(user=chair, meeting=meeting)
    versions = [meeting.live_version]
    live.show_case(user=chair, meeting=meeting, case=cases[1])
    versions.append(Meeting.objects.get(pk=meeting.pk).live_version)
    outcomes.save_draft(user=chair, case=cases[1], revision=0, data=COMPLETE)
    versions.append(Meeting.objects.get(pk=meeting.pk).live_version)
    live.record_attendance(user=chair, meeting=meeting, attendee=chair, status="present")
    versions.append(Meeting.objects.get(pk=meeting.pk).live_version)
    assert versions == sorted(set(versions))


def test_discussion_time_adds_up_the_stretches_a_case_was_on_screen(chair, meeting, cases):
    start = timezone.now()
    with mock.patch("django.utils.timezone.now", return_value=start):
        live.start_meeting(user=chair, meeting=meeting)
    with mock.patch("django.utils.timezone.now", return_value=start + timedelta(minutes=3)):
        live.show_case(user=chair, meeting=meeting, case=cases[1])
    with mock.patch("django.utils.timezone.now", return_value=start + timedelta(minutes=5)):
        live.show_case(user=chair, meeting=meeting, case=cases[0])
    with mock.patch("django.utils.timezone.now", return_value=start + timedelta(minutes=6)):
        live.show_case(user=chair, meeting=meeting, case=cases[2])
        seconds = conclusion.discussion_seconds(meeting)
    assert seconds[cases[0].pk] == 4 * 60
    assert seconds[cases[1].pk] == 2 * 60
    assert seconds[cases[2].pk] == 0


def test_next_and_previous_follow_the_list_order(chair, meeting, cases):
    meeting = live.start_meeting(user=chair, meeting=meeting)
    assert live.neighbour(meeting, "previous") is None
    assert live.neighbour(meeting, "next") == cases[1]
    live.show_case(user=chair, meeting=meeting, case=cases[2])
    meeting.refresh_from_db()
    assert live.neighbour(meeting, "next") is None


def test_quoracy_follows_people_joining_and_leaving(chair, coordinator, meeting):
    meeting.team.core_roles = [CoreRole.CHAIR, CoreRole.RADIOLOGIST]
    meeting.team.save()
    radiologist = make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.RADIOLOGIST)
    live.record_attendance(user=chair, meeting=meeting, attendee=chair, status="present")
    assert live.quoracy(meeting).missing_roles == [CoreRole.RADIOLOGIST]
    live.record_attendance(user=radiologist, meeting=meeting, attendee=radiologist, status="remote")
    assert live.quoracy(meeting).quorate
    live.record_departure(user=coordinator, meeting=meeting, attendee=radiologist)
    assert not live.quoracy(meeting).quorate
    live.record_attendance(user=radiologist, meeting=meeting, attendee=radiologist, status="remote")
    assert live.quoracy(meeting).quorate


def test_only_members_attend_and_only_runners_record_others(chair, meeting):
    outsider = make_member(MeetingFactory().team, role=Role.CLINICIAN)
    with pytest.raises(ListError, match="Only members"):
        live.record_attendance(user=chair, meeting=meeting, attendee=outsider, status="present")
    surgeon = make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.SURGEON)
    with pytest.raises(ListError, match="others' attendance"):
        live.record_attendance(user=surgeon, meeting=meeting, attendee=chair, status="present")


def test_concluding_needs_every_case_final(chair, coordinator, meeting, cases):
    live.start_meeting(user=chair, meeting=meeting)
    sign(chair, cases[0])
    with pytest.raises(ListError, match="2 case"):
        conclusion.conclude_meeting(user=chair, meeting=meeting)
    conclusion.defer_case(user=chair, case=cases[1], reason="Awaiting PET-CT")
    conclusion.withdraw_case(user=coordinator, case=cases[2], reason="Listed in error")
    result = conclusion.conclude_meeting(user=chair, meeting=meeting)
    assert result.meeting.status == Meeting.Status.CONCLUDED
    assert result.meeting.current_case is None
    assert [Case.objects.get(pk=c.pk).status for c in cases] == [
        Case.Status.DISCUSSED,
        Case.Status.DEFERRED,
        Case.Status.REMOVED,
    ]
    # a second click changes nothing
    assert conclusion.conclude_meeting(user=chair, meeting=meeting).carried_over == []


def test_a_deferred_case_is_carried_to_the_next_meeting(chair, meeting, cases):
    later = MeetingFactory(team=meeting.team, starts_at=meeting.starts_at + timedelta(days=7))
    live.start_meeting(user=chair, meeting=meeting)
    for case in cases[1:]:
        sign(chair, case)
    with mock.patch("mdt.conclusion.request_case_population") as populate:
        conclusion.defer_case(user=chair, case=cases[0], reason="Awaiting PET-CT")
        result = conclusion.conclude_meeting(user=chair, meeting=meeting)
    [(deferred, carried, created)] = result.carried_over
    assert created and carried.meeting == later
    assert carried.patient == cases[0].patient
    assert carried.question == cases[0].question
    assert carried.status == Case.Status.LISTED
    assert carried.late_reason == ""  # the next list is still open
    assert carried.snapshot == cases[0].snapshot  # the record so far, until it is refreshed
    assert Case.objects.get(pk=cases[0].pk).carried_over_to == carried
    assert list(carried.carried_over_from.all()) == [Case.objects.get(pk=cases[0].pk)]
    populate.assert_called_once()


def test_the_next_meeting_is_created_when_the_team_has_none(chair, meeting, cases):
    live.start_meeting(user=chair, meeting=meeting)
    for case in cases[1:]:
        sign(chair, case)
    conclusion.defer_case(user=chair, case=cases[0], reason="Patient to decide")
    with mock.patch("mdt.conclusion.request_case_population"):
        [(_d, carried, _c)] = conclusion.conclude_meeting(user=chair, meeting=meeting).carried_over
    created = carried.meeting
    assert created.team == meeting.team
    assert (
        timezone.localtime(created.starts_at).time() == timezone.localtime(meeting.starts_at).time()
    )
    assert (
        timezone.localtime(created.starts_at).date() - timezone.localtime(meeting.starts_at).date()
    ).days == 7
    assert created.chair == meeting.chair


def test_a_closed_next_list_takes_the_case_with_the_reason(chair, meeting, cases):
    later = MeetingFactory(
        team=meeting.team,
        starts_at=meeting.starts_at + timedelta(days=7),
        status=Meeting.Status.LIST_CLOSED,
    )
    live.start_meeting(user=chair, meeting=meeting)
    for case in cases[1:]:
        sign(chair, case)
    conclusion.defer_case(user=chair, case=cases[0], reason="Awaiting PET-CT")
    with mock.patch("mdt.conclusion.request_case_population"):
        [(_d, carried, _c)] = conclusion.conclude_meeting(user=chair, meeting=meeting).carried_over
    assert carried.meeting == later
    assert "Deferred at the meeting of" in carried.late_reason
    assert "Awaiting PET-CT" in carried.late_reason


def test_a_patient_already_listed_next_time_is_linked_not_listed_twice(chair, meeting, cases):
    later = MeetingFactory(team=meeting.team, starts_at=meeting.starts_at + timedelta(days=7))
    existing = CaseFactory(meeting=later, patient=cases[0].patient)
    live.start_meeting(user=chair, meeting=meeting)
    for case in cases[1:]:
        sign(chair, case)
    conclusion.defer_case(user=chair, case=cases[0], reason="Awaiting PET-CT")
    [(_d, carried, created)] = conclusion.conclude_meeting(user=chair, meeting=meeting).carried_over
    assert not created and carried == existing
    assert later.cases.filter(patient=cases[0].patient).count() == 1


def test_for_information_only_for_cases_listed_so(chair, meeting, cases):
    live.start_meeting(user=chair, meeting=meeting)
    with pytest.raises(ListError, match="listed for information"):
        conclusion.note_for_information(user=chair, case=cases[0])
    Case.objects.filter(pk=cases[0].pk).update(triage=Case.Triage.FOR_INFORMATION)
    noted = conclusion.note_for_information(user=chair, case=Case.objects.get(pk=cases[0].pk))
    assert noted.status == Case.Status.FOR_INFORMATION
    assert not noted.outcomes.exists()


def test_a_case_with_an_unsigned_outcome_cannot_be_deferred(chair, meeting, cases):
    live.start_meeting(user=chair, meeting=meeting)
    outcomes.save_draft(user=chair, case=cases[0], revision=0, data=COMPLETE)
    with pytest.raises(ListError, match="unsigned outcome"):
        conclusion.defer_case(user=chair, case=cases[0], reason="Awaiting PET-CT")


def test_deferring_needs_a_reason_and_a_live_meeting(chair, meeting, cases):
    with pytest.raises(ListError, match="in progress"):
        conclusion.defer_case(user=chair, case=cases[0], reason="Awaiting PET-CT")
    live.start_meeting(user=chair, meeting=meeting)
    with pytest.raises(ListError, match="reason"):
        conclusion.defer_case(user=chair, case=cases[0], reason="")


def test_withdrawing_in_the_meeting_is_for_coordinators_and_chairs(meeting, chair, cases):
    surgeon = make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.SURGEON)
    live.start_meeting(user=chair, meeting=meeting)
    with pytest.raises(ListError):
        conclusion.withdraw_case(user=surgeon, case=cases[0], reason="Died")
