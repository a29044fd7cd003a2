"""Letters to the GP: one per signed outcome version, from the signing to a stored PDF.

- ``create_letter_for`` runs inside the transaction that signs an outcome: the row is written
  first, its recipient practice and mailbox frozen as the demographics service has them at that
  moment, and rendering is enqueued when the signature commits (ARCHITECTURE.md, "Processes").
- A letter whose patient has not been told the outcome is **held**: a GP record the patient can
  read must not break the news. ``record_patient_told`` releases it; "Send all letters" for a
  concluded meeting (``release_meeting_letters``) releases the told ones and retries failed ones,
  and releases the rest when the coordinator confirms, naming who, that those patients have been
  told (recorded as PatientTold rows, so the confirmation is on the record).
- Amending an outcome whose letter has not left yet (held, queued, ready or failed) marks that
  letter **superseded**: only the amendment's letter goes, and it names the last letter the GP
  could have had, if any.
- ``render`` (called by the Celery task in mdt.letter_tasks) makes the PDF once, whatever happens
  to the worker, and hands the letter over to sending (mdt.mesh).
- ``stuck_letters`` is what the beat sweep re-enqueues: the repair for a lost message.

Every status change goes through ``_set_status`` on a row locked with ``select_for_update``, and
checks the status it expects first, so a duplicated message or a second click changes nothing.
"""

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.display import format_datetime
from accounts.models import Membership, Organisation, Role
from records.models import Patient

from .letter_content import letter_context
from .letter_render import render_letter_html, render_letter_pdf
from .mesh_addressing import mailbox_for
from .models import (
    Case,
    Letter,
    LetterStatus,
    Meeting,
    Outcome,
    PatientTold,
    Team,
    letter_pdf_path,
)
from .permissions import can_manage_list
from .services import ListError

logger = logging.getLogger(__name__)

NO_PRACTICE = (
    "No registered GP practice is recorded for the patient by the demographics service, so "
    "there is no practice to send the letter to. Confirm the patient's practice and deliver the "
    "letter by hand or by post."
)


@dataclass
class Recipient:
    practice: object  # accounts.models.Organisation | None
    mailbox: str = ""
    manual_reason: str = ""


@dataclass
class LetterRelease:
    """What "Send all letters" did."""

    released: int = 0  # held letters whose patient has been told, now on their way
    retried: int = 0  # failed letters tried again
    still_held: int = 0  # held letters whose patient has not been told: they stay held
    confirmed_told: int = 0  # of the released: told as the coordinator confirmed at "Send all"

    @property
    def message(self) -> str:
        parts = []
        if self.released:
            parts.append(f"{self.released} held {_letters(self.released)} released")
        if self.confirmed_told:
            parts.append(
                f"recorded that {self.confirmed_told} {_patients(self.confirmed_told)} "
                "had been told"
            )
        if self.retried:
            parts.append(f"{self.retried} failed {_letters(self.retried)} sent again")
        if not parts:
            parts.append("No letters were waiting to be sent")
        text = "; ".join(parts) + "."
        if self.still_held:
            text += (
                f" {self.still_held} {_letters(self.still_held)} still held: record that the "
                "patient has been told to release "
                f"{'it' if self.still_held == 1 else 'them'}."
            )
        return text


def _letters(count: int) -> str:
    return "letter" if count == 1 else "letters"


def _patients(count: int) -> str:
    return "patient" if count == 1 else "patients"


# -- who sees which letters --------------------------------------------------------------------

# A letter reaches the GP portal once it has been handed to MESH: not while held, queued or
# failed, nor when it must be delivered by hand.
PORTAL_STATUSES = (LetterStatus.SENT, LetterStatus.ACKNOWLEDGED)


def portal_letters(user):
    """The GP portal's scope: letters sent to a practice where the user is a GP (the recipient
    frozen at signing, not the patient's practice today)."""
    if not user.is_authenticated:
        return Letter.objects.none()
    practices = Membership.objects.filter(
        user=user, role=Role.GP, organisation__kind=Organisation.Kind.GP_PRACTICE
    ).values("organisation_id")
    return Letter.objects.filter(recipient__in=practices, status__in=PORTAL_STATUSES)


def team_letters(user):
    """The letters of the cases of the user's teams (coordinators, clinicians, chairs)."""
    return Letter.objects.filter(outcome__case__meeting__team__in=Team.objects.visible_to(user))


