"""Populating patients' records from real FHIR servers over real HTTP: the identity rule, codes
from unknown systems, restricted and deceased patients, the demographics service, frozen
snapshots that PostgreSQL refuses to change, cases linked to their snapshots, the record_summary
command, and the demo region's histories end to end."""

import asyncio
import json
import threading
from datetime import date
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from demo.histories import write_demo_histories
from demo.synthetic import synthetic_nhs_number
from mdt.models import Case
from mdt.population import populate_cases
from records.breaker import CircuitBreaker
from records.federation import SourceConfig
from records.models import Patient, Snapshot, SourceResult
from records.populate import (
    PatientJob,
    _ask_all,
    freeze_all,
    latest_snapshot,
    populate_patients,
)
from tests.factories import CaseFactory, PatientFactory, make_member

from .conftest import (
    BORN,
    DIABETES,
    NHS,
    chart,
    condition,
    observations,
    patient,
    pds_patient,
    populate_one,
    restricted_meta,
    results,
    titles_by_source,
)

pytestmark = pytest.mark.django_db
Status = SourceResult.Status
SECRET_ADDRESS = {
    "use": "home",
    "line": ["14 Hideaway Lane", "Kings Norton"],
    "city": "Birmingham",
    "postalCode": "B38 9ZZ",
}
SECRET_WORDS = ("Hideaway", "B38 9ZZ", "Kings Norton")


def case_page(client, case) -> str:
    """The case page as a coordinator on the case's team sees it."""
    client.force_login(make_member(case.meeting.team))
    response = client.get(f"/cases/{case.public_id}/")
    assert response.status_code == 200
    return response.content.decode()


def open_breaker(source_id: int) -> None:
    async def fail():
        breaker = CircuitBreaker(failures_to_open=1)
        try:
            await breaker.failed(source_id)
        finally:
            await breaker.close()

    asyncio.run(fail())


# -- snapshots ------------------------------------------------------------------------------------


def test_populate_patients_freezes_a_snapshot_per_patient_and_calls_on_snapshot_for_each(
    serve, make_source
):
    people = [PatientFactory(birth_date=BORN) for _ in range(3)]
    trust = serve(
        [
            chart(patient(f"rrk-{n}", p.nhs_number), condition(f"dx-{n}", f"rrk-{n}"))
            for n, p in enumerate(people)
        ]
    )
    gp = serve(
        [
            chart(patient(f"gp-{n}", p.nhs_number), condition(f"t2-{n}", f"gp-{n}", DIABETES))
            for n, p in enumerate(people)
        ]
    )
    make_source(trust, "Trust")
    make_source(gp, "GP record")
    frozen = []

    snapshots = populate_patients(
        [p.pk for p in people], reason="Refresh for the meeting", on_snapshot=frozen.append
    )

    assert frozen == snapshots
    assert sorted(s.patient_id for s in snapshots) == sorted(p.pk for p in people)
    for snapshot in snapshots:
        snapshot.refresh_from_db()
        assert snapshot.reason == "Refresh for the meeting"
        assert {name: r.status for name, r in results(snapshot).items()} == {
            "Trust": Status.OK,
            "GP record": Status.OK,
        }
        assert titles_by_source(snapshot) == {
            "Trust": {"Non-small cell lung cancer"},
            "GP record": {"Type 2 diabetes mellitus"},
        }
        assert snapshot.summary["demographics_problem"] == "No demographics service is configured."


