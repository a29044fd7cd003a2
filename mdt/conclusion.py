"""Ending each case and the meeting: defer, for information, withdraw, and conclude with the
carry-over of deferred cases to the team's next meeting (docs/case-states.md)."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from .live import bump_live_version, put_on_screen
from .models import Case, DiscussionPeriod, Meeting
from .permissions import can_manage_list, can_run_meeting
from .population import request_case_population
from .services import ListError


def _locked_live_case(user, case: Case, *, allowed) -> Case:
    if not allowed(user):
        raise ListError("Only the chair or the MDT coordinator can do this.")
    meeting = Meeting.objects.select_for_update().get(pk=case.meeting_id)
    if meeting.status != Meeting.Status.IN_PROGRESS:
        raise ListError("This can only be done while the meeting is in progress.")
    case = Case.objects.select_for_update().select_related("meeting").get(pk=case.pk)
    if case.status != Case.Status.LISTED:
        raise ListError(f"This case is already {case.get_status_display().lower()}.")
    if case.outcomes.filter(signed_at__isnull=True).exists():
        raise ListError(
            "This case has an unsigned outcome. Sign it, or clear it, before deferring or "
            "withdrawing the case."
        )
    return case


def defer_case(*, user, case: Case, reason: str) -> Case:
    if not reason.strip():
        raise ListError("Give the reason for deferring this case.", field="reason")
    with transaction.atomic():
        case = _locked_live_case(user, case, allowed=can_run_meeting)
        case.status = Case.Status.DEFERRED
        case.deferred_reason, case.deferred_by, case.deferred_at = (
            reason.strip(),
            user,
            timezone.now(),
        )
        case.save(update_fields=["status", "deferred_reason", "deferred_by", "deferred_at"])
        bump_live_version(case.meeting_id)
        return case


def note_for_information(*, user, case: Case) -> Case:
    """The meeting has seen the case; there is no outcome and no letter."""
    with transaction.atomic():
        case = _locked_live_case(user, case, allowed=can_run_meeting)
        if case.triage != Case.Triage.FOR_INFORMATION:
            raise ListError(
                "Only a case listed for information can be noted without an outcome. Change its "
                "triage first if that is what the meeting agreed."
            )
        case.status = Case.Status.FOR_INFORMATION
        case.noted_by, case.noted_at = user, timezone.now()
        case.save(update_fields=["status", "noted_by", "noted_at"])
        bump_live_version(case.meeting_id)
        return case


def withdraw_case(*, user, case: Case, reason: str) -> Case:
    """Withdrawn during the meeting (e.g. the patient died or was listed in error); before the
    meeting the same state is reached by removing the case from the list."""
    if not reason.strip():
        raise ListError("Give the reason for withdrawing this case.", field="reason")
    with transaction.atomic():
        case = _locked_live_case(user, case, allowed=can_manage_list)
        case.status = Case.Status.REMOVED
        case.removed_reason, case.removed_by, case.removed_at = reason.strip(), user, timezone.now()
        case.save(update_fields=["status", "removed_reason", "removed_by", "removed_at"])
        bump_live_version(case.meeting_id)
        return case


@dataclass(frozen=True)
class ConclusionResult:
    meeting: Meeting
    carried_over: list[tuple[Case, Case, bool]]  # (deferred case, its case next time, created?)


def conclude_meeting(*, user, meeting: Meeting) -> ConclusionResult:
    """Every case must be final; deferred cases go to the team's next meeting."""
    if not can_run_meeting(user):
        raise ListError("Only the chair or the MDT coordinator can conclude the meeting.")
    with transaction.atomic():
        meeting = Meeting.objects.select_for_update().select_related("team").get(pk=meeting.pk)
        if meeting.status == Meeting.Status.CONCLUDED:
            return ConclusionResult(meeting, [])  # a second click
        if meeting.status != Meeting.Status.IN_PROGRESS:
            raise ListError("Start the meeting before concluding it.")
        open_cases = list(meeting.cases.listed().select_related("patient").order_by("position"))
        if open_cases:
            names = ", ".join(f"{c.position}. {c.patient.full_name}" for c in open_cases[:5])
            more = f" and {len(open_cases) - 5} more" if len(open_cases) > 5 else ""
            raise ListError(
                f"{len(open_cases)} case(s) still need an outcome, a deferral or a withdrawal: "
                f"{names}{more}."
            )
        now = timezone.now()
        put_on_screen(meeting, None, now)
        carried = [
            _carry_over(user, meeting, case)
            for case in meeting.cases.filter(
                status=Case.Status.DEFERRED, carried_over_to__isnull=True
            ).select_related("patient")
        ]
        meeting.status = Meeting.Status.CONCLUDED
        meeting.concluded_at, meeting.concluded_by = now, user
        meeting.save(update_fields=["status", "concluded_at", "concluded_by"])
        bump_live_version(meeting.pk)
        return ConclusionResult(meeting, carried)


