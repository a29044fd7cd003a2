"""Celery entry points for the registry: they take ids only and call the services."""

from celery import shared_task

from . import uploads


@shared_task(acks_late=True)
def run_registry_import(run_id: int, then_run_id: int | None = None) -> str:
    """Imports an uploaded file (then the treatments file that came with it, if any)."""
    run = uploads.run_import(run_id, then_run_id)
    return run.status if run is not None else "missing"


@shared_task
def sweep_registry_imports() -> dict[str, int]:
    """Beat: re-enqueues imports whose message was lost (queued, not started, for
    uploads.REQUEUE_AFTER) and deletes the uploads of finished imports still on disk."""
    return uploads.sweep()
