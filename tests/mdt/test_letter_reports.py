"""What the pages count about letters: the progress of a meeting's letters, what "Send all
letters" would do, and turnaround from signing to sent and to acknowledged per meeting (London
calendar days), for the administrators' report of their organisation's teams."""

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from accounts.models import Role
from mdt import letter_reports
from mdt.letter_reports import LetterProgress, SendAllPreview, Turnaround
from mdt.models import Letter, LetterStatus, Meeting, Outcome, PatientTold
from tests.factories import (
    CaseFactory,
    MeetingFactory,
    MembershipFactory,
    OrganisationFactory,
    SnapshotFactory,
    TeamFactory,
    UserFactory,
    make_member,
)

LONDON = ZoneInfo("Europe/London")
UTC = ZoneInfo("UTC")
S = LetterStatus


def at(text: str, zone=LONDON) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def letter(meeting, status=S.SENT, *, signed=None, sent=None, acknowledged=None, told=True):
    """A letter of a new case of the meeting, its outcome signed at ``signed``."""
    case = CaseFactory(meeting=meeting)
    signed = signed or timezone.now()
    outcome = Outcome.objects.create(
        case=case,
        recorded_by=UserFactory(),
        discussion_date=signed.date(),
        category="treatment",
        plan="Right upper lobectomy.",
        patient_informed=told,
        informed_by="Dr Surgeon in clinic" if told else "",
        signed_at=signed,
        signed_by=UserFactory(),
        snapshot=SnapshotFactory(patient=case.patient),
    )
    fields = {}
    if status in (S.RENDERED, S.SENDING, S.SENT, S.ACKNOWLEDGED):
        fields = {"pdf": "letters/test.pdf", "sha256": "0" * 64, "rendered_at": signed}
    if status == S.MANUAL:
        fields["manual_reason"] = "The practice has no MESH mailbox."
    return Letter.objects.create(
        outcome=outcome,
        status=status,
        sent_at=sent,
        acknowledged_at=acknowledged,
        created_at=signed,
        **fields,
    )


# -- the progress bar --------------------------------------------------------------------------


def test_progress_counts_what_mesh_accepted_of_the_letters_that_go_by_mesh():
    progress = letter_reports.letter_progress(
        [S.SENT, S.ACKNOWLEDGED, S.QUEUED, S.RENDERED, S.SENDING, S.FAILED, S.HELD]
        + [S.MANUAL, S.SUPERSEDED]
    )

    assert progress == LetterProgress(to_send=7, sent=2, on_its_way=3, failed=1, held=1)
    assert progress.moving
    assert progress.label == "2 of 7 letters sent"
    assert progress.announcement == "2 of 7 letters sent, 1 failed."
    assert progress.percent == 29


def test_progress_stops_moving_when_nothing_is_on_its_way():
    progress = letter_reports.letter_progress([S.SENT, S.FAILED, S.MANUAL])
    assert not progress.moving
    assert progress.label == "1 of 2 letters sent"


def test_progress_of_one_letter_and_of_none():
    assert letter_reports.letter_progress([S.QUEUED]).label == "0 of 1 letter sent"
    nothing = letter_reports.letter_progress([S.MANUAL, S.SUPERSEDED])
    assert (nothing.to_send, nothing.percent, nothing.moving) == (0, 100, False)


# -- what "Send all letters" would do ------------------------------------------------------------


@pytest.mark.django_db
def test_send_all_preview_sorts_held_letters_by_whether_the_patient_was_told():
    meeting = MeetingFactory()
    letter(meeting, S.HELD, told=True)
    told_later = letter(meeting, S.HELD, told=False)
    PatientTold.objects.create(
        case=told_later.outcome.case,
        outcome=told_later.outcome,
        told_by="Clinical nurse specialist",
        told_at=timezone.now(),
        recorded_by=UserFactory(),
    )
    for status in (S.HELD, S.HELD, S.FAILED, S.SENT, S.QUEUED, S.MANUAL):
        letter(meeting, status, told=False)
    other_meeting = MeetingFactory()
    letter(other_meeting, S.HELD, told=False)
    loaded = Letter.objects.filter(outcome__case__meeting=meeting).select_related("outcome")

    preview = letter_reports.send_all_preview(meeting, loaded)

    assert preview == SendAllPreview(told_held=2, failed=1, untold_held=2)
    assert preview.anything_waiting


