"""Read paths for the MDT pages, each built in one place with the joins it needs, so the number
of queries does not grow with the number of cases."""

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Exists, Prefetch, Q
from django.shortcuts import get_object_or_404
from django.utils import timezone

from accounts.models import Membership
from records.models import Snapshot

from .models import CASE_VIEWER_ROLES, Case, CoreRole, Meeting, Outcome, Review, Team, TeamMember
from .reviews import ReviewState, readiness, reviewer_roles

# How the case lists name a missing review ("Needs radiology, pathology").
REVIEW_NAMES = {
    CoreRole.RADIOLOGIST: "radiology",
    CoreRole.PATHOLOGIST: "pathology",
    CoreRole.ONCOLOGIST: "oncology",
    CoreRole.SURGEON: "surgical",
    CoreRole.CNS: "nursing",
    CoreRole.PHYSICIAN: "respiratory",
}


def review_name(role: str) -> str:
    return REVIEW_NAMES.get(role, str(dict(CoreRole.choices).get(role, role)).lower())


@dataclass(frozen=True)
class CaseReadiness:
    """A case's reviews before the meeting, as the lists and the case page show them.
    ``reviewer_roles``: the team's review roles the viewer holds (``reviews.reviewer_roles``)."""

    states: list[ReviewState]
    reviewer_roles: list[str] = field(default_factory=list)

    @property
    def my_roles(self) -> list[str]:
        """The reviews this case needs that the viewer may record themselves."""
        return [state.role for state in self.states if state.role in self.reviewer_roles]

    @property
    def needed(self) -> bool:
        return bool(self.states)

    @property
    def ready(self) -> bool:
        return all(state.done for state in self.states)

    @property
    def missing(self) -> list[str]:
        return [review_name(state.role) for state in self.states if not state.done]

    def name(self, role: str) -> str:
        return review_name(role)

    @property
    def mine_to_do(self) -> list[ReviewState]:
        return [s for s in self.states if s.role in self.my_roles and not s.done]


def _reviews_prefetch() -> Prefetch:
    return Prefetch("reviews", queryset=Review.objects.select_related("reviewer"))


def _with_readiness(cases, core_roles_by_team: dict[int, str] | None = None):
    """Sets ``case.readiness`` from the prefetched reviews (no query per case)."""
    core_roles_by_team = core_roles_by_team or {}
    for case in cases:
        states = readiness(case, list(case.reviews.all()))
        mine = core_roles_by_team.get(case.meeting.team_id)
        case.readiness = CaseReadiness(
            states, [mine] if mine in case.meeting.team.review_roles else []
        )
    return cases


def meeting_for_page(user, public_id) -> Meeting:
    """The meeting (404 outside the user's teams) with the cases on its list (``cases_on_list``:
    listed, and after the meeting whatever became of them; withdrawn ones left out) and their
    patients."""
    listed = (
        Case.objects.on_list()
        .select_related(
            "patient", "patient__gp_practice", "added_by", "snapshot", "carried_over_to__meeting"
        )
        .defer("snapshot__summary")
        .prefetch_related(_reviews_prefetch())
        .order_by("position", "id")
    )
    meeting = get_object_or_404(
        Meeting.objects.visible_to(user)
        .select_related("team", "team__host", "chair", "list_closed_by")
        .prefetch_related(Prefetch("cases", queryset=listed, to_attr="cases_on_list")),
        public_id=public_id,
    )
    _with_readiness(meeting.cases_on_list)
    return meeting


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


def my_upcoming_cases(user, limit: int = 50) -> list[Case]:
    """Cases on the user's teams' upcoming meetings (the dashboard's 'my cases'), each with its
    ``readiness``, naming the reviews the user may record themselves. Three queries."""
    cases = list(
        Case.objects.visible_to(user)
        .listed()
        .filter(meeting__starts_at__gte=timezone.now() - timezone.timedelta(hours=12))
        .exclude(meeting__status=Meeting.Status.CONCLUDED)
        .select_related("patient", "meeting", "meeting__team")
        .prefetch_related(_reviews_prefetch())
        .order_by("meeting__starts_at", "position")[:limit]
    )
    core_roles = dict(TeamMember.objects.filter(user=user).values_list("team_id", "core_role"))
    return _with_readiness(cases, core_roles)


