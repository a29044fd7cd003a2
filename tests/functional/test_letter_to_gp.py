"""From signing to the GP opening the letter, in Chromium, with a real Celery worker and the real
mesh-sandbox: the chair signs an outcome on the console (the patient has been told, so nothing is
held); the worker renders the letter and sends it over MESH to the practice's mailbox; the demo
practice inbox downloads and acknowledges it and the acknowledgement poll records that; the
meeting's letters panel shows the turnaround; a GP of the practice finds the letter unread, opens
it, downloads the very PDF that was stored, and the opening is audited. A GP of another practice
sees none of it."""

import hashlib
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import AuditEvent, Role
from demo import practice_inbox
from mdt import letter_tasks, mesh
from mdt.models import CoreRole, Letter, LetterStatus
from tests.factories import (
    CaseFactory,
    MeetingFactory,
    MembershipFactory,
    PatientFactory,
    PracticeFactory,
    SnapshotFactory,
    UserFactory,
    make_member,
)

from .browsing import check_accessibility, log_in, spaced

pytestmark = pytest.mark.browser
pytest_plugins = ["tests.functional.celery_worker"]

WORKER_TIMEOUT_S = 60.0
PLAN = "Right upper lobectomy with mediastinal node dissection."
GP_ACTION = "Please review her anticoagulation before surgery."
TURNAROUND = re.compile(r"^\d+ min$")
# What the worker needs to reach the sandbox: the settings tests.mesh_sandbox.point_settings_at
# gives this process, passed on by name.
MESH_SETTINGS = (
    "MESH_URL",
    "MESH_MAILBOX_ID",
    "MESH_MAILBOX_PASSWORD",
    "MESH_SHARED_KEY",
    "MESH_CLIENT_CERT",
    "MESH_CA_BUNDLE",
    "MESH_TIMEOUT_S",
)


@pytest.fixture(autouse=True)
def worker_shares_the_sandbox_and_media(mesh_settings, monkeypatch, tmp_path):
    """The live server (this process's settings) and the worker (a process the celery_worker
    fixture starts with a copy of os.environ) use one mesh-sandbox and one folder of PDFs.
    Autouse, so it runs before the worker is started."""
    media = tmp_path / "media"
    mesh_settings.MEDIA_ROOT = media
    monkeypatch.setenv("MEDIA_ROOT", str(media))
    for name in MESH_SETTINGS:
        monkeypatch.setenv(name, str(getattr(mesh_settings, name)))


def practice_with_mailbox(ods_code: str, name: str):
    """A demo region practice with its mailbox in the sandbox, as seed_demo makes them."""
    return PracticeFactory(
        ods_code=ods_code, name=name, mesh_mailbox_id=practice_inbox.practice_mailbox_id(ods_code)
    )


def gp_at(practice, username: str):
    user = UserFactory(username=username, first_name="Priya", last_name=username.title())
    MembershipFactory(user=user, organisation=practice, role=Role.GP)
    return user


def letter_reaches(letter_id: int, status: str) -> Letter:
    """Waits on the database for the worker to bring the letter to ``status``."""
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    while True:
        letter = Letter.objects.get(pk=letter_id)
        if letter.status == status:
            return letter
        if letter.status == LetterStatus.FAILED or time.monotonic() > deadline:
            raise AssertionError(
                f"The letter is {letter.status!r}, not {status!r} "
                f"(last error: {letter.last_error or 'none'})"
            )
        time.sleep(0.2)


def sign_with_the_patient_told(page: Page) -> None:
    form = page.locator("#outcome-form")
    form.get_by_label("Outcome", exact=True).select_option(label="Treatment plan agreed")
    form.get_by_label("Agreed diagnosis").fill("Adenocarcinoma of the right upper lobe")
    form.get_by_label("ICD-10 code").fill("C34.1")
    form.get_by_label("Curative", exact=True).check()
    form.get_by_label("Surgery", exact=True).check()
    form.get_by_label("The plan").fill(PLAN)
    form.get_by_label("Action 1", exact=True).fill("Book pre-operative assessment")
    form.get_by_label("Owner of action 1").fill("Lung CNS")
    form.get_by_label("What the GP should do").fill(GP_ACTION)
    form.get_by_label("Key worker / CNS").fill("Sam Jones, lung CNS")
    form.locator("#patient-informed-group").get_by_label("Yes", exact=True).check()
    form.get_by_label("Told by").fill("Mr Chest, consultant surgeon, in clinic")
    form.get_by_role("button", name="Sign the outcome").click()
    expect(page.locator(".app-flash")).to_contain_text("The outcome is signed.")


def letters_panel_cells(page: Page, letter: Letter):
    """The cells of the letter's row in the meeting page's letters panel (loaded by htmx):
    patient, status, practice, signed to sent, signed to acknowledged, actions."""
    row = page.locator(f"#letters #meeting-letter-{letter.public_id}")
    expect(row).to_be_visible()
    return row.locator("td").all()


