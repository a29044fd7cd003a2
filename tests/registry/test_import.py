"""Loading registry files: good rows load while bad ones are quarantined with their line numbers,
re-imports are idempotent, later submissions update with history, patients are linked or created,
treatments find their tumour, and the command reports it all."""

import threading
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import AuditEvent, Organisation
from demo.synthetic import synthetic_nhs_number
from records.models import Patient
from registry import cosd, importer
from registry.importer import import_treatments, import_tumours
from registry.models import (
    ImportedPatient,
    ImportRun,
    QuarantinedRow,
    Registration,
    RegistrationHistory,
    Surname,
    Treatment,
)
from tests.factories import OrganisationFactory, PatientFactory, PracticeFactory, UserFactory

from .conftest import treatment_row, tumour_row

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def region():
    OrganisationFactory(ods_code="RRK", name="University Hospitals Birmingham")
    PracticeFactory(ods_code="M85011", name="Test Surgery")


def counts(run: ImportRun) -> dict[str, int]:
    return {
        "read": run.rows_read,
        "created": run.rows_created,
        "updated": run.rows_updated,
        "unchanged": run.rows_unchanged,
        "older": run.rows_older,
        "quarantined": run.rows_quarantined,
    }


def test_good_rows_load_while_bad_rows_are_quarantined_with_their_line_numbers(write_csv):
    path = write_csv(
        [
            tumour_row(local_tumour_id="T1"),
            tumour_row(local_tumour_id="T2", icd10="E11", t="T9"),
            tumour_row(local_tumour_id="T3", nhs_number=synthetic_nhs_number(3)),
            tumour_row(local_tumour_id="T4", diagnosis_date="2999-01-01"),
        ]
    )

    run = import_tumours(path)

    assert run.status == ImportRun.Status.DONE
    assert counts(run) == {
        "read": 4,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "older": 0,
        "quarantined": 2,
    }
    assert set(Registration.objects.values_list("local_tumour_id", flat=True)) == {"T1", "T3"}
    quarantined = list(run.quarantined.order_by("line"))
    assert [row.line for row in quarantined] == [3, 5]
    assert quarantined[0].reasons == [
        "CR0370 PRIMARY DIAGNOSIS (ICD): “E11” is not an ICD-10 cancer code; the registry takes "
        "C00–C97, D00–D09 and D37–D48, written like C34.1 or C341.",
        "CR0520 T CATEGORY (FINAL PRETREATMENT): “T9” is not a T category of the UICC 8th edition.",
    ]
    assert quarantined[0].values["local_tumour_id"] == "T2"
    assert quarantined[0].values["icd10"] == "E11"
    assert quarantined[1].reasons == [
        "CR2030 DATE OF PRIMARY DIAGNOSIS (CLINICALLY AGREED): 2999-01-01 is in the future."
    ]


def test_a_registration_holds_the_normalised_values_and_where_they_came_from(write_csv):
    path = write_csv([tumour_row(icd10="C341", t="t2A", stage_group="3a", laterality="l")])

    import_tumours(path)

    registration = Registration.objects.get()
    assert (registration.icd10, registration.t, registration.stage_group) == (
        "C34.1",
        "T2a",
        "IIIA",
    )
    assert registration.laterality == "L"
    assert registration.submitting_org_known is True
    assert (registration.source_file, registration.source_line) == ("tumours.csv", 2)
    assert str(registration.diagnosis_date) == "2023-05-01"


def test_importing_the_same_file_again_changes_nothing(write_csv):
    path = write_csv([tumour_row(local_tumour_id=f"T{n}") for n in range(3)])
    import_tumours(path)
    before = list(Registration.objects.order_by("pk").values())

    run = import_tumours(path)

    assert counts(run) == {
        "read": 3,
        "created": 0,
        "updated": 0,
        "unchanged": 3,
        "older": 0,
        "quarantined": 0,
    }
    assert list(Registration.objects.order_by("pk").values()) == before
    assert not RegistrationHistory.objects.exists()
    assert Patient.objects.count() == 1


