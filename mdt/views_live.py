"""Pages of the live meeting: the chair's console, the attendees' follower page and its poll,
attendance, outcomes (save, sign, amend, history), ending each case, concluding, and the summary.
Each view reads the request, calls the service in mdt/live.py, mdt/outcomes.py or
mdt/conclusion.py, and renders or redirects."""

from collections import Counter

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.audit import audit_did, audit_saw
from accounts.session_limits import background_poll

from . import conclusion, live, outcomes, queries, reviews
from .forms import RemoveCaseForm
from .forms_outcome import OutcomeForm, conflict_rows, in_words, outcome_rows
from .models import Attendance, Case, CoreRole, Meeting, Outcome, TeamMember
from .permissions import can_manage_list, can_run_meeting, can_sign_outcomes
from .presenters import RecordPresenter
from .services import ListError

# Shown on the follower page's outcome panel and the console's read-only outcome.
CASE_STATE_TAGS = {
    Case.Status.LISTED: "blue",
    Case.Status.DISCUSSED: "green",
    Case.Status.RATIFIED: "green",
    Case.Status.FOR_INFORMATION: "grey",
    Case.Status.DEFERRED: "orange",
    Case.Status.REMOVED: "red",
}


def _meeting(request, public_id) -> Meeting:
    """The meeting (404 outside the user's teams)."""
    return get_object_or_404(
        Meeting.objects.visible_to(request.user).select_related("team", "team__host", "chair"),
        public_id=public_id,
    )


def _require(allowed: bool) -> None:
    if not allowed:
        raise PermissionDenied


def _console_url(meeting: Meeting, case: Case | None = None) -> str:
    url = reverse("mdt:console", args=[meeting.public_id])
    return f"{url}?case={case.public_id}#outcome" if case is not None else url


def _list_cases(meeting: Meeting):
    """Every case on the list (withdrawn ones too, marked), with patient and outcome state."""
    return list(
        meeting.cases.select_related("patient")
        .prefetch_related("outcomes")
        .order_by("position", "id")
    )


def _case_on_list(meeting: Meeting, public_id) -> Case | None:
    try:
        return meeting.cases.select_related("patient").get(public_id=public_id)
    except (Case.DoesNotExist, ValidationError):  # unknown, or not a UUID at all
        return None


def _outcome_state(case: Case) -> str:
    versions = list(case.outcomes.all())
    if not versions:
        return ""
    latest = max(versions, key=lambda outcome: outcome.amendment_no)
    if not latest.is_signed:
        return "Amendment in draft" if latest.amendment_no else "Outcome in draft"
    return f"Signed (amendment {latest.amendment_no})" if latest.amendment_no else "Signed"


def _case_context(request, case: Case) -> dict:
    """What the console and the follower page show of one case: its record, reviews, outcome."""
    case, newer = queries.case_page(request.user, case.public_id)
    outcome = outcomes.current_outcome(case)
    return {
        "case": case,
        "patient": case.patient,
        "record": RecordPresenter(case.snapshot, newer),
        "review_states": reviews.readiness(case),
        "outcome": outcome,
        "outcome_rows": outcome_rows(outcome, filled_only=True) if outcome else [],
        "outcome_roles": _roles_in_words(outcome) if outcome else {},
        "state_tag": CASE_STATE_TAGS.get(case.status, "grey"),
    }


def _quoracy_context(meeting: Meeting) -> dict:
    attendance = list(meeting.attendance.select_related("user"))
    return {"quoracy": live.quoracy(meeting, attendance), "attendance": attendance}


# Starting the meeting and the chair's console


@login_required
@require_POST
def start_meeting(request, public_id):
    meeting = _meeting(request, public_id)
    _require(can_run_meeting(request.user))
    try:
        meeting = live.start_meeting(user=request.user, meeting=meeting)
    except ListError as error:
        messages.error(request, str(error))
        return redirect("mdt:meeting", meeting.public_id)
    audit_did(request, "start_meeting", str(meeting.public_id))
    return redirect("mdt:console", meeting.public_id)


