"""No NHS number or patient name reaches the logs, whoever logs: our code, Django's SQL debug
log, request errors or exceptions."""

import io
import logging

import pytest
from django.db import connection

from accounts.log_redaction import redact
from accounts.models import Role
from demo.region import seed_region
from records.models import Patient
from tests.factories import MeetingFactory, make_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def log_output():
    """The configured console handler (with its redaction filter) writing into a buffer, with
    every logger at DEBUG and SQL statements logged with their parameters."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    buffer = io.StringIO()
    old_stream = handler.setStream(buffer)
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.DEBUG)
    db_logger = logging.getLogger("django.db.backends")
    db_logger.setLevel(logging.DEBUG)
    connection.force_debug_cursor = True
    try:
        yield buffer
    finally:
        connection.force_debug_cursor = False
        db_logger.setLevel(logging.NOTSET)
        root.setLevel(old_level)
        handler.setStream(old_stream)


def test_seeded_nhs_numbers_and_names_never_reach_the_logs(log_output, client):
    seed_region("a-long-demo-password-for-tests")
    patients = list(Patient.objects.all())
    meeting = MeetingFactory()
    coordinator = make_member(meeting.team, role=Role.COORDINATOR)
    client.force_login(coordinator)
    # a full coordinator journey: list, preview, add, search, and a careless log call
    client.get(f"/meetings/{meeting.public_id}/")
    for patient in patients[:5]:
        client.post(f"/meetings/{meeting.public_id}/preview/", {"nhs_number": patient.nhs_number})
        client.post(
            f"/meetings/{meeting.public_id}/cases/",
            {
                "nhs_number": patient.nhs_number,
                "question": "Plan?",
                "referrer": "Dr R",
                "triage": "full",
            },
        )
    client.post(
        "/patients/search/",
        {
            "purpose": "listing",
            "family_name": patients[0].family_name,
            "birth_date": patients[0].birth_date.isoformat(),
        },
    )
    logging.getLogger("mdt").warning("careless: %s", patients[0].nhs_number)
    try:
        raise ValueError(
            f"boom for {patients[1].nhs_number[:3]} {patients[1].nhs_number[3:6]} "
            f"{patients[1].nhs_number[6:]}"
        )
    except ValueError:
        logging.getLogger("mdt").exception("an error")

    logs = log_output.getvalue()
    assert "INSERT INTO" in logs and "[NHS number]" in logs  # the logs were really captured
    for patient in patients:
        assert patient.nhs_number not in logs
        assert patient.nhs_number[:3] + " " + patient.nhs_number[3:6] not in logs
        assert f"'{patient.family_name}'" not in logs
        assert f"'{patient.given_name}'" not in logs


@pytest.mark.parametrize(
    "text",
    ["9990000026", "999 000 0026", "999-000-0026", "Patient?identifier=x|9990000026&_count=5"],
)
def test_redaction_finds_every_spelling_of_an_nhs_number(text):
    assert "0026" not in redact(text)


def test_other_numbers_are_left_alone():
    assert redact("took 12345 ms for 3 cases, id 99900000261") == (
        "took 12345 ms for 3 cases, id 99900000261"
    )


def test_ids_that_merely_contain_ten_digits_are_not_redacted():
    from accounts.log_redaction import redact

    task_id = "5f0c2e1a-9b7d-4c3e-8a21-d1234567890e"
    mesh_id = "20261125174512345678_A1B2C3"
    assert redact(task_id) == task_id
    assert redact(f"message {mesh_id} sent") == f"message {mesh_id} sent"
    assert "9991234567" not in redact("patient 999 123 4567 and nhs=9991234567, (9991234567)")
