"""Pages for the letters to GPs (issue 6): the GP portal, a letter's PDF, the meeting's letters
panel with "Send all letters", its progress and "Resend", "the patient has been told", the
preview of the letter beside the chair's outcome form, and the administrators' turnaround report.
The state changes are mdt.letters' services; what the pages count is mdt.letter_reports."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.audit import audit_did, audit_saw
from accounts.models import Role
from accounts.session_limits import background_poll

from . import letter_reports, letters, queries
from .letter_content import letter_context
from .letter_render import render_letter_html
from .models import Letter, LetterStatus, Meeting, Team
from .permissions import can_manage_list, can_read_letter_turnaround, can_run_meeting
from .services import ListError

STATUS_TAGS = {
    LetterStatus.HELD: "nhsuk-tag--yellow",
    LetterStatus.QUEUED: "nhsuk-tag--grey",
    LetterStatus.RENDERED: "nhsuk-tag--grey",
    LetterStatus.SENDING: "nhsuk-tag--blue",
    LetterStatus.SENT: "nhsuk-tag--blue",
    LetterStatus.ACKNOWLEDGED: "nhsuk-tag--green",
    LetterStatus.FAILED: "nhsuk-tag--red",
    LetterStatus.MANUAL: "nhsuk-tag--orange",
    LetterStatus.SUPERSEDED: "nhsuk-tag--white",
}


def _letter_rows(queryset):
    return queryset.select_related(
        "recipient",
        "outcome",
        "outcome__case",
        "outcome__case__patient",
        "outcome__case__meeting__team",
    )


# -- the GP portal -----------------------------------------------------------------------------


@login_required
@require_GET
def gp_letters(request):
    if not request.user.has_role(Role.GP):
        raise PermissionDenied
    received = list(
        _letter_rows(letters.portal_letters(request.user)).order_by("-sent_at", "-created_at")
    )
    audit_saw(request, (letter.outcome.case.patient_id for letter in received))
    return render(request, "mdt/letters/gp_letters.jinja", {"letters": received})


@login_required
@require_GET
def gp_letter(request, public_id):
    letter = get_object_or_404(
        _letter_rows(letters.portal_letters(request.user)), public_id=public_id
    )
    first_read = letters.mark_read_in_portal(letter)
    audit_did(
        request,
        "read_letter" if first_read else "view_letter",
        object_ref=f"letter:{letter.public_id}",
        patient_ids=[letter.outcome.case.patient_id],
    )
    body = render_letter_html(letters.letter_context_for(letter), fragment=True)
    return render(request, "mdt/letters/gp_letter.jinja", {"letter": letter, "body": body})


@login_required
@require_GET
def letter_pdf(request, public_id):
    """The letter's stored PDF, for the practice's GPs and the MDT team (a letter for manual
    delivery is downloaded to be delivered)."""
    letter = get_object_or_404(
        letters.letters_visible_to(request.user).select_related("outcome__case").exclude(sha256=""),
        public_id=public_id,
    )
    audit_did(
        request,
        "download_letter",
        object_ref=f"letter:{letter.public_id}",
        patient_ids=[letter.outcome.case.patient_id],
    )
    try:
        pdf = letter.pdf.open("rb")
    except FileNotFoundError as missing:
        raise Http404("The letter's PDF is missing.") from missing
    response = FileResponse(
        pdf,
        as_attachment=True,
        filename=f"mdt-outcome-letter-{letter.public_id}.pdf",
        content_type="application/pdf",
    )
    response["Cache-Control"] = "no-store"
    return response


# -- the meeting's letters ---------------------------------------------------------------------


@dataclass
class LetterRow:
    letter: Letter
    tag: str
    to_sent: str
    to_acknowledged: str


def format_duration(duration: timedelta | None) -> str:
    """A turnaround for people: "12 min", "2 h 5 min", "3 days"."""
    if duration is None:
        return ""
    minutes = max(int(duration / timedelta(minutes=1)), 0)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} days"


def _turnaround(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return format_duration(end - start)


def _meeting_letters_context(request, meeting: Meeting) -> dict:
    rows = [
        LetterRow(
            letter,
            STATUS_TAGS.get(letter.status, ""),
            _turnaround(letter.outcome.signed_at, letter.sent_at),
            _turnaround(letter.outcome.signed_at, letter.acknowledged_at),
        )
        for letter in _letter_rows(
            letters.team_letters(request.user).filter(outcome__case__meeting=meeting)
        ).order_by("outcome__case__position", "outcome__amendment_no")
    ]
    audit_saw(request, (row.letter.outcome.case.patient_id for row in rows))
    can_send = can_manage_list(request.user)
    concluded = meeting.status == Meeting.Status.CONCLUDED
    send_all = None
    if can_send and concluded:
        send_all = letter_reports.send_all_preview(meeting, (row.letter for row in rows))
    return {
        "meeting": meeting,
        "letter_rows": rows,
        "can_send": can_send,
        "concluded": concluded,
        "send_all": send_all,
        "progress": letter_reports.letter_progress(row.letter.status for row in rows),
        "turnaround": letter_reports.meeting_turnaround(meeting) if rows else None,
        "duration": format_duration,
    }


def _meeting(request, public_id) -> Meeting:
    return get_object_or_404(
        Meeting.objects.visible_to(request.user).select_related("team"), public_id=public_id
    )


@login_required
@require_GET
def meeting_letters(request, public_id):
    """The meeting's letters: the panel on the meeting page (htmx), or a page of its own."""
    meeting = _meeting(request, public_id)
    context = _meeting_letters_context(request, meeting)
    if request.htmx:
        return render(request, "mdt/letters/partials/meeting_letters.jinja", context)
    return render(request, "mdt/letters/meeting_letters.jinja", context)


