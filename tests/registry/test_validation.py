"""Each rule a registry row is checked against, on a row that breaks it: the reason names the COSD
item and says what is wrong."""

from datetime import date

import pytest

from demo.synthetic import synthetic_nhs_number
from registry import cosd
from registry.validation import (
    FastTumourRows,
    TreatmentRowChecker,
    TumourRowChecker,
    normalise_icd10,
    parse_date,
)

from .conftest import treatment_row, tumour_row

TODAY = date(2025, 1, 15)


def check(**changes):
    return TumourRowChecker(today=TODAY, known_orgs={"RRK", "M85011"})(tumour_row(**changes))


def check_treatment(**changes):
    return TreatmentRowChecker(today=TODAY)(treatment_row(**changes))


def test_a_valid_row_passes_with_its_values_normalised():
    checked = check(
        icd10="c341",
        t="ct2A",
        n="n1",
        stage_group="3a",
        laterality="l",
        sex="x",
        nhs_number=" 999 000 0026 ",
        postcode="b1 1aa",
        submitting_org="rrk",
    )

    assert checked.reasons == []
    values = checked.values
    assert values["icd10"] == "C34.1"
    assert (values["t"], values["n"], values["stage_group"]) == ("cT2a", "N1", "IIIA")
    assert (values["laterality"], values["sex"]) == ("L", "X")
    assert values["nhs_number"] == "9990000026"
    assert values["postcode"] == "B1 1AA"
    assert (values["submitting_org"], values["submitting_org_known"]) == ("RRK", True)
    assert values["diagnosis_date"] == date(2023, 5, 1)


def test_an_nhs_number_whose_check_digit_does_not_match_is_refused():
    wrong_check_digit = synthetic_nhs_number(1)[:9] + "0"

    reasons = check(nhs_number=wrong_check_digit).reasons

    assert reasons == [
        "CR0010 NHS NUMBER: This is not a valid NHS number: the last digit does not match. "
        "Check the number for a mistyped digit."
    ]


def test_an_nhs_number_from_the_test_range_is_refused_where_synthetic_numbers_are_not_allowed(
    settings,
):
    settings.ALLOW_SYNTHETIC_NHS_NUMBERS = False

    reasons = check(nhs_number=synthetic_nhs_number(1)).reasons

    assert reasons == [
        "CR0010 NHS NUMBER: This NHS number is from the test range (starting with 9), "
        "which is not accepted here."
    ]


def test_an_nhs_number_with_letters_is_refused():
    reasons = check(nhs_number="99900A0026").reasons

    assert reasons == [
        "CR0010 NHS NUMBER: An NHS number can only contain numbers, spaces and dashes."
    ]


@pytest.mark.parametrize("code", ["C98", "C99.1", "D10", "D36.9", "D49", "E11.9"])
def test_an_icd10_code_outside_the_cancer_ranges_is_refused(code):
    reasons = check(icd10=code).reasons

    assert reasons == [
        f"CR0370 PRIMARY DIAGNOSIS (ICD): “{code}” is not an ICD-10 cancer code; the registry "
        "takes C00–C97, D00–D09 and D37–D48, written like C34.1 or C341."
    ]


@pytest.mark.parametrize("code", ["C3", "lung", "C34.12", "C34-1", "34.1"])
def test_an_icd10_code_in_the_wrong_format_is_refused(code):
    assert (
        check(icd10=code)
        .reasons[0]
        .startswith(f"CR0370 PRIMARY DIAGNOSIS (ICD): “{code}” is not an ICD-10 cancer code")
    )


@pytest.mark.parametrize(
    ("written", "dotted"),
    [
        ("C341", "C34.1"),
        ("c34.1", "C34.1"),
        ("C61", "C61"),
        ("C61X", "C61"),
        ("C97", "C97"),
        ("D00.0", "D00.0"),
        ("D059", "D05.9"),
        ("D37.0", "D37.0"),
        ("D48.9", "D48.9"),
    ],
)
def test_icd10_codes_are_normalised_to_the_dotted_form(written, dotted):
    assert normalise_icd10(written) == dotted
    assert check(icd10=written).values["icd10"] == dotted


@pytest.mark.parametrize(
    "written", ["2023-02-30", "31/02/2023", "1/5/2023", "May 2023", "20230501"]
)
def test_a_date_that_cannot_be_read_is_refused(written):
    reasons = check(diagnosis_date=written).reasons

    assert reasons == [
        f"CR2030 DATE OF PRIMARY DIAGNOSIS (CLINICALLY AGREED): “{written}” is not a date; "
        "write it as YYYY-MM-DD (or DD/MM/YYYY)."
    ]


def test_dates_written_day_first_are_read():
    assert parse_date("01/05/2023") == date(2023, 5, 1)
    assert check(diagnosis_date="01/05/2023").values["diagnosis_date"] == date(2023, 5, 1)


