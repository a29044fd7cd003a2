"""Celery entry points: they take ids only and call the services."""

from celery import shared_task

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


@shared_task(acks_late=True)
def populate_meeting(meeting_id: int) -> int:
    meeting = Meeting.objects.filter(pk=meeting_id).first()
    if meeting is None:
        return 0
    case_ids = list(meeting.cases.listed().values_list("pk", flat=True))
    made = populate_cases(case_ids, reason="Refresh of every case on the meeting")
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