@background_poll
@login_required
@require_GET
def meeting_letters_progress(request, public_id):
    """Polled every 2 seconds by the letters panel while any letter is on its way: the progress
    and the letters again, with the count for the live region only when it differs from the one
    the page last had (``sent`` and ``failed``), so a screen reader hears each change once."""
    meeting = _meeting(request, public_id)
    context = _meeting_letters_context(request, meeting)
    progress = context["progress"]
    shown = (request.GET.get("sent"), request.GET.get("failed"))
    context["announce"] = shown != (str(progress.sent), str(progress.failed))
    context["polled"] = True
    return render(request, "mdt/letters/partials/letters_status.jinja", context)


@login_required
@require_POST
def send_meeting_letters(request, public_id):
    meeting = _meeting(request, public_id)
    if not can_manage_list(request.user):
        raise PermissionDenied
    try:
        result = letters.release_meeting_letters(
            user=request.user, meeting=meeting, told_by=request.POST.get("told_by", "")
        )
    except ListError as error:
        messages.error(request, str(error))
    else:
        audit_did(request, "send_meeting_letters", object_ref=f"meeting:{meeting.public_id}")
        messages.success(request, result.message)
    return redirect(reverse("mdt:meeting", args=[meeting.public_id]) + "#letters")


@login_required
@require_POST
def resend_letter(request, public_id):
    letter = get_object_or_404(
        letters.team_letters(request.user).select_related("outcome__case__meeting"),
        public_id=public_id,
    )
    if not can_manage_list(request.user):
        raise PermissionDenied
    try:
        letters.resend_letter(user=request.user, letter=letter)
    except ListError as error:
        messages.error(request, str(error))
    else:
        audit_did(
            request,
            "resend_letter",
            object_ref=f"letter:{letter.public_id}",
            patient_ids=[letter.outcome.case.patient_id],
        )
        messages.success(request, "The letter is being sent again.")
    meeting = letter.outcome.case.meeting
    return redirect(reverse("mdt:meeting", args=[meeting.public_id]) + "#letters")


# -- the patient has been told -----------------------------------------------------------------


class PatientToldForm(forms.Form):
    told_by = forms.CharField(label="Who told the patient", max_length=200)
    told_at = forms.DateTimeField(
        label="When",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M"],
        help_text="Leave empty for now.",
    )


