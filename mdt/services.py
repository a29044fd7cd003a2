"""Business operations on meetings and their case lists. Each takes plain arguments, runs in one
transaction and raises ListError with a message fit for the user."""

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from records.patient_index import PatientLookup, find_patient, lookup_patient

from .models import Case, Meeting, Team
from .permissions import can_add_cases, can_manage_list
from .population import request_case_population, request_meeting_refresh


class ListError(Exception):
    """A refusal the user can act on; the message says what to do next, and ``field`` names the
    form field it belongs to, if any."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def _local(d: date, t: time) -> datetime:
    return datetime.combine(d, t, tzinfo=ZoneInfo(settings.TIME_ZONE))


def schedule_meeting(
    *, team: Team, starts_at: datetime, cutoff_at: datetime | None = None, chair=None
) -> Meeting:
    if cutoff_at is None:
        cutoff_at = starts_at - timedelta(days=1)
    if cutoff_at > starts_at:
        raise ListError("The case cut-off must be before the meeting starts.")
    try:
        with transaction.atomic():
            return Meeting.objects.create(
                team=team, starts_at=starts_at, cutoff_at=cutoff_at, chair=chair
            )
    except IntegrityError as clash:
        raise ListError(f"{team} already has a meeting at that time.") from clash


def generate_weekly_meetings(
    *, team: Team, first_date: date, at: time, weeks: int, cutoff_days_before: int = 1, chair=None
) -> list[Meeting]:
    """Weekly meetings at the same local (Europe/London) time, across clock changes. Slots the
    team already has are left as they are."""
    if not 1 <= weeks <= 52:
        raise ListError("Generate between 1 and 52 weekly meetings at a time.")
    created = []
    with transaction.atomic():
        for week in range(weeks):
            day = first_date + timedelta(weeks=week)
            starts_at = _local(day, at)
            cutoff_at = _local(day - timedelta(days=cutoff_days_before), at)
            meeting, was_created = Meeting.objects.get_or_create(
                team=team,
                starts_at=starts_at,
                defaults={"cutoff_at": cutoff_at, "chair": chair},
            )
            if was_created:
                created.append(meeting)
    return created


@dataclass(frozen=True)
class AddCaseRequest:
    nhs_number: str
    question: str
    referrer: str
    triage: str = Case.Triage.FULL_DISCUSSION
    late_reason: str = ""
    submission_id: uuid.UUID | None = None


def preview_patient(typed_nhs_number: str) -> PatientLookup:
    """The patient a coordinator is about to add, for the form's name and birth date preview."""
    return lookup_patient(typed_nhs_number)


def add_case_to_meeting(*, user, meeting: Meeting, request: AddCaseRequest) -> tuple[Case, bool]:
    """Returns the case and whether it was added now (False: the same form was sent again)."""
    if not can_add_cases(user):
        raise ListError("Only coordinators, chairs and clinicians can add cases to a list.")
    patient = find_patient(request.nhs_number)
    if not request.question.strip():
        raise ListError("Enter the question for the MDT.", field="question")
    if not request.referrer.strip():
        raise ListError("Enter the referring clinician.", field="referrer")
    with transaction.atomic():
        meeting = Meeting.objects.select_for_update().get(pk=meeting.pk)
        if request.submission_id:
            existing = Case.objects.filter(submission_id=request.submission_id).first()
            if existing is not None and existing.meeting_id == meeting.pk:
                return existing, False  # a double-click or resend: the first one added it
            if existing is not None:
                raise ListError("This form was already used for another meeting. Reload the page.")
        _check_list_open(meeting)
        late_reason = request.late_reason.strip()
        if timezone.now() > meeting.cutoff_at:
            if not can_manage_list(user):
                raise ListError(
                    "The cut-off for this meeting has passed. Ask the MDT coordinator to add "
                    "the case with a reason."
                )
            if not late_reason:
                raise ListError(
                    "The cut-off for this meeting has passed. Give the reason for adding "
                    "this case late.",
                    field="late_reason",
                )
        else:
            late_reason = ""
        if meeting.cases.on_list().filter(patient=patient).exists():
            raise ListError("This patient is already on this meeting's list.", field="nhs_number")
        next_position = (meeting.cases.aggregate(top=Max("position"))["top"] or 0) + 1
        try:
            with transaction.atomic():
                case = Case.objects.create(
                    meeting=meeting,
                    patient=patient,
                    position=next_position,
                    question=request.question.strip(),
                    referrer=request.referrer.strip(),
                    triage=request.triage,
                    added_by=user,
                    late_reason=late_reason,
                    submission_id=request.submission_id,
                )
        except IntegrityError as error:
            raise ListError("This patient is already on this meeting's list.") from error
        request_case_population(case)
        return case, True