@login_required
@require_GET
def console(request, public_id):
    meeting = _meeting(request, public_id)
    _require(can_run_meeting(request.user))
    if meeting.status == Meeting.Status.CONCLUDED:
        return redirect("mdt:meeting_summary", meeting.public_id)
    if not meeting.is_live:
        messages.info(request, "Start the meeting to open the chair's console.")
        return redirect("mdt:meeting", meeting.public_id)
    return _render_console(request, meeting, request.GET.get("case"))


def _render_console(request, meeting, case_id=None, *, form=None, conflict=None, status=200):
    """The console on a case: ``case_id`` (a case the chair went back to), else the one on the
    shared screen. ``form`` and ``conflict`` re-show a refused save with what the user typed."""
    cases = _list_cases(meeting)
    shown = next((c for c in cases if case_id and str(c.public_id) == str(case_id)), None)
    if shown is None:
        shown = next((c for c in cases if c.pk == meeting.current_case_id), None)
    on_list = [c for c in cases if c.status != Case.Status.REMOVED]
    screen = [(i, c) for i, c in enumerate(on_list, start=1) if c.pk == meeting.current_case_id]
    context = {
        "meeting": meeting,
        "cases": [(c, _outcome_state(c)) for c in cases],
        "screen_position": screen[0][0] if screen else None,
        "screen_case": screen[0][1] if screen else None,
        "on_screen_id": meeting.current_case_id,
        "can_sign": can_sign_outcomes(request.user, meeting),
        "can_withdraw": can_manage_list(request.user),
        "state_tags": CASE_STATE_TAGS,
        **_quoracy_context(meeting),
    }
    if shown is not None:
        context.update(_case_context(request, shown))
        context.update(_outcome_form_context(shown, context["outcome"], form, conflict))
        index = next((i for i, c in enumerate(on_list) if c.pk == shown.pk), None)
        context["position"] = (index + 1) if index is not None else None
        context["case_count"] = len(on_list)
        audit_saw(request, [shown.patient_id])
    audit_saw(request, (c.patient_id for c in cases))
    return render(request, "mdt/live/console.jinja", context, status=status)


def _outcome_form_context(case: Case, outcome: Outcome | None, form=None, conflict=None) -> dict:
    """The form while the outcome can be edited: a draft, or none yet on a case still listed."""
    editable = (outcome is None and case.status == Case.Status.LISTED) or (
        outcome is not None and not outcome.is_signed
    )
    if form is None and editable:
        form = OutcomeForm.for_outcome(outcome)
    context = {"form": form if editable else None, "conflict": conflict}
    if conflict is not None:
        yours = form.outcome_data() if form is not None and hasattr(form, "cleaned_data") else {}
        context["conflict_rows"] = conflict_rows(conflict.current, yours, conflict.changed_fields)
    return context


@login_required
@require_POST
def show_case(request, public_id):
    meeting = _meeting(request, public_id)
    _require(can_run_meeting(request.user))
    direction = request.POST.get("direction", "")
    if direction in ("next", "previous"):
        case = live.neighbour(meeting, direction)
        if case is None:
            messages.info(
                request, "This is the last case." if direction == "next" else "This is the first."
            )
            return redirect("mdt:console", meeting.public_id)
    else:
        case = _case_on_list(meeting, request.POST.get("case", ""))
        if case is None:
            raise Http404
    try:
        live.show_case(user=request.user, meeting=meeting, case=case)
    except ListError as error:
        messages.error(request, str(error))
        return redirect("mdt:console", meeting.public_id)
    audit_did(request, "show_case", str(case.public_id), patient_ids=[case.patient_id])
    return redirect("mdt:console", meeting.public_id)


# Following the meeting


@login_required
@require_GET
def follow(request, public_id):
    meeting = _meeting(request, public_id)
    present = request.GET.get("present") == "1"
    context = _live_state_context(request, meeting, present=present)
    if context.get("case") is not None:
        audit_saw(request, [context["case"].patient_id])
    context["me"] = next((a for a in context["attendance"] if a.user_id == request.user.pk), None)
    context["member"] = TeamMember.objects.filter(team=meeting.team, user=request.user).first()
    template = "mdt/live/present.jinja" if present else "mdt/live/follow.jinja"
    return render(request, template, context)


