import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Role
from mdt import services
from mdt.models import Meeting
from tests.factories import CaseFactory, MeetingFactory, PatientFactory, make_member

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def meeting():
    return MeetingFactory()


@pytest.fixture
def coordinator(client, meeting):
    user = make_member(meeting.team, role=Role.COORDINATOR)
    client.force_login(user)
    return user


def add_case_form(patient_or_number, **extra):
    number = getattr(patient_or_number, "nhs_number", patient_or_number)
    return {
        "nhs_number": number,
        "question": "Confirm stage",
        "referrer": "Dr Who",
        "triage": "full",
        "submission_id": str(uuid.uuid4()),
        **extra,
    }


def test_preview_shows_name_and_birth_date_before_adding(client, coordinator, meeting):
    patient = PatientFactory(given_name="Mabel", family_name="Preview")
    response = client.post(
        f"/meetings/{meeting.public_id}/preview/", {"nhs_number": patient.nhs_number}, headers=HTMX
    )
    body = response.content.decode()
    assert "PREVIEW, Mabel" in body
    assert f"{patient.birth_date.day} {patient.birth_date:%B %Y}" in body
    assert not meeting.cases.exists()


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("999 000 0027", "last digit does not match"),
        ("999 000 0042", "does not know this NHS number"),
    ],
)
def test_preview_explains_a_wrong_or_unknown_number(client, coordinator, meeting, typed, message):
    response = client.post(
        f"/meetings/{meeting.public_id}/preview/", {"nhs_number": typed}, headers=HTMX
    )
    assert message in response.content.decode()