def patient_listings(user, patients):
    """Listings of these patients that the user may see, newest first."""
    return (
        Case.objects.visible_to(user)
        .filter(patient__in=patients)
        .select_related("meeting", "meeting__team", "patient")
        .order_by("-meeting__starts_at")
    )


def case_page(user, public_id):
    """The case with its patient, its frozen record, its ``readiness`` (the reviews, and which
    the user may record), and a newer snapshot if one exists."""
    case = get_object_or_404(
        Case.objects.visible_to(user)
        .select_related(
            "meeting",
            "meeting__team",
            "meeting__team__host",
            "patient",
            "patient__gp_practice",
            "snapshot",
        )
        .prefetch_related(_reviews_prefetch()),
        public_id=public_id,
    )
    case_readiness(user, case)
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


def case_readiness(user, case: Case) -> CaseReadiness:
    """Sets and returns ``case.readiness`` for one case (its reviews prefetched or not)."""
    states = readiness(case, list(case.reviews.all()))
    case.readiness = CaseReadiness(states, reviewer_roles(user, case))
    return case.readiness


@dataclass(frozen=True)
class OutcomeSummary:
    category: str
    intent: str
    signed_at: datetime
    amended: bool


@dataclass(frozen=True)
class OtherListing:
    """Another MDT discussion of the patient, as far as a member of any team may see it: the
    team, the date, the state and the signed outcome's headline, not the question or the plan."""

    team: str
    host_ods_code: str
    starts_at: datetime
    status: str
    status_label: str
    carried_to: datetime | None
    upcoming: bool
    outcome: OutcomeSummary | None


def other_listings(case) -> list[OtherListing]:
    """The patient's other MDT discussions anywhere in the region, past and planned, newest
    first (two queries). ``upcoming`` marks a listing still to be discussed at a meeting to come:
    the page warns so that nobody lists the patient twice by accident."""
    signed = (
        Outcome.objects.filter(signed_at__isnull=False)
        .only("case_id", "amendment_no", "category", "care_plan_intent", "signed_at")
        .order_by("-amendment_no")
    )
    others = (
        Case.objects.filter(patient_id=case.patient_id)
        .exclude(pk=case.pk)
        .select_related(
            "meeting", "meeting__team", "meeting__team__host", "carried_over_to__meeting"
        )
        .prefetch_related(Prefetch("outcomes", queryset=signed, to_attr="signed_outcomes"))
        .only(
            "status",
            "meeting__starts_at",
            "meeting__status",
            "meeting__team__name",
            "meeting__team__host__ods_code",
            "carried_over_to__meeting__starts_at",
        )
        .order_by("-meeting__starts_at")
    )
    soon = timezone.now() - timezone.timedelta(hours=12)
    listings = []
    for other in others:
        latest = other.signed_outcomes[0] if other.signed_outcomes else None
        listings.append(
            OtherListing(
                team=other.meeting.team.name,
                host_ods_code=other.meeting.team.host.ods_code,
                starts_at=other.meeting.starts_at,
                status=other.status,
                status_label=other.get_status_display(),
                carried_to=(
                    other.carried_over_to.meeting.starts_at if other.carried_over_to else None
                ),
                upcoming=(
                    other.status == Case.Status.LISTED
                    and other.meeting.starts_at >= soon
                    and other.meeting.status != Meeting.Status.CONCLUDED
                ),
                outcome=OutcomeSummary(
                    category=latest.get_category_display(),
                    intent=latest.get_care_plan_intent_display(),
                    signed_at=latest.signed_at,
                    amended=latest.amendment_no > 0,
                )
                if latest
                else None,
            )
        )
    return listings


def live_version(user, public_id) -> int | None:
    """The meeting's ``live_version`` if the user may see the meeting, else None: the rule of
    ``Meeting.objects.visible_to`` (a member of the team with a case-viewing role) in one query,
    because every follower asks it every second."""
    if not user.is_authenticated:
        return None
    viewer = Membership.objects.filter(user=user, role__in=CASE_VIEWER_ROLES)
    return (
        Meeting.objects.filter(public_id=public_id, team__members__user=user)
        .filter(Exists(viewer))
        .values_list("live_version", flat=True)
        .first()
    )
