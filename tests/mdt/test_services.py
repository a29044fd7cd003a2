import uuid
from datetime import date, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from accounts.models import Role
from mdt import services
from mdt.models import Case, CoreRole, Meeting
from records.nhs_numbers import InvalidNHSNumber
from records.patient_index import UnknownPatient
from tests.factories import CaseFactory, MeetingFactory, PatientFactory, TeamFactory, make_member

pytestmark = pytest.mark.django_db
LONDON = ZoneInfo("Europe/London")


@pytest.fixture
def meeting():
    return MeetingFactory()


@pytest.fixture
def coordinator(meeting):
    return make_member(meeting.team, role=Role.COORDINATOR)


@pytest.fixture
def clinician(meeting):
    return make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.SURGEON)


def add(user, meeting, patient, **overrides):
    fields = {"nhs_number": patient.nhs_number, "question": "Stage and plan?", "referrer": "Dr R"}
    fields.update(overrides)
    case, _created = services.add_case_to_meeting(
        user=user, meeting=meeting, request=services.AddCaseRequest(**fields)
    )
    return case


def test_adding_a_patient_lists_them_at_the_end(coordinator, meeting):
    first, second = PatientFactory(), PatientFactory()
    add(coordinator, meeting, first)
    case = add(
        coordinator, meeting, second, nhs_number=f" {second.nhs_number[:3]}-{second.nhs_number[3:]}"
    )
    assert case.patient == second
    assert list(meeting.cases.listed().values_list("patient", flat=True)) == [first.pk, second.pk]
    assert case.added_by == coordinator


def test_adding_same_patient_twice_is_refused(coordinator, meeting):
    patient = PatientFactory()
    add(coordinator, meeting, patient)
    with pytest.raises(services.ListError, match="already on this meeting's list"):
        add(coordinator, meeting, patient)
    assert meeting.cases.count() == 1


def test_a_removed_patient_can_be_listed_again(coordinator, meeting):
    patient = PatientFactory()
    case = add(coordinator, meeting, patient)
    services.remove_case(user=coordinator, case=case, reason="Listed in error")
    again = add(coordinator, meeting, patient)
    assert again.status == Case.Status.LISTED
    assert meeting.cases.count() == 2


def test_double_submit_adds_once(coordinator, meeting):
    patient = PatientFactory()
    submission = uuid.uuid4()
    request = services.AddCaseRequest(
        nhs_number=patient.nhs_number, question="Q?", referrer="Dr R", submission_id=submission
    )
    first, first_created = services.add_case_to_meeting(
        user=coordinator, meeting=meeting, request=request
    )
    again, again_created = services.add_case_to_meeting(
        user=coordinator, meeting=meeting, request=request
    )
    assert first_created
    assert (again.pk, again_created) == (first.pk, False)
    assert meeting.cases.count() == 1


def test_mistyped_nhs_number_is_refused_and_nothing_is_added(coordinator, meeting):
    patient = PatientFactory()
    wrong_check_digit = patient.nhs_number[:9] + str((int(patient.nhs_number[9]) + 1) % 10)
    with pytest.raises(InvalidNHSNumber):
        add(coordinator, meeting, patient, nhs_number=wrong_check_digit)
    assert not meeting.cases.exists()


def test_unknown_nhs_number_is_refused_never_invented(coordinator, meeting):
    with pytest.raises(UnknownPatient, match="does not know this NHS number"):
        add(coordinator, meeting, PatientFactory.build(nhs_number="9990000042"))
    assert not meeting.cases.exists()


def test_adding_after_the_cutoff_needs_a_coordinator_and_a_reason(coordinator, clinician):
    meeting = MeetingFactory(
        team=coordinator.team_memberships.get().team,
        starts_at=timezone.now() + timedelta(hours=2),
        cutoff_at=timezone.now() - timedelta(hours=1),
    )
    patient = PatientFactory()
    with pytest.raises(services.ListError, match="Ask the MDT coordinator") as refused:
        add(clinician, meeting, patient)
    assert refused.value.field is None
    with pytest.raises(services.ListError, match="Give the reason") as no_reason:
        add(coordinator, meeting, patient)
    assert no_reason.value.field == "late_reason"
    case = add(coordinator, meeting, patient, late_reason="Urgent: cord compression")
    assert case.late_reason == "Urgent: cord compression"
    assert case.added_late


def test_closed_list_refuses_changes(coordinator, meeting):
    case = CaseFactory(meeting=meeting)
    services.close_list(user=coordinator, meeting=meeting)
    with pytest.raises(services.ListError, match="was closed"):
        add(coordinator, meeting, PatientFactory())
    with pytest.raises(services.ListError, match="was closed"):
        services.move_case(user=coordinator, case=case, direction="up")
    with pytest.raises(services.ListError, match="was closed"):
        services.remove_case(user=coordinator, case=case, reason="x")
    with pytest.raises(services.ListError, match="was closed"):
        services.close_list(user=coordinator, meeting=meeting)
    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.LIST_CLOSED
    assert meeting.list_closed_by == coordinator