def test_every_status_but_ok_is_reported_with_a_reason_on_the_snapshot_and_the_case_page(
    client, ada, serve, make_source
):
    mine = patient("p-1", ada.nhs_number)
    someone = PatientFactory()
    make_source(serve([chart(mine, condition("dx-1", "p-1"))]), "A ok")
    unreadable = {**condition("dx-x", "p-1"), "onsetDateTime": "2025-02-31"}
    make_source(serve([chart(mine, condition("dx-2", "p-1"), unreadable)]), "B partial")
    skipped = make_source(serve([chart(mine)]), "C skipped")
    open_breaker(skipped.pk)
    make_source(serve([chart(mine)], fault="hang"), "D timeout", timeout_s=1)
    make_source(serve([chart(mine)], fault="http500"), "E error")
    misfiled = condition("dx-9", "p-1", subject={"reference": "Patient/someone-else"})
    make_source(serve([chart(mine, misfiled)]), "F identity")
    make_source(serve([chart(patient("p-9", someone.nhs_number))]), "G not found")
    case = CaseFactory(patient=ada)

    populate_cases([case.pk], reason="test")

    case.refresh_from_db()
    snapshot = case.snapshot
    stored = results(snapshot)
    assert {name: r.status for name, r in stored.items()} == {
        "A ok": Status.OK,
        "B partial": Status.PARTIAL,
        "C skipped": Status.SKIPPED,
        "D timeout": Status.TIMEOUT,
        "E error": Status.ERROR,
        "F identity": Status.IDENTITY_MISMATCH,
        "G not found": Status.NOT_FOUND,
    }
    assert stored["A ok"].detail == ""
    for name, result in stored.items():
        shown = snapshot.per_source_status[name]
        assert (shown["status"], shown["detail"]) == (result.status, result.detail)
        if result.status != Status.OK:
            assert result.detail.endswith("."), name
    page = case_page(client, case)
    for name, result in stored.items():
        if result.status != Status.OK:
            assert f"{Status(result.status).label}</strong> {name}" in page
            assert result.detail.replace("'", "&#39;") in page
    # What the sources that passed said is shown; the misfiled record is not.
    assert titles_by_source(snapshot) == {
        "A ok": {"Non-small cell lung cancer"},
        "B partial": {"Non-small cell lung cancer"},
    }


def test_answers_that_arrive_together_are_frozen_in_one_transaction_with_their_raw(
    serve, make_source
):
    people = [PatientFactory(birth_date=BORN) for _ in range(3)]
    trust = make_source(
        serve(
            [
                chart(patient(f"rrk-{n}", p.nhs_number), condition(f"dx-{n}", f"rrk-{n}"))
                for n, p in enumerate(people)
            ]
        ),
        "Trust",
    )
    delivered = []
    asker = threading.Thread(
        target=lambda: asyncio.run(
            _ask_all(
                [PatientJob(p.pk, p.nhs_number, p.birth_date) for p in people],
                [SourceConfig.of(trust)],
                delivered.append,
            )
        )
    )
    asker.start()
    asker.join()
    linked = []

    def on_snapshot(snapshot):
        assert connection.in_atomic_block  # linked in the commit that makes the snapshot
        linked.append(snapshot)

    snapshots = freeze_all(
        delivered, reason="test", sources={trust.pk: trust}, on_snapshot=on_snapshot
    )

    assert linked == snapshots
    assert [s.patient_id for s in snapshots] == [answer.job.patient_id for answer in delivered]
    for snapshot, answers in zip(snapshots, delivered, strict=True):
        (stored,) = SourceResult.objects.filter(snapshot=snapshot)
        assert stored.status == Status.OK
        assert stored.raw == answers.answers[0].raw  # as received, for audit
        assert stored.counts == answers.answers[0].counts
        assert stored.elapsed_ms == answers.answers[0].elapsed_ms