def _live_state_context(request, meeting: Meeting, *, present: bool) -> dict:
    """The follower's fragment: the case on the screen, its outcome so far, and quoracy. The
    same for every viewer (live_state shares it): nothing personal goes in here."""
    context = {"meeting": meeting, "present": present, **_quoracy_context(meeting)}
    current = None
    if meeting.is_live and meeting.current_case_id:
        current = Case.objects.filter(pk=meeting.current_case_id).first()
    if current is None:
        return context
    context.update(_case_context(request, current))
    on_list = list(meeting.cases.on_list().order_by("position", "id").values_list("id", flat=True))
    context["position"] = on_list.index(current.pk) + 1 if current.pk in on_list else None
    context["case_count"] = len(on_list)
    return context


@background_poll
@login_required
@require_GET
def live_state(request, public_id):
    """Polled every second by each follower: 204 while ``live_version`` is what the page shows
    (one query, the access rule included), else the new fragment. The fragment is the same
    for everyone who may see the meeting, so it is rendered once per version and process and
    shared (the chair saves drafts often, and 30 followers must not mean 30 renders); what is
    personal, the audit row and the announcement of a new case, is added per request."""
    version = queries.live_version(request.user, public_id)
    if version is None:
        raise Http404
    if request.GET.get("v") == str(version):
        return HttpResponse(status=204)
    if request.GET.get("part") == "quoracy":
        return _console_status(request, _meeting(request, public_id))
    present = request.GET.get("present") == "1"
    key = f"mdt:live-state:{public_id}:{version}:{int(present)}"
    shown = cache.get(key)
    if shown is None:
        meeting = _meeting(request, public_id)
        context = _live_state_context(request, meeting, present=present)
        case = context.get("case")
        shown = {
            "html": render_to_string(
                "mdt/live/partials/live_state.jinja", context, request=request
            ),
            "case": str(case.public_id) if case else "",
            "patient_id": case.patient_id if case else None,
            "position": context.get("position"),
            "patient_name": case.patient.full_name if case else "",
            "concluded": meeting.status == Meeting.Status.CONCLUDED,
        }
        cache.set(key, shown, timeout=LIVE_STATE_CACHE_SECONDS)
    return HttpResponse(shown["html"] + _announcement(request, shown))


LIVE_STATE_CACHE_SECONDS = 120


def _announcement(request, shown: dict) -> str:
    """Records the case as seen by this user when it is new to their page, and announces it."""
    seen_case = request.GET.get("case")
    if shown["case"] and shown["case"] != seen_case:
        audit_saw(request, [shown["patient_id"]])
    if seen_case is None or shown["case"] == seen_case:
        return ""
    if shown["case"]:
        text = f"Now showing case {shown['position'] or ''}: {shown['patient_name']}"
    elif shown["concluded"]:
        text = "The meeting has concluded."
    else:
        return ""
    return f'<div id="live-announcement" hx-swap-oob="innerHTML">{escape(text)}</div>'


def _console_status(request, meeting: Meeting):
    """The console's live panel: quoracy and which case is on the shared screen."""
    on_list = list(meeting.cases.on_list().select_related("patient").order_by("position", "id"))
    screen = [(i, c) for i, c in enumerate(on_list, start=1) if c.pk == meeting.current_case_id]
    context = {
        "meeting": meeting,
        "screen_position": screen[0][0] if screen else None,
        "screen_case": screen[0][1] if screen else None,
        **_quoracy_context(meeting),
    }
    if screen:
        audit_saw(request, [screen[0][1].patient_id])
    return render(request, "mdt/live/partials/console_status.jinja", context)


# Attendance


@login_required
@require_http_methods(["GET", "POST"])
def attendance(request, public_id):
    meeting = _meeting(request, public_id)
    if request.method == "POST":
        return _record_attendance(request, meeting)
    members = list(
        TeamMember.objects.filter(team=meeting.team)
        .select_related("user")
        .order_by("core_role", "user__last_name")
    )
    context = _quoracy_context(meeting)
    by_user = {a.user_id: a for a in context["attendance"]}
    return render(
        request,
        "mdt/live/attendance.jinja",
        {
            "meeting": meeting,
            "rows": [(member, by_user.get(member.user_id)) for member in members],
            "can_run": can_run_meeting(request.user),
            "statuses": Attendance.Status.choices,
            **context,
        },
    )


