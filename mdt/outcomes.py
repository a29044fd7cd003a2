"""Recording, signing and amending a case's MDT outcome.

Drafts are saved with optimistic locking: the form carries the ``revision`` it was loaded at, a
save bumps it, and a save naming an older revision is refused with the other person's version
(``OutcomeConflict``), so nothing is overwritten. Signing pins the snapshot the meeting saw and
records who was in the room; a signed version is never changed (PostgreSQL refuses it) and is
corrected by an amendment: a new version with a reason."""

from dataclasses import dataclass, field
from datetime import date

from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from records.models import Snapshot

from . import reviews
from .letters import create_letter_for
from .live import bump_live_version, quoracy
from .models import CarePlanIntent, Case, Meeting, Outcome, PlannedTreatment
from .permissions import can_run_meeting, can_sign_outcomes
from .services import ListError

# The fields a draft save may change (everything the outcome form edits).
EDITABLE_FIELDS = (
    "discussion_date",
    "category",
    "agreed_diagnosis",
    "agreed_icd10",
    "stage_t",
    "stage_n",
    "stage_m",
    "stage_group",
    "performance_status",
    "care_plan_intent",
    "planned_treatments",
    "no_treatment_reason",
    "trial_considered",
    "trial_referred",
    "trial_name",
    "standard_of_care",
    "plan",
    "actions",
    "gp_actions",
    "key_worker",
    "patient_informed",
    "informed_by",
    "informed_at",
)


@dataclass
class OutcomeConflict(Exception):
    """Someone else saved (or signed) the outcome since this form was loaded."""

    current: Outcome
    changed_fields: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        who = self.current.recorded_by.display_name if self.current.recorded_by_id else "someone"
        if self.current.is_signed:
            return "This outcome was signed while you were editing it. Your changes were not saved."
        return (
            f"{who} saved this outcome while you were editing it. Your changes were not saved: "
            "check their version below, then make your changes again."
        )


def current_outcome(case: Case) -> Outcome | None:
    """The draft if there is one, else the latest signed version."""
    versions = case.outcomes.select_related("recorded_by", "signed_by")
    return versions.order_by("-amendment_no").first()


def signed_versions(case: Case) -> list[Outcome]:
    return list(
        case.outcomes.filter(signed_at__isnull=False)
        .select_related("signed_by", "recorded_by")
        .order_by("amendment_no")
    )


def _check_can_edit(user, case: Case, meeting: Meeting, amendment_no: int) -> None:
    if amendment_no == 0:
        if not can_run_meeting(user):
            raise ListError("Only the chair or the MDT coordinator can record outcomes.")
        if meeting.status != Meeting.Status.IN_PROGRESS:
            raise ListError("Outcomes are recorded while the meeting is in progress.")
        if case.status not in (Case.Status.LISTED,):
            raise ListError(f"This case is {case.get_status_display().lower()}.")
    elif not can_sign_outcomes(user, meeting):
        raise ListError("Only the chair can amend a signed outcome.")


def _changed(draft: Outcome, data: dict) -> list[str]:
    return [name for name in data if getattr(draft, name) != data[name]]


def save_draft(*, user, case: Case, revision: int, data: dict) -> Outcome:
    """Saves the form's values over the draft loaded at ``revision`` (0: no draft yet)."""
    unknown = set(data) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"not outcome form fields: {sorted(unknown)}")
    with transaction.atomic():
        case = Case.objects.select_for_update().select_related("meeting").get(pk=case.pk)
        draft = case.outcomes.filter(signed_at__isnull=True).first()
        if draft is None:
            latest = case.outcomes.order_by("-amendment_no").first()
            if latest is not None:
                if revision:  # the draft the form was loaded from has been signed since
                    raise OutcomeConflict(current=latest, changed_fields=_changed(latest, data))
                raise ListError("This outcome is signed. Start an amendment to change it.")
            _check_can_edit(user, case, case.meeting, 0)
            if revision:
                raise ListError("This outcome no longer exists. Reload the page.")
            values = {"discussion_date": timezone.localdate(), **data}
            try:
                with transaction.atomic():
                    draft = Outcome.objects.create(case=case, recorded_by=user, **values)
            except IntegrityError as clash:  # a simultaneous first save
                raise ListError("Someone else started this outcome. Reload the page.") from clash
            bump_live_version(case.meeting_id)
            return draft
        _check_can_edit(user, case, case.meeting, draft.amendment_no)
        if draft.revision != revision:
            draft.recorded_by  # noqa: B018 (loaded for the conflict message)
            raise OutcomeConflict(current=draft, changed_fields=_changed(draft, data))
        updated = Outcome.objects.filter(
            pk=draft.pk, revision=revision, signed_at__isnull=True
        ).update(
            **data,
            revision=F("revision") + 1,
            recorded_by=user,
            updated_at=timezone.now(),
        )
        if not updated:  # cannot happen while the case row is locked; kept as the guarantee
            raise OutcomeConflict(current=Outcome.objects.get(pk=draft.pk))
        bump_live_version(case.meeting_id)
        return Outcome.objects.select_related("recorded_by").get(pk=draft.pk)


