"""Searching the registry (registry.search): by NHS number, partial and misspelt last names through
the trigram index, birth date, tumour site and diagnosis dates, a page at a time; a restricted
patient's postcode never leaves the search."""

from datetime import date

import pytest
from django.contrib.postgres.search import TrigramSimilarity
from django.db import connection, transaction
from django.db.models.functions import Upper
from django.test.utils import CaptureQueriesContext

from demo.synthetic import synthetic_nhs_number
from records.demographics import Demographics
from records.nhs_numbers import InvalidNHSNumber
from records.patient_index import apply_demographics
from registry.models import ImportedPatient, Registration, Surname
from registry.search import UnknownSite, parse_site, search_registrations
from tests.factories import PatientFactory

from .registrations import make_registration

pytestmark = pytest.mark.django_db


def found(page) -> list:
    return [result.registration for result in page.results]


def test_an_nhs_number_finds_every_registration_of_that_patient_and_no_one_else():
    nhs = synthetic_nhs_number(8101)
    first = make_registration(nhs_number=nhs, diagnosis_date=date(2019, 1, 1))
    second = make_registration(nhs_number=nhs, diagnosis_date=date(2023, 1, 1), icd10="C50.9")
    make_registration(nhs_number=synthetic_nhs_number(8102))

    page = search_registrations(nhs_number=f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}")

    assert found(page) == [second, first]  # the same person: the latest diagnosis first
    assert page.total == 2


def test_a_mistyped_nhs_number_is_refused_with_a_message():
    with pytest.raises(InvalidNHSNumber, match="last digit does not match"):
        search_registrations(nhs_number="999 000 0027")


def test_a_misspelt_last_name_finds_the_registered_spelling_best_match_first():
    smith = make_registration(family_name="SMITH", given_name="John")
    smith_lower = make_registration(family_name="Smith", given_name="Ann")
    smyth = make_registration(family_name="Smyth", given_name="Jane")
    make_registration(family_name="JONES")

    page = search_registrations(name="smyth")

    assert found(page)[0] == smyth  # the exact spelling first
    assert set(found(page)) == {smith, smith_lower, smyth}
    assert page.total == 3


@pytest.mark.parametrize("typed", ["Smi", "Smithe", "smiht", "  SMITH  "])
def test_partial_and_misspelt_names_find_smith(typed):
    smith = make_registration(family_name="Smith")
    make_registration(family_name="Patel")

    assert found(search_registrations(name=typed)) == [smith]


def test_a_birth_date_finds_the_registrations_of_people_born_that_day():
    born = make_registration(birth_date=date(1948, 2, 29))
    make_registration(birth_date=date(1948, 3, 1))

    assert found(search_registrations(birth_date=date(1948, 2, 29))) == [born]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("C34", {"C34.1", "C34.9"}),
        ("c34", {"C34.1", "C34.9"}),
        ("C34.1", {"C34.1"}),
        ("c341", {"C34.1"}),
        ("lung", {"C33", "C34.1", "C34.9"}),
        ("Lung cancer", {"C33", "C34.1", "C34.9"}),
        ("bowel", {"C18.7", "C20"}),
        ("colorectal", {"C18.7", "C20"}),
        ("breast", {"C50.9"}),
        ("C61", set()),
    ],
)
def test_a_tumour_site_is_an_icd10_code_or_category_or_a_site_group(typed, expected):
    for code in ["C33", "C34.1", "C34.9", "C50.9", "C18.7", "C20", "C35"]:
        make_registration(icd10=code)

    assert {r.icd10 for r in found(search_registrations(site=typed))} == expected


def test_site_groups_cover_neighbouring_categories_in_one_range():
    assert parse_site("lung").ranges == (("C33", "C35"), ("D02", "D03"))
    assert parse_site("urology").label == "urology"


@pytest.mark.parametrize("typed", ["kneecap", "E11", "C98", "C3"])
def test_an_unknown_site_is_refused_with_a_message_that_says_what_to_enter(typed):
    with pytest.raises(UnknownSite):
        parse_site(typed)


def test_diagnosis_dates_are_an_inclusive_range():
    before = make_registration(diagnosis_date=date(2022, 12, 31))
    first_day = make_registration(diagnosis_date=date(2023, 1, 1))
    last_day = make_registration(diagnosis_date=date(2023, 6, 30))
    after = make_registration(diagnosis_date=date(2023, 7, 1))

    page = search_registrations(diagnosed_from=date(2023, 1, 1), diagnosed_to=date(2023, 6, 30))
    assert set(found(page)) == {first_day, last_day}
    assert set(found(search_registrations(diagnosed_from=date(2023, 7, 1)))) == {after}
    assert set(found(search_registrations(diagnosed_to=date(2022, 12, 31)))) == {before}


