"""Reviews before the meeting and the readiness they give a case.

A fully discussed case needs a review from each of its team's ``review_roles`` (radiology and
pathology by default); a case listed for ratification under a Standard of Care or for information
needs none. The reviewer must hold that role on the team: a surgeon cannot mark radiology done."""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from .models import Case, CoreRole, Review, TeamMember
from .services import ListError


@dataclass(frozen=True)
class ReviewState:
    role: str
    label: str
    done: bool
    review: Review | None


def roles_needed(case: Case) -> list[str]:
    if case.triage != Case.Triage.FULL_DISCUSSION:
        return []
    return list(case.meeting.team.review_roles)


def readiness(case: Case, reviews: list[Review] | None = None) -> list[ReviewState]:
    """Each needed role with its review, if any. Pass ``reviews`` when they were prefetched."""
    if reviews is None:
        reviews = list(case.reviews.all())
    by_role = {review.role: review for review in reviews}
    labels = dict(CoreRole.choices)
    return [
        ReviewState(
            role=role,
            label=labels.get(role, role),
            done=role in by_role and by_role[role].is_done,
            review=by_role.get(role),
        )
        for role in roles_needed(case)
    ]


def is_ready(states: list[ReviewState]) -> bool:
    return all(state.done for state in states)


def reviewer_roles(user, case: Case) -> list[str]:
    """The review roles this user may record on this case (their core role on its team)."""
    needed = set(case.meeting.team.review_roles)
    return [
        role
        for role in TeamMember.objects.filter(team_id=case.meeting.team_id, user=user).values_list(
            "core_role", flat=True
        )
        if role in needed
    ]


def record_review(*, user, case: Case, role: str, note: str, done: bool) -> Review:
    if role not in reviewer_roles(user, case):
        raise ListError(
            "Only a member of this MDT in that specialty can record its review.", field="role"
        )
    if case.status != Case.Status.LISTED:
        raise ListError("This case has already been dealt with by the meeting.")
    if done and not note.strip():
        raise ListError("Write a short review note before marking the review done.", field="note")
    with transaction.atomic():
        review, _ = Review.objects.select_for_update().get_or_create(
            case=case, role=role, defaults={"reviewer": user}
        )
        review.reviewer = user
        review.note = note.strip()
        review.done_at = (review.done_at or timezone.now()) if done else None
        review.save()
        return review
