"""Filling cases with their patients' federated records: the MDT side of records.populate.
Adding a case, or "refresh all" on a meeting, enqueues this work; the Celery tasks call it."""

import logging

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from records.populate import populate_patients

from .models import Case, Meeting

logger = logging.getLogger(__name__)


def _enqueue(task, *args) -> None:
    """After commit, hand the work to Celery. If the broker is down the request still succeeds:
    the rows say what was asked (population_requested_at) and a refresh or the sweep repeats it."""

    def send():
        try:
            task.delay(*args)
        except Exception:  # noqa: BLE001 - the broker's errors vary by transport
            logger.warning(
                "Could not enqueue %s%s; it will be retried by a refresh", task.name, args
            )

    transaction.on_commit(send)


def populate_cases(case_ids, *, reason: str, concurrency: int | None = None) -> int:
    """Populates the cases' patients concurrently and points each case at its new snapshot as
    soon as it is frozen. Returns the number of snapshots made."""
    cases = list(
        Case.objects.filter(pk__in=list(case_ids)).listed().values_list("pk", "patient_id")
    )
    by_patient: dict[int, list[int]] = {}
    for case_id, patient_id in cases:
        by_patient.setdefault(patient_id, []).append(case_id)

    def link(snapshot) -> None:
        # Never replace a newer snapshot (another worker's later run) with this one.
        Case.objects.filter(pk__in=by_patient[snapshot.patient_id]).filter(
            Q(snapshot__isnull=True) | Q(snapshot__created_at__lte=snapshot.created_at)
        ).update(snapshot=snapshot)

    return len(
        populate_patients(by_patient, reason=reason, on_snapshot=link, concurrency=concurrency)
    )


def request_case_population(case: Case) -> None:
    from .tasks import populate_case

    Case.objects.filter(pk=case.pk).update(population_requested_at=timezone.now())
    _enqueue(populate_case, case.pk)


def request_meeting_refresh(meeting: Meeting) -> None:
    from .tasks import populate_meeting

    now = timezone.now()
    Meeting.objects.filter(pk=meeting.pk).update(refresh_requested_at=now)
    meeting.cases.listed().update(population_requested_at=now)
    _enqueue(populate_meeting, meeting.pk)


def refresh_progress(meeting: Meeting) -> dict:
    """Cases done since the last "refresh all", and how many sources did not answer fully."""
    since = meeting.refresh_requested_at
    rows = meeting.cases.listed().values_list("snapshot__created_at", "snapshot__per_source_status")
    total = done = failed_sources = 0
    for created_at, statuses in rows:
        total += 1
        if created_at is not None and (since is None or created_at >= since):
            done += 1
            failed_sources += sum(1 for s in (statuses or {}).values() if s["status"] != "ok")
    return {
        "total": total,
        "done": done,
        "failed_sources": failed_sources,
        "running": since is not None and done < total,
        "percent": round(100 * done / total) if total else 100,
    }


def stale_population_requests(older_than_s: int = 300):
    """Listed cases whose population was asked for over five minutes ago and has not happened."""
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_s)
    return (
        Case.objects.listed()
        .filter(population_requested_at__lt=cutoff)
        .filter(Q(snapshot__isnull=True) | Q(snapshot__created_at__lt=F("population_requested_at")))
        .exclude(meeting__status=Meeting.Status.CONCLUDED)
    )