def test_a_refresh_makes_a_new_snapshot_and_never_changes_the_old_one(ada, serve, make_source):
    server = serve([chart(patient("p-1", ada.nhs_number), condition("dx-1", "p-1"))])
    make_source(server, "Trust")
    first = populate_one(ada)
    before = Snapshot.objects.get(pk=first.pk)
    raw_before = results(before)["Trust"].raw

    server.resources[0]["entry"].append({"resource": condition("dx-2", "p-1", DIABETES)})
    server.reload()
    second = populate_one(ada)

    assert second.pk != first.pk
    assert latest_snapshot(ada.pk) == second
    assert titles_by_source(second)["Trust"] == {
        "Non-small cell lung cancer",
        "Type 2 diabetes mellitus",
    }
    after = Snapshot.objects.get(pk=first.pk)
    assert (after.summary, after.per_source_status, after.created_at) == (
        before.summary,
        before.per_source_status,
        before.created_at,
    )
    assert titles_by_source(after)["Trust"] == {"Non-small cell lung cancer"}
    assert results(after)["Trust"].raw == raw_before
    assert Snapshot.objects.filter(patient=ada).count() == 2


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE records_snapshot SET reason = 'edited' WHERE id = %(snapshot)s",
        "DELETE FROM records_snapshot WHERE id = %(snapshot)s",
        "UPDATE records_sourceresult SET status = 'ok' WHERE id = %(result)s",
        "DELETE FROM records_sourceresult WHERE id = %(result)s",
    ],
)
def test_postgresql_refuses_to_change_or_delete_a_snapshot_or_its_source_results(
    ada, serve, make_source, statement
):
    make_source(serve([chart(patient("p-1", ada.nhs_number))], fault="http500"), "Trust")
    snapshot = populate_one(ada)
    result = snapshot.results.get()

    with pytest.raises(DatabaseError, match="rows are never changed"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(statement, {"snapshot": snapshot.pk, "result": result.pk})

    assert Snapshot.objects.get(pk=snapshot.pk).reason == "test"
    assert SourceResult.objects.get(pk=result.pk).status == Status.ERROR


def test_the_orm_cannot_update_a_snapshot_either(ada, serve, make_source):
    make_source(serve([chart(patient("p-1", ada.nhs_number))]), "Trust")
    snapshot = populate_one(ada)

    with pytest.raises(DatabaseError, match="rows are never changed"), transaction.atomic():
        Snapshot.objects.filter(pk=snapshot.pk).update(summary={})

    assert Snapshot.objects.get(pk=snapshot.pk).summary == snapshot.summary


def test_populate_cases_links_each_case_to_its_new_snapshot(serve, make_source):
    first, second = PatientFactory(birth_date=BORN), PatientFactory(birth_date=BORN)
    make_source(
        serve(
            [
                chart(patient("p-1", first.nhs_number), condition("dx-1", "p-1")),
                chart(patient("p-2", second.nhs_number), condition("dx-2", "p-2", DIABETES)),
            ]
        ),
        "Trust",
    )
    on_lung_list = CaseFactory(patient=first)
    on_second_list = CaseFactory(patient=first)  # the same patient on another team's list
    other = CaseFactory(patient=second)
    removed = CaseFactory(patient=second, status=Case.Status.REMOVED)
    cases = [on_lung_list, on_second_list, other, removed]

    made = populate_cases([c.pk for c in cases], reason="Refresh of every case on the meeting")

    assert made == 2
    for case in cases:
        case.refresh_from_db()
    assert on_lung_list.snapshot == on_second_list.snapshot == latest_snapshot(first.pk)
    assert other.snapshot == latest_snapshot(second.pk)
    assert titles_by_source(other.snapshot) == {"Trust": {"Type 2 diabetes mellitus"}}
    assert removed.snapshot is None

    again = populate_cases([other.pk], reason="Case added to an MDT list")

    other_before = other.snapshot
    other.refresh_from_db()
    assert again == 1
    assert other.snapshot != other_before
    assert other.snapshot == latest_snapshot(second.pk)
    assert Snapshot.objects.get(pk=other_before.pk).summary == other_before.summary


# -- the identity rule ------------------------------------------------------------------------


def test_a_bundle_for_a_different_patient_is_identity_mismatch_and_nothing_of_it_shows(
    ada, healthy, serve, make_source
):
    # Someone else's results filed in this patient's chart at the trust.
    mine = condition("dx-2", "rwp-1", DIABETES)
    theirs = {
        **observations("rwp-1", 1)[0],
        "id": "their-ecog",
        "subject": {"reference": "Patient/rwp-77"},
    }
    make_source(serve([chart(patient("rwp-1", ada.nhs_number), mine, theirs)]), "Misfiling Trust")

    snapshot = populate_one(ada)

    misfiling = results(snapshot)["Misfiling Trust"]
    assert misfiling.status == Status.IDENTITY_MISMATCH
    assert misfiling.detail == (
        "Nothing from this source is shown: 1 of 2 records from the source refer to a different "
        "patient or subject (for example Observation/their-ecog)."
    )
    assert titles_by_source(snapshot) == {"Healthy Trust": {"Non-small cell lung cancer"}}
    assert "Type 2 diabetes" not in json.dumps(snapshot.summary)


def test_a_patient_record_with_two_nhs_numbers_is_identity_mismatch(
    ada, healthy, serve, make_source
):
    other = PatientFactory()
    two_numbers = patient(
        "rwp-1",
        ada.nhs_number,
        identifier=[
            {"system": NHS, "value": ada.nhs_number},
            {"system": NHS, "value": other.nhs_number},
        ],
    )
    make_source(serve([chart(two_numbers, condition("dx-2", "rwp-1", DIABETES))]), "Merged Trust")

    snapshot = populate_one(ada)

    merged = results(snapshot)["Merged Trust"]
    assert merged.status == Status.IDENTITY_MISMATCH
    assert merged.detail == (
        "Nothing from this source is shown: "
        "The source's Patient record carries 2 different NHS numbers."
    )
    assert other.nhs_number not in merged.detail
    assert titles_by_source(snapshot) == {"Healthy Trust": {"Non-small cell lung cancer"}}


def test_two_patient_records_for_one_nhs_number_is_identity_mismatch(
    ada, healthy, serve, make_source
):
    duplicates = [
        chart(patient("rwp-1", ada.nhs_number), condition("dx-2", "rwp-1", DIABETES)),
        chart(patient("rwp-2", ada.nhs_number, birth_date="1961-05-05")),
    ]
    make_source(serve(duplicates), "Duplicating Trust")

    snapshot = populate_one(ada)

    duplicating = results(snapshot)["Duplicating Trust"]
    assert duplicating.status == Status.IDENTITY_MISMATCH
    assert duplicating.detail == "The source returned 2 patients for one NHS number."
    assert titles_by_source(snapshot) == {"Healthy Trust": {"Non-small cell lung cancer"}}


def test_a_birth_date_different_from_the_demographics_service_is_identity_mismatch(
    ada, healthy, serve, make_source, demographics
):
    demographics(pds_patient(ada.nhs_number, birth_date=BORN.isoformat()))
    wrong_birth = patient("rwp-1", ada.nhs_number, birth_date="1951-06-01")
    make_source(serve([chart(wrong_birth, condition("dx-2", "rwp-1", DIABETES))]), "Other Trust")

    snapshot = populate_one(ada)

    other = results(snapshot)["Other Trust"]
    assert other.status == Status.IDENTITY_MISMATCH
    assert "different birth date" in other.detail
    assert "1951" not in other.detail  # another person's birth date is never quoted
    assert titles_by_source(snapshot) == {"Healthy Trust": {"Non-small cell lung cancer"}}


# -- what is shown --------------------------------------------------------------------------------


def test_codes_from_unknown_systems_are_shown_as_text_and_kept(client, ada, serve, make_source):
    local = "https://trust.example.nhs.uk/fhir/CodeSystem/local-diagnoses"
    diagnosis = condition(
        "dx-1",
        "p-1",
        {"system": local, "code": "LUNG-ADENO-RUL", "display": "Adenocarcinoma of right lung"},
    )
    procedure = {
        "resourceType": "Procedure",
        "id": "proc-1",
        "status": "completed",
        "code": {
            "coding": [{"system": "urn:oid:2.16.840.1.113883.2.1.3.2.4.99", "code": "EBUS-7"}],
            "text": "Endobronchial ultrasound with nodal sampling",
        },
        "subject": {"reference": "Patient/p-1"},
        "performedDateTime": "2025-03-04",
    }
    bare = {
        "resourceType": "Procedure",
        "id": "proc-2",
        "status": "completed",
        "code": {"coding": [{"system": "urn:local:theatre-system", "code": "TH-0042"}]},
        "subject": {"reference": "Patient/p-1"},
        "performedDateTime": "2025-03-05",
    }
    make_source(serve([chart(patient("p-1", ada.nhs_number), diagnosis, procedure, bare)]), "Trust")
    case = CaseFactory(patient=ada)

    populate_cases([case.pk], reason="test")

    case.refresh_from_db()
    items = {item["title"]: item for item in case.snapshot.summary["record"]["timeline"]}
    assert set(items) == {
        "Adenocarcinoma of right lung",
        "Endobronchial ultrasound with nodal sampling",
        "Procedure (code TH-0042)",
    }
    assert items["Adenocarcinoma of right lung"]["codes"] == [
        {"system": local, "code": "LUNG-ADENO-RUL", "display": "Adenocarcinoma of right lung"}
    ]
    assert items["Procedure (code TH-0042)"]["codes"][0]["system"] == "urn:local:theatre-system"
    page = case_page(client, case)
    for title in items:
        assert title in page


def test_a_restricted_patients_address_is_never_shown_though_the_gp_record_and_index_have_it(
    client, serve, make_source, demographics
):
    ada = PatientFactory(
        birth_date=BORN, address="14 Hideaway Lane, Kings Norton", postcode="B38 9ZZ"
    )
    demographics(
        pds_patient(ada.nhs_number, meta=restricted_meta(), address=[])  # PDS holds no address
    )
    gp_patient = patient("gp-1", ada.nhs_number, address=[SECRET_ADDRESS])
    make_source(serve([chart(gp_patient, condition("t2-1", "gp-1", DIABETES))]), "GP record")
    trust_patient = patient("rrk-1", ada.nhs_number)
    make_source(serve([chart(trust_patient, condition("dx-1", "rrk-1"))]), "Trust")
    case = CaseFactory(patient=ada)

    populate_cases([case.pk], reason="test")

    case.refresh_from_db()
    snapshot = case.snapshot
    assert {s["status"] for s in snapshot.per_source_status.values()} == {Status.OK}
    assert snapshot.summary["restricted"] is True
    assert snapshot.summary["demographics"]["restricted"] is True
    stored = json.dumps([snapshot.summary, snapshot.per_source_status])
    ada.refresh_from_db()
    assert (ada.restricted, ada.address, ada.postcode) == (True, "", "")
    page = case_page(client, case)
    assert "Restricted record" in page
    for words in SECRET_WORDS:
        assert words not in stored
        assert words not in page
    # The record itself still shows.
    assert titles_by_source(snapshot) == {
        "GP record": {"Type 2 diabetes mellitus"},
        "Trust": {"Non-small cell lung cancer"},
    }


def test_one_source_saying_restricted_is_enough_to_hide_the_address(
    client, serve, make_source, demographics
):
    ada = PatientFactory(birth_date=BORN)
    # The demographics service has not been told: it gives an address.
    demographics(pds_patient(ada.nhs_number, address=[SECRET_ADDRESS]))
    gp_patient = patient("gp-1", ada.nhs_number, meta=restricted_meta(), address=[SECRET_ADDRESS])
    make_source(serve([chart(gp_patient, condition("t2-1", "gp-1", DIABETES))]), "GP record")
    case = CaseFactory(patient=ada)

    populate_cases([case.pk], reason="test")

    case.refresh_from_db()
    summary = case.snapshot.summary
    assert summary["restricted"] is True
    assert (summary["demographics"]["address"], summary["demographics"]["postcode"]) == ("", "")
    ada.refresh_from_db()
    assert (ada.restricted, ada.address, ada.postcode) == (True, "", "")
    page = case_page(client, case)
    for words in SECRET_WORDS:
        assert words not in json.dumps(summary)
        assert words not in page


def test_record_summary_never_prints_a_restricted_address(
    serve, demographics, breaker_keys, settings
):
    breaker_keys(-1)  # the command's ad hoc source for this run
    ada = PatientFactory(birth_date=BORN, address="14 Hideaway Lane", postcode="B38 9ZZ")
    demographics(pds_patient(ada.nhs_number, meta=restricted_meta(), address=[]))
    gp_patient = patient("gp-1", ada.nhs_number, address=[SECRET_ADDRESS])
    gp = serve([chart(gp_patient, condition("t2-1", "gp-1", DIABETES))])
    out = StringIO()

    call_command(
        "record_summary", ada.nhs_number, "--json", "--source", f"GP={gp.base_url}", stdout=out
    )

    printed = out.getvalue()
    output = json.loads(printed)
    assert output["sources"]["GP"]["status"] == Status.OK
    assert output["summary"]["restricted"] is True
    assert [item["title"] for item in output["summary"]["record"]["timeline"]] == [
        "Type 2 diabetes mellitus"
    ]
    for words in SECRET_WORDS:
        assert words not in printed


@pytest.mark.parametrize("told", ["the demographics service", "the GP record"])
def test_a_deceased_patient_is_shown_clearly(client, serve, make_source, demographics, told):
    ada = PatientFactory(birth_date=BORN)
    died = {"deceasedDateTime": "2025-06-01T09:00:00+01:00"}
    demographics(
        pds_patient(ada.nhs_number, **(died if told == "the demographics service" else {}))
    )
    gp_patient = patient("gp-1", ada.nhs_number, **(died if told == "the GP record" else {}))
    make_source(serve([chart(gp_patient, condition("dx-1", "gp-1"))]), "GP record")
    case = CaseFactory(patient=ada)

    populate_cases([case.pk], reason="test")

    case.refresh_from_db()
    assert case.snapshot.summary["deceased"] is True
    ada.refresh_from_db()
    assert ada.deceased
    page = case_page(client, case)
    assert '<strong class="nhsuk-tag nhsuk-tag--grey app-deceased">Deceased</strong>' in page


# -- the demographics service ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ("down", "The demographics service could not be reached."),
        ("hanging", "The demographics service did not answer in time."),
    ],
)
def test_with_the_demographics_service_unavailable_the_snapshot_still_freezes_with_the_problem(
    ada, healthy, serve, settings, stopped_url, state, problem
):
    if state == "down":
        settings.DEMOGRAPHICS_URL = stopped_url
    else:
        settings.DEMOGRAPHICS_URL = serve(
            [pds_patient(ada.nhs_number)], pds=True, fault="hang"
        ).base_url
        settings.DEMOGRAPHICS_TIMEOUT_S = 0.5

    snapshot = populate_one(ada)

    assert snapshot.summary["demographics"] is None
    assert snapshot.summary["demographics_problem"] == problem
    assert snapshot.per_source_status["Healthy Trust"]["status"] == Status.OK
    assert titles_by_source(snapshot) == {"Healthy Trust": {"Non-small cell lung cancer"}}
    ada.refresh_from_db()
    assert ada.family_name == "Testpatient"  # the index keeps what it had