def test_criteria_are_combined():
    wanted = make_registration(family_name="Smith", icd10="C34.1", birth_date=date(1950, 1, 31))
    make_registration(family_name="Smith", icd10="C50.9", birth_date=date(1950, 1, 31))
    make_registration(family_name="Smith", icd10="C34.1", birth_date=date(1951, 1, 31))

    page = search_registrations(name="Smyth", site="lung", birth_date=date(1950, 1, 31))

    assert found(page) == [wanted]


def test_results_come_a_page_at_a_time_with_the_total():
    for n in range(30):
        make_registration(family_name="Paged", given_name=f"Person{n:02d}")

    first = search_registrations(name="Paged", per_page=25)
    second = search_registrations(name="Paged", page=2, per_page=25)

    assert (first.total, first.pages, len(first.results)) == (30, 2, 25)
    assert (first.has_previous, first.has_next) == (False, True)
    assert (second.number, len(second.results), second.first_index, second.last_index) == (
        2,
        5,
        26,
        30,
    )
    assert (second.has_previous, second.has_next) == (True, False)
    assert not set(found(first)) & set(found(second))
    assert [r.given_name for r in found(first)][:2] == ["Person00", "Person01"]


def test_a_page_past_the_end_shows_the_last_page():
    for _ in range(3):
        make_registration(family_name="Fewrows")

    page = search_registrations(name="Fewrows", page=9, per_page=2)

    assert (page.number, len(page.results), page.total) == (2, 1, 3)


def test_nothing_found_is_an_empty_first_page():
    page = search_registrations(name="Nobodyhere")
    assert (page.results, page.total, page.pages, page.first_index) == ([], 0, 1, 0)


def test_a_search_needs_at_least_one_criterion():
    with pytest.raises(ValueError, match="at least one"):
        search_registrations()


def test_a_restricted_patients_postcode_is_never_in_a_result():
    restricted = PatientFactory(restricted=True, address="", postcode="")
    linked = make_registration(restricted, postcode="QX1 7ZW")
    # Not linked, but the index knows the NHS number and says restricted.
    by_number = make_registration(
        nhs_number=PatientFactory(restricted=True).nhs_number, postcode="QX2 7ZW"
    )
    open_patient = PatientFactory()
    shown = make_registration(open_patient, postcode="B2 2BB")
    unknown = make_registration(postcode="B3 3CC")  # not in the patient index at all

    results = {
        r.registration.pk: r for r in search_registrations(diagnosed_from=date(2000, 1, 1)).results
    }

    assert results[linked.pk].postcode == "" and results[linked.pk].restricted
    assert results[by_number.pk].postcode == "" and results[by_number.pk].restricted
    assert results[shown.pk].postcode == "B2 2BB"
    assert results[unknown.pk].postcode == "B3 3CC"


def test_a_page_names_its_patients_index_entries_for_the_audit_log():
    linked_patient, numbered_patient = PatientFactory(), PatientFactory()
    make_registration(linked_patient, family_name="Audited")
    make_registration(nhs_number=numbered_patient.nhs_number, family_name="Audited")
    unknown = make_registration(family_name="Audited")

    page = search_registrations(name="Audited")

    assert page.patient_ids == sorted([linked_patient.pk, numbered_patient.pk])
    assert page.unindexed_registration_ids == [unknown.pk]


def test_an_nhs_number_lookup_is_one_query():
    patient = PatientFactory()
    make_registration(patient)
    make_registration(patient, icd10="C50.9")

    with CaptureQueriesContext(connection) as captured:
        page = search_registrations(nhs_number=patient.nhs_number)

    assert len(captured) == 1
    assert page.patient_ids == [patient.pk]


def test_a_search_is_two_queries_whatever_the_page_size():
    for _ in range(40):
        make_registration(PatientFactory(), family_name="Counted")

    with CaptureQueriesContext(connection) as small:
        search_registrations(name="Counted", per_page=5)
    with CaptureQueriesContext(connection) as large:
        search_registrations(name="Counted", per_page=40)

    assert len(small) == len(large) == 2  # the ranked ids, then their rows