def letters_visible_to(user):
    """The one scope for a letter's PDF: the practice's GPs and the MDT team."""
    if not user.is_authenticated:
        return Letter.objects.none()
    return Letter.objects.filter(
        Q(pk__in=portal_letters(user).values("pk")) | Q(pk__in=team_letters(user).values("pk"))
    )


def mark_read_in_portal(letter: Letter) -> bool:
    """Records the first time a GP opened the letter in the portal (a separate time from MESH's
    acknowledgement, which says only that the practice's system took it). True if this was it."""
    now = timezone.now()
    first = Letter.objects.filter(pk=letter.pk, read_at__isnull=True).update(read_at=now) == 1
    if first:
        letter.read_at = now
    return first


# -- signing -----------------------------------------------------------------------------------


def resolve_recipient(outcome: Outcome) -> Recipient:
    """The patient's GP practice now, from the region's patient index (kept by the demographics
    service's current registration), checked against the demographics the meeting's record
    was gathered with. Missing, unknown or disputed practices mean manual delivery, saying why."""
    patient = Patient.objects.select_related("gp_practice").get(pk=outcome.case.patient_id)
    practice = patient.gp_practice
    seen = {}
    if outcome.snapshot_id:
        seen = (outcome.snapshot.summary or {}).get("demographics") or {}
    seen_ods = (seen.get("gp_practice_ods") or "").strip()
    if practice is None:
        if seen_ods:
            return Recipient(
                None,
                manual_reason=f"The demographics service names the practice {seen_ods}, which "
                "is not in the region's directory of GP practices, so the letter has no "
                "known recipient. Confirm the practice and deliver the letter by hand or by post.",
            )
        return Recipient(None, manual_reason=NO_PRACTICE)
    if seen_ods and seen_ods != practice.ods_code:
        return Recipient(
            practice,
            manual_reason=f"The sources disagree about the patient's GP practice: the patient "
            f"index has {practice.name} ({practice.ods_code}), but the record the MDT saw had "
            f"{seen_ods}. Confirm the practice with the demographics service before delivering "
            "the letter.",
        )
    address = mailbox_for(practice)
    if address.mailbox_id is None:
        return Recipient(
            practice,
            manual_reason=f"{address.reason} The letter cannot be sent electronically: deliver "
            "it by hand or by post.",
        )
    return Recipient(practice, mailbox=address.mailbox_id)


def patient_has_been_told(outcome: Outcome) -> bool:
    return outcome.patient_informed or PatientTold.objects.filter(case_id=outcome.case_id).exists()


def told_case_ids(meeting: Meeting) -> set[int]:
    """The meeting's cases recorded as told after signing (PatientTold)."""
    return set(PatientTold.objects.filter(case__meeting=meeting).values_list("case_id", flat=True))


def held_letter_may_go(letter: Letter, told_cases: set[int]) -> bool:
    """Whether a held letter's patient has been told, by its outcome or a later record."""
    return letter.outcome.patient_informed or letter.outcome.case_id in told_cases


def create_letter_for(outcome: Outcome) -> Letter:
    """The letter of a just-signed outcome version; call inside the signing transaction. A second
    call for the same version returns the letter already made."""
    if not outcome.is_signed:
        raise ValueError("only a signed outcome has a letter")
    existing = Letter.objects.filter(outcome=outcome).first()
    if existing is not None:
        return existing
    recipient = resolve_recipient(outcome)
    previous = (
        Letter.objects.filter(
            outcome__case_id=outcome.case_id, outcome__amendment_no__lt=outcome.amendment_no
        )
        .order_by("-outcome__amendment_no")
        .first()
    )
    _supersede_unsent(outcome)
    if not patient_has_been_told(outcome):
        status = LetterStatus.HELD
    elif recipient.manual_reason:
        status = LetterStatus.MANUAL
    else:
        status = LetterStatus.QUEUED
    now = timezone.now()
    letter = Letter.objects.create(
        outcome=outcome,
        recipient=recipient.practice,
        recipient_mailbox=recipient.mailbox,
        manual_reason=recipient.manual_reason,
        supersedes=previous,
        status=status,
        status_changed_at=now,
        created_at=now,
    )
    if status != LetterStatus.HELD:
        enqueue_render(letter.pk)
    return letter


