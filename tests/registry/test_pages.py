"""The registry's pages: the coordinators' search (POSTed with a purpose, audited, paginated by
POST, restricted postcodes hidden), "add to a meeting" from a result (mdt:add_registry_patient),
and the administrators' upload page with its progress fragment, import report and Celery task."""

import html
import re
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from django.utils import timezone

from accounts.models import AuditEvent, Role
from config.celery import app as celery_app
from demo.synthetic import synthetic_nhs_number
from mdt import services
from mdt.models import Case
from records.demographics import Demographics
from records.models import Patient
from records.patient_index import apply_demographics
from registry import cosd, uploads
from registry.importer import import_tumours
from registry.models import ImportedPatient, ImportRun, QuarantinedRow, Registration, Treatment
from registry.tasks import run_registry_import
from tests.factories import (
    CaseFactory,
    MeetingFactory,
    MembershipFactory,
    OrganisationFactory,
    PatientFactory,
    PracticeFactory,
    UserFactory,
    make_member,
)

from .conftest import treatment_row, tumour_row
from .registrations import make_registration

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}
SEARCH = "/registry/search/"
IMPORTS = "/registry/imports/"
ADD = "/cases/from-registry/"


@pytest.fixture
def meeting():
    return MeetingFactory()


@pytest.fixture
def coordinator(client, meeting):
    user = make_member(meeting.team, role=Role.COORDINATOR)
    client.force_login(user)
    return user


@pytest.fixture
def admin(client):
    user = UserFactory()
    MembershipFactory(user=user, role=Role.ADMIN)
    client.force_login(user)
    return user


def search(client, **fields):
    return client.post(SEARCH, {"purpose": "listing", **fields})


def body(response) -> str:
    return response.content.decode()


def text(response) -> str:
    """The body with HTML entities read (teams&#39; is teams')."""
    return html.unescape(body(response))


def new_events(since: int):
    return list(AuditEvent.objects.filter(pk__gt=since).order_by("pk"))


def last_event_id() -> int:
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


# --- the search page --------------------------------------------------------------------------


def test_the_search_page_asks_why_and_shows_no_results_before_a_search(client, coordinator):
    response = client.get(SEARCH)
    assert response.status_code == 200
    assert "Why are you searching?" in body(response)
    assert "Results" not in body(response)


def test_a_search_by_misspelt_name_shows_the_registrations_and_is_audited_with_its_purpose(
    client, coordinator
):
    patient = PatientFactory(family_name="Smith", given_name="Jane")
    make_registration(patient, icd10="C34.1", diagnosis_date=date(2023, 5, 1))
    before = last_event_id()

    response = search(client, name="Smyth", purpose="history")

    page = body(response)
    assert "SMITH, Jane" in page
    assert "C34.1 (lung), diagnosed 1 May 2023" in page
    assert "1 registration found" in page
    [event] = new_events(before)
    assert (event.action, event.reason) == (
        "registry_search",
        "Checking the patient's cancer registrations",
    )
    assert event.patient_ids == [patient.pk]
    assert event.actor == coordinator


def test_a_search_needs_a_purpose_and_a_criterion_and_is_not_audited_without_them(
    client, coordinator
):
    make_registration(family_name="Smith")
    before = last_event_id()

    no_purpose = client.post(SEARCH, {"name": "Smith"})
    no_criterion = search(client)

    assert "Choose why you are searching the registry." in body(no_purpose)
    assert "Enter an NHS number, a last name" in body(no_criterion)
    assert "SMITH" not in body(no_purpose) + body(no_criterion)
    assert new_events(before) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"nhs_number": "999 000 0027"}, "last digit does not match"),
        ({"name": "S"}, "Enter at least 2 letters of the last name."),
        ({"site": "kneecap"}, "Enter an ICD-10 code such as C34"),
        (
            {"diagnosed_from": "2024-01-01", "diagnosed_to": "2023-01-01"},
            "The end of the diagnosis dates must be after the start.",
        ),
        ({"birth_date": "1950-02-30"}, "Enter a real date"),
    ],
)
def test_a_search_that_cannot_be_run_says_what_to_correct(client, coordinator, fields, message):
    response = search(client, **fields)
    assert "There is a problem" in body(response)
    assert message in text(response)