def test_a_later_submission_updates_the_registration_and_keeps_the_previous_values(write_csv):
    import_tumours(write_csv([tumour_row(t="cT2a", stage_group="IIIA")], name="march.csv"))
    later = write_csv(
        [tumour_row(submission_date="2024-04-01", t="pT3", stage_group="IIIB")], name="april.csv"
    )

    run = import_tumours(later)

    assert (run.rows_updated, run.rows_created, run.rows_unchanged) == (1, 0, 0)
    registration = Registration.objects.get()
    assert (registration.t, registration.stage_group) == ("pT3", "IIIB")
    assert str(registration.submission_date) == "2024-04-01"
    assert registration.source_file == "april.csv"
    history = registration.history.get()
    assert str(history.submission_date) == "2024-03-01"
    assert history.values["t"] == "cT2a"
    assert history.values["stage_group"] == "IIIA"
    assert history.values["source_file"] == "march.csv"
    assert history.replaced_by_file == "april.csv"


def test_an_older_submission_is_reported_and_ignored(write_csv):
    import_tumours(write_csv([tumour_row(submission_date="2024-04-01", t="pT3")], name="new.csv"))

    run = import_tumours(write_csv([tumour_row(submission_date="2024-03-01", t="cT1")]))

    assert (run.rows_older, run.rows_updated, run.rows_unchanged) == (1, 0, 0)
    assert Registration.objects.get().t == "pT3"
    assert not RegistrationHistory.objects.exists()


def test_a_later_submission_with_the_same_values_is_unchanged_and_writes_no_history(write_csv):
    import_tumours(write_csv([tumour_row()]))

    run = import_tumours(write_csv([tumour_row(submission_date="2024-05-01")], name="may.csv"))

    assert (run.rows_unchanged, run.rows_updated) == (1, 0)
    assert not RegistrationHistory.objects.exists()
    # The later date is kept, so that a file between the two is recognised as older.
    assert str(Registration.objects.get().submission_date) == "2024-05-01"


def test_the_same_submission_date_with_different_values_is_quarantined(write_csv):
    import_tumours(write_csv([tumour_row(t="cT2a")]))

    run = import_tumours(write_csv([tumour_row(t="cT3")], name="again.csv"))

    assert (run.rows_quarantined, run.rows_updated, run.rows_unchanged) == (1, 0, 0)
    row = run.quarantined.get()
    assert row.line == 2
    assert row.reasons == [
        "A submission of this tumour with the same submission date (2024-03-01) is already "
        "loaded with different values; send the corrected row with a later submission date."
    ]
    assert row.values["t"] == "cT3"
    assert Registration.objects.get().t == "cT2a"


def test_a_tumour_twice_in_one_file_is_loaded_in_file_order(write_csv):
    path = write_csv(
        [
            tumour_row(t="cT2a"),
            tumour_row(submission_date="2024-04-01", t="pT3"),
        ]
    )

    run = import_tumours(path)

    assert (run.rows_created, run.rows_updated) == (1, 1)
    registration = Registration.objects.get()
    assert registration.t == "pT3"
    assert registration.history.get().values["t"] == "cT2a"


def test_an_unknown_submitting_organisation_is_flagged_and_still_loaded(write_csv):
    path = write_csv([tumour_row(submitting_org="ZZZ99"), tumour_row(local_tumour_id="T2")])

    run = import_tumours(path)

    assert run.rows_created == 2
    assert run.rows_quarantined == 0
    flagged = Registration.objects.get(submitting_org="ZZZ99")
    assert flagged.submitting_org_known is False
    assert Registration.objects.get(local_tumour_id="T2").submitting_org_known is True
    assert run.unknown_submitters == {"ZZZ99": 1}


def test_a_patient_created_from_a_registry_row_carries_the_demographics_and_gp_practice(
    write_csv,
):
    nhs = synthetic_nhs_number(7)
    path = write_csv(
        [
            tumour_row(
                nhs_number=nhs,
                family_name="Okafor",
                given_name="Grace",
                birth_date="1948-07-04",
                sex="2",
                postcode="B15 2TH",
                gp_practice="M85011",
            )
        ]
    )

    import_tumours(path)

    patient = Patient.objects.get(nhs_number=nhs)
    assert (patient.family_name, patient.given_name) == ("Okafor", "Grace")
    assert str(patient.birth_date) == "1948-07-04"
    assert patient.sex == Patient.Sex.FEMALE
    assert patient.postcode == "B15 2TH"
    assert patient.gp_practice == Organisation.objects.get(ods_code="M85011")
    assert Registration.objects.get().patient == patient


