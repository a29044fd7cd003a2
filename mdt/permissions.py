"""Who may do what to a meeting's list. Seeing a meeting at all is decided by the querysets'
``visible_to`` scopes; these rules decide the actions within it."""

from accounts.models import Role

LIST_MANAGERS = (Role.COORDINATOR, Role.CHAIR)
CASE_PROPOSERS = (Role.COORDINATOR, Role.CHAIR, Role.CLINICIAN)


def can_manage_list(user) -> bool:
    """Schedule meetings, reorder, triage, remove cases, close the list, add after the cut-off."""
    return user.is_authenticated and user.has_role(*LIST_MANAGERS)


def can_add_cases(user) -> bool:
    return user.is_authenticated and user.has_role(*CASE_PROPOSERS)


def can_run_meeting(user) -> bool:
    """Start the meeting, record attendance, move between cases, draft outcomes, defer: the chair
    or the coordinator at the screen."""
    return user.is_authenticated and user.has_role(*LIST_MANAGERS)


def can_sign_outcomes(user, meeting) -> bool:
    """Only a chair signs: the meeting's named chair, or another member with the chair role
    standing in (the team scope has already been checked by the caller's queryset)."""
    if not user.is_authenticated:
        return False
    return meeting.chair_id == user.pk or user.has_role(Role.CHAIR)


def can_review(user) -> bool:
    return user.is_authenticated and user.has_role(Role.CLINICIAN, Role.CHAIR)


def can_read_letter_turnaround(user) -> bool:
    """The administrators' report of letter turnaround: counts and times per meeting, no
    patients, for the teams their organisations host (mdt.letter_reports.report_teams)."""
    return user.is_authenticated and user.has_role(Role.ADMIN)