def _check_list_open(meeting: Meeting) -> None:
    if not meeting.list_is_open:
        closed = ""
        if meeting.list_closed_at:
            closed = f" at {timezone.localtime(meeting.list_closed_at):%H:%M on %d %B}"
        raise ListError(
            f"The list for this meeting was closed{closed}, so it cannot be changed. "
            "Ask the MDT coordinator, or list the patient at the next meeting."
        )


def _locked_case(user, case: Case) -> Case:
    if not can_manage_list(user):
        raise ListError("Only the MDT coordinator or chair can change the list.")
    meeting = Meeting.objects.select_for_update().get(pk=case.meeting_id)
    _check_list_open(meeting)
    case = Case.objects.select_for_update().get(pk=case.pk)
    if case.status != Case.Status.LISTED:
        raise ListError("This case has been removed from the list.")
    return case


def move_case(*, user, case: Case, direction: str) -> None:
    """Swap the case with its neighbour above ("up") or below ("down")."""
    if direction not in {"up", "down"}:
        raise ListError("Move a case up or down.")
    with transaction.atomic():
        case = _locked_case(user, case)
        siblings = Case.objects.filter(meeting_id=case.meeting_id).listed()
        if direction == "up":
            neighbour = siblings.filter(position__lt=case.position).order_by("-position").first()
        else:
            neighbour = siblings.filter(position__gt=case.position).order_by("position").first()
        if neighbour is None:
            return
        case.position, neighbour.position = neighbour.position, case.position
        Case.objects.bulk_update([case, neighbour], ["position"])


def set_triage(*, user, case: Case, triage: str) -> Case:
    if triage not in Case.Triage.values:
        raise ListError("Choose how the case should be discussed.")
    with transaction.atomic():
        case = _locked_case(user, case)
        case.triage = triage
        case.save(update_fields=["triage"])
        return case


def remove_case(*, user, case: Case, reason: str) -> Case:
    if not reason.strip():
        raise ListError("Give the reason for removing this case from the list.")
    with transaction.atomic():
        case = _locked_case(user, case)
        case.status = Case.Status.REMOVED
        case.removed_reason = reason.strip()
        case.removed_by = user
        case.removed_at = timezone.now()
        case.save(update_fields=["status", "removed_reason", "removed_by", "removed_at"])
        return case


def close_list(*, user, meeting: Meeting) -> Meeting:
    if not can_manage_list(user):
        raise ListError("Only the MDT coordinator or chair can close the list.")
    with transaction.atomic():
        meeting = Meeting.objects.select_for_update().get(pk=meeting.pk)
        _check_list_open(meeting)
        meeting.status = Meeting.Status.LIST_CLOSED
        meeting.list_closed_at = timezone.now()
        meeting.list_closed_by = user
        meeting.save(update_fields=["status", "list_closed_at", "list_closed_by"])
        return meeting


def refresh_meeting_records(*, user, meeting: Meeting) -> None:
    """Re-populates every listed case's record (the meeting page's "refresh all")."""
    if not can_add_cases(user):
        raise ListError("Only members of the MDT can refresh its records.")
    with transaction.atomic():
        request_meeting_refresh(meeting)


def refresh_case_record(*, user, case: Case) -> None:
    if not can_add_cases(user):
        raise ListError("Only members of the MDT can refresh a record.")
    with transaction.atomic():
        request_case_population(case)