def next_meeting(meeting: Meeting) -> Meeting:
    """The team's next meeting that is not concluded, created a week on if there is none."""
    following = (
        Meeting.objects.select_for_update()
        .filter(team_id=meeting.team_id, starts_at__gt=meeting.starts_at)
        .exclude(status=Meeting.Status.CONCLUDED)
        .order_by("starts_at")
        .first()
    )
    if following is not None:
        return following
    starts_at = _same_local_time_next_week(meeting.starts_at)
    cutoff_gap = meeting.starts_at - meeting.cutoff_at
    following, _ = Meeting.objects.get_or_create(
        team_id=meeting.team_id,
        starts_at=starts_at,
        defaults={"cutoff_at": starts_at - cutoff_gap, "chair_id": meeting.chair_id},
    )
    return following


def _same_local_time_next_week(starts_at):
    """A week on at the same Europe/London wall-clock time, across a clock change."""
    zone = ZoneInfo(settings.TIME_ZONE)
    local = starts_at.astimezone(zone)
    return datetime.combine(local.date() + timedelta(weeks=1), local.time(), tzinfo=zone)


def _carry_over(user, meeting: Meeting, case: Case) -> tuple[Case, Case, bool]:
    target = next_meeting(meeting)
    existing = target.cases.on_list().filter(patient_id=case.patient_id).first()
    if existing is not None:  # already listed there: link, do not list twice
        case.carried_over_to = existing
        case.save(update_fields=["carried_over_to"])
        return case, existing, False
    when = timezone.localtime(meeting.starts_at).strftime("%d %B %Y")
    late_reason = ""
    if not target.list_is_open or timezone.now() > target.cutoff_at:
        late_reason = f"Deferred at the meeting of {when}: {case.deferred_reason}"
    position = (target.cases.aggregate(top=Max("position"))["top"] or 0) + 1
    new_case = Case.objects.create(
        meeting=target,
        patient_id=case.patient_id,
        position=position,
        question=case.question,
        referrer=case.referrer,
        triage=case.triage,
        added_by=user,
        late_reason=late_reason,
        snapshot_id=case.snapshot_id,
    )
    case.carried_over_to = new_case
    case.save(update_fields=["carried_over_to"])
    request_case_population(new_case)
    return case, new_case, True


@dataclass(frozen=True)
class CaseTime:
    case: Case
    seconds: int


def discussion_seconds(meeting: Meeting) -> dict[int, int]:
    """Seconds each case was on the screen (a case still current counts up to now)."""
    now = timezone.now()
    totals: dict[int, int] = {}
    for period in DiscussionPeriod.objects.filter(case__meeting=meeting).only(
        "case_id", "started_at", "ended_at"
    ):
        end = period.ended_at or now
        totals[period.case_id] = totals.get(period.case_id, 0) + int(
            (end - period.started_at).total_seconds()
        )
    return totals
