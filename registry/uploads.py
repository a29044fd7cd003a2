"""Registry files uploaded by an administrator: stored under MEDIA_ROOT/registry-imports/, an
ImportRun row each, handed to Celery after the rows commit, and run by the importer. A treatments
file is imported after the tumours file it came with (its rows name those tumours).

An uploaded file is deleted as soon as its import has finished (done or failed): it holds up to a
million patients' details, and the ImportRun (counts, error) and its quarantined rows are what is
kept. A Celery beat sweep (``sweep_registry_imports``) re-enqueues runs whose message was lost and
deletes any finished run's upload that is still there (a worker stopped between the two)."""

import logging
import uuid
import zlib
from datetime import timedelta
from pathlib import Path, PurePath

from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from .importer import import_treatments, import_tumours
from .models import ImportRun, QuarantinedRow

logger = logging.getLogger(__name__)

UPLOAD_FOLDER = "registry-imports"
REPORT_ROWS = 200  # quarantined rows shown on an import's page
# A run still queued this long after it was last handed to Celery lost its message (or waits
# behind a very long import; running it twice is harmless: see run_import).
REQUEUE_AFTER = timedelta(minutes=15)
# The class of the session advisory lock a worker holds while it runs an import (the run's id is
# the other half of the key), so that a re-enqueued duplicate does not run it a second time.
_RUN_LOCK_CLASS = zlib.crc32(b"registry.uploads.run") & 0x7FFFFFFF

_IMPORTERS = {ImportRun.Kind.TUMOURS: import_tumours, ImportRun.Kind.TREATMENTS: import_treatments}


def start_import(*, user, tumours, treatments=None) -> ImportRun:
    """Stores the files, records a queued ImportRun for each and enqueues the import; returns
    the tumours run. If the broker is down the runs stay queued and say so on their page."""
    with transaction.atomic():
        tumour_run = _store(user, ImportRun.Kind.TUMOURS, tumours)
        treatment_run = (
            _store(user, ImportRun.Kind.TREATMENTS, treatments, follows=tumour_run)
            if treatments
            else None
        )
        _enqueue(tumour_run.pk, treatment_run.pk if treatment_run else None)
    return tumour_run


def _store(user, kind: str, upload, follows: ImportRun | None = None) -> ImportRun:
    file_name = PurePath(upload.name).name[:255]
    today = timezone.localdate()
    name = default_storage.save(
        f"{UPLOAD_FOLDER}/{today:%Y/%m}/{uuid.uuid4().hex}-{kind}.csv", upload
    )
    return ImportRun.objects.create(
        kind=kind,
        file_name=file_name,
        stored_path=default_storage.path(name),
        requested_by=user,
        bytes_total=upload.size,
        follows=follows,
        enqueued_at=timezone.now(),
    )


def _enqueue(run_id: int, then_run_id: int | None) -> None:
    from .tasks import run_registry_import

    def send():
        try:
            run_registry_import.delay(run_id, then_run_id)
        except Exception:  # noqa: BLE001 - the broker's errors vary by transport
            logger.warning("Could not enqueue registry import %s; it stays queued", run_id)

    transaction.on_commit(send)


def run_import(run_id: int, then_run_id: int | None = None) -> ImportRun | None:
    """Imports the run's file, then the one that follows it (a treatments file after its tumours
    file) if the first finished; then deletes the uploaded files of the runs that finished.

    Safe to call twice for the same run (a message redelivered, or re-enqueued by the sweep): a
    finished run (done or failed) is not run again, and a run another worker is running (it holds
    the run's advisory lock) is left to it. A run left half-done by a worker that died (status
    running, no lock held) is run again: loading is idempotent."""
    run = ImportRun.objects.select_related("requested_by").filter(pk=run_id).first()
    if run is None:
        return None
    with _run_lock(run.pk) as mine:
        if not mine:
            return run
        run.refresh_from_db()
        if run.status in _UNFINISHED:
            run = _import(run)
        delete_upload(run)
    if then_run_id is not None:
        follower = ImportRun.objects.select_related("requested_by").filter(pk=then_run_id).first()
        if follower is None:
            return run
        with _run_lock(follower.pk) as mine:
            if not mine:
                return run
            follower.refresh_from_db()
            if follower.status not in _UNFINISHED:
                pass
            elif run.status == ImportRun.Status.DONE:
                follower = _import(follower)
            elif run.status == ImportRun.Status.FAILED:
                follower.status = ImportRun.Status.FAILED
                follower.finished_at = timezone.now()
                follower.error = (
                    f"Not imported, because the tumour registrations file {run.file_name} was "
                    "not imported. Correct that file and upload both files again."
                )
                follower.save(update_fields=["status", "finished_at", "error"])
            delete_upload(follower)
    return run


