import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from accounts.audit import record_system_event
from accounts.models import AuditEvent, Role
from tests.factories import CaseFactory, MeetingFactory, make_member

pytestmark = pytest.mark.django_db


def test_audit_log_refuses_update_and_delete():
    event = record_system_event("test", "proving the trigger", "test_event", patient_ids=[1, 2])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE accounts_auditevent SET reason = 'x' WHERE id = %s", [event.pk])
    event.refresh_from_db()
    assert (event.action, event.reason) == ("test_event", "proving the trigger")


def test_a_list_page_writes_one_event_with_every_patient_shown(client):
    meeting = MeetingFactory()
    cases = CaseFactory.create_batch(5, meeting=meeting)
    user = make_member(meeting.team, role=Role.COORDINATOR)
    client.force_login(user)
    before = AuditEvent.objects.count()

    response = client.get(f"/meetings/{meeting.public_id}/", REMOTE_ADDR="10.1.2.3")

    assert response.status_code == 200
    assert AuditEvent.objects.count() == before + 1
    event = AuditEvent.objects.latest("id")
    assert sorted(event.patient_ids) == sorted(case.patient_id for case in cases)
    assert (event.actor, event.method, event.status_code, event.ip) == (
        user,
        "GET",
        200,
        "10.1.2.3",
    )
    assert event.path == f"/meetings/{meeting.public_id}/"


def test_pages_without_patient_data_write_no_event(client):
    meeting = MeetingFactory()
    client.force_login(make_member(meeting.team))
    before = AuditEvent.objects.count()
    client.get("/meetings/")
    assert AuditEvent.objects.count() == before


def test_changes_record_the_action_and_the_reason(client):
    meeting = MeetingFactory()
    case = CaseFactory(meeting=meeting)
    client.force_login(make_member(meeting.team, role=Role.COORDINATOR))
    client.post(f"/cases/{case.public_id}/remove/", {"reason": "Listed at the wrong MDT"})
    event = AuditEvent.objects.latest("id")
    assert event.action == "remove_case"
    assert event.reason == "Listed at the wrong MDT"
    assert event.patient_ids == [case.patient_id]
    assert event.object_ref == str(case.public_id)


def test_commands_record_a_system_actor_and_reason():
    event = record_system_event("seed_demo", "Seeding the demo region", "seed_demo", [3, 3, 1])
    assert (event.actor, event.system_actor, event.patient_ids) == (None, "seed_demo", [1, 3])


def test_administrator_filters_the_log_by_patient_and_user(client):
    meeting = MeetingFactory()
    case = CaseFactory(meeting=meeting)
    viewer = make_member(meeting.team, role=Role.CLINICIAN, username="viewer")
    client.force_login(viewer)
    client.get(f"/meetings/{meeting.public_id}/")
    other = CaseFactory()
    record_system_event("test", "unrelated patient", "other", [other.patient_id])
    record_system_event("test", "same patient, another actor", "other", [case.patient_id])

    admin = make_member(MeetingFactory().team, role=Role.ADMIN, username="auditor")
    client.force_login(admin)
    response = client.post(
        "/records/audit/", {"nhs_number": case.patient.nhs_number, "user": viewer.pk}
    )
    body = response.content.decode()
    assert body.count('<td class="nhsuk-table__cell">viewer') == 1
    assert "unrelated patient" not in body
    assert "same patient, another actor" not in body  # filtered by user too
    # the administrator's look at the patient's trail is itself audited
    assert AuditEvent.objects.latest("id").actor == admin
    assert AuditEvent.objects.latest("id").patient_ids == [case.patient_id]


def test_only_administrators_see_the_audit_log(client):
    meeting = MeetingFactory()
    client.force_login(make_member(meeting.team, role=Role.COORDINATOR))
    assert client.get("/records/audit/").status_code == 403


def test_searches_are_audited_with_their_purpose(client):
    meeting = MeetingFactory()
    case = CaseFactory(meeting=meeting)
    client.force_login(make_member(meeting.team, role=Role.CLINICIAN))
    client.post("/patients/search/", {"purpose": "history", "nhs_number": case.patient.nhs_number})
    event = AuditEvent.objects.latest("id")
    assert event.action == "patient_search"
    assert event.reason == "Checking the patient's MDT history"
    assert event.patient_ids == [case.patient_id]
    assert event.method == "POST"