def test_a_gp_practice_code_the_region_does_not_know_leaves_the_new_patient_without_one(
    write_csv,
):
    import_tumours(write_csv([tumour_row(gp_practice="Y99999")]))

    registration = Registration.objects.select_related("patient").get()
    assert registration.gp_practice == "Y99999"
    assert registration.patient.gp_practice is None


def test_an_existing_patients_demographics_are_never_overwritten(write_csv):
    patient = PatientFactory(
        nhs_number=synthetic_nhs_number(1), family_name="Index", given_name="Iris", postcode="WV1"
    )
    practice = patient.gp_practice

    import_tumours(write_csv([tumour_row(family_name="Registry", given_name="Rita")]))

    patient.refresh_from_db()
    assert (patient.family_name, patient.given_name, patient.postcode) == ("Index", "Iris", "WV1")
    assert patient.gp_practice == practice
    registration = Registration.objects.get()
    assert registration.patient == patient
    # The registration keeps what the registry was told.
    assert registration.family_name == "Registry"


def test_treatments_are_linked_to_their_tumour_by_organisation_and_local_tumour_id(write_csv):
    import_tumours(write_csv([tumour_row(local_tumour_id="T1"), tumour_row(local_tumour_id="T2")]))
    path = write_csv(
        [
            treatment_row(local_tumour_id="T1", modality="01", start_date="2023-06-01"),
            treatment_row(local_tumour_id="T1", modality="3", start_date="2023-07-01"),
            treatment_row(local_tumour_id="T2", modality="02", start_date="2023-08-01"),
        ],
        items=cosd.TREATMENT_ITEMS,
        name="treatments.csv",
    )

    run = import_treatments(path)

    assert run.kind == ImportRun.Kind.TREATMENTS
    assert counts(run) == {
        "read": 3,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "older": 0,
        "quarantined": 0,
    }
    first = Registration.objects.get(local_tumour_id="T1")
    assert list(first.treatments.values_list("modality", flat=True)) == ["01", "03"]
    assert Registration.objects.get(local_tumour_id="T2").treatments.get().modality == "02"


def test_a_treatment_for_a_tumour_the_registry_does_not_hold_is_quarantined(write_csv):
    import_tumours(write_csv([tumour_row(local_tumour_id="T1")]))
    path = write_csv(
        [treatment_row(local_tumour_id="T1"), treatment_row(local_tumour_id="NOPE")],
        items=cosd.TREATMENT_ITEMS,
        name="treatments.csv",
    )

    run = import_treatments(path)

    assert (run.rows_created, run.rows_quarantined) == (1, 1)
    row = run.quarantined.get()
    assert row.line == 3
    assert row.reasons == [
        "No tumour registration has submitting organisation RRK and local tumour id NOPE; "
        "load the tumour file first, or correct the tumour id."
    ]
    assert row.values["local_tumour_id"] == "NOPE"


def test_a_treatment_before_the_patients_birth_is_quarantined(write_csv):
    import_tumours(write_csv([tumour_row(birth_date="1950-01-31")]))
    path = write_csv(
        [treatment_row(start_date="1949-12-01")], items=cosd.TREATMENT_ITEMS, name="tx.csv"
    )

    run = import_treatments(path)

    assert run.rows_quarantined == 1
    assert run.quarantined.get().reasons == [
        "CR1370 TREATMENT START DATE (CANCER): 1949-12-01 is before the patient's birth date "
        "(1950-01-31)."
    ]
    assert not Treatment.objects.exists()


