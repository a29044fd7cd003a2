"""Read paths for the MDT pages, each built in one place with the joins it needs, so the number
of queries does not grow with the number of cases."""

from django.db.models import Count, Prefetch, Q
from django.shortcuts import get_object_or_404
from django.utils import timezone

from records.models import Snapshot

from .models import Case, Meeting, Team


def meeting_for_page(user, public_id) -> Meeting:
    """The meeting (404 outside the user's teams) with the cases on its list (``cases_on_list``:
    listed, and after the meeting whatever became of them; withdrawn ones left out) and their
    patients."""
    listed = (
        Case.objects.on_list()
        .select_related("patient", "patient__gp_practice", "added_by", "snapshot")
        .defer("snapshot__summary")
        .order_by("position", "id")
    )
    return get_object_or_404(
        Meeting.objects.visible_to(user)
        .select_related("team", "team__host", "chair", "list_closed_by")
        .prefetch_related(Prefetch("cases", queryset=listed, to_attr="cases_on_list")),
        public_id=public_id,
    )


def case_for_user(user, public_id) -> Case:
    return get_object_or_404(
        Case.objects.visible_to(user).select_related("meeting", "meeting__team", "patient"),
        public_id=public_id,
    )


def upcoming_meetings(user, limit: int | None = None):
    meetings = (
        Meeting.objects.visible_to(user)
        .filter(starts_at__gte=timezone.now() - timezone.timedelta(hours=12))
        .exclude(status=Meeting.Status.CONCLUDED)
        .select_related("team", "team__host")
        .annotate(case_count=Count("cases", filter=Q(cases__status=Case.Status.LISTED)))
        .order_by("starts_at")
    )
    return meetings[:limit] if limit else meetings


def past_meetings(user, limit: int = 20):
    return (
        Meeting.objects.visible_to(user)
        .filter(starts_at__lt=timezone.now() - timezone.timedelta(hours=12))
        .select_related("team")
        .annotate(case_count=Count("cases", filter=Q(cases__status=Case.Status.LISTED)))
        .order_by("-starts_at")[:limit]
    )


def teams_for(user):
    return Team.objects.visible_to(user).select_related("host")


def my_upcoming_cases(user, limit: int = 50):
    """Cases on the user's teams' upcoming meetings (the dashboard's 'my cases')."""
    return (
        Case.objects.visible_to(user)
        .listed()
        .filter(meeting__starts_at__gte=timezone.now() - timezone.timedelta(hours=12))
        .exclude(meeting__status=Meeting.Status.CONCLUDED)
        .select_related("patient", "meeting", "meeting__team")
        .order_by("meeting__starts_at", "position")[:limit]
    )


def patient_listings(user, patients):
    """Listings of these patients that the user may see, newest first."""
    return (
        Case.objects.visible_to(user)
        .filter(patient__in=patients)
        .select_related("meeting", "meeting__team", "patient")
        .order_by("-meeting__starts_at")
    )


def case_page(user, public_id):
    """The case with its patient, its frozen record, and a newer snapshot if one exists."""
    case = get_object_or_404(
        Case.objects.visible_to(user).select_related(
            "meeting",
            "meeting__team",
            "meeting__team__host",
            "patient",
            "patient__gp_practice",
            "snapshot",
        ),
        public_id=public_id,
    )
    newer = None
    if case.snapshot_id:
        newer = (
            Snapshot.objects.filter(
                patient_id=case.patient_id, created_at__gt=case.snapshot.created_at
            )
            .only("id", "created_at")
            .first()
        )
    return case, newer


def other_listings(case):
    """The patient's other MDT listings anywhere in the region (no patient data beyond the
    team, date and status; the viewer already sees this patient on their own team's list)."""
    return (
        Case.objects.filter(patient_id=case.patient_id)
        .exclude(pk=case.pk)
        .select_related("meeting", "meeting__team", "meeting__team__host")
        .order_by("-meeting__starts_at")
    )
