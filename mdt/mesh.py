"""Sending GP letters over NHS MESH with NHS England's ``mesh-client``, and tracking them until
the practice acknowledges them (docs/letters-mesh.md).

- ``client()``, ``send_document``, ``find_by_local_id`` and ``tracking`` are a thin layer over
  ``mesh_client.MeshClient``, configured from the MESH_* settings. Addressing (which mailbox,
  workflow, subject, local id) lives in mdt.mesh_addressing.
- ``deliver_letter`` sends one rendered letter, at most once as far as MESH can tell us: it holds
  a PostgreSQL advisory lock on the letter for the whole attempt, asks MESH tracking for the
  letter's local id (its UUID) before every upload, commits the ``sending`` claim before the
  upload and the message id after it. Failures retry with exponential backoff and keep their
  last error; after MESH_SEND_MAX_ATTEMPTS the letter is ``failed``.
- ``poll_acknowledgements`` (beat) asks MESH tracking about ``sent`` letters and records when the
  practice's mailbox has downloaded and acknowledged them.
"""

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

import requests
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from mesh_client import MeshClient, MeshError

from . import mesh_addressing
from .models import Letter, LetterStatus

logger = logging.getLogger(__name__)

PDF_CONTENT_TYPE = "application/pdf"
# pg_try_advisory_lock(classid, objid): the class says "a MESH send of letter objid".
_LOCK_CLASS = 0x4D455348  # "MESH"
_ERROR_MAX_CHARS = 500
# A retry's task may arrive a little before its letter's next_attempt_at.
_EARLY_SLACK = timedelta(seconds=5)
# MESH statuses (tracking, lower-cased): accepted → the recipient can download it; acknowledged →
# the recipient downloaded and acknowledged it; undeliverable / error → it will never arrive.
ACCEPTED = "accepted"
ACKNOWLEDGED = "acknowledged"
FAILED_STATUSES = frozenset({"undeliverable", "error", "failed"})


class MeshDuplicateLocalId(MeshError):
    """MESH holds more than one message with a letter's local id: it was sent twice already."""


@dataclass(frozen=True)
class Tracking:
    """What MESH tracking says about one message we sent."""

    message_id: str
    status: str  # lower case: uploading, accepted, acknowledged, undeliverable, error
    local_id: str = ""
    recipient: str = ""
    description: str = ""
    success: bool | None = None

    @property
    def acknowledged(self) -> bool:
        return self.status == ACKNOWLEDGED

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES or self.success is False


# -- the client ----------------------------------------------------------------------------------


@contextmanager
def client(mailbox_id: str | None = None, password: str | None = None) -> Iterator[MeshClient]:
    """A MESH session for the trust's sending mailbox (or the mailbox given: the demo practices'
    inbox process), configured from the settings. Always closed on the way out."""
    cert = None
    if settings.MESH_CLIENT_CERT:
        cert = (settings.MESH_CLIENT_CERT, settings.MESH_CLIENT_KEY or settings.MESH_CLIENT_CERT)
    mesh = MeshClient(
        settings.MESH_URL,
        mailbox_id or settings.MESH_MAILBOX_ID,
        settings.MESH_MAILBOX_PASSWORD if password is None else password,
        shared_key=settings.MESH_SHARED_KEY.encode(),
        cert=cert,
        verify=settings.MESH_CA_BUNDLE or None,
        timeout=settings.MESH_TIMEOUT_S,
        # GETs and chunk uploads retry on 429/5xx; mesh-client never retries the first POST to
        # the outbox (a retry there could make a second message).
        max_retries=2,
        application_name="regional-mdt",
    )
    try:
        yield mesh
    finally:
        mesh.close()


@contextmanager
def _session(mesh: MeshClient | None) -> Iterator[MeshClient]:
    if mesh is not None:
        yield mesh
    else:
        with client() as own:
            yield own