# Letters that have not left: an amendment signed now replaces them before the GP gets them. Not
# ``sending`` (an upload may be under way: it goes, and the amendment's letter supersedes it) nor
# ``manual`` (it may already have been delivered by hand).
UNSENT_STATUSES = (
    LetterStatus.HELD,
    LetterStatus.QUEUED,
    LetterStatus.RENDERED,
    LetterStatus.FAILED,
)


def _supersede_unsent(outcome: Outcome) -> int:
    """Marks the case's earlier letters that have not left as superseded; how many."""
    unsent = Letter.objects.select_for_update(of=("self",)).filter(
        outcome__case_id=outcome.case_id,
        outcome__amendment_no__lt=outcome.amendment_no,
        status__in=UNSENT_STATUSES,
    )
    count = 0
    for letter in unsent.order_by("pk"):
        _set_status(letter, LetterStatus.SUPERSEDED, next_attempt_at=None)
        count += 1
    return count


def replaced_letter(letter: Letter) -> Letter | None:
    """The letter this one replaces as far as the GP is concerned: the nearest earlier letter
    that was not superseded before it left."""
    earlier = letter.supersedes
    while earlier is not None and earlier.status == LetterStatus.SUPERSEDED:
        earlier = earlier.supersedes
    return earlier


# -- status changes ----------------------------------------------------------------------------


def _locked(letter_id: int) -> Letter | None:
    return Letter.objects.select_for_update(of=("self",)).filter(pk=letter_id).first()


def _set_status(letter: Letter, status: str, **fields) -> None:
    """The one place a letter's status changes; the caller holds the row's lock."""
    letter.status = status
    letter.status_changed_at = timezone.now()
    for name, value in fields.items():
        setattr(letter, name, value)
    letter.save(update_fields=["status", "status_changed_at", *fields])


def _release(letter: Letter) -> None:
    """A held letter whose patient has been told goes on: to be rendered, then sent (or, when it
    cannot go by MESH, rendered for manual delivery)."""
    if letter.status != LetterStatus.HELD:
        return
    _set_status(letter, LetterStatus.MANUAL if letter.manual_reason else LetterStatus.QUEUED)
    enqueue_render(letter.pk)


def _retry(letter: Letter) -> None:
    """A failed letter is tried again from where it failed: sending if its PDF exists, else
    rendering."""
    if letter.status != LetterStatus.FAILED:
        return
    reset = {"attempts": 0, "next_attempt_at": None}
    if letter.sha256 and not letter.manual_reason:
        _set_status(letter, LetterStatus.RENDERED, **reset)
        enqueue_send(letter.pk)
    else:
        _set_status(
            letter, LetterStatus.MANUAL if letter.manual_reason else LetterStatus.QUEUED, **reset
        )
        enqueue_render(letter.pk)


def record_patient_told(*, user, case: Case, told_by: str, told_at: datetime | None = None):
    """A member of the case's team records that the patient has now been told the outcome; the
    case's held letters go on their way when this commits."""
    told_by = (told_by or "").strip()
    if not told_by:
        raise ListError("Say who told the patient.", field="told_by")
    now = timezone.now()
    told_at = told_at or now
    if told_at > now + timedelta(minutes=5):
        raise ListError("The time the patient was told cannot be in the future.", field="told_at")
    if not Case.objects.visible_to(user).filter(pk=case.pk).exists():
        raise ListError("Only a member of the case's team can record this.")
    with transaction.atomic():
        case = Case.objects.select_for_update().get(pk=case.pk)
        latest = case.outcomes.filter(signed_at__isnull=False).order_by("-amendment_no").first()
        if latest is None:
            raise ListError(
                "The outcome is not signed yet: record who told the patient on the outcome form."
            )
        told = PatientTold.objects.create(
            case=case, outcome=latest, told_by=told_by, told_at=told_at, recorded_by=user
        )
        held = (
            Letter.objects.select_for_update(of=("self",))
            .filter(outcome__case=case, status=LetterStatus.HELD)
            .order_by("pk")
        )
        told.released = 0  # how many held letters this released, for the page to say
        for letter in held:
            _release(letter)
            told.released += 1
    return told