def test_a_diagnosis_date_in_the_future_is_refused():
    reasons = check(diagnosis_date="2025-01-16").reasons

    assert reasons == [
        "CR2030 DATE OF PRIMARY DIAGNOSIS (CLINICALLY AGREED): 2025-01-16 is in the future."
    ]


def test_a_birth_date_in_the_future_is_refused():
    reasons = check(birth_date="2026-01-01", diagnosis_date="2026-01-01").reasons

    assert "CR0100 PERSON BIRTH DATE: 2026-01-01 is in the future." in reasons


def test_a_submission_date_in_the_future_is_refused():
    reasons = check(submission_date="2025-02-01").reasons

    assert reasons == ["X-SUBMITTED SUBMISSION DATE: 2025-02-01 is in the future."]


def test_todays_date_is_not_in_the_future():
    assert check(submission_date="2025-01-15", diagnosis_date="2025-01-15").reasons == []


def test_a_diagnosis_before_birth_is_refused():
    reasons = check(birth_date="1950-01-31", diagnosis_date="1950-01-30").reasons

    assert reasons == [
        "CR2030 DATE OF PRIMARY DIAGNOSIS (CLINICALLY AGREED): 1950-01-30 is before the birth "
        "date (1950-01-31)."
    ]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("t", "T5", "CR0520 T CATEGORY (FINAL PRETREATMENT): “T5” is not a T category"),
        ("t", "N1", "CR0520 T CATEGORY (FINAL PRETREATMENT): “N1” is not a T category"),
        ("n", "N4", "CR0540 N CATEGORY (FINAL PRETREATMENT): “N4” is not a N category"),
        ("m", "M2", "CR0560 M CATEGORY (FINAL PRETREATMENT): “M2” is not a M category"),
        (
            "stage_group",
            "V",
            "CR0580 TNM STAGE GROUPING (FINAL PRETREATMENT): “V” is not a stage group",
        ),
    ],
)
def test_tnm_values_outside_the_uicc_8th_edition_are_refused(field, value, reason):
    assert check(**{field: value}).reasons == [f"{reason} of the UICC 8th edition."]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        (
            "laterality",
            "X",
            "CR0380 TUMOUR LATERALITY: “X” is not a laterality code; use one of L, R, M, B, 8, 9.",
        ),
        (
            "basis",
            "3",
            "CR0390 BASIS OF DIAGNOSIS (CANCER): “3” is not a basis of diagnosis code; "
            "use one of 0, 1, 2, 4, 5, 6, 7, 9.",
        ),
        (
            "sex",
            "F",
            "CR3170 PERSON STATED GENDER CODE: “F” is not a stated gender code; "
            "use one of 1, 2, 9, X.",
        ),
    ],
)
def test_coded_items_must_use_their_cosd_code_list(field, value, reason):
    assert check(**{field: value}).reasons == [reason]


def test_performance_status_must_be_who_0_to_4_or_9():
    reasons = check(performance_status="5").reasons

    assert len(reasons) == 1
    assert reasons[0].startswith(
        "CR0510 PERFORMANCE STATUS (ADULT): “5” is not a performance status; use one of "
    )
    assert all(code in reasons[0] for code in ("0", "1", "2", "3", "4", "9"))


def test_optional_items_may_be_empty():
    empty = {field: "" for field in ("sex", "laterality", "basis", "t", "n", "m", "stage_group")}

    assert check(**empty, performance_status="", gp_practice="", postcode="").reasons == []


@pytest.mark.parametrize(
    ("field", "label"),
    [
        ("submitting_org", "X-SUBMITTER SUBMITTING ORGANISATION CODE"),
        ("local_tumour_id", "X-TUMOUR-ID LOCAL TUMOUR IDENTIFIER"),
        ("submission_date", "X-SUBMITTED SUBMISSION DATE"),
        ("nhs_number", "CR0010 NHS NUMBER"),
        ("family_name", "CR0050 PERSON FAMILY NAME"),
        ("given_name", "CR0060 PERSON GIVEN NAME"),
        ("birth_date", "CR0100 PERSON BIRTH DATE"),
        ("diagnosis_date", "CR2030 DATE OF PRIMARY DIAGNOSIS (CLINICALLY AGREED)"),
        ("icd10", "CR0370 PRIMARY DIAGNOSIS (ICD)"),
    ],
)
def test_a_required_item_left_empty_is_refused(field, label):
    assert check(**{field: "  "}).reasons == [f"{label}: missing; this item is required."]


def test_text_longer_than_the_registry_holds_is_refused():
    reasons = check(local_tumour_id="T" * 51).reasons

    assert reasons == [
        "X-TUMOUR-ID LOCAL TUMOUR IDENTIFIER: longer than the 50 characters the registry holds."
    ]


def test_every_reason_is_reported_at_once():
    reasons = check(
        nhs_number="1234567890", icd10="E11", t="T9", laterality="Q", diagnosis_date="2030-01-01"
    ).reasons

    assert [reason.split(" ")[0] for reason in reasons] == [
        "CR0010",
        "CR2030",
        "CR0370",
        "CR0520",
        "CR0380",
    ]