def test_a_signed_outcome_reaches_the_gp_who_opens_the_letter(page: Page, team, celery_worker):
    practice = practice_with_mailbox("M85011", "Harborne Medical Practice")
    elsewhere = practice_with_mailbox("M85020", "Moseley Medical Centre")
    chair = make_member(team, role=Role.CHAIR, core_role=CoreRole.CHAIR, username="chair")
    gp = gp_at(practice, "harborne")
    other_gp = gp_at(elsewhere, "moseley")
    meeting = MeetingFactory(team=team, starts_at=timezone.now() + timedelta(minutes=5))
    patient = PatientFactory(given_name="Grace", family_name="Hopper", gp_practice=practice)
    case = CaseFactory(meeting=meeting, patient=patient, position=1)
    case.snapshot = SnapshotFactory(patient=patient)
    case.save()

    # The chair starts the meeting and signs the outcome on the console.
    log_in(page, chair)
    page.goto(f"/meetings/{meeting.public_id}/")
    page.get_by_role("button", name="Start the meeting").click()
    expect(page.locator(".app-live-banner")).to_contain_text("HOPPER, Grace")
    sign_with_the_patient_told(page)
    letter = Letter.objects.get(outcome__case=case)
    assert letter.status != LetterStatus.HELD and letter.recipient == practice

    # The worker renders it and sends it over MESH; the meeting page shows it sent.
    letter = letter_reaches(letter.pk, LetterStatus.SENT)
    page.get_by_role("link", name="Back to the meeting").click()
    patient_cell, status, recipient, to_sent, to_acknowledged, _ = letters_panel_cells(page, letter)
    expect(patient_cell).to_have_text("HOPPER, Grace")
    expect(status).to_contain_text("Sent")
    expect(recipient).to_have_text("Harborne Medical Practice")
    expect(to_sent).to_have_text(TURNAROUND)
    expect(to_acknowledged).to_have_text("")

    # The practice's system downloads and acknowledges it; the beat's poll (run by the worker)
    # reads that from MESH tracking.
    mailboxes = practice_inbox.polled_mailboxes()
    assert practice.mesh_mailbox_id in mailboxes
    assert practice_inbox.poll_once(mailboxes) >= 1
    letter_tasks.poll_letter_acknowledgements.delay()
    letter = letter_reaches(letter.pk, LetterStatus.ACKNOWLEDGED)
    page.reload()
    _, status, _, to_sent, to_acknowledged, _ = letters_panel_cells(page, letter)
    expect(status).to_contain_text("Acknowledged by the practice")
    expect(to_sent).to_have_text(TURNAROUND)
    expect(to_acknowledged).to_have_text(TURNAROUND)
    check_accessibility(page, "on the meeting page with the letter acknowledged")
    page.get_by_role("button", name="Log out").click()

    # The practice's GP finds it unread in the GP portal and opens it.
    log_in(page, gp)
    page.get_by_role("link", name="Letters from MDTs").first.click()
    row = page.locator(f"#letter-{letter.public_id}")
    expect(row).to_contain_text("HOPPER, Grace")
    expect(row).to_contain_text(f"NHS {spaced(patient.nhs_number)}")
    expect(row.locator(".app-letter-unread")).to_have_text("New")
    check_accessibility(page, "on the GP portal with an unread letter")

    row.get_by_role("link", name="HOPPER, Grace").click()
    expect(
        page.get_by_role("heading", level=1, name="Outcome letter for HOPPER, Grace", exact=True)
    ).to_be_visible()
    body = page.locator("article.letter")
    expect(body).to_contain_text(PLAN)
    expect(body).to_contain_text(GP_ACTION)
    expect(body.locator(".letter-banner__nhs")).to_have_text(spaced(patient.nhs_number))
    expect(page.locator("main")).to_contain_text("Your practice's system acknowledged it")
    check_accessibility(page, "on the GP's letter")

    with page.expect_download() as download:
        page.locator("#letter-pdf").click()
    pdf = Path(download.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert hashlib.sha256(pdf).hexdigest() == letter.sha256
    assert download.value.suggested_filename == f"mdt-outcome-letter-{letter.public_id}.pdf"

    # Back in the list, the letter is read.
    page.locator("a.nhsuk-back-link", has_text="Letters from MDTs").click()
    expect(row).to_contain_text("Read ")
    expect(row.locator(".app-letter-unread")).to_have_count(0)
    check_accessibility(page, "on the GP portal with the letter read")
    page.get_by_role("button", name="Log out").click()

    read = Letter.objects.get(pk=letter.pk)
    assert read.read_at is not None and read.read_at > read.acknowledged_at
    ref = f"letter:{letter.public_id}"
    opened = AuditEvent.objects.filter(actor=gp, action="read_letter")
    assert [(e.object_ref, e.patient_ids) for e in opened] == [(ref, [patient.pk])]
    assert AuditEvent.objects.filter(actor=gp, action="download_letter", object_ref=ref).exists()

    # A GP of another practice sees nothing of it, by the list or by its addresses.
    log_in(page, other_gp)
    page.get_by_role("link", name="Letters from MDTs").first.click()
    expect(page.locator("main")).to_contain_text("No letters have been sent to your practice yet.")
    expect(page.locator("main")).not_to_contain_text("HOPPER")
    check_accessibility(page, "on another practice's GP portal")
    assert page.goto(f"/letters/{letter.public_id}/").status == 404
    assert page.request.get(f"/letters/{letter.public_id}/pdf/").status == 404
    assert not AuditEvent.objects.filter(actor=other_gp, patient_ids__contains=[patient.pk])

    # Sent once: MESH holds one message with the letter's local id, and the practice has it.
    tracked = mesh.find_by_local_id(str(letter.public_id))
    assert tracked.message_id == letter.mesh_message_id and tracked.acknowledged
    assert Letter.objects.filter(outcome__case=case).count() == 1
    celery_worker.assert_no_errors()