def resend_letter(*, user, letter: Letter) -> None:
    """ "Resend" on the meeting page: one failed letter tried again (as "Send all letters"
    would), by the chair or the MDT coordinator of the letter's team."""
    if not can_manage_list(user) or not team_letters(user).filter(pk=letter.pk).exists():
        raise ListError("Only the chair or the MDT coordinator can send a letter again.")
    with transaction.atomic():
        locked = _locked(letter.pk)
        if locked is None or locked.status != LetterStatus.FAILED:
            raise ListError("Only a letter whose sending failed can be sent again.")
        _retry(locked)


def release_meeting_letters(*, user, meeting: Meeting, told_by: str = "") -> LetterRelease:
    """ "Send all letters" for a concluded meeting: releases the held letters whose patient has
    been told (by the outcome or a later record) and tries the failed ones again. Letters whose
    patient has not been told stay held, unless the coordinator confirms that those patients
    have been told, saying by whom (``told_by``): that is recorded for each of them, as
    record_patient_told would, and their letters go too. Clicking twice does nothing more."""
    told_by = (told_by or "").strip()
    if (
        not can_manage_list(user)
        or not Meeting.objects.visible_to(user).filter(pk=meeting.pk).exists()
    ):
        raise ListError("Only the chair or the MDT coordinator can send the meeting's letters.")
    result = LetterRelease()
    with transaction.atomic():
        meeting = Meeting.objects.select_for_update().get(pk=meeting.pk)
        if meeting.status != Meeting.Status.CONCLUDED:
            raise ListError("The meeting's letters are sent once the meeting has concluded.")
        letters = list(
            Letter.objects.select_for_update(of=("self",))
            .select_related("outcome")
            .filter(
                outcome__case__meeting=meeting,
                status__in=(LetterStatus.HELD, LetterStatus.FAILED),
            )
            .order_by("pk")
        )
        told_cases = told_case_ids(meeting)
        for letter in letters:
            if letter.status == LetterStatus.FAILED:
                _retry(letter)
                result.retried += 1
            elif held_letter_may_go(letter, told_cases):
                _release(letter)
                result.released += 1
            elif told_by:
                PatientTold.objects.create(
                    case_id=letter.outcome.case_id,
                    outcome=letter.outcome,
                    told_by=told_by,
                    told_at=timezone.now(),
                    recorded_by=user,
                )
                told_cases.add(letter.outcome.case_id)
                _release(letter)
                result.released += 1
                result.confirmed_told += 1
            else:
                result.still_held += 1
    return result


# -- rendering ---------------------------------------------------------------------------------


def letter_context_for(letter: Letter) -> dict:
    """The letter's content: its outcome, its frozen recipient, the letter it replaces, and, when
    the patient was told after signing, who told them."""
    context = letter_context(letter.outcome, letter.recipient, supersedes=replaced_letter(letter))
    if not context["informed"]["told"]:
        told = PatientTold.objects.filter(case_id=letter.outcome.case_id).order_by("-pk").first()
        if told is not None:
            context["informed"] = {
                "told": True,
                "by": told.told_by,
                "at": format_datetime(told.told_at),
            }
    return context


def render(letter_id: int, *, queue: str | None = None) -> Letter | None:
    """Renders the letter's PDF and stores it with its SHA-256, holding the row's lock throughout
    so no two workers render one letter. Does nothing for a letter already rendered (a duplicated
    message, or a worker killed after committing) or not ready to render (held). The file's name
    comes from the letter's public id, so a worker killed after writing it but before committing
    leaves a file the next run writes over: one PDF per letter, whose hash is the stored one.
    ``queue``: where to send the sending task (the queue the rendering came from)."""
    with transaction.atomic():
        letter = (
            Letter.objects.select_for_update(of=("self",))
            .select_related("outcome", "recipient", "supersedes__outcome")
            .filter(pk=letter_id)
            .first()
        )
        if letter is None or letter.sha256:
            return letter
        if letter.status not in (LetterStatus.QUEUED, LetterStatus.MANUAL):
            return letter
        context = letter_context_for(letter)
        html = render_letter_html(context)
        pdf = render_letter_pdf(html, title=context["title"], author=context["author"])
        name = letter_pdf_path(letter, "")
        storage = letter.pdf.storage
        if storage.exists(name):  # left by a worker killed before it committed
            storage.delete(name)
        stored = storage.save(name, ContentFile(pdf))
        if stored != name:
            raise RuntimeError(f"the letter's PDF was stored as {stored}, not {name}")
        now = timezone.now()
        fields = {
            "pdf": name,
            "sha256": hashlib.sha256(pdf).hexdigest(),
            "html": html,
            "title": context["title"][:300],
            "rendered_at": now,
            "attempts": 0,
            "last_error": "",
            "next_attempt_at": None,
        }
        if letter.status == LetterStatus.QUEUED:
            _set_status(letter, LetterStatus.RENDERED, **fields)
            enqueue_send(letter.pk, queue=queue)
        else:  # manual delivery: the PDF is for whoever delivers it
            for field, value in fields.items():
                setattr(letter, field, value)
            letter.save(update_fields=list(fields))
    return letter