def test_the_name_search_matches_surnames_by_trigram_index_then_registrations_by_btree():
    """The indexes are the ones the models declare (GIN, gin_trgm_ops on Surname.name; the
    btree on UPPER(family_name) in the page's order); the test tables are small, so the planner
    is told not to scan them, to see that it *can* use them."""
    make_registration(family_name="Smith")
    with CaptureQueriesContext(connection) as captured:
        search_registrations(name="Smyth")
    search_sql = captured.captured_queries[0]["sql"]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {search_sql}")  # noqa: S608 - our own SQL, no user input
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "surname_trgm" in plan, plan
    assert "registration_surname_order" in plan, plan
    assert "Seq Scan on registry_registration" not in plan, plan
    assert "Sort" not in plan.split("->  Index")[-1], plan  # each surname's rows come in order


def test_the_surname_counts_follow_every_write_to_the_registrations():
    def counts():
        return dict(
            Surname.objects.filter(registrations__gt=0).values_list("name", "registrations")
        )

    first = make_registration(family_name="Smith")
    make_registration(family_name="SMITH")
    make_registration(family_name="Jones")
    assert counts() == {"SMITH": 2, "JONES": 1}

    first.family_name = "Smyth"
    first.save()
    Registration.objects.filter(family_name="Jones").update(family_name="Jonas")
    assert counts() == {"SMITH": 1, "SMYTH": 1, "JONAS": 1}

    Registration.objects.filter(family_name="Jonas").delete()
    assert counts() == {"SMITH": 1, "SMYTH": 1}
    assert search_registrations(name="Jones").total == 0


def test_a_name_with_other_criteria_still_matches_misspelt_names():
    wanted = make_registration(family_name="Harris", birth_date=date(1950, 1, 31))
    make_registration(family_name="Harris", birth_date=date(1951, 1, 31))

    page = search_registrations(name="Haris", birth_date=date(1950, 1, 31))

    assert (found(page), page.total) == ([wanted], 1)


def test_the_name_search_ranks_like_the_similarity_of_each_registration():
    """The same order as ranking every registration by similarity, then by name, birth date,
    latest diagnosis and id (the search before the surname table)."""
    for family, given in [("Harris", "B"), ("Harris", "A"), ("Harri", "A"), ("Haris", "C")]:
        make_registration(family_name=family, given_name=given)
        make_registration(family_name=family, given_name=given, diagnosis_date=date(2020, 1, 1))
    expected = list(
        Registration.objects.annotate(similarity=TrigramSimilarity(Upper("family_name"), "HARIS"))
        .filter(similarity__gte=0.3)
        .order_by("-similarity", "family_name", "given_name", "birth_date", "-diagnosis_date", "id")
    )

    pages = [search_registrations(name="haris", page=n, per_page=3) for n in (1, 2, 3)]

    assert [r for p in pages for r in found(p)] == expected
    assert pages[0].total == len(expected) == 8


def test_an_imported_patients_postcode_is_hidden_until_the_demographics_service_confirms_it():
    """Hazard H15: an index entry an import created says restricted=False only because nobody
    has asked the demographics service yet."""
    patient = PatientFactory(postcode="")
    ImportedPatient.objects.create(patient=patient, created_at=patient.updated_at)
    linked = make_registration(patient, postcode="QX1 7ZW")
    numbered = make_registration(
        nhs_number=patient.nhs_number, family_name=patient.family_name, postcode="QX2 7ZW"
    )

    results = {r.registration.pk: r for r in search_registrations(name=patient.family_name).results}

    assert results[linked.pk].postcode == "" and results[linked.pk].unconfirmed
    assert results[numbered.pk].postcode == "" and results[numbered.pk].unconfirmed
    assert not results[linked.pk].restricted
    # The same by NHS number, and with other criteria (each path reads the same facts).
    for page in (
        search_registrations(nhs_number=patient.nhs_number),
        search_registrations(name=patient.family_name, diagnosed_from=date(2000, 1, 1)),
    ):
        assert {r.registration.pk for r in page.results} == {linked.pk, numbered.pk}
        assert all(r.unconfirmed and not r.postcode for r in page.results)

    apply_demographics(
        Demographics(
            nhs_number=patient.nhs_number,
            given_name=patient.given_name,
            family_name=patient.family_name,
            birth_date=patient.birth_date,
            postcode="B1 1AA",
        ),
        patient,
    )
    results = {r.registration.pk: r for r in search_registrations(name=patient.family_name).results}

    assert results[linked.pk].postcode == "QX1 7ZW" and not results[linked.pk].unconfirmed
