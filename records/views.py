"""The audit log page for administrators: who saw or changed which patient's data."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from accounts.audit import audit_did
from accounts.models import Role

from .audit_queries import AuditFilterForm, filtered_events


@login_required
@require_http_methods(["GET", "POST"])
def audit_log(request):
    if not request.user.has_role(Role.ADMIN):
        raise PermissionDenied
    form = AuditFilterForm(request.POST or None)
    events, patient = filtered_events(form)
    if patient is not None:
        audit_did(request, "audit_log_by_patient", patient_ids=[patient.pk])
    return render(
        request, "records/audit_log.jinja", {"form": form, "events": events, "patient": patient}
    )