def completeness_problems(outcome: Outcome, *, ratify: bool) -> list[tuple[str, str]]:
    """What must be filled in before the chair can sign, as (field, message)."""
    problems = []
    if not outcome.category:
        problems.append(("category", "Choose the outcome."))
    if not outcome.plan.strip():
        problems.append(("plan", "Write the plan in words."))
    if not outcome.care_plan_intent:
        problems.append(("care_plan_intent", "Choose the care plan intent."))
    no_treatment = outcome.care_plan_intent == CarePlanIntent.NO_ACTIVE_TREATMENT or (
        PlannedTreatment.NO_ACTIVE in outcome.planned_treatments
    )
    if no_treatment and not outcome.no_treatment_reason:
        problems.append(("no_treatment_reason", "Give the reason for no active treatment."))
    if not no_treatment and not outcome.planned_treatments and not ratify:
        problems.append(("planned_treatments", "Choose the planned treatment, or none."))
    if ratify and not outcome.standard_of_care.strip():
        problems.append(
            ("standard_of_care", "Name the standard of care protocol the outcome follows.")
        )
    if outcome.patient_informed and not outcome.informed_by.strip():
        problems.append(("informed_by", "Say who told the patient."))
    if outcome.discussion_date and outcome.discussion_date > date.today():
        problems.append(("discussion_date", "The discussion date cannot be in the future."))
    for number, action in enumerate(outcome.actions or [], start=1):
        if not (action.get("action") and action.get("owner")):
            problems.append(("actions", f"Action {number} needs what is to be done and an owner."))
    return problems


class OutcomeIncomplete(ListError):
    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__(" ".join(message for _field, message in problems))
        self.problems = problems


def sign_outcome(
    *, user, case: Case, revision: int, snapshot_id: int | None, ratify: bool = False
) -> Outcome:
    """The chair signs the draft they saw (``revision``), pinning the snapshot shown to them."""
    with transaction.atomic():
        case = (
            Case.objects.select_for_update()
            .select_related("meeting", "meeting__team")
            .get(pk=case.pk)
        )
        meeting = case.meeting
        if not can_sign_outcomes(user, meeting):
            raise ListError("Only the chair can sign an outcome.")
        draft = (
            case.outcomes.select_for_update()
            .filter(signed_at__isnull=True)
            .select_related("recorded_by")
            .first()
        )
        if draft is None:
            latest = case.outcomes.order_by("-amendment_no").first()
            if latest is not None and latest.is_signed:
                if latest.revision == revision and latest.signed_by_id == user.pk:
                    return latest  # the same signature sent twice
                raise OutcomeConflict(current=latest)
            raise ListError("Record the outcome before signing it.")
        if draft.revision != revision:
            raise OutcomeConflict(current=draft)
        if draft.amendment_no == 0 and meeting.status != Meeting.Status.IN_PROGRESS:
            raise ListError("Outcomes are signed while the meeting is in progress.")
        if ratify and case.triage != Case.Triage.STANDARD_OF_CARE:
            raise ListError("Only a case listed under a Standard of Care can be ratified.")
        problems = completeness_problems(draft, ratify=ratify)
        if problems:
            raise OutcomeIncomplete(problems)
        snapshot = _snapshot_seen(case, snapshot_id)
        now = timezone.now()
        draft.signed_at, draft.signed_by, draft.snapshot = now, user, snapshot
        if draft.amendment_no == 0:
            draft.ratified = ratify
            room = quoracy(meeting)
            draft.roles_present = room.present_roles
            draft.missing_core_roles = room.missing_roles
            draft.missing_case_roles = [
                role for role in reviews.roles_needed(case) if role not in room.present_roles
            ]
        else:
            first = case.outcomes.get(amendment_no=0)
            draft.ratified = first.ratified
            draft.roles_present = first.roles_present
            draft.missing_core_roles = first.missing_core_roles
            draft.missing_case_roles = first.missing_case_roles
        draft.save()
        create_letter_for(draft)  # in this transaction; rendering is enqueued when it commits
        if draft.amendment_no == 0:
            case.status = Case.Status.RATIFIED if ratify else Case.Status.DISCUSSED
            case.save(update_fields=["status"])
        bump_live_version(meeting.pk)
        return draft


def _snapshot_seen(case: Case, snapshot_id: int | None) -> Snapshot:
    if snapshot_id:
        snapshot = Snapshot.objects.filter(pk=snapshot_id, patient_id=case.patient_id).first()
        if snapshot is None:
            raise ListError("The record shown is not this patient's. Reload the page.")
        return snapshot
    if case.snapshot_id is None:
        raise ListError(
            "This case's record has not been gathered yet, so there is nothing to pin to the "
            "outcome. Refresh the record and sign when it has arrived."
        )
    return case.snapshot


def start_amendment(*, user, case: Case, reason: str) -> Outcome:
    """A new draft version copied from the latest signed one, with the reason for amending."""
    if not reason.strip():
        raise ListError("Give the reason for amending the signed outcome.", field="reason")
    with transaction.atomic():
        case = Case.objects.select_for_update().select_related("meeting").get(pk=case.pk)
        if not can_sign_outcomes(user, case.meeting):
            raise ListError("Only the chair can amend a signed outcome.")
        if case.outcomes.filter(signed_at__isnull=True).exists():
            raise ListError("An amendment is already being drafted for this outcome.")
        latest = case.outcomes.filter(signed_at__isnull=False).order_by("-amendment_no").first()
        if latest is None:
            raise ListError("There is no signed outcome to amend.")
        number = (case.outcomes.aggregate(top=Max("amendment_no"))["top"] or 0) + 1
        draft = Outcome.objects.create(
            case=case,
            amendment_no=number,
            amendment_reason=reason.strip(),
            recorded_by=user,
            **{name: getattr(latest, name) for name in EDITABLE_FIELDS},
        )
        bump_live_version(case.meeting_id)
        return draft