def send_document(
    recipient_mailbox: str,
    pdf_bytes: bytes,
    *,
    local_id: str,
    subject: str,
    filename: str,
    mesh: MeshClient | None = None,
) -> str:
    """Uploads one PDF to a mailbox with the GP Connect Send Document workflow; MESH's message
    id. Raises mesh_client.MeshError (MESH refused it) or a requests exception."""
    with _session(mesh) as session:
        return session.send_message(
            recipient_mailbox,
            pdf_bytes,
            workflow_id=mesh_addressing.workflow_id(),
            local_id=local_id,
            subject=subject,
            filename=filename,
            content_type=PDF_CONTENT_TYPE,
        )


def find_by_local_id(local_id: str, *, mesh: MeshClient | None = None) -> Tracking | None:
    """The message our mailbox sent with this local id, or None when MESH has none.

    mesh-client 3+ dropped tracking by local id (MESH API v2 tracks by message id), but MESH
    still answers the v1 route ``GET /messageexchange/{mailbox}/outbox/tracking/{local_id}``
    (marked deprecated; mesh-sandbox serves it too), so this asks it through the client's own
    authenticated session. 404 means none; 300 means several (raises MeshDuplicateLocalId)."""
    with _session(mesh) as session:
        response = session._session.get(  # noqa: SLF001 - the client's authenticated session
            f"{session.mailbox_url}/outbox/tracking/{quote(local_id, safe='')}",
            headers={"Accept": "application/vnd.mesh.v1+json"},
            timeout=settings.MESH_TIMEOUT_S,
        )
    if response.status_code == 404:
        return None
    if response.status_code == 300:
        raise MeshDuplicateLocalId(f"MESH has more than one message with local id {local_id}")
    response.raise_for_status()
    body = response.json()
    return Tracking(
        message_id=body.get("messageId") or body.get("dtsId") or "",
        status=(body.get("status") or "").lower(),
        local_id=body.get("localId") or "",
        recipient=body.get("recipient") or "",
        description=body.get("statusDescription") or body.get("failureDiagnostic") or "",
        success=None if not body.get("statusSuccess") else body["statusSuccess"] == "SUCCESS",
    )


def tracking(message_id: str, *, mesh: MeshClient | None = None) -> Tracking:
    """MESH tracking for a message we sent (raises requests.HTTPError 404 for an unknown one)."""
    with _session(mesh) as session:
        body = session.track_message(message_id)
    return Tracking(
        message_id=body.get("message_id") or message_id,
        status=(body.get("status") or "").lower(),
        local_id=body.get("local_id") or "",
        recipient=body.get("recipient") or "",
        description=body.get("status_description") or "",
        success=body.get("status_success"),
    )


