"""Pages for MDT meetings and their case lists. Each view parses the request, calls one service or
query, and renders; htmx requests get the fragment they swap."""

import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.audit import audit_did, audit_saw
from records.nhs_numbers import InvalidNHSNumber
from records.patient_index import UnknownPatient, find_patient
from records.search import search_patients
from registry.permissions import can_search_registry

from . import queries, services
from .forms import AddCaseForm, MeetingForm, PatientSearchForm, RegistryCaseForm, RemoveCaseForm
from .models import Meeting
from .permissions import can_add_cases, can_manage_list
from .population import refresh_progress
from .presenters import RecordPresenter


@login_required
@require_GET
def dashboard(request):
    meetings = list(queries.upcoming_meetings(request.user, limit=5))
    cases = list(queries.my_upcoming_cases(request.user))
    audit_saw(request, (case.patient_id for case in cases))
    return render(request, "mdt/dashboard.jinja", {"meetings": meetings, "cases": cases})


@login_required
@require_http_methods(["GET", "POST"])
def meeting_list(request):
    teams = queries.teams_for(request.user)
    form = None
    if can_manage_list(request.user):
        form = MeetingForm(request.POST or None, teams=teams)
        if request.method == "POST":
            if form.is_valid():
                try:
                    created = _schedule(request, form)
                except services.ListError as error:
                    form.add_error(None, str(error))
                else:
                    if len(created) == 1:
                        messages.success(request, "Meeting scheduled.")
                        return redirect("mdt:meeting", created[0].public_id)
                    messages.success(request, f"{len(created)} weekly meetings scheduled.")
                    return redirect("mdt:meetings")
    elif request.method == "POST":
        raise PermissionDenied
    return render(
        request,
        "mdt/meeting_list.jinja",
        {
            "upcoming": queries.upcoming_meetings(request.user),
            "past": queries.past_meetings(request.user),
            "form": form,
        },
    )


def _schedule(request, form: MeetingForm):
    team = form.cleaned_data["team"]
    weeks = form.cleaned_data["weeks"]
    if weeks == 1:
        return [
            services.schedule_meeting(
                team=team, starts_at=form.starts_at(), cutoff_at=form.cutoff_at()
            )
        ]
    created = services.generate_weekly_meetings(
        team=team,
        first_date=form.cleaned_data["date"],
        at=form.cleaned_data["time"],
        weeks=weeks,
        cutoff_days_before=form.cleaned_data["cutoff_days"],
    )
    if not created:
        raise services.ListError(f"{team} already has meetings at all of those times.")
    return created


def _meeting_context(request, meeting, **extra):
    audit_saw(request, (case.patient_id for case in meeting.cases_on_list))
    return {
        "meeting": meeting,
        "cases": meeting.cases_on_list,
        "can_manage": can_manage_list(request.user),
        "can_add": can_add_cases(request.user) and meeting.list_is_open,
        "past_cutoff": timezone.now() > meeting.cutoff_at,
        "progress": refresh_progress(meeting),
        **extra,
    }


@login_required
@require_GET
def meeting_detail(request, public_id):
    meeting = queries.meeting_for_page(request.user, public_id)
    context = _meeting_context(request, meeting, add_form=AddCaseForm())
    return render(request, "mdt/meeting.jinja", context)


@login_required
@require_POST
def preview_patient(request, public_id):
    queries.meeting_for_page(request.user, public_id)  # 404 outside the user's teams
    if not can_add_cases(request.user):
        raise PermissionDenied
    patient, error, notice = None, None, ""
    try:
        lookup = services.preview_patient(request.POST.get("nhs_number", ""))
    except (InvalidNHSNumber, UnknownPatient) as problem:
        error = str(problem)
    else:
        patient, notice = lookup.patient, lookup.notice
    if patient is not None:
        audit_did(
            request,
            "preview_patient",
            patient_ids=[patient.pk],
            reason="Adding the patient to an MDT list",
        )
    return render(
        request,
        "mdt/partials/patient_preview.jinja",
        {"patient": patient, "error": error, "notice": notice},
    )


@login_required
@require_POST
def add_case(request, public_id):
    meeting = queries.meeting_for_page(request.user, public_id)
    if not can_add_cases(request.user):
        raise PermissionDenied
    form = AddCaseForm(request.POST)
    added, created = None, False
    if form.is_valid():
        data = form.cleaned_data
        try:
            added, created = services.add_case_to_meeting(
                user=request.user,
                meeting=meeting,
                request=services.AddCaseRequest(
                    nhs_number=data["nhs_number"],
                    question=data["question"],
                    referrer=data["referrer"],
                    triage=data["triage"],
                    late_reason=data["late_reason"],
                    submission_id=data["submission_id"],
                ),
            )
        except (InvalidNHSNumber, UnknownPatient) as error:
            form.add_error("nhs_number", str(error))
        except services.ListError as error:
            form.add_error(error.field, str(error))
    if added is not None:
        audit_did(
            request,
            "add_case",
            str(added.public_id),
            patient_ids=[added.patient_id],
            reason=added.late_reason,
        )
        if not request.htmx:
            messages.success(request, "Case added to the list.")
            return redirect("mdt:meeting", meeting.public_id)
        meeting = queries.meeting_for_page(request.user, public_id)
        form = AddCaseForm()
    context = _meeting_context(request, meeting, add_form=form, added=added)
    if request.htmx:
        return render(request, "mdt/partials/add_case_response.jinja", context)
    return render(request, "mdt/meeting.jinja", context)