_UNFINISHED = (ImportRun.Status.QUEUED, ImportRun.Status.RUNNING)


class _run_lock:  # noqa: N801 - used as a context manager
    """A session advisory lock on one run, released on leaving (or when the worker's database
    connection ends, if the worker dies); entering yields whether this worker got it."""

    def __init__(self, run_id: int):
        self.key = (_RUN_LOCK_CLASS, run_id & 0x7FFFFFFF)
        self.held = False

    def __enter__(self) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", self.key)
            self.held = bool(cursor.fetchone()[0])
        return self.held

    def __exit__(self, *exc) -> None:
        if self.held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", self.key)


def _import(run: ImportRun) -> ImportRun:
    importer = _IMPORTERS[run.kind]
    try:
        return importer(run.stored_path, run=run, requested_by=run.requested_by)
    except Exception:
        # The importer has marked the run failed with what it knows; the details are in the log.
        logger.exception("Registry import %s stopped", run.pk)
        run.refresh_from_db()
        return run


def _is_upload(stored_path: str) -> bool:
    """Whether the path is a file this module stored (not a file named on the command line)."""
    if not stored_path:
        return False
    folder = Path(default_storage.path(UPLOAD_FOLDER)).resolve()
    return Path(stored_path).resolve().is_relative_to(folder)


def delete_upload(run: ImportRun) -> bool:
    """Deletes a finished run's uploaded file (the run and its quarantined rows stay); returns
    whether it did. Files named on the command line (manage.py import_registry) are the
    operator's and are never deleted."""
    if run.status in _UNFINISHED or run.file_deleted_at or not _is_upload(run.stored_path):
        return False
    Path(run.stored_path).unlink(missing_ok=True)
    run.file_deleted_at = timezone.now()
    ImportRun.objects.filter(pk=run.pk).update(file_deleted_at=run.file_deleted_at)
    return True


def sweep(now=None) -> dict[str, int]:
    """The beat's sweep. Re-enqueues each run still queued REQUEUE_AFTER after it was last handed
    to Celery (its message was lost: the broker restarted, or was down at upload), with the
    treatments run that follows it; a treatments run is re-enqueued after its tumours run when that
    finished without it. Deletes the uploads of finished runs that are still there."""
    now = now or timezone.now()
    stale = Q(enqueued_at__lt=now - REQUEUE_AFTER) | Q(
        enqueued_at__isnull=True, created_at__lt=now - REQUEUE_AFTER
    )
    queued = ImportRun.objects.filter(stale, status=ImportRun.Status.QUEUED).select_related(
        "follows"
    )
    requeued = 0
    for run in queued.order_by("created_at", "id")[:100]:
        leader = run.follows
        if leader is None:
            follower = run.followers.filter(status=ImportRun.Status.QUEUED).first()
            pair = (run.pk, follower.pk if follower else None)
        elif leader.status in _UNFINISHED:
            continue  # goes with its tumours run
        else:
            pair = (leader.pk, run.pk)  # the leader finished: run_import skips it, runs this
        ImportRun.objects.filter(pk__in=[pk for pk in pair if pk]).update(enqueued_at=now)
        logger.warning("Registry import %s was still queued: enqueued again", run.pk)
        _enqueue(*pair)
        requeued += 1
    deleted = 0
    finished = ImportRun.objects.exclude(status__in=_UNFINISHED).filter(
        file_deleted_at__isnull=True
    )
    for run in finished.exclude(stored_path="").order_by("id")[:500]:
        deleted += delete_upload(run)
    return {"requeued": requeued, "deleted": deleted}


def recent_runs(limit: int = 50):
    return ImportRun.objects.select_related("requested_by").order_by("-created_at", "-id")[:limit]


def quarantined_rows(run: ImportRun, limit: int = REPORT_ROWS) -> list[QuarantinedRow]:
    """The first rows the run refused, by line, without their values: the page shows line
    numbers and reasons, which is what fixing the file needs, and no patient's details."""
    return list(run.quarantined.only("id", "line", "reasons").order_by("line", "id")[:limit])
