"""The registry's pages: the region-wide search for coordinators (POSTed with a purpose, audited)
and, for administrators, uploading registry files and following their imports."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.audit import audit_did

from . import uploads
from .forms import RegistrySearchForm, RegistryUploadForm
from .models import ImportRun
from .permissions import can_import_registry, can_search_registry
from .search import search_registrations


@login_required
@require_http_methods(["GET", "POST"])
def search(request):
    if not can_search_registry(request.user):
        raise PermissionDenied
    form = RegistrySearchForm(request.POST if request.method == "POST" else None)
    page = None
    if request.method == "POST" and form.is_valid():
        page = search_registrations(**form.criteria(), page=form.cleaned_data["page"] or 1)
        unindexed = page.unindexed_registration_ids
        audit_did(
            request,
            "registry_search",
            f"registrations:{','.join(map(str, unindexed))}" if unindexed else "",
            patient_ids=page.patient_ids,
            reason=form.purpose_text,
        )
    return render(request, "registry/search.jinja", {"form": form, "page": page})


@login_required
@require_http_methods(["GET", "POST"])
def imports(request):
    if not can_import_registry(request.user):
        raise PermissionDenied
    bound = request.method == "POST"
    form = RegistryUploadForm(request.POST if bound else None, request.FILES if bound else None)
    if request.method == "POST" and form.is_valid():
        run = uploads.start_import(
            user=request.user,
            tumours=form.cleaned_data["tumours"],
            treatments=form.cleaned_data["treatments"],
        )
        message = f"{run.file_name} was uploaded and is being imported."
        if form.cleaned_data["treatments"]:
            message += " The treatments file is imported after it."
        messages.success(request, message)
        return redirect("registry:import", run.public_id)
    return render(request, "registry/imports.jinja", {"form": form, "runs": uploads.recent_runs()})


@login_required
@require_GET
def import_run(request, public_id):
    """An import's page: its progress while it runs (htmx polls the status fragment), then its
    report. The report shows counts, line numbers and reasons, no patient's details."""
    if not can_import_registry(request.user):
        raise PermissionDenied
    run = get_object_or_404(ImportRun.objects.select_related("requested_by"), public_id=public_id)
    context = {"run": run, "quarantined": uploads.quarantined_rows(run)}
    if request.htmx:
        # The live region is filled only when the status changes, not at every poll.
        context["announce"] = request.GET.get("seen") != run.status
        return render(request, "registry/partials/import_status.jinja", context)
    return render(request, "registry/import_run.jinja", context)