def test_an_unknown_submitting_organisation_is_flagged_not_refused():
    checked = check(submitting_org="ZZZ")

    assert checked.reasons == []
    assert checked.values["submitting_org_known"] is False


def test_a_treatment_modality_must_be_a_cosd_code():
    reasons = check_treatment(modality="09").reasons

    assert len(reasons) == 1
    assert reasons[0].startswith(
        "CR2040 CANCER TREATMENT MODALITY: “09” is not a treatment modality code; use one of 01, "
    )


def test_a_single_digit_modality_is_read_as_its_two_digit_code():
    checked = check_treatment(modality="3")

    assert checked.reasons == []
    assert checked.values["modality"] == "03"


def test_a_treatment_start_date_in_the_future_is_refused():
    reasons = check_treatment(start_date="2025-01-16").reasons

    assert reasons == ["CR1370 TREATMENT START DATE (CANCER): 2025-01-16 is in the future."]


def test_a_treatment_needs_its_tumour_key_modality_and_start_date():
    reasons = check_treatment(
        submitting_org="", local_tumour_id="", modality="", start_date=""
    ).reasons

    assert reasons == [
        "X-SUBMITTER SUBMITTING ORGANISATION CODE: missing; this item is required.",
        "X-TUMOUR-ID LOCAL TUMOUR IDENTIFIER: missing; this item is required.",
        "CR2040 CANCER TREATMENT MODALITY: missing; this item is required.",
        "CR1370 TREATMENT START DATE (CANCER): missing; this item is required.",
    ]


# --- the importer's fast path -------------------------------------------------------------------

_FIELDS = [item.field for item in cosd.TUMOUR_ITEMS]
_VARIANTS = [
    {},
    {"icd10": "c341", "t": "ct2A", "n": "n1", "stage_group": "3a", "laterality": "l", "sex": "x"},
    {"submitting_org": " rrk ", "postcode": "b1 1aa", "gp_practice": "m85011"},
    {"submitting_org": "XYZ"},  # unknown: flagged, loaded
    {"birth_date": "31/01/1950", "diagnosis_date": "01/05/2023", "submission_date": "01/03/2024"},
    {"nhs_number": " 999 000 0026 "},
    {"nhs_number": "9990000027"},  # check digit
    {"nhs_number": "0101011234"},  # Scotland's CHI range
    {"nhs_number": "4857773456"},  # England
    {"nhs_number": "4857773457"},
    {"nhs_number": "48577734５6"},  # a digit of another script
    {"nhs_number": ""},
    {"family_name": ""},
    {"family_name": "X" * 101},
    {"given_name": "  Ann  "},
    {"icd10": "E11"},
    {"icd10": "C61X"},
    {"t": "T9"},
    {"stage_group": "stage IIIA"},
    {"sex": "7"},
    {"sex": "", "laterality": "", "basis": "", "performance_status": "", "postcode": ""},
    {"basis": "3"},
    {"performance_status": "5"},
    {"diagnosis_date": "1949-01-01"},  # before birth
    {"diagnosis_date": "2030-01-01"},  # future
    {"submission_date": "2024-02-30"},
    {"morphology": "8140/3 too long"},
    {"grade": "G2", "tnm_edition": "8"},
    {"local_tumour_id": "T" * 51},
]


# Valid, but left to the full check (spaces to remove; Scotland's numbers also encode a date).
_UNUSUAL_NHS_NUMBERS = {" 999 000 0026 ", "0101011234"}


@pytest.mark.parametrize("synthetic", [True, False])
@pytest.mark.parametrize("changes", _VARIANTS)
def test_the_fast_path_gives_the_full_checks_answer_or_leaves_the_row_to_it(
    changes, synthetic, settings
):
    settings.ALLOW_SYNTHETIC_NHS_NUMBERS = synthetic
    checker = TumourRowChecker(today=TODAY, known_orgs={"RRK", "M85011"})
    fields = list(reversed(_FIELDS))  # any column order
    raw = tumour_row(**changes)
    row = [raw[name] for name in fields]

    fast = FastTumourRows(checker, fields)(row)
    full = checker(raw)

    if fast is None:
        # Left to the full check: only rows that break a rule, or are unusual.
        assert full.reasons or changes.get("nhs_number") in _UNUSUAL_NHS_NUMBERS
    else:
        assert full.ok
        expected = ["" if full.values[name] is None else str(full.values[name]) for name in _FIELDS]
        assert fast == [*expected, full.values["submitting_org_known"]]


def test_a_plain_valid_row_takes_the_fast_path_even_without_optional_columns():
    checker = TumourRowChecker(today=TODAY, known_orgs={"RRK"})
    required = [item.field for item in cosd.TUMOUR_ITEMS if item.required]
    raw = tumour_row()

    values = FastTumourRows(checker, required)([raw[name] for name in required])

    assert values is not None
    assert values[_FIELDS.index("sex")] == "" and values[_FIELDS.index("icd10")] == "C34.1"