def test_searching_by_nhs_number_site_and_dates(client, coordinator):
    patient = PatientFactory(family_name="Numbered")
    make_registration(patient, icd10="C50.9", diagnosis_date=date(2022, 2, 2))
    make_registration(PatientFactory(family_name="Otherone"), icd10="C50.9")

    by_number = search(client, nhs_number=patient.nhs_number)
    by_site_and_dates = search(
        client, site="breast", diagnosed_from="2022-01-01", diagnosed_to="2022-12-31"
    )

    assert "NUMBERED" in body(by_number) and "OTHERONE" not in body(by_number)
    assert "NUMBERED" in body(by_site_and_dates) and "OTHERONE" not in body(by_site_and_dates)


def test_a_get_never_searches(client, coordinator):
    make_registration(family_name="Smith")
    response = client.get(SEARCH, {"purpose": "listing", "name": "Smith"})
    assert "SMITH" not in body(response)


def test_pages_are_posted_again_with_the_same_criteria_and_no_identifier_in_any_url(
    client, coordinator
):
    for n in range(27):
        make_registration(family_name="Paginated", given_name=f"Person{n:02d}")
    before = last_event_id()

    first = body(search(client, name="Paginated", purpose="review"))
    second = body(search(client, name="Paginated", purpose="review", page="2"))

    assert "Showing 1 to 25" in first and "Page 1 of 2" in first
    assert 'name="page" value="2"' in first and "Previous page" not in first
    assert re.search(r'<input type="hidden" name="name" value="Paginated">', first)
    assert re.search(r'<input type="hidden" name="purpose" value="review">', first)
    assert "Showing 26 to 27" in second and "PERSON25" not in second.upper().split("SHOWING")[0]
    assert "Person25" in second and "Person24" not in second
    urls = re.findall(r'(?:href|action|hx-post|hx-get)="([^"]*)"', first + second)
    assert urls and not [u for u in urls if "Paginated" in u or re.search(r"\d{10}", u)]
    assert [e.reason for e in new_events(before)] == ["Preparing a case for review"] * 2


def test_a_restricted_patients_registry_postcode_is_not_shown(client, coordinator):
    hidden = PatientFactory(family_name="Hiddenaddress", restricted=True, address="", postcode="")
    make_registration(hidden, postcode="QX9 9ZZ")
    make_registration(PatientFactory(family_name="Openaddress"), postcode="B9 9AA")

    page = body(search(client, diagnosed_from="2000-01-01"))

    assert "HIDDENADDRESS" in page and "OPENADDRESS" in page
    assert "QX9 9ZZ" not in page
    assert "Restricted record" in page
    assert "B9 9AA" in page


def test_an_imported_patients_postcode_is_not_shown_before_the_demographics_service_is_asked(
    client, coordinator, write_csv
):
    """Hazard H15: the import created the index entry (restricted=False by default); whether the
    patient is restricted is not known until the demographics service is asked."""
    nhs = synthetic_nhs_number(8801)
    import_tumours(
        write_csv([tumour_row(nhs_number=nhs, family_name="Newcomer", postcode="QX8 8ZZ")])
    )
    patient = Patient.objects.get(nhs_number=nhs)
    assert not patient.restricted and ImportedPatient.objects.filter(patient=patient).exists()

    page = body(search(client, name="Newcomer"))

    assert "NEWCOMER" in page and "QX8 8ZZ" not in page
    assert "Not shown until the demographics service has confirmed" in page

    apply_demographics(
        Demographics(nhs_number=nhs, given_name="Ada", family_name="Newcomer", postcode="QX8 8ZZ"),
        patient,
    )
    assert "QX8 8ZZ" in body(search(client, name="Newcomer"))


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.CHAIR, Role.GP, Role.ADMIN])
def test_only_coordinators_may_search_the_registry(client, meeting, role):
    make_registration(family_name="Smith")
    client.force_login(make_member(meeting.team, role=role))

    assert client.get(SEARCH).status_code == 403
    response = search(client, name="Smith")
    assert response.status_code == 403 and "SMITH" not in body(response)