@pytest.mark.django_db
def test_send_all_preview_of_letters_all_on_their_way_has_nothing_waiting():
    meeting = MeetingFactory()
    letter(meeting, S.SENT)
    preview = letter_reports.send_all_preview(meeting, Letter.objects.select_related("outcome"))
    assert not preview.anything_waiting


# -- turnaround --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_meeting_turnaround_medians_longest_and_counts():
    meeting = MeetingFactory()
    signed = at("2025-03-04 10:00")
    letter(
        meeting,
        S.ACKNOWLEDGED,
        signed=signed,
        sent=signed + timedelta(minutes=10),
        acknowledged=signed + timedelta(hours=2),
    )
    letter(
        meeting,
        S.ACKNOWLEDGED,
        signed=signed,
        sent=signed + timedelta(minutes=30),
        acknowledged=signed + timedelta(hours=4),
    )
    letter(meeting, S.SENT, signed=signed, sent=signed + timedelta(hours=20))
    letter(meeting, S.HELD, signed=signed, told=False)
    letter(meeting, S.FAILED, signed=signed)
    letter(meeting, S.QUEUED, signed=signed)
    letter(meeting, S.MANUAL, signed=signed)
    letter(meeting, S.SUPERSEDED, signed=signed)  # replaced by an amendment: not counted
    letter(MeetingFactory(), S.SENT, signed=signed, sent=signed + timedelta(days=3))

    turnaround = letter_reports.meeting_turnaround(meeting)

    assert turnaround == Turnaround(
        letters=7,
        sent=3,
        acknowledged=2,
        median_to_sent=timedelta(minutes=30),
        longest_to_sent=timedelta(hours=20),
        median_to_acknowledged=timedelta(hours=3),  # between 2 h and 4 h
        longest_to_acknowledged=timedelta(hours=4),
        sent_same_day=2,  # the third went at 06:00 the next morning
        acknowledged_same_day=2,
        not_sent=3,
        held=1,
        not_acknowledged=1,
        manual=1,
    )


@pytest.mark.django_db
def test_the_same_day_is_the_london_calendar_day():
    """In summer London is an hour ahead of UTC: 23:30 and 00:10 in London are one UTC day but
    two London days, and 00:20 and 01:30 in London are two UTC days but one London day."""
    meeting = MeetingFactory()
    late = at("2025-06-10 23:30")
    assert late.astimezone(UTC).date() == (late + timedelta(minutes=40)).astimezone(UTC).date()
    letter(
        meeting,
        S.ACKNOWLEDGED,
        signed=late,
        sent=late + timedelta(minutes=40),
        acknowledged=late + timedelta(minutes=50),
    )
    early = at("2025-06-11 00:20")
    assert early.astimezone(UTC).date() == date(2025, 6, 10)
    for minutes in (70, 90):
        letter(meeting, S.SENT, signed=early, sent=early + timedelta(minutes=minutes))

    with timezone.override(UTC):  # London's days, whatever zone the server is in
        turnaround = letter_reports.meeting_turnaround(meeting)

    assert (turnaround.sent, turnaround.sent_same_day) == (3, 2)  # in UTC days it would be 1
    assert (turnaround.acknowledged, turnaround.acknowledged_same_day) == (1, 0)


@pytest.mark.django_db
def test_a_letter_mesh_reported_failed_after_sending_is_not_counted_as_sent():
    meeting = MeetingFactory()
    signed = at("2025-03-04 10:00")
    letter(meeting, S.FAILED, signed=signed, sent=signed + timedelta(minutes=5))

    turnaround = letter_reports.meeting_turnaround(meeting)

    assert (turnaround.sent, turnaround.sent_same_day, turnaround.not_sent) == (0, 0, 1)
    assert turnaround.median_to_sent is None


@pytest.mark.django_db
def test_a_meeting_without_letters_has_an_empty_turnaround():
    assert letter_reports.meeting_turnaround(MeetingFactory()) == Turnaround()


# -- the administrators' report ----------------------------------------------------------------


def meeting_at(team, starts_at: datetime) -> Meeting:
    return MeetingFactory(team=team, starts_at=starts_at, cutoff_at=starts_at - timedelta(days=1))