def test_the_demographics_service_updates_the_index(ada, healthy, demographics):
    demographics(
        pds_patient(
            ada.nhs_number, name=[{"use": "usual", "family": "Lovelace", "given": ["Augusta"]}]
        )
    )

    snapshot = populate_one(ada)

    assert snapshot.summary["demographics_problem"] == ""
    assert snapshot.summary["demographics"]["family_name"] == "Lovelace"
    ada.refresh_from_db()
    assert (ada.given_name, ada.family_name) == ("Augusta", "Lovelace")


def test_demographics_for_a_different_nhs_number_are_never_applied_to_the_patient(
    ada, healthy, demographics
):
    # Regression: an answer carrying another NHS number (e.g. a superseded number) created or
    # overwrote that other patient's index entry, and the snapshot was filed under them.
    other = PatientFactory(given_name="Other", family_name="Person")
    superseded = pds_patient(
        ada.nhs_number,
        identifier=[{"system": NHS, "value": other.nhs_number}],
        name=[{"use": "usual", "family": "Wrongperson", "given": ["Not"]}],
    )
    demographics(superseded)

    snapshot = populate_one(ada)

    assert snapshot.patient_id == ada.pk
    assert snapshot.summary["demographics"] is None
    assert snapshot.summary["demographics_problem"] == (
        "The demographics service answered with a different NHS number (ending "
        f"{other.nhs_number[-4:]}); its details were not used."
    )
    assert Patient.objects.get(pk=other.pk).family_name == "Person"
    assert Patient.objects.get(pk=ada.pk).family_name == "Testpatient"
    assert snapshot.per_source_status["Healthy Trust"]["status"] == Status.OK