def test_the_navigation_offers_the_registry_to_coordinators_and_imports_to_administrators(
    client, meeting
):
    coordinator = make_member(meeting.team, role=Role.COORDINATOR)
    clinician = make_member(meeting.team, role=Role.CLINICIAN)
    administrator = UserFactory()
    MembershipFactory(user=administrator, role=Role.ADMIN)
    pages = {}
    for user in (coordinator, clinician, administrator):
        client.force_login(user)
        pages[user] = body(client.get("/"))

    assert "Cancer registry" in pages[coordinator] and "Registry imports" not in pages[coordinator]
    assert "Cancer registry" not in pages[clinician] and "Registry imports" not in pages[clinician]
    assert "Registry imports" in pages[administrator]
    assert "Cancer registry" not in pages[administrator]


# --- add to a meeting from a result -----------------------------------------------------------


def start_adding(client, patient, slot="r1", **headers):
    return client.post(
        ADD,
        {"step": "start", "slot": slot, "nhs_number": patient.nhs_number},
        headers=headers or None,
    )


def add_form(to_meeting, patient, slot="r1", **changes):
    fields = {
        "meeting": str(to_meeting.public_id),
        "nhs_number": patient.nhs_number,
        "question": "Registry says T2 N1: confirm stage and plan",
        "referrer": "Dr R Registry",
        "triage": Case.Triage.FULL_DISCUSSION,
        "late_reason": "",
        "submission_id": str(uuid.uuid4()),
        **changes,
    }
    return {"slot": slot, **{f"{slot}-{name}": value for name, value in fields.items()}}


def test_each_result_offers_adding_it_to_a_meeting(client, coordinator):
    patient = PatientFactory(family_name="Listable")
    make_registration(patient)

    page = body(search(client, nhs_number=patient.nhs_number))

    assert f'hx-post="{ADD}"' in page and 'hx-target="#add-r1"' in page
    assert f'name="nhs_number" value="{patient.nhs_number}"' in page
    assert "Add to a meeting" in page


def test_starting_shows_the_form_for_the_patient_with_the_users_open_meetings_only(
    client, coordinator, meeting
):
    patient = PatientFactory(family_name="Listable", given_name="Lou")
    closed = MeetingFactory(team=meeting.team)
    services.close_list(user=coordinator, meeting=closed)
    elsewhere = MeetingFactory()
    before = last_event_id()

    response = start_adding(client, patient, slot="r3", **HTMX)

    fragment = body(response)
    assert "LISTABLE, Lou" in fragment
    assert str(meeting.public_id) in fragment
    assert str(closed.public_id) not in fragment and str(elsewhere.public_id) not in fragment
    assert 'id="id_r3-meeting"' in fragment and 'name="r3-question"' in fragment
    assert 'hx-target="#add-r3"' in fragment
    assert "<html" not in fragment  # htmx gets the fragment
    [event] = new_events(before)
    assert (event.action, event.patient_ids) == ("preview_patient", [patient.pk])
    assert not Case.objects.exists()


def test_adding_by_htmx_lists_the_case_and_says_so_in_place(client, coordinator, meeting):
    patient = PatientFactory(family_name="Listable", given_name="Lou")
    before = last_event_id()

    response = client.post(ADD, add_form(meeting, patient), headers=HTMX)

    case = Case.objects.get()
    assert (case.meeting, case.patient, case.added_by) == (meeting, patient, coordinator)
    assert case.question == "Registry says T2 N1: confirm stage and plan"
    fragment = body(response)
    assert "LISTABLE, Lou" in fragment and "was added to the list of" in fragment
    assert f'href="/meetings/{meeting.public_id}/"' in fragment
    [event] = new_events(before)
    assert (event.action, event.patient_ids) == ("add_case", [patient.pk])


