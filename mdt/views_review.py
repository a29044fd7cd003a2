"""Reviews before the meeting: a specialty records its review of a case on the case page. htmx
swaps the reviews section; without JavaScript the form posts and the case page is shown again
(or, on an error, a page with the form and the error summary)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.audit import audit_did, audit_saw

from . import queries, reviews
from .forms import ReviewForm
from .permissions import can_review
from .services import ListError


@login_required
@require_POST
def record_review(request, public_id):
    case = queries.case_for_user(request.user, public_id)  # 404 outside the user's teams
    readiness = queries.case_readiness(request.user, case)
    role = request.POST.get("role", "")
    if not can_review(request.user) or role not in readiness.reviewer_roles:
        raise PermissionDenied  # e.g. a surgeon recording radiology's review
    form = ReviewForm(request.POST)
    saved = None
    if form.is_valid():
        # The triage may have changed since the form was shown; the review is kept either way.
        was_done = any(state.done for state in readiness.states if state.role == role)
        try:
            saved = reviews.record_review(
                user=request.user,
                case=case,
                role=role,
                note=form.cleaned_data["note"],
                done=form.done(was_done),
            )
        except ListError as error:
            form.add_error("note" if error.field == "note" else None, str(error))
    if saved is not None:
        audit_did(request, "record_review", str(case.public_id), patient_ids=[case.patient_id])
        message = _saved_message(saved)
        if not request.htmx:
            messages.success(request, message)
            return redirect(reverse("mdt:case", args=[case.public_id]) + "#reviews")
        queries.case_readiness(request.user, case)  # read again: the section shows the change
        return render(
            request, "mdt/partials/reviews.jinja", {"case": case, "review_saved": message}
        )
    audit_saw(request, [case.patient_id])
    context = {"case": case, "review_form": form, "review_role": role}
    if request.htmx:
        return render(request, "mdt/partials/reviews.jinja", context)
    return render(request, "mdt/review.jinja", context)


def _saved_message(review) -> str:
    name = queries.review_name(review.role).capitalize()
    if review.is_done:
        return f"{name} review marked done."
    return f"{name} review saved, not marked done."