def _record_attendance(request, meeting: Meeting):
    """``member`` (a team membership) names someone else, recorded by the chair or coordinator;
    without it the user checks themselves in from the follower page."""
    member_id = request.POST.get("member", "")
    if member_id:
        _require(can_run_meeting(request.user))
        member = TeamMember.objects.filter(
            team=meeting.team, pk=member_id if member_id.isdigit() else 0
        )
        attendee = get_object_or_404(member.select_related("user")).user
        back = reverse("mdt:attendance", args=[meeting.public_id])
    else:
        attendee = request.user
        back = reverse("mdt:follow", args=[meeting.public_id])
    status = request.POST.get("status", "")
    try:
        if status == "left":
            live.record_departure(user=request.user, meeting=meeting, attendee=attendee)
        else:
            live.record_attendance(
                user=request.user, meeting=meeting, attendee=attendee, status=status
            )
    except ListError as error:
        messages.error(request, str(error))
    else:
        audit_did(request, f"attendance:{status}", str(meeting.public_id))
    return redirect(back)


# Outcomes


def _outcome_page(request, case: Case, *, form=None, conflict=None, status=200):
    """Re-shows a refused outcome form: on the console while the meeting runs, else on the
    amendment page."""
    if case.meeting.is_live and can_run_meeting(request.user):
        return _render_console(
            request, case.meeting, case.public_id, form=form, conflict=conflict, status=status
        )
    return _render_amend(request, case, form=form, conflict=conflict, status=status)


def _after_outcome_change(case: Case):
    if case.meeting.is_live:
        return redirect(_console_url(case.meeting, case))
    return redirect("mdt:amend_outcome", case.public_id)


def _outcome_case(request, public_id) -> Case:
    case = queries.case_for_user(request.user, public_id)
    _require(can_run_meeting(request.user) or can_sign_outcomes(request.user, case.meeting))
    return case


@login_required
@require_POST
def save_outcome(request, public_id):
    case = _outcome_case(request, public_id)
    form = OutcomeForm(request.POST)
    if not form.is_valid():
        return _outcome_page(request, case, form=form)
    try:
        outcomes.save_draft(
            user=request.user,
            case=case,
            revision=form.cleaned_data["revision"],
            data=form.outcome_data(),
        )
    except outcomes.OutcomeConflict as conflict:
        return _conflict(request, case, form, conflict)
    except ListError as error:
        form.add_error(None, str(error))
        return _outcome_page(request, case, form=form)
    audit_did(request, "save_outcome", str(case.public_id), patient_ids=[case.patient_id])
    messages.success(request, "The draft outcome is saved.")
    return _after_outcome_change(case)


def _conflict(request, case, form, conflict):
    """Keeps what the user typed, shows the other person's values, and moves the form to their
    revision so that saving again is a deliberate choice."""
    again = form.with_revision(conflict.current.revision)
    again.is_valid()
    again.add_error(None, str(conflict))
    audit_saw(request, [case.patient_id])
    return _outcome_page(request, case, form=again, conflict=conflict, status=409)


@login_required
@require_POST
def sign_outcome(request, public_id):
    case = _outcome_case(request, public_id)
    _require(can_sign_outcomes(request.user, case.meeting))
    form = OutcomeForm(request.POST)
    if not form.is_valid():
        return _outcome_page(request, case, form=form)
    ratify = request.POST.get("ratify") == "1"
    try:
        signed = _save_and_sign(request, case, form, ratify=ratify)
    except outcomes.OutcomeIncomplete as incomplete:
        form.add_problems(incomplete.problems)
        return _outcome_page(request, case, form=form)
    except outcomes.OutcomeConflict as conflict:
        return _conflict(request, case, form, conflict)
    except ListError as error:
        form.add_error(None, str(error))
        return _outcome_page(request, case, form=form)
    audit_did(request, "sign_outcome", str(case.public_id), patient_ids=[case.patient_id])
    kind = "ratified" if signed.ratified else "signed"
    what = f"Amendment {signed.amendment_no}" if signed.amendment_no else "The outcome"
    messages.success(request, f"{what} is {kind}.")
    return _after_outcome_change(case)