# -- the demo region's histories ------------------------------------------------------------------


def test_the_demo_histories_populate_with_every_source_ok_and_items_merged_across_sources(
    tmp_path, settings, serve, make_source
):
    questions = [
        "Post-operative histology review",  # operated: diagnosed at RRK, operated at RWP
        "Post-operative histology review",
        "Liver lesion on CT: refer to HPB?",  # treated: surgery and chemotherapy elsewhere
        "Confirm stage and plan treatment",  # staged: awaiting treatment
        "Confirm stage and plan treatment",
    ]
    people = [PatientFactory(nhs_number=synthetic_nhs_number(700 + n)) for n in range(4)]
    people.append(
        PatientFactory(
            nhs_number=synthetic_nhs_number(704),
            restricted=True,
            address="9 Quiet Close",
            postcode="DY1 9QQ",
        )
    )
    cases = [CaseFactory(patient=p, question=q) for p, q in zip(people, questions, strict=True)]
    write_demo_histories(people, tmp_path, as_of=date(2026, 11, 2))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for code in ("RRK", "RWP", "RL4", "GP"):
        make_source(serve(data_dir=tmp_path / code), code, timeout_s=5)
    settings.DEMOGRAPHICS_URL = serve(data_dir=tmp_path / "PDS", pds=True).base_url

    made = populate_cases([c.pk for c in cases], reason="test")

    assert made == len(people)
    situations = manifest["situations"]
    not_found = situations["not_found"]
    assert not_found
    assert situations["deceased"]
    deceased = {d["nhs_number"] for d in situations["deceased"]}
    for case in cases:
        case.refresh_from_db()
        snapshot, nhs_number = case.snapshot, case.patient.nhs_number
        expected = dict.fromkeys(("RRK", "RWP", "RL4", "GP"), Status.OK)
        if not_found["nhs_number"] == nhs_number:
            expected[not_found["source"]] = Status.NOT_FOUND
        assert {k: v["status"] for k, v in snapshot.per_source_status.items()} == expected
        assert snapshot.summary["demographics_problem"] == ""
        assert snapshot.summary["deceased"] is (nhs_number in deceased)
        diagnoses = [i for i in snapshot.summary["record"]["timeline"] if i["kind"] == "diagnosis"]
        assert diagnoses
        if manifest["patients"][nhs_number]["pathway"] in ("operated", "treated"):
            # The treating trust records the diagnosis too: one item, both sources kept.
            assert any(len({s["source"] for s in d["sources"]}) >= 2 for d in diagnoses)
    # The histories' deliberate stage conflict (IIB at RRK, IIIA at RWP) is flagged, not settled.
    conflict = situations["stage_conflict"]
    flagged = latest_snapshot(Patient.objects.get(nhs_number=conflict["nhs_number"]).pk)
    (described,) = [c["description"] for c in flagged.summary["record"]["conflicts"]]
    assert "IIB" in described
    assert "IIIA" in described
    hidden = Patient.objects.get(pk=people[-1].pk)
    assert (hidden.restricted, hidden.address) == (True, "")
    summary = json.dumps(latest_snapshot(hidden.pk).summary)
    assert "Quiet Close" not in summary
    assert "DY1 9QQ" not in summary
