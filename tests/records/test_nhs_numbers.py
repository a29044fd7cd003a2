import pytest

from records.nhs_numbers import InvalidNHSNumber, parse_nhs_number


@pytest.mark.parametrize("typed", ["9990000026", "999 000 0026", "999-000-0026", " 999 000 0026 "])
def test_spaces_and_dashes_are_accepted(typed):
    assert parse_nhs_number(typed) == "9990000026"


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter the patient's NHS number"),
        ("999 000 002", "10 digits; you entered 9"),
        ("99900000261", "10 digits; you entered 11"),
        ("999O000026", "only contain numbers"),
        ("9990000027", "last digit does not match"),
    ],
)
def test_invalid_numbers_are_refused_with_a_clear_message(typed, message):
    with pytest.raises(InvalidNHSNumber, match=message):
        parse_nhs_number(typed)


@pytest.mark.parametrize("typed", ["9990000026", "9000000009"])
def test_test_range_is_refused_unless_synthetic_numbers_are_allowed(settings, typed):
    settings.ALLOW_SYNTHETIC_NHS_NUMBERS = False
    with pytest.raises(InvalidNHSNumber, match="test range"):
        parse_nhs_number(typed)


def test_real_range_numbers_are_accepted_when_synthetic_numbers_are_not(settings):
    settings.ALLOW_SYNTHETIC_NHS_NUMBERS = False
    assert parse_nhs_number("423 759 5838") == "4237595838"