def _list_action(request, public_id, action):
    """Runs a list change on a case, then shows the list (the fragment for htmx)."""
    case = queries.case_for_user(request.user, public_id)
    if not can_manage_list(request.user):
        raise PermissionDenied
    error = None
    try:
        action(case)
    except services.ListError as problem:
        error = str(problem)
    else:
        audit_did(
            request,
            request.resolver_match.url_name,
            str(case.public_id),
            patient_ids=[case.patient_id],
        )
    meeting = queries.meeting_for_page(request.user, case.meeting.public_id)
    if request.htmx:
        context = _meeting_context(request, meeting, list_error=error)
        return render(request, "mdt/partials/case_list.jinja", context)
    if error:
        messages.error(request, error)
    return redirect("mdt:meeting", meeting.public_id)


@login_required
@require_POST
def move_case(request, public_id):
    direction = request.POST.get("direction", "")
    return _list_action(
        request,
        public_id,
        lambda case: services.move_case(user=request.user, case=case, direction=direction),
    )


@login_required
@require_POST
def set_triage(request, public_id):
    triage = request.POST.get("triage", "")
    return _list_action(
        request,
        public_id,
        lambda case: services.set_triage(user=request.user, case=case, triage=triage),
    )


@login_required
@require_http_methods(["GET", "POST"])
def remove_case(request, public_id):
    case = queries.case_for_user(request.user, public_id)
    if not can_manage_list(request.user):
        raise PermissionDenied
    if case.status != case.Status.LISTED:
        raise Http404
    form = RemoveCaseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.remove_case(user=request.user, case=case, reason=form.cleaned_data["reason"])
        except services.ListError as error:
            form.add_error("reason", str(error))
        else:
            audit_did(
                request,
                "remove_case",
                str(case.public_id),
                patient_ids=[case.patient_id],
                reason=form.cleaned_data["reason"],
            )
            messages.success(request, "Case removed from the list.")
            return redirect("mdt:meeting", case.meeting.public_id)
    audit_saw(request, [case.patient_id])
    return render(request, "mdt/remove_case.jinja", {"case": case, "form": form})


@login_required
@require_POST
def close_list(request, public_id):
    meeting = queries.meeting_for_page(request.user, public_id)
    if not can_manage_list(request.user):
        raise PermissionDenied
    try:
        services.close_list(user=request.user, meeting=meeting)
    except services.ListError as error:
        messages.error(request, str(error))
    else:
        audit_did(request, "close_list", str(meeting.public_id))
        messages.success(request, "The list is closed. Cases can no longer be added or changed.")
    return redirect("mdt:meeting", meeting.public_id)


@login_required
@require_http_methods(["GET", "POST"])
def patient_search(request):
    if not can_add_cases(request.user):
        raise PermissionDenied
    form = PatientSearchForm(request.POST or None)
    results, listings = None, []
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            results = search_patients(
                nhs_number=data["nhs_number"],
                family_name=data["family_name"],
                birth_date=data["birth_date"],
            )
        except InvalidNHSNumber as error:
            form.add_error("nhs_number", str(error))
        else:
            listings = list(queries.patient_listings(request.user, results))
            audit_did(
                request,
                "patient_search",
                patient_ids=[p.pk for p in results],
                reason=dict(form.fields["purpose"].choices)[data["purpose"]],
            )
    return render(
        request,
        "mdt/patient_search.jinja",
        {
            "form": form,
            "results": results,
            "listings": listings,
            "meetings": queries.upcoming_meetings(request.user).filter(status="planned"),
        },
    )


_SLOT = re.compile(r"r\d{1,3}")