def _save_and_sign(request, case: Case, form: OutcomeForm, *, ratify: bool) -> Outcome:
    """Signs exactly what the chair sees on the form: their unsaved edits are saved first, in
    the same transaction. A second press of Sign (or a resubmit) finds the outcome already signed
    by them with these values, and is answered as the first was."""
    data = form.outcome_data()
    snapshot_id = _snapshot_id(request.POST.get("snapshot", ""))
    with transaction.atomic():
        try:
            draft = outcomes.save_draft(
                user=request.user, case=case, revision=form.cleaned_data["revision"], data=data
            )
        except outcomes.OutcomeConflict as conflict:
            if conflict.changed_fields:
                raise
            draft = conflict.current  # someone saved exactly these values
            if draft.is_signed:
                if _signed_as_shown(request.user, draft, data):
                    return draft
                raise
        except ListError:
            signed = outcomes.current_outcome(case)
            if signed is not None and _signed_as_shown(request.user, signed, data):
                return signed
            raise
        return outcomes.sign_outcome(
            user=request.user,
            case=case,
            revision=draft.revision,
            snapshot_id=snapshot_id,
            ratify=ratify,
        )


def _signed_as_shown(user, outcome: Outcome, data: dict) -> bool:
    return (
        outcome.is_signed
        and outcome.signed_by_id == user.pk
        and all(getattr(outcome, name) == value for name, value in data.items())
    )


def _snapshot_id(value: str) -> int | None:
    return int(value) if value.isdigit() else None


@login_required
@require_http_methods(["GET", "POST"])
def amend_outcome(request, public_id):
    case = queries.case_for_user(request.user, public_id)
    _require(can_sign_outcomes(request.user, case.meeting))
    reason_form = RemoveCaseForm(request.POST or None)  # one required "reason" field
    if request.method == "POST":
        try:
            outcomes.start_amendment(
                user=request.user, case=case, reason=request.POST.get("reason", "")
            )
        except ListError as error:
            reason_form.errors.clear()
            reason_form.add_error("reason" if error.field else None, str(error))
            return _render_amend(request, case, reason_form=reason_form)
        audit_did(
            request,
            "amend_outcome",
            str(case.public_id),
            patient_ids=[case.patient_id],
            reason=request.POST.get("reason", "").strip(),
        )
        messages.success(request, "Amendment started: change the outcome, then sign it.")
        return _after_outcome_change(case)
    return _render_amend(request, case)


def _render_amend(request, case, *, form=None, conflict=None, reason_form=None, status=200):
    context = _case_context(request, case)
    context.update(
        {
            "meeting": case.meeting,
            "reason_form": reason_form or RemoveCaseForm(),
            "can_sign": can_sign_outcomes(request.user, case.meeting),
            "signed": outcomes.signed_versions(case),
        }
    )
    outcome = context["outcome"]
    if outcome is not None and not outcome.is_signed and outcome.amendment_no:
        context.update(_outcome_form_context(case, outcome, form, conflict))
    else:
        context.update({"form": None, "conflict": None})
    audit_saw(request, [case.patient_id])
    return render(request, "mdt/live/amend.jinja", context, status=status)


@login_required
@require_GET
def outcome_history(request, public_id):
    case = queries.case_for_user(request.user, public_id)
    versions = list(
        case.outcomes.select_related("recorded_by", "signed_by", "snapshot").order_by(
            "amendment_no"
        )
    )
    audit_saw(request, [case.patient_id])
    return render(
        request,
        "mdt/live/history.jinja",
        {
            "case": case,
            "patient": case.patient,
            "meeting": case.meeting,
            "versions": [
                (version, outcome_rows(version), _roles_in_words(version)) for version in versions
            ],
        },
    )


def _roles_in_words(outcome: Outcome) -> dict:
    labels = dict(CoreRole.choices)

    def words(roles):
        return ", ".join(labels.get(role, role) for role in roles)

    return {
        "present": words(outcome.roles_present),
        "missing_core": words(outcome.missing_core_roles),
        "missing_case": words(outcome.missing_case_roles),
    }