def test_adding_by_htmx_returns_a_fresh_form_and_the_updated_list(client, coordinator, meeting):
    patient = PatientFactory(family_name="Addedbyhtmx")
    response = client.post(
        f"/meetings/{meeting.public_id}/cases/", add_case_form(patient), headers=HTMX
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert 'hx-swap-oob="innerHTML"' in body and "ADDEDBYHTMX" in body
    assert "was added to the list" in body
    assert meeting.cases.listed().get().patient == patient


def test_a_mistyped_number_keeps_what_was_typed(client, coordinator, meeting):
    response = client.post(
        f"/meetings/{meeting.public_id}/cases/",
        add_case_form("999 000 0027", question="Is this T2 N1?"),
        headers=HTMX,
    )
    body = response.content.decode()
    assert "There is a problem" in body
    assert "last digit does not match" in body
    assert 'value="999 000 0027"' in body
    assert "Is this T2 N1?" in body
    assert not meeting.cases.exists()


def test_adding_without_htmx_redirects_to_the_meeting(client, coordinator, meeting):
    response = client.post(f"/meetings/{meeting.public_id}/cases/", add_case_form(PatientFactory()))
    assert response.status_code == 302
    assert response["Location"] == f"/meetings/{meeting.public_id}/"


def test_a_form_posted_from_a_stale_page_after_the_list_closed_explains_and_keeps_input(
    client, coordinator, meeting
):
    services.close_list(user=coordinator, meeting=meeting)
    response = client.post(
        f"/meetings/{meeting.public_id}/cases/",
        add_case_form(PatientFactory(), question="Question typed before the list closed"),
        headers=HTMX,
    )
    body = response.content.decode()
    assert "was closed" in body
    assert "Question typed before the list closed" in body
    assert not meeting.cases.exists()


def test_a_late_addition_asks_the_coordinator_for_a_reason(client, coordinator):
    meeting = MeetingFactory(
        team=coordinator.team_memberships.get().team,
        starts_at=timezone.now() + timedelta(hours=3),
        cutoff_at=timezone.now() - timedelta(hours=3),
    )
    page = client.get(f"/meetings/{meeting.public_id}/").content.decode()
    assert "Reason for adding after the cut-off" in page
    patient = PatientFactory()
    refused = client.post(
        f"/meetings/{meeting.public_id}/cases/", add_case_form(patient), headers=HTMX
    )
    assert "Give the reason for adding this case late" in refused.content.decode()
    client.post(
        f"/meetings/{meeting.public_id}/cases/",
        add_case_form(patient, late_reason="Urgent referral from A&E"),
        headers=HTMX,
    )
    assert meeting.cases.get().late_reason == "Urgent referral from A&E"


def test_reordering_by_htmx_returns_the_list(client, coordinator, meeting):
    first, second = (
        CaseFactory(meeting=meeting, position=1),
        CaseFactory(meeting=meeting, position=2),
    )
    response = client.post(f"/cases/{second.public_id}/move/", {"direction": "up"}, headers=HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.index(str(second.public_id)) < body.index(str(first.public_id))
    assert "<html" not in body


def test_unknown_meeting_id_is_not_found(client, coordinator):
    assert client.get(f"/meetings/{uuid.uuid4()}/").status_code == 404


def test_removing_needs_a_reason(client, coordinator, meeting):
    case = CaseFactory(meeting=meeting)
    response = client.post(f"/cases/{case.public_id}/remove/", {"reason": ""})
    assert "Give the reason for removing this case" in response.content.decode()
    case.refresh_from_db()
    assert case.status == "listed"


def test_scheduling_a_single_and_weekly_meetings(client, coordinator, meeting):
    form = {
        "team": meeting.team.pk,
        "date": "2027-06-01",
        "time": "09:30",
        "cutoff_days": 2,
        "weeks": 1,
    }
    response = client.post("/meetings/", form)
    created = Meeting.objects.get(starts_at__date="2027-06-01")
    assert response["Location"] == f"/meetings/{created.public_id}/"
    assert timezone.localtime(created.cutoff_at).strftime("%Y-%m-%d %H:%M") == "2027-05-30 09:30"
    client.post("/meetings/", {**form, "date": "2027-07-06", "weeks": 4})
    assert Meeting.objects.filter(team=meeting.team, starts_at__date__gte="2027-07-06").count() == 4


def test_scheduling_refuses_a_team_the_coordinator_is_not_on(client, coordinator):
    other = MeetingFactory().team
    response = client.post(
        "/meetings/",
        {"team": other.pk, "date": "2027-06-01", "time": "09:30", "cutoff_days": 1, "weeks": 1},
    )
    assert "Select a valid choice" in response.content.decode()
    assert not Meeting.objects.filter(team=other, starts_at__date="2027-06-01").exists()


def test_meeting_page_queries_do_not_grow_with_cases(client, coordinator, meeting):
    CaseFactory.create_batch(5, meeting=meeting)
    with CaptureQueriesContext(connection) as few:
        client.get(f"/meetings/{meeting.public_id}/")
    CaseFactory.create_batch(40, meeting=meeting)
    with CaptureQueriesContext(connection) as many:
        response = client.get(f"/meetings/{meeting.public_id}/")
    assert response.content.decode().count('<tr class="nhsuk-table__row" id="case-') == 45
    assert len(many) == len(few)


def test_patient_search_by_nhs_number_and_by_name_and_birth_date(client, coordinator, meeting):
    patient = PatientFactory(family_name="Searchable")
    CaseFactory(meeting=meeting, patient=patient)
    by_number = client.post(
        "/patients/search/", {"purpose": "history", "nhs_number": patient.nhs_number}
    )
    assert "SEARCHABLE" in by_number.content.decode()
    assert f"/meetings/{meeting.public_id}/" in by_number.content.decode()
    by_name = client.post(
        "/patients/search/",
        {
            "purpose": "listing",
            "family_name": "searchable",
            "birth_date": patient.birth_date.isoformat(),
        },
    )
    assert "SEARCHABLE" in by_name.content.decode()
    nothing = client.post("/patients/search/", {"purpose": "listing"})
    assert "Enter an NHS number, or a last name and a date of birth" in nothing.content.decode()