@login_required
@require_POST
def record_patient_told(request, public_id):
    case = queries.case_for_user(request.user, public_id)
    history = reverse("mdt:outcome_history", args=[case.public_id])
    form = PatientToldForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say who told the patient, and when (or leave the time empty).")
        return redirect(f"{history}#patient-told")
    try:
        told = letters.record_patient_told(
            user=request.user,
            case=case,
            told_by=form.cleaned_data["told_by"],
            told_at=form.cleaned_data["told_at"],
        )
    except ListError as error:
        messages.error(request, str(error))
        return redirect(f"{history}#patient-told")
    audit_did(
        request,
        "record_patient_told",
        object_ref=f"case:{case.public_id}",
        patient_ids=[case.patient_id],
    )
    released = told.released
    if released:
        plural = "letter" if released == 1 else "letters"
        messages.success(
            request, f"Recorded that the patient has been told. {released} held {plural} released."
        )
    else:
        messages.success(request, "Recorded that the patient has been told.")
    return redirect(f"{history}#patient-told")


# -- the preview beside the outcome form ----------------------------------------------------------


@login_required
@require_GET
def letter_preview(request, public_id):
    """The letter the case's latest outcome (the draft on the console) would make, addressed to
    the patient's practice now."""
    case = queries.case_for_user(request.user, public_id)
    if not can_run_meeting(request.user):
        raise PermissionDenied
    outcome = case.outcomes.order_by("-amendment_no").first()
    body = ""
    if outcome is not None:
        recipient = letters.resolve_recipient(outcome)
        body = render_letter_html(letter_context(outcome, recipient.practice), fragment=True)
    audit_saw(request, [case.patient_id])
    return render(
        request, "mdt/letters/partials/letter_preview.jinja", {"case": case, "body": body}
    )


# -- the administrators' turnaround report ---------------------------------------------------------


class TurnaroundFilterForm(forms.Form):
    # Never empty: _turnaround_filter fills in the last four weeks.
    start = forms.DateField(
        error_messages={"invalid": "Enter the first date as a real date, like 2027-03-02."}
    )
    end = forms.DateField(
        error_messages={"invalid": "Enter the last date as a real date, like 2027-03-30."}
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(),
        required=False,
        empty_label="All teams",
        error_messages={"invalid_choice": "Choose one of your organisation's teams."},
    )

    def __init__(self, data, *, teams):
        super().__init__(data)
        self.fields["team"].queryset = teams

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end < start:
            self.add_error("end", "The last date must be the same as the first date or after it.")
        return cleaned


def _turnaround_filter(query) -> dict:
    """The report's filter as asked, the last four weeks where no dates are given."""
    today = timezone.localdate(timezone=letter_reports.LONDON)
    first, last = letter_reports.default_period(today)
    data = {"start": first.isoformat(), "end": last.isoformat()}
    data.update({name: value for name, value in query.items() if value})
    return data


@login_required
@require_GET
def letter_turnaround(request):
    """Counts and times per meeting only: the letters by patient are on each meeting's page."""
    if not can_read_letter_turnaround(request.user):
        raise PermissionDenied
    form = TurnaroundFilterForm(
        _turnaround_filter(request.GET), teams=letter_reports.report_teams(request.user)
    )
    report, openable = None, set()
    if form.is_valid():
        report = letter_reports.turnaround_report(
            request.user,
            first_day=form.cleaned_data["start"],
            last_day=form.cleaned_data["end"],
            team=form.cleaned_data["team"],
        )
        # The meeting letters page is for the meeting's team: link it where the user is on it.
        openable = set(
            Meeting.objects.visible_to(request.user)
            .filter(pk__in=[row.meeting.pk for row in report.rows])
            .values_list("pk", flat=True)
        )
    return render(
        request,
        "mdt/letters/turnaround.jinja",
        {"form": form, "report": report, "openable": openable, "duration": format_duration},
    )