def _duration(seconds: int) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s"


# Ending a case without an outcome


def _case_action(request, public_id, allowed, action, name: str, done: str):
    case = queries.case_for_user(request.user, public_id)
    _require(allowed(request.user))
    reason = request.POST.get("reason", "").strip()
    try:
        action(case, reason)
    except ListError as error:
        messages.error(request, str(error))
    else:
        audit_did(request, name, str(case.public_id), patient_ids=[case.patient_id], reason=reason)
        messages.success(request, done)
    if case.meeting.is_live and can_run_meeting(request.user):
        return redirect(_console_url(case.meeting, case))
    return redirect("mdt:meeting", case.meeting.public_id)


@login_required
@require_POST
def defer_case(request, public_id):
    return _case_action(
        request,
        public_id,
        can_run_meeting,
        lambda case, reason: conclusion.defer_case(user=request.user, case=case, reason=reason),
        "defer_case",
        "The case is deferred. It goes to the team's next meeting when this one is concluded.",
    )


@login_required
@require_POST
def note_case(request, public_id):
    return _case_action(
        request,
        public_id,
        can_run_meeting,
        lambda case, _reason: conclusion.note_for_information(user=request.user, case=case),
        "note_case",
        "The case is noted for information.",
    )


@login_required
@require_POST
def withdraw_case(request, public_id):
    return _case_action(
        request,
        public_id,
        can_manage_list,
        lambda case, reason: conclusion.withdraw_case(user=request.user, case=case, reason=reason),
        "withdraw_case",
        "The case is withdrawn from the meeting.",
    )


# Concluding and the summary


@login_required
@require_POST
def conclude(request, public_id):
    meeting = _meeting(request, public_id)
    _require(can_run_meeting(request.user))
    try:
        result = conclusion.conclude_meeting(user=request.user, meeting=meeting)
    except ListError as error:
        messages.error(request, str(error))
        if request.POST.get("from") == "console" and meeting.is_live:
            return redirect("mdt:console", meeting.public_id)
        return redirect("mdt:meeting", meeting.public_id)
    carried = result.carried_over
    audit_did(
        request,
        "conclude_meeting",
        str(meeting.public_id),
        patient_ids=[deferred.patient_id for deferred, _to, _created in carried],
    )
    message = "The meeting is concluded."
    if carried:
        message += f" {len(carried)} deferred case(s) carried over to the next meeting."
    messages.success(request, message)
    return redirect("mdt:meeting_summary", meeting.public_id)


@login_required
@require_GET
def meeting_summary(request, public_id):
    meeting = _meeting(request, public_id)
    cases = list(
        meeting.cases.select_related(
            "patient",
            "carried_over_to",
            "carried_over_to__meeting",
            "deferred_by",
            "removed_by",
            "noted_by",
        )
        .prefetch_related("outcomes__signed_by")
        .order_by("position", "id")
    )
    seconds = conclusion.discussion_seconds(meeting)
    rows = []
    for case in cases:
        versions = sorted(case.outcomes.all(), key=lambda outcome: outcome.amendment_no)
        signed = [outcome for outcome in versions if outcome.is_signed]
        latest = signed[-1] if signed else None
        rows.append(
            {
                "case": case,
                "time": _duration(seconds.get(case.pk, 0)),
                "outcome": signed[0] if signed else None,
                "latest": latest,
                "latest_category": in_words("category", latest.category) if latest else "",
                "draft": any(not outcome.is_signed for outcome in versions),
                "roles": _roles_in_words(signed[0]) if signed else {},
                "tag": CASE_STATE_TAGS.get(case.status, "grey"),
            }
        )
    counts = Counter(case.status for case in cases)
    counts_text = ", ".join(
        f"{counts[status]} {label.lower()}"
        for status, label in Case.Status.choices
        if counts[status]
    )
    audit_saw(request, (case.patient_id for case in cases))
    return render(
        request,
        "mdt/live/summary.jinja",
        {
            "meeting": meeting,
            "rows": rows,
            "counts_text": counts_text or "None",
            "total_time": _duration(sum(seconds.values())),
            **_quoracy_context(meeting),
        },
    )