def test_adding_without_javascript_goes_to_the_meeting(client, coordinator, meeting):
    patient = PatientFactory()

    start = start_adding(client, patient)
    response = client.post(ADD, add_form(meeting, patient))

    assert "<html" in body(start) and "Add a patient from the cancer registry" in body(start)
    assert response.status_code == 302
    assert response["Location"] == f"/meetings/{meeting.public_id}/"
    assert Case.objects.get().patient == patient


def test_sending_the_same_form_twice_adds_the_case_once(client, coordinator, meeting):
    patient = PatientFactory()
    form = add_form(meeting, patient)

    client.post(ADD, form, headers=HTMX)
    again = client.post(ADD, form, headers=HTMX)

    assert Case.objects.count() == 1
    assert "was added to the list" in body(again)


def test_another_teams_meeting_cannot_be_chosen(client, coordinator):
    patient = PatientFactory(family_name="Listable")
    other = MeetingFactory()

    response = client.post(ADD, add_form(other, patient), headers=HTMX)

    assert "Choose one of your teams' meetings whose list is open." in text(response)
    assert 'href="#id_r1-meeting"' in body(response)  # the error summary links to the field
    assert "LISTABLE" in body(response)
    assert not Case.objects.exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"question": ""}, "Enter the question for the MDT."),
        ({"referrer": ""}, "Enter the referring clinician."),
        ({"meeting": ""}, "Choose the meeting to add the patient to."),
    ],
)
def test_a_missing_answer_keeps_what_was_typed(client, coordinator, meeting, changes, message):
    patient = PatientFactory()

    response = client.post(
        ADD, add_form(meeting, patient, **{"referrer": "Dr Kept Typing", **changes}), headers=HTMX
    )

    assert message in text(response)
    if "referrer" not in changes:
        assert 'value="Dr Kept Typing"' in body(response)
    assert not Case.objects.exists()


def test_a_patient_already_on_the_list_is_refused_on_the_meeting_field(
    client, coordinator, meeting
):
    patient = PatientFactory()
    CaseFactory(meeting=meeting, patient=patient)

    response = client.post(ADD, add_form(meeting, patient), headers=HTMX)

    assert "This patient is already on this meeting's list." in text(response)
    assert Case.objects.count() == 1


def test_after_the_cut_off_the_coordinator_gives_a_reason(client, coordinator, meeting):
    late = MeetingFactory(
        team=meeting.team,
        starts_at=timezone.now() + timedelta(hours=3),
        cutoff_at=timezone.now() - timedelta(hours=3),
    )
    patient = PatientFactory()

    refused = client.post(ADD, add_form(late, patient), headers=HTMX)
    added = client.post(
        ADD, add_form(late, patient, late_reason="Urgent: registry shows progression"), headers=HTMX
    )

    assert "Give the reason for adding this case late." in body(refused)
    assert "was added to the list" in body(added)
    assert Case.objects.get().late_reason == "Urgent: registry shows progression"


def test_a_patient_the_index_does_not_know_cannot_be_added_while_demographics_is_down(
    client, coordinator
):
    # The demographics service is not configured in the tests: it is "down".
    response = client.post(
        ADD,
        {"step": "start", "slot": "r1", "nhs_number": synthetic_nhs_number(8801)},
        headers=HTMX,
    )
    assert "cannot be added now" in body(response)
    assert "Add to the list" not in body(response)


def test_a_coordinator_with_no_open_meeting_is_told_to_schedule_one(client, meeting):
    user = make_member(meeting.team, role=Role.COORDINATOR)
    services.close_list(user=user, meeting=meeting)
    client.force_login(user)

    response = start_adding(client, PatientFactory(), **HTMX)

    assert "None of your teams has a meeting whose list is open." in body(response)


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.CHAIR, Role.GP, Role.ADMIN])
def test_only_coordinators_add_from_the_registry(client, meeting, role):
    client.force_login(make_member(meeting.team, role=role))
    patient = PatientFactory(family_name="Notshown")

    start = start_adding(client, patient, **HTMX)
    add = client.post(ADD, add_form(meeting, patient), headers=HTMX)

    assert (start.status_code, add.status_code) == (403, 403)
    assert "NOTSHOWN" not in body(start) + body(add)
    assert not Case.objects.exists()


