"""Celery entry points of the letter pipeline: they take a letter's id and call mdt.letters (and
mdt.mesh for sending). Registered through the Celery app's ``include`` (config/celery.py)."""

import logging

from celery import shared_task

from accounts.audit import record_system_event

from . import letters
from .models import Letter

logger = logging.getLogger(__name__)

RENDER_RETRIES = 3
RENDER_RETRY_BASE_S = 30


class RenderInterrupted(Exception):
    """The worker rendering the letter stopped before it finished (killed, out of memory)."""


def _note_redelivery(task, letter_id: int) -> bool:
    """Says in the log when the broker delivers a message again: a worker took it and did not
    acknowledge it within the visibility timeout (it died, or the broker restarted), which is
    how a letter in hand is recovered without waiting for the sweep. True if it was."""
    redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
    if redelivered:
        logger.warning("%s for letter %s was redelivered by the broker", task.name, letter_id)
    return redelivered


@shared_task(acks_late=True, bind=True, max_retries=RENDER_RETRIES)
def render_letter(self, letter_id: int) -> str:
    """Renders and stores the letter's PDF, then hands it over to sending. Idempotent: a letter
    already rendered is left as it is, and only one PDF is ever stored for a letter."""
    before, attempts = Letter.objects.filter(pk=letter_id).values_list(
        "sha256", "attempts"
    ).first() or ("", 0)
    if _note_redelivery(self, letter_id) and not before:
        # The worker before this one died with the letter in hand. Counted as a failed attempt,
        # committed before trying again, so a letter that kills every worker that renders it
        # (with acks_late and reject_on_worker_lost it would come back for ever) ends failed.
        final = attempts + 1 >= RENDER_RETRIES
        interrupted = RenderInterrupted("the worker rendering it stopped before it finished")
        letters.note_render_error(letter_id, interrupted, final=final)
        if final:
            logger.error("Letter %s stopped %s workers; marked failed", letter_id, attempts + 1)
            return "failed"
    # Sending goes to the queue this task came from (the workers that serve it).
    queue = (self.request.delivery_info or {}).get("routing_key")
    try:
        letter = letters.render(letter_id, queue=queue)
    except Exception as error:
        final = self.request.retries >= self.max_retries
        letters.note_render_error(letter_id, error, final=final)
        if final:
            logger.exception("Rendering letter %s failed; it is marked failed", letter_id)
            return "failed"
        countdown = RENDER_RETRY_BASE_S * 2**self.request.retries
        raise self.retry(exc=error, countdown=countdown) from error
    if letter is None:
        return "missing"
    if letter.sha256 and not before:
        record_system_event(
            "celery:render_letter",
            "Rendering an MDT outcome letter to the GP",
            "render_letter",
            [letter.outcome.case.patient_id],
            f"letter:{letter.public_id}",
        )
    return letter.status


@shared_task(acks_late=True, bind=True)
def send_letter_task(self, letter_id: int):
    """Sends a rendered letter over MESH (mdt.mesh claims it, sends once, records the message id
    and retries with backoff)."""
    from .mesh import deliver_letter

    _note_redelivery(self, letter_id)
    return deliver_letter(letter_id).outcome  # a plain string: Celery serialises the result


@shared_task
def sweep_stuck_letters() -> int:
    """Beat: re-enqueues letters waiting for a worker longer than LETTER_SWEEP_AFTER (a lost
    message, a worker killed between rendering and handing over, the broker down at signing)."""
    swept = letters.sweep_stuck_letters()
    if swept:  # something was lost on the way: worth seeing in the log
        logger.warning("The sweep re-enqueued %s stuck letters", swept)
    return swept


@shared_task
def poll_letter_acknowledgements() -> dict:
    """Beat: asks MESH tracking about sent letters and records the practices' acknowledgements
    (mdt.mesh.poll_acknowledgements)."""
    from .mesh import poll_acknowledgements

    return poll_acknowledgements()