def test_moving_swaps_neighbours_and_stops_at_the_ends(coordinator, meeting):
    a, b, c = (CaseFactory(meeting=meeting, position=n) for n in (1, 2, 3))
    services.move_case(user=coordinator, case=c, direction="up")
    assert list(meeting.cases.listed().order_by("position")) == [a, c, b]
    services.move_case(user=coordinator, case=a, direction="up")  # already first: no change
    services.move_case(user=coordinator, case=a, direction="down")
    assert list(meeting.cases.listed().order_by("position")) == [c, a, b]


def test_moving_skips_removed_cases(coordinator, meeting):
    a, removed, c = (CaseFactory(meeting=meeting, position=n) for n in (1, 2, 3))
    services.remove_case(user=coordinator, case=removed, reason="Duplicate referral")
    services.move_case(user=coordinator, case=c, direction="up")
    assert list(meeting.cases.listed().order_by("position")) == [c, a]


def test_only_list_managers_reorder_triage_and_remove(clinician, meeting):
    case = CaseFactory(meeting=meeting)
    for change in (
        lambda: services.move_case(user=clinician, case=case, direction="up"),
        lambda: services.set_triage(user=clinician, case=case, triage=Case.Triage.STANDARD_OF_CARE),
        lambda: services.remove_case(user=clinician, case=case, reason="x"),
        lambda: services.close_list(user=clinician, meeting=meeting),
    ):
        with pytest.raises(services.ListError, match="coordinator or chair"):
            change()


def test_triage_and_removal_are_recorded(coordinator, meeting):
    case = CaseFactory(meeting=meeting)
    services.set_triage(user=coordinator, case=case, triage=Case.Triage.STANDARD_OF_CARE)
    with pytest.raises(services.ListError, match="reason"):
        services.remove_case(user=coordinator, case=case, reason="  ")
    services.remove_case(user=coordinator, case=case, reason="Discussed at the breast MDT")
    case.refresh_from_db()
    assert case.triage == Case.Triage.STANDARD_OF_CARE
    assert (case.status, case.removed_reason, case.removed_by) == (
        Case.Status.REMOVED,
        "Discussed at the breast MDT",
        coordinator,
    )


def test_weekly_meetings_keep_local_time_across_clock_changes():
    team = TeamFactory()
    # From early March to mid April 2027: the clocks go forward on 28 March.
    meetings = services.generate_weekly_meetings(
        team=team, first_date=date(2027, 3, 2), at=time(9, 0), weeks=7
    )
    local = [m.starts_at.astimezone(LONDON) for m in meetings]
    assert [(t.hour, t.minute) for t in local] == [(9, 0)] * 7
    assert {t.weekday() for t in local} == {1}
    utc_hours = [m.starts_at.astimezone(ZoneInfo("UTC")).hour for m in meetings]
    assert utc_hours == [9, 9, 9, 9, 8, 8, 8]
    # ...and back on 31 October.
    autumn = services.generate_weekly_meetings(
        team=team, first_date=date(2027, 10, 19), at=time(13, 30), weeks=3
    )
    assert [m.starts_at.astimezone(LONDON).strftime("%H:%M") for m in autumn] == ["13:30"] * 3
    assert [m.cutoff_at.astimezone(LONDON).strftime("%a %H:%M") for m in autumn] == [
        "Mon 13:30"
    ] * 3


def test_generating_weekly_meetings_twice_adds_none(coordinator, meeting):
    team = meeting.team
    first = services.generate_weekly_meetings(
        team=team, first_date=date(2027, 1, 5), at=time(9), weeks=4
    )
    again = services.generate_weekly_meetings(
        team=team, first_date=date(2027, 1, 5), at=time(9), weeks=4
    )
    assert (len(first), len(again)) == (4, 0)


def test_scheduling_refuses_a_cutoff_after_the_start_and_a_clash():
    team = TeamFactory()
    start = timezone.now() + timedelta(days=3)
    with pytest.raises(services.ListError, match="cut-off must be before"):
        services.schedule_meeting(team=team, starts_at=start, cutoff_at=start + timedelta(hours=1))
    services.schedule_meeting(team=team, starts_at=start)
    with pytest.raises(services.ListError, match="already has a meeting"):
        services.schedule_meeting(team=team, starts_at=start)


def test_cases_are_listed_for_full_discussion_unless_triaged(coordinator, meeting):
    assert add(coordinator, meeting, PatientFactory()).triage == Case.Triage.FULL_DISCUSSION


def test_a_form_id_from_another_meeting_is_refused_not_shown(coordinator, meeting):
    submission = uuid.uuid4()
    add(coordinator, meeting, PatientFactory(), submission_id=submission)
    other_meeting = MeetingFactory(team=meeting.team)
    with pytest.raises(services.ListError, match="another meeting"):
        add(coordinator, other_meeting, PatientFactory(), submission_id=submission)
    assert not other_meeting.cases.exists()
