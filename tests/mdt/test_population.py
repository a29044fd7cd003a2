from datetime import timedelta

import pytest
from django.utils import timezone

from mdt.models import Case
from mdt.population import (
    refresh_progress,
    request_case_population,
    request_meeting_refresh,
    stale_population_requests,
)
from records.models import Snapshot
from tests.factories import CaseFactory, MeetingFactory

pytestmark = pytest.mark.django_db


def snapshot_for(case, **fields):
    snapshot = Snapshot.objects.create(
        patient=case.patient, per_source_status=fields.pop("statuses", {})
    )
    Case.objects.filter(pk=case.pk).update(snapshot=snapshot)
    return snapshot


def test_asking_for_population_is_recorded_and_enqueued_after_commit(
    django_capture_on_commit_callbacks,
):
    case = CaseFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        request_case_population(case)
    case.refresh_from_db()
    assert case.population_requested_at is not None
    assert len(callbacks) == 1


def test_progress_counts_cases_refreshed_since_the_request_and_failed_sources(
    django_capture_on_commit_callbacks,
):
    meeting = MeetingFactory()
    done, failing, waiting = CaseFactory.create_batch(3, meeting=meeting)
    with django_capture_on_commit_callbacks(execute=False):
        request_meeting_refresh(meeting)
    meeting.refresh_from_db()
    snapshot_for(done, statuses={"A": {"status": "ok"}, "B": {"status": "ok"}})
    snapshot_for(failing, statuses={"A": {"status": "ok"}, "B": {"status": "timeout"}})
    progress = refresh_progress(meeting)
    assert progress == {"total": 3, "done": 2, "failed_sources": 1, "running": True, "percent": 67}
    snapshot_for(waiting, statuses={"A": {"status": "ok"}})
    assert refresh_progress(meeting)["running"] is False


def test_the_sweep_finds_population_asked_for_long_ago_and_never_done():
    old = timezone.now() - timedelta(minutes=10)
    never_done = CaseFactory(population_requested_at=old)
    done = CaseFactory(population_requested_at=old)
    snapshot_for(done)
    recent = CaseFactory(population_requested_at=timezone.now())
    stale = set(stale_population_requests().values_list("pk", flat=True))
    assert never_done.pk in stale
    assert done.pk not in stale
    assert recent.pk not in stale