def test_a_slot_that_is_not_a_result_number_is_ignored(client, coordinator, meeting):
    response = start_adding(client, PatientFactory(), slot='"><script>', **HTMX)
    assert "<script>" not in body(response)
    assert 'hx-target="#add-r0"' in body(response)


# --- uploads, progress and reports ------------------------------------------------------------


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def region():
    OrganisationFactory(ods_code="RRK", name="University Hospitals Birmingham")
    PracticeFactory(ods_code="M85011", name="Test Surgery")


def csv_upload(rows, items=cosd.TUMOUR_ITEMS, name="tumours.csv") -> SimpleUploadedFile:
    fields = [item.field for item in items]
    lines = [",".join(item.number for item in items)]
    lines += [",".join(row[field] for field in fields) for row in rows]
    return SimpleUploadedFile(name, ("\n".join(lines) + "\n").encode(), content_type="text/csv")


def test_the_upload_page_lists_past_imports(client, admin):
    ImportRun.objects.create(
        kind=ImportRun.Kind.TUMOURS, file_name="march.csv", status="done", rows_read=12
    )
    page = body(client.get(IMPORTS))
    assert "Upload registry files" in page
    assert "march.csv" in page and "Done" in page


def test_uploading_stores_the_file_records_a_queued_run_and_enqueues_it_after_commit(
    client, admin, media_root, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(IMPORTS, {"tumours": csv_upload([tumour_row()], name="may.csv")})

    run = ImportRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/registry/imports/{run.public_id}/"
    assert (run.kind, run.status, run.file_name, run.requested_by) == (
        "tumours",
        "queued",
        "may.csv",
        admin,
    )
    stored = Path(run.stored_path)
    assert stored.is_file() and stored.is_relative_to(media_root / "registry-imports")
    assert run.bytes_total == stored.stat().st_size
    assert len(callbacks) == 1


@pytest.fixture
def eager_celery():
    """Tasks run in this process when enqueued (the enqueueing code path, without a worker)."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


def test_uploading_both_files_imports_the_treatments_after_their_tumours(
    client, admin, region, eager_celery, django_capture_on_commit_callbacks
):
    tumours = csv_upload([tumour_row(local_tumour_id="T1"), tumour_row(local_tumour_id="T2")])
    treatments = csv_upload(
        [treatment_row(local_tumour_id="T1"), treatment_row(local_tumour_id="T9")],
        items=cosd.TREATMENT_ITEMS,
        name="treatments.csv",
    )
    with django_capture_on_commit_callbacks(execute=True):
        client.post(IMPORTS, {"tumours": tumours, "treatments": treatments})

    tumour_run = ImportRun.objects.get(kind="tumours")
    treatment_run = ImportRun.objects.get(kind="treatments")
    assert (tumour_run.status, tumour_run.rows_created) == ("done", 2)
    assert (treatment_run.status, treatment_run.rows_created, treatment_run.rows_quarantined) == (
        "done",
        1,
        1,
    )
    assert Registration.objects.count() == 2 and Treatment.objects.count() == 1
    report = body(client.get(f"/registry/imports/{treatment_run.public_id}/"))
    assert "Rows set aside" in report and "No tumour registration has" in report


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "Choose the tumour registrations file to upload."),
        (
            {"tumours": SimpleUploadedFile("tumours.txt", b"CR0010\n")},
            "must be a CSV file",
        ),
        ({"tumours": SimpleUploadedFile("tumours.csv", b"")}, "The file you chose is empty."),
        (
            {"tumours": SimpleUploadedFile("tumours.csv", b"CR0010,CR0050\n9990000018,SMITH\n")},
            "Required columns missing",
        ),
        (
            {"tumours": csv_upload([treatment_row()], cosd.TREATMENT_ITEMS)},
            "Required columns missing",
        ),
        (
            {"tumours": SimpleUploadedFile("tumours.csv", "CR0010,Név\n".encode("latin-1"))},
            "not a UTF-8 CSV file",
        ),
    ],
)
def test_a_file_that_cannot_be_imported_is_refused_before_it_is_queued(
    client, admin, files, message
):
    response = client.post(IMPORTS, files)

    assert response.status_code == 200
    assert "There is a problem" in body(response)
    assert message in text(response)
    assert not ImportRun.objects.exists()


@pytest.mark.parametrize("status", ["queued", "running"])
def test_a_running_import_shows_a_progress_bar_that_polls_every_second(client, admin, status):
    run = ImportRun.objects.create(
        kind="tumours",
        file_name="big.csv",
        status=status,
        bytes_total=4_000_000,
        bytes_read=1_000_000 if status == "running" else 0,
        rows_read=5000 if status == "running" else 0,
    )

    page = body(client.get(f"/registry/imports/{run.public_id}/"))
    fragment = body(client.get(f"/registry/imports/{run.public_id}/", headers=HTMX))

    for shown in (page, fragment):
        assert f'hx-get="/registry/imports/{run.public_id}/"' in shown
        assert 'hx-trigger="every 1s"' in shown
        expected = 25 if status == "running" else 0
        assert re.search(
            rf'<progress class="app-progress"[^>]* max="100" value="{expected}"', shown
        )
    assert "<html" in page and "<html" not in fragment
    if status == "running":
        assert "Read 1.0 of 4.0 MB (5,000 rows)" in fragment
    assert "style=" not in page  # the CSP allows no inline style


def test_the_live_region_is_filled_only_when_the_status_changes(client, admin):
    run = ImportRun.objects.create(kind="tumours", file_name="a.csv", status="running")
    url = f"/registry/imports/{run.public_id}/"

    same = body(client.get(url, {"seen": "running"}, headers=HTMX))
    changed = body(client.get(url, {"seen": "queued"}, headers=HTMX))

    assert "import-announcement-text" not in same
    assert 'id="import-announcement-text" hx-swap-oob="true">Import running.' in changed


def test_a_finished_import_shows_its_report_and_stops_polling(client, admin):
    run = ImportRun.objects.create(
        kind="tumours",
        file_name="done.csv",
        status="done",
        rows_read=10,
        rows_created=6,
        rows_updated=1,
        rows_unchanged=1,
        rows_quarantined=2,
        started_at=timezone.now() - timedelta(seconds=5),
        finished_at=timezone.now(),
    )
    QuarantinedRow.objects.create(
        run=run,
        line=7,
        reasons=["CR0370 PRIMARY DIAGNOSIS (ICD): “E11” is not a cancer code."],
        values={"family_name": "Quarantinedname", "nhs_number": "9990000018"},
    )
    QuarantinedRow.objects.create(
        run=run, line=3, reasons=["First reason.", "Second reason."], values={}
    )

    fragment = body(
        client.get(f"/registry/imports/{run.public_id}/", {"seen": "running"}, headers=HTMX)
    )

    assert "hx-get" not in fragment and "<progress" not in fragment
    assert "Import done: 10 rows read, 2 set aside." in fragment
    counts = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment))
    assert "Rows read 10 New registrations 6 Updated by a later submission 1" in counts
    assert fragment.index(">3<") < fragment.index(">7<")  # by line
    assert "“E11” is not a cancer code." in fragment and "<li>Second reason.</li>" in fragment
    # The values name a patient; the report shows line numbers and reasons only.
    assert "Quarantinedname" not in fragment and "9990000018" not in fragment


def test_the_report_shows_the_first_200_rows_set_aside(client, admin):
    run = ImportRun.objects.create(
        kind="tumours", file_name="bad.csv", status="done", rows_quarantined=205
    )
    QuarantinedRow.objects.bulk_create(
        QuarantinedRow(run=run, line=line, reasons=[f"Reason {line}."], values={})
        for line in range(2, 207)
    )

    page = body(client.get(f"/registry/imports/{run.public_id}/"))

    assert "Showing the first 200 of 205" in page
    assert "Reason 201." in page and "Reason 202." not in page


def test_a_failed_import_says_why(client, admin):
    run = ImportRun.objects.create(
        kind="tumours", file_name="x.csv", status="failed", error="The file is empty."
    )
    page = body(client.get(f"/registry/imports/{run.public_id}/"))
    assert "The import did not finish" in page and "The file is empty." in page


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.CLINICIAN, Role.CHAIR, Role.GP])
def test_only_administrators_upload_and_read_imports(client, meeting, role):
    client.force_login(make_member(meeting.team, role=role))
    run = ImportRun.objects.create(kind="tumours", file_name="secret.csv", status="done")

    assert client.get(IMPORTS).status_code == 403
    assert client.post(IMPORTS, {"tumours": csv_upload([tumour_row()])}).status_code == 403
    assert client.get(f"/registry/imports/{run.public_id}/", headers=HTMX).status_code == 403
    assert ImportRun.objects.count() == 1


# --- the task ---------------------------------------------------------------------------------


def stored_run(write_csv, rows, kind="tumours", **fields) -> ImportRun:
    items = cosd.TUMOUR_ITEMS if kind == "tumours" else cosd.TREATMENT_ITEMS
    path = write_csv(rows, items=items, name=f"{kind}-{uuid.uuid4().hex}.csv")
    return ImportRun.objects.create(kind=kind, file_name=path.name, stored_path=str(path), **fields)


def test_the_task_runs_the_importer_on_the_stored_file(region, write_csv):
    run = stored_run(write_csv, [tumour_row(local_tumour_id="T1"), tumour_row(icd10="E11")])

    assert run_registry_import.run(run.pk) == "done"

    run.refresh_from_db()
    assert (run.status, run.rows_read, run.rows_created, run.rows_quarantined) == ("done", 2, 1, 1)
    assert run.quarantined.get().line == 3


def test_running_a_finished_import_again_changes_nothing(region, write_csv):
    run = stored_run(write_csv, [tumour_row()])
    run_registry_import.run(run.pk)
    run.refresh_from_db()
    finished_at = run.finished_at

    assert run_registry_import.run(run.pk) == "done"
    run.refresh_from_db()
    assert run.finished_at == finished_at
    assert Registration.objects.count() == 1


def test_treatments_are_not_imported_when_their_tumours_file_failed(region, write_csv, tmp_path):
    broken = tmp_path / "broken.csv"
    broken.write_text("NOT A HEADER\n")
    tumour_run = ImportRun.objects.create(
        kind="tumours", file_name="broken.csv", stored_path=str(broken)
    )
    treatment_run = stored_run(write_csv, [treatment_row()], kind="treatments")

    run_registry_import.run(tumour_run.pk, treatment_run.pk)

    tumour_run.refresh_from_db()
    treatment_run.refresh_from_db()
    assert tumour_run.status == "failed" and "Unknown column headers" in tumour_run.error
    assert treatment_run.status == "failed"
    assert "broken.csv was not imported" in treatment_run.error
    assert not Treatment.objects.exists()


def test_a_run_that_no_longer_exists_is_skipped():
    assert run_registry_import.run(987654) == "missing"


# --- upload retention and the sweep -----------------------------------------------------------


def upload_both(client, admin_user, **kwargs):
    tumours = csv_upload([tumour_row(local_tumour_id="T1"), tumour_row(icd10="E11")])
    treatments = csv_upload([treatment_row()], items=cosd.TREATMENT_ITEMS, name="treatments.csv")
    client.force_login(admin_user)
    client.post(IMPORTS, {"tumours": tumours, "treatments": treatments}, **kwargs)
    return ImportRun.objects.get(kind="tumours"), ImportRun.objects.get(kind="treatments")


def test_an_uploaded_file_is_deleted_when_its_import_finishes_and_the_report_is_kept(
    client, admin, region, media_root, eager_celery, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        tumour_run, treatment_run = upload_both(client, admin)

    for run in (tumour_run, treatment_run):
        run.refresh_from_db()
        assert run.status == "done" and run.file_deleted_at is not None
        assert not Path(run.stored_path).exists()
    assert not list((media_root / "registry-imports").rglob("*.csv"))
    assert tumour_run.quarantined.count() == 1  # the report stays
    page = body(client.get(f"/registry/imports/{tumour_run.public_id}/"))
    assert "The uploaded file was deleted when the import finished" in page
    assert "Rows set aside" in page


def test_a_file_named_on_the_command_line_is_never_deleted(region, write_csv):
    run = stored_run(write_csv, [tumour_row()])

    run_registry_import.run(run.pk)

    run.refresh_from_db()
    assert run.status == "done" and Path(run.stored_path).is_file()
    assert run.file_deleted_at is None


def test_the_sweep_enqueues_again_the_runs_whose_message_was_lost(
    client, admin, region, media_root, django_capture_on_commit_callbacks, monkeypatch
):
    with django_capture_on_commit_callbacks(execute=False):  # the message is lost
        tumour_run, treatment_run = upload_both(client, admin)
    sent = []
    monkeypatch.setattr(run_registry_import, "delay", lambda *args: sent.append(args))
    soon = timezone.now() + timedelta(minutes=5)
    later = timezone.now() + uploads.REQUEUE_AFTER + timedelta(minutes=1)

    with django_capture_on_commit_callbacks(execute=True):
        assert uploads.sweep(now=soon) == {"requeued": 0, "deleted": 0}  # not stale yet
        assert uploads.sweep(now=later) == {"requeued": 1, "deleted": 0}
        # Handed over again just now: not again at the next beat.
        assert uploads.sweep(now=later + timedelta(minutes=5))["requeued"] == 0

    assert sent == [(tumour_run.pk, treatment_run.pk)]
    # The re-sent message runs both, in order; a duplicate of it changes nothing.
    assert run_registry_import.run(*sent[0]) == "done"
    assert run_registry_import.run(*sent[0]) == "done"
    tumour_run.refresh_from_db()
    treatment_run.refresh_from_db()
    assert (tumour_run.status, tumour_run.rows_created) == ("done", 1)
    assert (treatment_run.status, treatment_run.rows_created) == ("done", 1)
    assert Registration.objects.count() == 1 and Treatment.objects.count() == 1
    assert tumour_run.file_deleted_at and treatment_run.file_deleted_at


def test_the_sweep_enqueues_a_treatments_run_left_behind_by_its_finished_tumours_run(
    region, write_csv, monkeypatch, django_capture_on_commit_callbacks
):
    tumour_run = stored_run(write_csv, [tumour_row()])
    run_registry_import.run(tumour_run.pk)
    treatment_run = stored_run(write_csv, [treatment_row()], kind="treatments", follows=tumour_run)
    ImportRun.objects.filter(pk=treatment_run.pk).update(
        created_at=timezone.now() - timedelta(hours=1)
    )
    sent = []
    monkeypatch.setattr(run_registry_import, "delay", lambda *args: sent.append(args))

    with django_capture_on_commit_callbacks(execute=True):
        uploads.sweep()

    assert sent == [(tumour_run.pk, treatment_run.pk)]
    run_registry_import.run(*sent[0])
    treatment_run.refresh_from_db()
    assert (treatment_run.status, treatment_run.rows_created) == ("done", 1)


def test_a_run_another_worker_is_running_is_left_to_it(region, write_csv):
    run = stored_run(write_csv, [tumour_row()], status="running")
    key = (uploads._RUN_LOCK_CLASS, run.pk)
    with connections["default"].cursor():
        pass
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", key)
        assert run_registry_import.run(run.pk) == "running"
        assert not Registration.objects.exists()
    finally:
        other.close()
    assert run_registry_import.run(run.pk) == "done"  # a worker that died: run again


def test_a_failed_run_is_not_run_again(region, tmp_path):
    broken = tmp_path / "broken.csv"
    broken.write_text("NOT A HEADER\n")
    run = ImportRun.objects.create(kind="tumours", file_name="broken.csv", stored_path=str(broken))
    run_registry_import.run(run.pk)
    run.refresh_from_db()
    error, finished_at = run.error, run.finished_at

    assert run_registry_import.run(run.pk) == "failed"
    run.refresh_from_db()
    assert (run.error, run.finished_at) == (error, finished_at)