@login_required
@require_POST
def add_registry_patient(request):
    """The registry search's "add to a meeting" (the registry app may not import this one):
    "step=start" shows the form for the patient found, checked with the demographics service;
    the form then adds the case to the meeting chosen. ``slot`` names the result on the search
    page whose fragment htmx swaps, and prefixes the form's fields so ids stay unique there."""
    if not can_search_registry(request.user):
        raise PermissionDenied
    slot = request.POST.get("slot", "")
    slot = slot if _SLOT.fullmatch(slot) else "r0"
    meetings = queries.upcoming_meetings(request.user).filter(status=Meeting.Status.PLANNED)
    context = {"slot": slot, "has_meetings": meetings.exists(), "added": None}
    if request.POST.get("step") == "start":
        nhs_number = request.POST.get("nhs_number", "")
        form = RegistryCaseForm(prefix=slot, meetings=meetings, initial={"nhs_number": nhs_number})
        try:
            lookup = services.preview_patient(nhs_number)
        except (InvalidNHSNumber, UnknownPatient) as problem:
            context.update(patient=None, error=str(problem))
        else:
            context.update(patient=lookup.patient, notice=lookup.notice)
            audit_did(
                request,
                "preview_patient",
                patient_ids=[lookup.patient.pk],
                reason="Adding the patient to an MDT list",
            )
        return _registry_add_response(request, form, context)

    form = RegistryCaseForm(request.POST, prefix=slot, meetings=meetings)
    added = None
    if form.is_valid():
        data = form.cleaned_data
        try:
            added, _created = services.add_case_to_meeting(
                user=request.user,
                meeting=data["meeting"],
                request=services.AddCaseRequest(
                    nhs_number=data["nhs_number"],
                    question=data["question"],
                    referrer=data["referrer"],
                    triage=data["triage"],
                    late_reason=data["late_reason"],
                    submission_id=data["submission_id"],
                ),
            )
        except (InvalidNHSNumber, UnknownPatient) as error:
            form.add_error(None, str(error))
        except services.ListError as error:
            # The NHS number is not typed on this form: "already listed" is about the meeting.
            field = "meeting" if error.field in (None, "nhs_number") else error.field
            form.add_error(field, str(error))
    if added is not None:
        audit_did(
            request,
            "add_case",
            str(added.public_id),
            patient_ids=[added.patient_id],
            reason=added.late_reason,
        )
        if not request.htmx:
            messages.success(request, "Case added to the list.")
            return redirect("mdt:meeting", added.meeting.public_id)
        return _registry_add_response(request, form, {**context, "added": added})
    try:
        patient = find_patient(form["nhs_number"].value() or "")
    except (InvalidNHSNumber, UnknownPatient) as problem:
        context.update(patient=None, error=str(problem))
    else:
        context.update(patient=patient)
        audit_saw(request, [patient.pk])
    return _registry_add_response(request, form, context)


def _registry_add_response(request, form, context):
    context = {**context, "form": form}
    if request.htmx:
        return render(request, "mdt/partials/registry_case_form.jinja", context)
    return render(request, "mdt/add_registry_patient.jinja", context)


@login_required
@require_GET
def case_detail(request, public_id):
    case, newer = queries.case_page(request.user, public_id)
    audit_did(request, "view_case_record", str(case.public_id), patient_ids=[case.patient_id])
    return render(
        request,
        "mdt/case.jinja",
        {
            "case": case,
            "patient": case.patient,
            "record": RecordPresenter(case.snapshot, newer),
            "other_listings": queries.other_listings(case),
            "can_refresh": can_add_cases(request.user),
        },
    )


@login_required
@require_POST
def refresh_case(request, public_id):
    case, _newer = queries.case_page(request.user, public_id)
    try:
        services.refresh_case_record(user=request.user, case=case)
    except services.ListError as error:
        messages.error(request, str(error))
    else:
        audit_did(
            request, "refresh_case_record", str(case.public_id), patient_ids=[case.patient_id]
        )
        messages.success(
            request, "The record is being refreshed from every source. Reload in a few seconds."
        )
    return redirect("mdt:case", case.public_id)


@login_required
@require_POST
def refresh_meeting(request, public_id):
    meeting = queries.meeting_for_page(request.user, public_id)
    try:
        services.refresh_meeting_records(user=request.user, meeting=meeting)
    except services.ListError as error:
        messages.error(request, str(error))
        return redirect("mdt:meeting", meeting.public_id)
    audit_did(
        request,
        "refresh_meeting_records",
        str(meeting.public_id),
        patient_ids=[case.patient_id for case in meeting.cases_on_list],
    )
    if request.htmx:
        meeting.refresh_from_db(fields=["refresh_requested_at"])
        return _progress_fragment(request, meeting)
    return redirect("mdt:meeting", meeting.public_id)


@login_required
@require_GET
def meeting_refresh_progress(request, public_id):
    meeting = get_object_or_404(Meeting.objects.visible_to(request.user), public_id=public_id)
    return _progress_fragment(request, meeting)


def _progress_fragment(request, meeting):
    progress = refresh_progress(meeting)
    response = render(
        request,
        "mdt/partials/refresh_progress.jinja",
        {"meeting": meeting, "progress": progress, "oob": True},
    )
    if not progress["running"]:
        response["HX-Trigger"] = "records-refreshed"  # the case list re-reads its record statuses
    return response