def test_importing_the_same_treatments_again_changes_nothing_and_a_new_intent_updates(
    write_csv,
):
    import_tumours(write_csv([tumour_row()]))
    items = cosd.TREATMENT_ITEMS
    import_treatments(write_csv([treatment_row(intent="C")], items=items, name="tx.csv"))

    again = import_treatments(write_csv([treatment_row(intent="C")], items=items, name="tx.csv"))
    changed = import_treatments(write_csv([treatment_row(intent="Z")], items=items, name="tx2.csv"))

    assert (again.rows_created, again.rows_unchanged, again.rows_updated) == (0, 1, 0)
    assert (changed.rows_created, changed.rows_unchanged, changed.rows_updated) == (0, 0, 1)
    assert Treatment.objects.get().intent == "Z"


def test_headers_may_be_item_names_in_any_case_and_order(write_csv):
    items = list(reversed(cosd.TUMOUR_ITEMS))
    headers = [item.name.lower() if n % 2 else item.number for n, item in enumerate(items)]

    run = import_tumours(write_csv([tumour_row()], items=items, headers=headers))

    assert run.status == ImportRun.Status.DONE
    assert run.rows_created == 1


def test_a_file_saved_by_excel_with_a_byte_order_mark_is_read(write_csv):
    path = write_csv([tumour_row()])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())

    run = import_tumours(path)

    assert (run.status, run.rows_created) == (ImportRun.Status.DONE, 1)


def test_optional_columns_may_be_left_out(write_csv):
    required = [item for item in cosd.TUMOUR_ITEMS if item.required]

    run = import_tumours(write_csv([tumour_row()], items=required))

    assert run.rows_created == 1
    assert Registration.objects.get().t == ""


def test_a_missing_required_header_fails_the_import_before_any_row_is_read(write_csv):
    items = [item for item in cosd.TUMOUR_ITEMS if item.number not in ("CR0010", "CR2030")]

    run = import_tumours(write_csv([tumour_row()], items=items))

    assert run.status == ImportRun.Status.FAILED
    assert run.error == (
        "Required columns missing: CR0010 NHS NUMBER, CR2030 DATE OF PRIMARY DIAGNOSIS "
        "(CLINICALLY AGREED). See docs/registry-import.md for the format."
    )
    assert run.rows_read == 0
    assert not Registration.objects.exists()


def test_an_unknown_header_fails_the_import_before_any_row_is_read(write_csv):
    headers = [item.number for item in cosd.TUMOUR_ITEMS]
    headers[-1] = "CR9999"

    run = import_tumours(write_csv([tumour_row()], headers=headers))

    assert run.status == ImportRun.Status.FAILED
    assert run.error.startswith(
        "Unknown column headers: “CR9999”. Headers are COSD item numbers (such as CR0370) or "
        "item names."
    )
    assert run.rows_read == 0


def test_the_same_item_twice_in_the_header_fails_the_import(write_csv):
    items = [*cosd.TUMOUR_ITEMS, cosd.TUMOUR_ITEMS[11]]
    headers = [item.number for item in cosd.TUMOUR_ITEMS] + ["primary diagnosis (icd)"]

    run = import_tumours(write_csv([tumour_row()], items=items, headers=headers))

    assert run.status == ImportRun.Status.FAILED
    assert run.error == (
        "Repeated columns: “CR0370” and “primary diagnosis (icd)” are both CR0370 PRIMARY "
        "DIAGNOSIS (ICD); keep one of each. See docs/registry-import.md for the format."
    )


def test_a_row_with_the_wrong_number_of_values_is_quarantined(write_csv):
    path = write_csv([tumour_row(), ["RRK", "T2", "2024-03-01"]])

    run = import_tumours(path)

    assert run.rows_created == 1
    row = run.quarantined.get()
    assert row.line == 3
    assert row.reasons == ["The row has 3 values but the header has 23 columns."]


def test_line_numbers_count_physical_lines_and_blank_lines_are_skipped(write_csv):
    # Line 1 the header, lines 2-3 a row with a quoted line break, 4 a row, 5 blank, 6 a bad row.
    path = write_csv([tumour_row(family_name="Line\nBreak"), tumour_row(local_tumour_id="T2")])
    bad = write_csv([tumour_row(local_tumour_id="T3", icd10="X")], name="bad.csv")
    bad_line = bad.read_text().splitlines()[1]
    path.write_text(path.read_text() + "\n" + bad_line + "\n")

    run = import_tumours(path)

    assert run.rows_read == 3
    assert Registration.objects.get(local_tumour_id="T1").family_name == "Line\nBreak"
    assert [row.line for row in run.quarantined.all()] == [6]


