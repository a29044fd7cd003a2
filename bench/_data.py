"""Data the benchmarks make the way the demo and the product would have it: team members and
case lists (what a coordinator adds one by one, made in one statement here)."""

from accounts.models import Membership
from mdt.models import Case, TeamMember


def join_team(user, team, organisation, role: str, core_role: str) -> None:
    """The user holds ``role`` at ``organisation`` and sits on ``team`` as ``core_role``."""
    Membership.objects.get_or_create(user=user, organisation=organisation, role=role)
    TeamMember.objects.update_or_create(team=team, user=user, defaults={"core_role": core_role})


def list_patients(meeting, patients, *, added_by, question: str, referrer: str) -> list[Case]:
    """The patients listed on the meeting in this order, for full discussion."""
    return Case.objects.bulk_create(
        Case(
            meeting=meeting,
            patient=patient,
            position=position,
            question=question,
            referrer=referrer,
            triage=Case.Triage.FULL_DISCUSSION,
            added_by=added_by,
        )
        for position, patient in enumerate(patients, start=1)
    )
