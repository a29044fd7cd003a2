"""Celery entry points: they take ids only and call the services."""

from celery import shared_task
from django.conf import settings

from accounts.audit import record_system_event

from .models import Case, Meeting
from .population import populate_cases, stale_population_requests


@shared_task(acks_late=True)
def populate_case(case_id: int) -> int:
    case = Case.objects.filter(pk=case_id).first()
    if case is None:
        return 0
    made = populate_cases([case_id], reason="Case added to an MDT list")
    record_system_event(
        "celery:populate_case",
        "Populating a listed case's federated record",
        "populate_case",
        [case.patient_id],
        f"case:{case.public_id}",
    )
    return made


@shared_task(acks_late=True, bind=True)
def populate_meeting(self, meeting_id: int) -> int:
    """Splits the meeting's cases between the worker's processes (parsing FHIR is CPU work), each
    chunk with its share of the per-source request limit, so a source still sees at most
    FEDERATION_CONCURRENCY_PER_SOURCE requests at once."""
    meeting = Meeting.objects.filter(pk=meeting_id).first()
    if meeting is None:
        return 0
    case_ids = list(meeting.cases.listed().order_by("position").values_list("pk", flat=True))
    chunks = max(1, min(settings.FEDERATION_TASK_CHUNKS, len(case_ids)))
    share = max(1, settings.FEDERATION_CONCURRENCY_PER_SOURCE // chunks)
    # The other chunks go to the queue this task came from (the worker that serves it).
    queue = (self.request.delivery_info or {}).get("routing_key")
    for index in range(1, chunks):
        populate_case_chunk.apply_async((case_ids[index::chunks], share), queue=queue)
    made = populate_cases(
        case_ids[0::chunks], reason="Refresh of every case on the meeting", concurrency=share
    )
    record_system_event(
        "celery:populate_meeting",
        "Refreshing every case's federated record for a meeting",
        "populate_meeting",
        meeting.cases.listed().values_list("patient_id", flat=True),
        f"meeting:{meeting.public_id}",
    )
    return made


@shared_task
def sweep_unpopulated_cases() -> int:
    """Beat: re-enqueues population that was asked for but never happened (a lost message, a
    worker killed half way, the broker down when the case was added)."""
    waiting = list(stale_population_requests().values_list("pk", flat=True)[:200])
    if waiting:
        populate_cases(waiting, reason="Sweep: population asked for but not done")
    return len(waiting)


@shared_task(acks_late=True)
def populate_case_chunk(case_ids: list[int], concurrency: int) -> int:
    made = populate_cases(
        case_ids, reason="Refresh of every case on the meeting", concurrency=concurrency
    )
    cases = Case.objects.filter(pk__in=case_ids)
    record_system_event(
        "celery:populate_case_chunk",
        "Refreshing part of a meeting's cases' federated records",
        "populate_meeting",
        cases.values_list("patient_id", flat=True),
    )
    return made
