"""Who may use the registry's pages. Other roles see registry data only where the record store
shows it, on the cases of their teams."""

from accounts.models import Role


def can_search_registry(user) -> bool:
    """Search the whole region's registry (and add a patient found there to a meeting)."""
    return user.is_authenticated and user.has_role(Role.COORDINATOR)


def can_import_registry(user) -> bool:
    """Upload registry files and read the import reports."""
    return user.is_authenticated and user.has_role(Role.ADMIN)