def note_render_error(letter_id: int, error: Exception, *, final: bool) -> None:
    """Records a failed rendering; the last one (``final``) marks the letter failed, to be tried
    again by "Send all letters" (a letter for manual delivery too: it has no PDF to deliver)."""
    with transaction.atomic():
        letter = _locked(letter_id)
        if letter is None or letter.sha256:
            return
        message = f"Rendering the letter failed: {type(error).__name__}: {error}"[:2000]
        letter.attempts += 1
        letter.last_error = message
        if final and letter.status in (LetterStatus.QUEUED, LetterStatus.MANUAL):
            _set_status(letter, LetterStatus.FAILED, attempts=letter.attempts, last_error=message)
        else:
            letter.save(update_fields=["attempts", "last_error"])


# -- handing over to Celery --------------------------------------------------------------------


def _enqueue(task_name: str, letter_id: int, **options) -> None:
    """After commit, tell a worker to look at the letter (``options`` for ``apply_async``: a
    queue, an eta). If the broker is down the commit still stands: the row says what is to be
    done, and the beat sweep repeats the message."""

    def send() -> None:
        from . import letter_tasks

        task = getattr(letter_tasks, task_name)
        try:
            given = {name: value for name, value in options.items() if value}
            if given:
                task.apply_async((letter_id,), **given)
            else:
                task.delay(letter_id)
        except Exception:  # noqa: BLE001 - the broker's errors vary by transport
            logger.warning(
                "Could not enqueue %s(%s); the sweep will", task.name, letter_id, exc_info=True
            )

    transaction.on_commit(send)


def enqueue_render(letter_id: int) -> None:
    _enqueue("render_letter", letter_id)


def enqueue_send(letter_id: int, *, queue: str | None = None, eta=None) -> None:
    _enqueue("send_letter_task", letter_id, queue=queue, eta=eta)


def stuck_letters(older_than: timedelta | None = None):
    """Letters waiting for a worker (to render, or to send) for longer than the threshold: their
    message was lost, or the worker died before handing them on. A letter for manual delivery
    waits only for its PDF; one left ``sending`` by a worker that died is sent again (mdt.mesh
    asks MESH for its local id before uploading, so it is not sent twice). A letter waiting for
    a retry at ``next_attempt_at`` is stuck only once that time is as far past."""
    if older_than is None:
        older_than = settings.LETTER_SWEEP_AFTER
    cutoff = timezone.now() - older_than
    waiting = Q(status__in=(LetterStatus.QUEUED, LetterStatus.RENDERED, LetterStatus.SENDING)) | Q(
        status=LetterStatus.MANUAL, sha256=""
    )
    return Letter.objects.filter(waiting, status_changed_at__lt=cutoff).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=cutoff)
    )


def sweep_stuck_letters(limit: int = 200) -> int:
    """Re-enqueues stuck letters and restarts their clock, so a dead worker is not sent a pile of
    duplicates every sweep. The tasks are idempotent: a message that was only slow is harmless."""
    swept = 0
    with transaction.atomic():
        letters = list(
            stuck_letters().select_for_update(of=("self",), skip_locked=True).order_by("pk")[:limit]
        )
        for letter in letters:
            Letter.objects.filter(pk=letter.pk).update(status_changed_at=timezone.now())
            if letter.status in (LetterStatus.RENDERED, LetterStatus.SENDING):
                enqueue_send(letter.pk)
            else:
                enqueue_render(letter.pk)
            swept += 1
    return swept
