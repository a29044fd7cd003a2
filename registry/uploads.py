"""Registry files uploaded by an administrator: stored under MEDIA_ROOT/registry-imports/, an
ImportRun row each, handed to Celery after the rows commit, and run by the importer. A treatments
file is imported after the tumours file it came with (its rows name those tumours)."""

import logging
import uuid
from pathlib import PurePath

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from .importer import import_treatments, import_tumours
from .models import ImportRun, QuarantinedRow

logger = logging.getLogger(__name__)

UPLOAD_FOLDER = "registry-imports"
REPORT_ROWS = 200  # quarantined rows shown on an import's page

_IMPORTERS = {ImportRun.Kind.TUMOURS: import_tumours, ImportRun.Kind.TREATMENTS: import_treatments}


def start_import(*, user, tumours, treatments=None) -> ImportRun:
    """Stores the files, records a queued ImportRun for each and enqueues the import; returns
    the tumours run. If the broker is down the runs stay queued and say so on their page."""
    with transaction.atomic():
        tumour_run = _store(user, ImportRun.Kind.TUMOURS, tumours)
        treatment_run = _store(user, ImportRun.Kind.TREATMENTS, treatments) if treatments else None
        _enqueue(tumour_run.pk, treatment_run.pk if treatment_run else None)
    return tumour_run


def _store(user, kind: str, upload) -> ImportRun:
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
    file) if the first finished. Running a finished run again does nothing; a run left half-done
    by a worker that died is run again (loading is idempotent)."""
    run = ImportRun.objects.select_related("requested_by").filter(pk=run_id).first()
    if run is None:
        return None
    if run.status != ImportRun.Status.DONE:
        run = _import(run)
    if then_run_id is not None:
        follower = ImportRun.objects.select_related("requested_by").filter(pk=then_run_id).first()
        if follower is None or follower.status == ImportRun.Status.DONE:
            pass
        elif run.status == ImportRun.Status.DONE:
            _import(follower)
        else:
            ImportRun.objects.filter(pk=follower.pk).update(
                status=ImportRun.Status.FAILED,
                finished_at=timezone.now(),
                error=(
                    f"Not imported, because the tumour registrations file {run.file_name} was "
                    "not imported. Correct that file and upload both files again."
                ),
            )
    return run


def _import(run: ImportRun) -> ImportRun:
    importer = _IMPORTERS[run.kind]
    try:
        return importer(run.stored_path, run=run, requested_by=run.requested_by)
    except Exception:
        # The importer has marked the run failed with what it knows; the details are in the log.
        logger.exception("Registry import %s stopped", run.pk)
        run.refresh_from_db()
        return run


def recent_runs(limit: int = 50):
    return ImportRun.objects.select_related("requested_by").order_by("-created_at", "-id")[:limit]


def quarantined_rows(run: ImportRun, limit: int = REPORT_ROWS) -> list[QuarantinedRow]:
    """The first rows the run refused, by line, without their values: the page shows line
    numbers and reasons, which is what fixing the file needs, and no patient's details."""
    return list(run.quarantined.only("id", "line", "reasons").order_by("line", "id")[:limit])