def test_values_with_tabs_backslashes_and_line_breaks_load_intact(write_csv):
    awkward = "O\\Neill\tSmith\r\nJr \\N"

    import_tumours(write_csv([tumour_row(family_name=awkward)]))

    assert Registration.objects.get().family_name == awkward
    assert Patient.objects.get().family_name == awkward


def test_an_empty_first_line_fails_the_import(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("\nRRK,T1\n")

    run = import_tumours(path)

    assert run.status == ImportRun.Status.FAILED
    assert run.error == "The first line of the file is empty: it must hold the column headers."


def test_a_file_that_is_not_utf8_fails_with_a_message_saying_what_to_do(write_csv):
    path = write_csv([tumour_row(family_name="Smith")])
    path.write_bytes(path.read_bytes().replace(b"Smith", b"Sm\xefth"))

    run = import_tumours(path)

    assert run.status == ImportRun.Status.FAILED
    assert "not UTF-8 text" in run.error
    assert "CSV UTF-8" in run.error


def test_a_row_with_a_nul_character_is_quarantined(write_csv):
    path = write_csv([tumour_row(local_tumour_id="T1"), tumour_row(local_tumour_id="TX")])
    path.write_bytes(path.read_bytes().replace(b"TX", b"T\x00X"))

    run = import_tumours(path)

    assert (run.rows_created, run.rows_quarantined) == (1, 1)
    row = run.quarantined.get()
    assert row.reasons == [
        "The row contains a NUL character (a zero byte), which the registry cannot store; the "
        "file may be damaged or not a text file."
    ]
    assert row.values["local_tumour_id"] == "T\ufffdX"


def test_a_csv_error_fails_the_run_naming_its_line_and_keeps_earlier_batches(
    write_csv, monkeypatch
):
    monkeypatch.setattr(importer, "BATCH_ROWS", 1)
    huge = "x" * 200_000  # beyond the csv module's field size limit
    path = write_csv([tumour_row(local_tumour_id="T1"), tumour_row(family_name=huge)])

    run = import_tumours(path)

    assert run.status == ImportRun.Status.FAILED
    assert run.error.startswith("Line 3 cannot be read as CSV (field larger than field limit")
    assert list(Registration.objects.values_list("local_tumour_id", flat=True)) == ["T1"]


def test_a_missing_file_fails_the_run(tmp_path):
    run = import_tumours(tmp_path / "absent.csv")

    assert run.status == ImportRun.Status.FAILED
    assert run.error == "The file absent.csv cannot be opened: No such file or directory."


def test_progress_is_reported_and_saved_after_each_batch(write_csv, monkeypatch):
    monkeypatch.setattr(importer, "BATCH_ROWS", 2)
    path = write_csv([tumour_row(local_tumour_id=f"T{n}") for n in range(5)])
    seen = []

    def progress(bytes_read, bytes_total, run):
        saved = ImportRun.objects.get(pk=run.pk)
        seen.append((bytes_read, bytes_total, saved.rows_read, saved.rows_created, saved.status))

    run = import_tumours(path, progress=progress)

    assert [rows_read for _, _, rows_read, _, _ in seen] == [2, 4, 5]
    assert [created for _, _, _, created, _ in seen] == [2, 4, 5]
    assert {status for *_, status in seen} == {ImportRun.Status.RUNNING}
    assert seen[-1][0] == seen[-1][1] == path.stat().st_size
    run.refresh_from_db()
    assert (run.status, run.bytes_read, run.percent) == (
        ImportRun.Status.DONE,
        run.bytes_total,
        100,
    )


def test_an_existing_run_is_used_and_the_requester_kept(write_csv):
    user = UserFactory()
    queued = ImportRun.objects.create(
        kind=ImportRun.Kind.TUMOURS, file_name="upload.csv", requested_by=user
    )

    run = import_tumours(write_csv([tumour_row()]), run=queued)

    assert run.pk == queued.pk
    assert (run.file_name, run.requested_by, run.status) == ("upload.csv", user, "done")
    assert run.started_at is not None
    assert run.finished_at is not None


def test_an_import_writes_one_audit_event_naming_the_run_not_the_patients(write_csv):
    path = write_csv([tumour_row(local_tumour_id=f"T{n}") for n in range(3)])

    run = import_tumours(path)

    event = AuditEvent.objects.get()
    assert event.system_actor == "registry_import"
    assert event.reason == "Cancer registry import tumours.csv"
    assert event.action == "registry_import_tumours"
    assert event.object_ref == f"import_run:{run.pk}"
    assert event.patient_ids == []


def test_quarantined_rows_of_one_run_are_its_own(write_csv):
    path = write_csv([tumour_row(icd10="E11")])

    first, second = import_tumours(path), import_tumours(path)

    assert QuarantinedRow.objects.filter(run=first).count() == 1
    assert QuarantinedRow.objects.filter(run=second).count() == 1


def test_the_command_prints_the_report_with_the_first_quarantined_lines(write_csv):
    tumours = write_csv(
        [
            tumour_row(local_tumour_id="T1"),
            tumour_row(local_tumour_id="T2", icd10="E11", laterality="Q"),
            tumour_row(local_tumour_id="T3", submitting_org="ZZZ"),
        ]
    )
    treatments = write_csv(
        [treatment_row(local_tumour_id="T1"), treatment_row(local_tumour_id="T9")],
        items=cosd.TREATMENT_ITEMS,
        name="treatments.csv",
    )
    out = StringIO()

    call_command("import_registry", str(tumours), "--treatments", str(treatments), stdout=out)

    text = out.getvalue()
    tumour_run, treatment_run = ImportRun.objects.order_by("pk")
    assert f"Tumour registrations from tumours.csv (import #{tumour_run.pk}): done" in text
    assert "  rows read                  3" in text
    assert "  created                    2" in text
    assert "  older (ignored)            0" in text
    assert "  quarantined                1" in text
    assert "submitting organisation not known to the region: ZZZ (1 rows)" in text
    assert "    line 3: CR0370 PRIMARY DIAGNOSIS (ICD): “E11” is not an ICD-10 cancer code" in text
    assert "            CR0380 TUMOUR LATERALITY: “Q” is not a laterality code" in text
    assert f"Treatments from treatments.csv (import #{treatment_run.pk}): done" in text
    assert "    line 3: No tumour registration has submitting organisation RRK and local " in text


def test_the_command_fails_only_for_a_file_it_cannot_read(write_csv, tmp_path):
    bad_rows = write_csv([tumour_row(icd10="E11")])
    call_command("import_registry", str(bad_rows), "--quiet", stdout=StringIO())

    out = StringIO()
    with pytest.raises(CommandError, match="Required columns missing"):
        call_command(
            "import_registry",
            str(write_csv([["x"]], headers=["CR0370"], name="headers.csv")),
            "--treatments",
            str(tmp_path / "never-read.csv"),
            stdout=out,
        )
    assert "Treatments not imported: the tumour file could not be read." in out.getvalue()


def test_patients_an_import_creates_are_marked_unconfirmed(write_csv):
    """Hazard H15: their restriction status is not known until the demographics service is
    asked; an index entry that was already there is not marked."""
    existing = PatientFactory()
    new_nhs = synthetic_nhs_number(8301)
    import_tumours(
        write_csv(
            [
                tumour_row(local_tumour_id="T1", nhs_number=existing.nhs_number),
                tumour_row(local_tumour_id="T2", nhs_number=new_nhs),
                tumour_row(local_tumour_id="T3", nhs_number=new_nhs),  # one patient, two tumours
            ]
        )
    )

    created = Patient.objects.get(nhs_number=new_nhs)
    marked = ImportedPatient.objects.get()
    assert marked.patient == created and marked.created_at >= created.updated_at
    assert not created.restricted


def test_the_surname_counts_follow_imports_and_later_submissions(write_csv):
    rows = [
        tumour_row(local_tumour_id="T1", family_name="Smith"),
        tumour_row(local_tumour_id="T2", family_name="smith", nhs_number=synthetic_nhs_number(2)),
    ]
    import_tumours(write_csv(rows))
    import_tumours(write_csv(rows))  # again: nothing changes
    assert dict(Surname.objects.values_list("name", "registrations")) == {"SMITH": 2}

    renamed = tumour_row(local_tumour_id="T1", family_name="Smyth", submission_date="2024-06-01")
    import_tumours(write_csv([renamed]))

    named = Surname.objects.filter(registrations__gt=0)
    assert dict(named.values_list("name", "registrations")) == {"SMITH": 1, "SMYTH": 1}


def test_a_batch_merge_looks_rows_up_whatever_the_planners_statistics_say(write_csv, monkeypatch):
    """No planner settings, and each look-up of a staged row is a correlated subquery (an index
    look-up per row): the merge must not depend on statistics that lag behind a large load."""
    monkeypatch.setattr(importer, "BATCH_ROWS", 2)
    rows = [
        tumour_row(local_tumour_id=f"T{n}", nhs_number=synthetic_nhs_number(n)) for n in range(5)
    ]
    run = import_tumours(write_csv(rows))
    assert (run.status, run.rows_created) == ("done", 5)

    load = importer._TumourLoad()
    load.create_stage(run)
    try:
        begin = load._begin_sql.as_string(None)
        merge = load._merge_sql.as_string(None)
    finally:
        load.drop_stage()
    assert "set_config" not in begin and "enable_" not in merge
    assert " JOIN records_patient" not in merge and "JOIN registry_registration r ON" not in merge
    assert "ON CONFLICT (submitting_org, local_tumour_id)" not in merge


# Merging a batch in two halves at once, on two connections: only outside a caller's transaction,
# so these tests commit (transaction=True) and the database is emptied after each.


def _loaded() -> dict:
    """What an import leaves, without the ids a merge order decides."""
    registrations = Registration.objects.order_by("submitting_org", "local_tumour_id")
    return {
        "registrations": [
            (
                r.local_tumour_id,
                str(r.submission_date),
                r.family_name,
                r.t,
                r.nhs_number,
                r.patient.nhs_number,
                r.source_line,
            )
            for r in registrations.select_related("patient")
        ],
        "history": sorted(
            (
                h.registration.local_tumour_id,
                str(h.submission_date),
                h.values["family_name"],
                h.values["t"],
            )
            for h in RegistrationHistory.objects.select_related("registration")
        ),
        "patients": sorted(Patient.objects.values_list("nhs_number", "family_name")),
        "imported": ImportedPatient.objects.count(),
        "surnames": dict(
            Surname.objects.filter(registrations__gt=0).values_list("name", "registrations")
        ),
        "quarantined": sorted(QuarantinedRow.objects.values_list("line", "reasons")),
    }


def _empty_registry() -> None:
    for model in (QuarantinedRow, RegistrationHistory, Registration, ImportedPatient, Surname):
        model.objects.all().delete()
    Patient.objects.all().delete()


def _halving_files(write_csv):
    """Two files whose rows fall in both halves of each batch: a first one, then a later one with
    renamed patients (counted surnames), restaged tumours, a tumour twice with its NHS number
    corrected in between (so in each half once), a conflict, an older row and a bad row."""
    numbers = [synthetic_nhs_number(n) for n in range(1, 9)]
    assert {importer._half_of(number) for number in numbers} == {0, 1}
    first = [
        tumour_row(local_tumour_id=f"T{n}", nhs_number=number, family_name=f"Name{n % 3}")
        for n, number in enumerate(numbers)
    ]
    later = [
        tumour_row(
            local_tumour_id="T0",
            nhs_number=numbers[0],
            family_name="Renamed",
            submission_date="2024-04-01",
        ),
        tumour_row(
            local_tumour_id="T1", nhs_number=numbers[1], t="pT3", submission_date="2024-04-01"
        ),
        tumour_row(
            local_tumour_id="T2",
            nhs_number=numbers[2],
            family_name="Renamed",
            submission_date="2024-04-01",
        ),
        tumour_row(local_tumour_id="T3", nhs_number=numbers[3], t="cT3"),  # same date: conflict
        tumour_row(local_tumour_id="T4", nhs_number=numbers[4], submission_date="2024-02-01"),
        tumour_row(local_tumour_id="N1", nhs_number=synthetic_nhs_number(20)),
        tumour_row(local_tumour_id="T5", nhs_number=numbers[5], submission_date="2024-05-01"),
        tumour_row(local_tumour_id="N2", nhs_number="1234567890"),  # bad check digit
        tumour_row(
            local_tumour_id="T5",
            nhs_number=numbers[6],
            submission_date="2024-06-01",
            family_name="Corrected",
        ),
        tumour_row(local_tumour_id="N3", nhs_number=numbers[7], family_name="Name1"),
    ]
    return write_csv(first, name="first.csv"), write_csv(later, name="later.csv")


@pytest.mark.django_db(transaction=True)
def test_a_batch_merged_in_two_halves_at_once_loads_what_one_connection_loads(
    write_csv, monkeypatch
):
    monkeypatch.setattr(importer, "BATCH_ROWS", 4)
    first, later = _halving_files(write_csv)
    halved = []
    merge_halves = importer._Import._merge_halves
    monkeypatch.setattr(
        importer._Import,
        "_merge_halves",
        lambda self, batch, helper: (
            halved.append(set(batch.halves)) or merge_halves(self, batch, helper)
        ),
    )

    runs = [import_tumours(first), import_tumours(later), import_tumours(later)]
    in_two_halves = _loaded()
    assert {0, 1} in halved  # both connections merged rows
    monkeypatch.setattr(importer, "PARALLEL_MERGE", False)
    _empty_registry()
    halved.clear()
    one_connection = [import_tumours(first), import_tumours(later), import_tumours(later)]

    assert not halved
    assert in_two_halves == _loaded()
    assert [counts(run) for run in runs] == [counts(run) for run in one_connection]
    assert counts(runs[1]) == {
        "read": 10,
        "created": 2,
        "updated": 5,
        "unchanged": 0,
        "older": 1,
        "quarantined": 2,
    }
    # Importing it again changes nothing (T5's first row is older now).
    assert counts(runs[2]) == {
        "read": 10,
        "created": 0,
        "updated": 0,
        "unchanged": 6,
        "older": 2,
        "quarantined": 2,
    }
    for run in runs:
        saved = ImportRun.objects.get(pk=run.pk)
        assert counts(saved) == counts(run)
        assert (saved.status, saved.bytes_read) == (ImportRun.Status.DONE, saved.bytes_total)


@pytest.mark.django_db(transaction=True)
def test_a_half_that_fails_stops_the_import_and_the_counts_are_what_was_committed(
    write_csv, monkeypatch
):
    monkeypatch.setattr(importer, "BATCH_ROWS", 4)
    first, _ = _halving_files(write_csv)
    merge = importer._TumourLoad.merge
    merged = []

    def merge_or_fail(self, cursor, lines):
        merged.append(lines)
        if len(merged) == 3:
            raise RuntimeError("connection lost")
        return merge(self, cursor, lines)

    monkeypatch.setattr(importer._TumourLoad, "merge", merge_or_fail)

    with pytest.raises(RuntimeError, match="connection lost"):
        import_tumours(first)

    run = ImportRun.objects.get()
    assert run.status == ImportRun.Status.FAILED
    assert run.error == "The import stopped: RuntimeError('connection lost')"
    assert run.rows_created == Registration.objects.count() < 8
    assert run.rows_read == run.rows_created
    # The import lock is free, and no merging thread or connection is left behind.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_lock(%s), pg_advisory_unlock(%s)",
            [importer._LOCK_KEY, importer._LOCK_KEY],
        )
        assert cursor.fetchone() == (True, True)
    assert not [t for t in threading.enumerate() if t.name.startswith("registry-import")]

    monkeypatch.setattr(importer._TumourLoad, "merge", merge)
    again = import_tumours(first)
    assert (again.status, again.rows_created + run.rows_created) == (ImportRun.Status.DONE, 8)
