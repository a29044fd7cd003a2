"""The live meeting: starting it, attendance and quoracy, and which case is on the screen.

Every change that followers' screens must show bumps ``Meeting.live_version`` in the same
transaction, so a follower's poll compares one integer and usually answers "no change"."""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import Attendance, Case, CoreRole, DiscussionPeriod, Meeting, TeamMember
from .permissions import can_run_meeting
from .services import ListError


def bump_live_version(meeting_id: int) -> None:
    Meeting.objects.filter(pk=meeting_id).update(live_version=F("live_version") + 1)


def _locked_meeting(user, meeting: Meeting) -> Meeting:
    if not can_run_meeting(user):
        raise ListError("Only the chair or the MDT coordinator can run the meeting.")
    return Meeting.objects.select_for_update().select_related("team").get(pk=meeting.pk)


def _require_live(meeting: Meeting) -> None:
    if meeting.status != Meeting.Status.IN_PROGRESS:
        raise ListError(
            "This meeting is not in progress."
            if meeting.status != Meeting.Status.CONCLUDED
            else "This meeting has been concluded."
        )


def start_meeting(*, user, meeting: Meeting) -> Meeting:
    """Closes the list if still open and puts the first listed case on the screen."""
    with transaction.atomic():
        meeting = _locked_meeting(user, meeting)
        if meeting.status == Meeting.Status.IN_PROGRESS:
            return meeting  # a second click, or the coordinator and chair both pressing it
        if meeting.status == Meeting.Status.CONCLUDED:
            raise ListError("This meeting has been concluded.")
        now = timezone.now()
        if meeting.list_closed_at is None:
            meeting.list_closed_at, meeting.list_closed_by = now, user
        meeting.status = Meeting.Status.IN_PROGRESS
        meeting.started_at, meeting.started_by = now, user
        meeting.save(
            update_fields=["status", "started_at", "started_by", "list_closed_at", "list_closed_by"]
        )
        first = meeting.cases.listed().order_by("position", "id").first()
        if first is not None:
            put_on_screen(meeting, first, now)
        bump_live_version(meeting.pk)
        meeting.refresh_from_db()
        return meeting


def put_on_screen(meeting: Meeting, case: Case | None, now) -> None:
    DiscussionPeriod.objects.filter(case__meeting=meeting, ended_at__isnull=True).update(
        ended_at=now
    )
    if case is not None:
        DiscussionPeriod.objects.create(case=case, started_at=now)
    Meeting.objects.filter(pk=meeting.pk).update(current_case=case)
    meeting.current_case = case


def show_case(*, user, meeting: Meeting, case: Case) -> Meeting:
    """Puts a case on the screen (next, previous or jump). The case on screen before it stops
    its discussion clock."""
    with transaction.atomic():
        meeting = _locked_meeting(user, meeting)
        _require_live(meeting)
        if case.meeting_id != meeting.pk or case.status == Case.Status.REMOVED:
            raise ListError("That case is not on this meeting's list.")
        if meeting.current_case_id != case.pk:
            put_on_screen(meeting, case, timezone.now())
            bump_live_version(meeting.pk)
        return meeting


def neighbour(meeting: Meeting, direction: str) -> Case | None:
    """The case before or after the current one in list order (any state but withdrawn)."""
    cases = list(meeting.cases.on_list().order_by("position", "id").only("id", "position"))
    ids = [case.pk for case in cases]
    if not ids:
        return None
    if meeting.current_case_id not in ids:
        return cases[0]
    index = ids.index(meeting.current_case_id) + (1 if direction == "next" else -1)
    return cases[index] if 0 <= index < len(cases) else None


# Attendance and quoracy


@dataclass(frozen=True)
class Quoracy:
    core_roles: list[str]
    present_roles: list[str]
    missing_roles: list[str]

    @property
    def quorate(self) -> bool:
        return not self.missing_roles

    @property
    def missing_labels(self) -> list[str]:
        labels = dict(CoreRole.choices)
        return [labels.get(role, role) for role in self.missing_roles]


def quoracy(meeting: Meeting, attendance: list[Attendance] | None = None) -> Quoracy:
    if attendance is None:
        attendance = list(meeting.attendance.all())
    present = sorted({a.core_role for a in attendance if a.is_in_room})
    core = list(meeting.team.core_roles)
    return Quoracy(
        core_roles=core,
        present_roles=present,
        missing_roles=[role for role in core if role not in present],
    )


def record_attendance(
    *, user, meeting: Meeting, attendee, status: str, core_role: str | None = None
) -> Attendance:
    """Marks a team member present, remote or sending apologies. Anyone may mark themselves;
    the chair or coordinator marks others. Marking someone present again after they left
    clears ``left_at`` (they are back)."""
    if status not in Attendance.Status.values:
        raise ListError("Choose present, joined remotely or apologies.")
    if attendee != user and not can_run_meeting(user):
        raise ListError("Only the chair or the MDT coordinator can record others' attendance.")
    with transaction.atomic():
        meeting = Meeting.objects.select_for_update().get(pk=meeting.pk)
        if meeting.status == Meeting.Status.CONCLUDED:
            raise ListError("This meeting has been concluded; its attendance is final.")
        member = TeamMember.objects.filter(team_id=meeting.team_id, user=attendee).first()
        if member is None:
            raise ListError("Only members of this MDT can be recorded as attending.")
        now = timezone.now()
        in_room = status != Attendance.Status.APOLOGIES
        attendance, created = Attendance.objects.get_or_create(
            meeting=meeting,
            user=attendee,
            defaults={
                "core_role": core_role or member.core_role,
                "status": status,
                "joined_at": now if in_room else None,
                "recorded_by": user,
            },
        )
        if not created:
            attendance.status = status
            attendance.core_role = core_role or attendance.core_role
            attendance.recorded_by = user
            if in_room:
                attendance.left_at = None
                attendance.joined_at = attendance.joined_at or now
            attendance.save()
        bump_live_version(meeting.pk)
        return attendance


def record_departure(*, user, meeting: Meeting, attendee) -> Attendance:
    if attendee != user and not can_run_meeting(user):
        raise ListError("Only the chair or the MDT coordinator can record that others left.")
    with transaction.atomic():
        attendance = (
            Attendance.objects.select_for_update().filter(meeting=meeting, user=attendee).first()
        )
        if attendance is None or not attendance.is_in_room:
            raise ListError("They are not recorded as in the meeting.")
        attendance.left_at = timezone.now()
        attendance.recorded_by = user
        attendance.save(update_fields=["left_at", "recorded_by"])
        bump_live_version(meeting.pk)
        return attendance
