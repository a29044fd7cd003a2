"""Recording, signing and amending outcomes: optimistic locking, immutability, quoracy."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone

from accounts.models import Role
from mdt import live, outcomes
from mdt.models import Attendance, Case, CoreRole, Outcome
from mdt.services import ListError
from tests.factories import CaseFactory, MeetingFactory, SnapshotFactory, make_member

pytestmark = pytest.mark.django_db

COMPLETE = {
    "category": "treatment",
    "care_plan_intent": "C",
    "planned_treatments": ["01"],
    "plan": "Right upper lobectomy with mediastinal node dissection.",
    "actions": [{"action": "Book pre-op assessment", "owner": "CNS", "due": "2026-12-01"}],
}


@pytest.fixture
def meeting():
    return MeetingFactory()


@pytest.fixture
def chair(meeting):
    user = make_member(meeting.team, role=Role.CHAIR, core_role=CoreRole.CHAIR)
    meeting.chair = user
    meeting.save()
    return user


@pytest.fixture
def coordinator(meeting):
    return make_member(meeting.team, role=Role.COORDINATOR)


@pytest.fixture
def case(meeting, chair):
    case = CaseFactory(meeting=meeting)
    case.snapshot = SnapshotFactory(patient=case.patient)
    case.save()
    live.start_meeting(user=chair, meeting=meeting)
    return case


def draft(user, case, revision=0, **fields):
    return outcomes.save_draft(user=user, case=case, revision=revision, data=fields or COMPLETE)


def test_every_draft_save_bumps_the_revision(coordinator, case):
    first = draft(coordinator, case)
    assert (first.amendment_no, first.revision) == (0, 1)
    second = draft(coordinator, case, revision=1, plan="Changed plan")
    assert second.revision == 2
    assert second.plan == "Changed plan"
    assert Outcome.objects.filter(case=case).count() == 1


def test_a_save_from_a_stale_form_is_refused_with_the_other_change(coordinator, chair, case):
    draft(coordinator, case)
    draft(chair, case, revision=1, plan="The chair's plan")
    with pytest.raises(outcomes.OutcomeConflict) as conflict:
        draft(coordinator, case, revision=1, plan="The coordinator's plan")
    assert conflict.value.current.plan == "The chair's plan"
    assert conflict.value.current.revision == 2
    assert "plan" in conflict.value.changed_fields
    assert chair.display_name in str(conflict.value)
    assert Outcome.objects.get(case=case).plan == "The chair's plan"


def test_two_first_saves_make_one_draft(coordinator, chair, case):
    draft(coordinator, case)
    with pytest.raises(outcomes.OutcomeConflict):
        draft(chair, case, revision=0, plan="Also first")
    assert Outcome.objects.filter(case=case).count() == 1


def test_only_the_chair_signs(coordinator, case):
    draft(coordinator, case)
    with pytest.raises(ListError, match="Only the chair"):
        outcomes.sign_outcome(user=coordinator, case=case, revision=1, snapshot_id=None)


def test_signing_an_incomplete_outcome_says_what_is_missing(chair, case):
    draft(chair, case, plan="")
    with pytest.raises(outcomes.OutcomeIncomplete) as incomplete:
        outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)
    fields = {name for name, _message in incomplete.value.problems}
    assert "plan" in fields


def test_no_active_treatment_needs_a_reason(chair, case):
    draft(chair, case, **{**COMPLETE, "care_plan_intent": "X", "planned_treatments": ["11"]})
    with pytest.raises(outcomes.OutcomeIncomplete, match="reason for no active treatment"):
        outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)


def test_signing_pins_the_snapshot_the_meeting_saw(chair, case):
    seen = case.snapshot
    draft(chair, case)
    SnapshotFactory(patient=case.patient)  # a refresh arrives while the case is discussed
    signed = outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=seen.pk)
    assert signed.snapshot == seen
    assert signed.signed_by == chair
    case.refresh_from_db()
    assert case.status == Case.Status.DISCUSSED


def test_another_patients_snapshot_cannot_be_pinned(chair, case):
    draft(chair, case)
    stranger = SnapshotFactory()
    with pytest.raises(ListError, match="not this patient's"):
        outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=stranger.pk)


def test_signing_a_changed_draft_is_a_conflict(chair, coordinator, case):
    draft(chair, case)
    draft(coordinator, case, revision=1, plan="Changed after the chair read it")
    with pytest.raises(outcomes.OutcomeConflict):
        outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)


def test_the_same_signature_sent_twice_signs_once(chair, case):
    draft(chair, case)
    first = outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)
    again = outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)
    assert again.pk == first.pk
    assert Outcome.objects.filter(case=case).count() == 1


def test_a_signed_outcome_cannot_be_saved_over(chair, case):
    draft(chair, case)
    outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)
    with pytest.raises(outcomes.OutcomeConflict):
        draft(chair, case, revision=1, plan="Too late")
    with pytest.raises(ListError, match="Start an amendment"):
        draft(chair, case, revision=0, plan="Too late")


def test_postgresql_refuses_to_change_or_delete_a_signed_outcome(chair, case):
    draft(chair, case)
    signed = outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)
    with pytest.raises(DatabaseError, match="never changed"), transaction.atomic():
        Outcome.objects.filter(pk=signed.pk).update(plan="Silently changed")
    with pytest.raises(DatabaseError, match="never changed"), transaction.atomic():
        Outcome.objects.filter(pk=signed.pk).delete()
    assert Outcome.objects.get(pk=signed.pk).plan == COMPLETE["plan"]


def test_an_amendment_is_a_new_version_with_a_reason(chair, case):
    draft(chair, case)
    original = outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)
    with pytest.raises(ListError, match="reason"):
        outcomes.start_amendment(user=chair, case=case, reason=" ")
    amendment = outcomes.start_amendment(user=chair, case=case, reason="Pathology upstaged")
    with pytest.raises(ListError, match="already being drafted"):
        outcomes.start_amendment(user=chair, case=case, reason="Again")
    assert (amendment.amendment_no, amendment.revision) == (1, 1)
    assert amendment.plan == original.plan
    amendment = draft(chair, case, revision=1, stage_group="IIIA", plan="Adjuvant chemotherapy")
    signed = outcomes.sign_outcome(user=chair, case=case, revision=2, snapshot_id=None)
    versions = outcomes.signed_versions(case)
    assert [(v.amendment_no, v.plan) for v in versions] == [
        (0, COMPLETE["plan"]),
        (1, "Adjuvant chemotherapy"),
    ]
    assert signed.amendment_reason == "Pathology upstaged"


def test_only_a_chair_amends(chair, coordinator, case):
    draft(chair, case)
    outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)
    with pytest.raises(ListError, match="Only the chair"):
        outcomes.start_amendment(user=coordinator, case=case, reason="Typo")


def test_quoracy_is_recorded_and_missing_case_roles_flagged(meeting, chair, coordinator, case):
    surgeon = make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.SURGEON)
    pathologist = make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.PATHOLOGIST)
    radiologist = make_member(meeting.team, role=Role.CLINICIAN, core_role=CoreRole.RADIOLOGIST)
    for user in (chair, surgeon, pathologist):
        live.record_attendance(user=coordinator, meeting=meeting, attendee=user, status="present")
    live.record_attendance(
        user=coordinator, meeting=meeting, attendee=radiologist, status="apologies"
    )
    draft(chair, case)
    signed = outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)
    assert signed.missing_core_roles == [CoreRole.RADIOLOGIST]
    assert signed.missing_case_roles == [CoreRole.RADIOLOGIST]  # the case awaits image review
    assert not signed.quorate
    assert set(signed.roles_present) == {CoreRole.CHAIR, CoreRole.SURGEON, CoreRole.PATHOLOGIST}


def test_a_standard_of_care_case_is_ratified(meeting, chair):
    case = CaseFactory(meeting=meeting, triage=Case.Triage.STANDARD_OF_CARE)
    case.snapshot = SnapshotFactory(patient=case.patient)
    case.save()
    live.start_meeting(user=chair, meeting=meeting)
    draft(chair, case, **{**COMPLETE, "planned_treatments": []})
    with pytest.raises(outcomes.OutcomeIncomplete, match="standard of care protocol"):
        outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None, ratify=True)
    draft(chair, case, revision=1, standard_of_care="Lung SoC 3: stage I NSCLC, SABR")
    signed = outcomes.sign_outcome(user=chair, case=case, revision=2, snapshot_id=None, ratify=True)
    assert signed.ratified
    case.refresh_from_db()
    assert case.status == Case.Status.RATIFIED


def test_a_fully_discussed_case_cannot_be_ratified(chair, case):
    draft(chair, case)
    with pytest.raises(ListError, match="Standard of Care"):
        outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None, ratify=True)


def test_no_outcome_before_the_meeting_starts(meeting, coordinator):
    case = CaseFactory(meeting=meeting)
    with pytest.raises(ListError, match="in progress"):
        draft(coordinator, case)


def test_a_case_without_a_record_cannot_be_signed(meeting, chair):
    case = CaseFactory(meeting=meeting)
    live.start_meeting(user=chair, meeting=meeting)
    draft(chair, case)
    with pytest.raises(ListError, match="has not been gathered"):
        outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)


def test_the_discussion_date_cannot_be_in_the_future(chair, case):
    draft(chair, case, **{**COMPLETE, "discussion_date": timezone.localdate() + timedelta(days=2)})
    with pytest.raises(outcomes.OutcomeIncomplete, match="future"):
        outcomes.sign_outcome(user=chair, case=case, revision=1, snapshot_id=None)


def test_attendance_status_values(meeting, coordinator, chair):
    with pytest.raises(ListError):
        live.record_attendance(user=coordinator, meeting=meeting, attendee=chair, status="asleep")
    row = live.record_attendance(user=chair, meeting=meeting, attendee=chair, status="remote")
    assert row.status == Attendance.Status.REMOTE