@pytest.mark.django_db
def test_the_report_covers_the_teams_the_administrators_organisation_hosts(trust, administrator):
    lung, breast = TeamFactory(host=trust, name="Lung"), TeamFactory(host=trust, name="Breast")
    elsewhere = TeamFactory(name="Elsewhere")
    lung_meeting = meeting_at(lung, at("2025-03-04 09:00"))
    breast_meeting = meeting_at(breast, at("2025-03-05 09:00"))
    meeting_at(elsewhere, at("2025-03-04 09:00"))

    report = letter_reports.turnaround_report(
        administrator, first_day=date(2025, 3, 1), last_day=date(2025, 3, 31)
    )
    only_lung = letter_reports.turnaround_report(
        administrator, first_day=date(2025, 3, 1), last_day=date(2025, 3, 31), team=lung
    )

    assert [row.meeting for row in report.rows] == [breast_meeting, lung_meeting]  # newest first
    assert [row.meeting for row in only_lung.rows] == [lung_meeting]
    assert set(letter_reports.report_teams(administrator)) == {lung, breast}


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.CLINICIAN, Role.CHAIR, Role.GP])
def test_only_administrators_have_teams_to_report_on(trust, role):
    user = make_member(TeamFactory(host=trust), role=role)
    assert not letter_reports.report_teams(user).exists()


@pytest.mark.django_db
def test_an_administrator_of_another_organisation_reports_on_none_of_these(trust):
    meeting_at(TeamFactory(host=trust), at("2025-03-04 09:00"))
    other = UserFactory()
    MembershipFactory(user=other, organisation=OrganisationFactory(), role=Role.ADMIN)
    MembershipFactory(user=other, organisation=trust, role=Role.COORDINATOR)

    report = letter_reports.turnaround_report(
        other, first_day=date(2025, 3, 1), last_day=date(2025, 3, 31)
    )

    assert report.rows == []


@pytest.mark.django_db
def test_the_report_dates_are_london_days_both_included(trust, administrator):
    team = TeamFactory(host=trust)
    first = meeting_at(team, at("2025-06-01 00:30"))  # 31 May in UTC
    last = meeting_at(team, at("2025-06-07 23:30"))
    meeting_at(team, at("2025-05-31 23:30"))
    meeting_at(team, at("2025-06-08 00:30"))

    report = letter_reports.turnaround_report(
        administrator, first_day=date(2025, 6, 1), last_day=date(2025, 6, 7)
    )

    assert [row.meeting for row in report.rows] == [last, first]


@pytest.mark.django_db
def test_the_report_gives_each_meeting_its_letters_and_a_total(trust, administrator):
    team = TeamFactory(host=trust)
    busy, quiet = meeting_at(team, at("2025-03-04 09:00")), meeting_at(team, at("2025-03-11 09:00"))
    signed = at("2025-03-04 12:00")
    letter(busy, S.SENT, signed=signed, sent=signed + timedelta(minutes=10))
    letter(busy, S.SENT, signed=signed, sent=signed + timedelta(minutes=50))
    letter(busy, S.MANUAL, signed=signed)
    outside = meeting_at(team, at("2025-02-04 09:00"))
    letter(outside, S.SENT, signed=signed, sent=signed + timedelta(days=2))

    report = letter_reports.turnaround_report(
        administrator, first_day=date(2025, 3, 1), last_day=date(2025, 3, 31)
    )

    rows = {row.meeting: row.turnaround for row in report.rows}
    assert rows[quiet] == Turnaround()
    assert (rows[busy].letters, rows[busy].sent, rows[busy].manual) == (3, 2, 1)
    assert rows[busy].median_to_sent == timedelta(minutes=30)
    assert report.total.letters == 3
    assert report.total.longest_to_sent == timedelta(minutes=50)  # not the meeting outside


@pytest.mark.django_db
def test_the_report_reads_a_fixed_number_of_queries(
    trust, administrator, django_assert_max_num_queries
):
    team = TeamFactory(host=trust)
    signed = at("2025-03-04 12:00")
    for day in range(1, 13):
        meeting = meeting_at(team, at(f"2025-03-{day:02d} 09:00"))
        letter(meeting, S.ACKNOWLEDGED, signed=signed, sent=signed, acknowledged=signed)
        letter(meeting, S.HELD, signed=signed, told=False)
    administrator.roles()  # the view has read the user's roles before

    with django_assert_max_num_queries(3):
        report = letter_reports.turnaround_report(
            administrator, first_day=date(2025, 3, 1), last_day=date(2025, 3, 31)
        )
        names = [row.meeting.team.name for row in report.rows]

    assert len(names) == 12
    assert all(row.turnaround.letters == 2 for row in report.rows)


def test_the_default_period_is_the_last_four_weeks():
    assert letter_reports.default_period(date(2025, 3, 29)) == (date(2025, 3, 1), date(2025, 3, 29))
