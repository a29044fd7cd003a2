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