# -- delivering a letter -------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """What ``deliver_letter`` did. ``outcome`` is one of: sent (uploaded now), recovered (MESH
    already had it from an interrupted attempt), unchanged (sent, acknowledged, failed, manual or
    not yet rendered: nothing to do), busy (another worker is on it), waiting (backing off until
    ``retry_at``), manual (no mailbox), retry (failed this time; tried again at ``retry_at``),
    failed (given up)."""

    outcome: str
    status: str
    message_id: str = ""
    error: str = ""
    retry_at: datetime | None = None


def backoff(attempts: int) -> timedelta:
    """The wait after the n-th failed attempt: base, 2×base, 4×base..., at most the maximum."""
    seconds = settings.MESH_RETRY_BASE_S * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.MESH_RETRY_MAX_S))


@contextmanager
def _letter_lock(letter_id: int) -> Iterator[bool]:
    """A session-level advisory lock on sending this letter, held across the attempt's commits
    and released by PostgreSQL if the worker dies: two workers never upload the same letter at
    the same time. (It needs a real session: not PgBouncer in transaction mode.)"""
    key = (_LOCK_CLASS, letter_id & 0x7FFFFFFF)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)


def _locked(letter_id: int) -> Letter | None:
    return Letter.objects.select_for_update(of=("self",)).filter(pk=letter_id).first()


def _save(letter: Letter, status: str, **fields) -> None:
    now = timezone.now()
    letter.status = status
    letter.status_changed_at = now
    for name, value in fields.items():
        setattr(letter, name, value)
    letter.save(update_fields=["status", "status_changed_at", *fields])


def _error_text(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text[:_ERROR_MAX_CHARS]


def _pdf_bytes(letter: Letter) -> bytes:
    with letter.pdf.open("rb") as handle:
        data = handle.read()
    if hashlib.sha256(data).hexdigest() != letter.sha256:
        raise _PermanentError("The stored PDF does not match its SHA-256; it was not sent.")
    return data


class _PermanentError(Exception):
    """A failure that retrying cannot mend: the letter is marked failed at once."""


def deliver_letter(letter_id: int) -> Delivery:
    """Sends a rendered letter to its practice's MESH mailbox, or finds that MESH already has it.

    1. Under the letter's advisory lock, lock the row: ``sent``/``acknowledged`` (and ``held``,
       ``queued``, ``manual``, ``failed``) change nothing; a letter without a mailbox becomes
       ``manual`` with the reason; a ``rendered`` letter (or one left ``sending`` by a worker that
       died) is claimed ``sending``, its attempt counted, and that commits.
    2. Ask MESH tracking for the letter's local id. Found: record its message id, ``sent`` (or
       what tracking says since). Not found: upload the PDF, then record the message id and
       ``sent`` in a second commit.
    3. A failure records the error and either waits (back to ``rendered`` with ``next_attempt_at``,
       and a delayed task) or, after MESH_SEND_MAX_ATTEMPTS or a permanent error, ``failed``.
    """
    with _letter_lock(letter_id) as acquired:
        if not acquired:
            return Delivery("busy", "")
        return _deliver_locked(letter_id)


def _deliver_locked(letter_id: int) -> Delivery:
    with transaction.atomic():
        letter = _locked(letter_id)
        if letter is None:
            return Delivery("unchanged", "missing")
        if letter.status not in (LetterStatus.RENDERED, LetterStatus.SENDING):
            return Delivery("unchanged", letter.status, message_id=letter.mesh_message_id)
        if (
            letter.status == LetterStatus.RENDERED
            and letter.next_attempt_at
            and letter.next_attempt_at > timezone.now() + _EARLY_SLACK
        ):
            # Backing off: a duplicated or early message waits for the delayed task.
            return Delivery("waiting", letter.status, retry_at=letter.next_attempt_at)
        mailbox = (letter.recipient_mailbox or "").strip().upper()
        if not mailbox:
            reason = letter.manual_reason or mesh_addressing.mailbox_for(letter.recipient).reason
            _save(letter, LetterStatus.MANUAL, manual_reason=reason, next_attempt_at=None)
            return Delivery("manual", LetterStatus.MANUAL, error=reason)
        _save(letter, LetterStatus.SENDING, attempts=letter.attempts + 1, next_attempt_at=None)
    # The claim is committed: from here on, a worker that dies leaves the letter `sending`, and
    # whoever picks it up next asks MESH before uploading.
    local_id = mesh_addressing.local_id(letter)
    try:
        with client() as mesh:
            found = find_by_local_id(local_id, mesh=mesh)
            if found is not None:
                return _record_sent(letter_id, found.message_id, recovered=found)
            pdf = _pdf_bytes(letter)
            message_id = send_document(
                mailbox,
                pdf,
                local_id=local_id,
                subject=mesh_addressing.subject(letter),
                filename=mesh_addressing.filename(letter),
                mesh=mesh,
            )
    except (MeshDuplicateLocalId, _PermanentError) as error:
        return _record_failure(letter_id, error, permanent=True)
    except (MeshError, requests.RequestException, OSError) as error:
        return _record_failure(letter_id, error)
    return _record_sent(letter_id, message_id)


def _record_sent(letter_id: int, message_id: str, recovered: Tracking | None = None) -> Delivery:
    now = timezone.now()
    with transaction.atomic():
        letter = _locked(letter_id)
        fields = {
            "mesh_message_id": message_id,
            "sent_at": letter.sent_at or now,
            "last_error": "",
            "next_attempt_at": None,
        }
        if recovered is not None and recovered.acknowledged:
            _save(letter, LetterStatus.ACKNOWLEDGED, acknowledged_at=now, **fields)
        elif recovered is not None and recovered.failed:
            error = f"MESH says the message is {recovered.status}. {recovered.description}"
            _save(letter, LetterStatus.FAILED, **{**fields, "last_error": error.strip()})
        else:
            _save(letter, LetterStatus.SENT, **fields)
        # With the message id, so once per letter (an attempt that died never committed its own).
        _audit_sent(letter)
    if recovered is not None:
        logger.info("Letter %s: MESH already had it as %s", letter.public_id, message_id)
        return Delivery("recovered", letter.status, message_id=message_id)
    logger.info("Letter %s sent over MESH as %s", letter.public_id, message_id)
    return Delivery("sent", LetterStatus.SENT, message_id=message_id)


def _audit_sent(letter: Letter) -> None:
    from accounts.audit import record_system_event

    record_system_event(
        "celery:send_letter",
        "Sending an MDT outcome letter to the patient's GP practice over MESH",
        "send_letter",
        [letter.outcome.case.patient_id],
        f"letter:{letter.public_id}",
    )


def _record_failure(letter_id: int, error: BaseException, *, permanent: bool = False) -> Delivery:
    text = _error_text(error)
    with transaction.atomic():
        letter = _locked(letter_id)
        if permanent or letter.attempts >= settings.MESH_SEND_MAX_ATTEMPTS:
            _save(letter, LetterStatus.FAILED, last_error=text, next_attempt_at=None)
            logger.warning("Letter %s failed for good: %s", letter.public_id, text)
            return Delivery("failed", LetterStatus.FAILED, error=text)
        retry_at = timezone.now() + backoff(letter.attempts)
        _save(letter, LetterStatus.RENDERED, last_error=text, next_attempt_at=retry_at)
        _enqueue_retry(letter_id, retry_at)
    logger.warning("Letter %s not sent (attempt %s): %s", letter.public_id, letter.attempts, text)
    return Delivery("retry", LetterStatus.RENDERED, error=text, retry_at=retry_at)


def _enqueue_retry(letter_id: int, retry_at: datetime) -> None:
    """A delayed task for the retry, after commit (the beat sweep covers a broker that is down)."""
    from .letters import enqueue_send

    enqueue_send(letter_id, eta=retry_at)


# -- acknowledgements ----------------------------------------------------------------------------


def poll_acknowledgements(limit: int = 500) -> dict[str, int]:
    """Beat: asks MESH tracking about letters ``sent`` and not yet acknowledged, oldest first, and
    records those the practice has downloaded and acknowledged (and those MESH gave up on)."""
    counts = {"checked": 0, "acknowledged": 0, "failed": 0, "errors": 0}
    waiting = list(
        Letter.objects.filter(status=LetterStatus.SENT)
        .exclude(mesh_message_id="")
        .order_by("sent_at", "pk")
        .values_list("pk", "mesh_message_id")[:limit]
    )
    if not waiting:
        return counts
    with client() as mesh:
        for letter_id, message_id in waiting:
            try:
                state = tracking(message_id, mesh=mesh)
            except requests.ConnectionError:
                logger.warning("MESH did not answer; acknowledgements are polled again later")
                counts["errors"] += 1
                break
            except (MeshError, requests.RequestException) as error:
                logger.warning("Tracking %s failed: %s", message_id, _error_text(error))
                counts["errors"] += 1
                continue
            counts["checked"] += 1
            now = timezone.now()
            if state.acknowledged:
                counts["acknowledged"] += Letter.objects.filter(
                    pk=letter_id, status=LetterStatus.SENT
                ).update(
                    status=LetterStatus.ACKNOWLEDGED, acknowledged_at=now, status_changed_at=now
                )
            elif state.failed:
                error = f"MESH says the message is {state.status}. {state.description}".strip()
                counts["failed"] += Letter.objects.filter(
                    pk=letter_id, status=LetterStatus.SENT
                ).update(status=LetterStatus.FAILED, last_error=error, status_changed_at=now)
    return counts
