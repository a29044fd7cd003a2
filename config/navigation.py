"""The header's navigation for the signed-in user (a context processor for Jinja2 pages)."""

from django.urls import reverse


def navigation(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": []}
    items = [("mdt:dashboard", "Home"), ("mdt:meetings", "Meetings")]
    if user.has_role("coordinator", "chair", "clinician"):
        items.append(("mdt:patient_search", "Find a patient"))
    if user.has_role("coordinator"):
        items.append(("registry:search", "Cancer registry"))
    if user.has_role("admin"):
        items.append(("records:audit_log", "Audit log"))
        items.append(("registry:imports", "Registry imports"))
        items.append(("mdt:letter_turnaround", "Letter turnaround"))
    current = request.path
    nav = []
    for name, text in items:
        href = reverse(name)
        is_current = current == href or (href != "/" and current.startswith(href))
        nav.append({"href": href, "text": text, "current": is_current})
    return {"nav_items": nav}
