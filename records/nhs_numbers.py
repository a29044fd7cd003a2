"""Reading an NHS number typed by a person: spaces and dashes allowed, the check digit checked by
the `nhs-number` package, the 999 test range only where the setting allows synthetic numbers."""

import nhs_number
from django.conf import settings


class InvalidNHSNumber(ValueError):
    """The message is written for the person who typed the number."""


def parse_nhs_number(typed: str) -> str:
    text = (typed or "").strip()
    if not text:
        raise InvalidNHSNumber("Enter the patient's NHS number.")
    compact = text.replace(" ", "").replace("-", "")
    if not compact.isdigit():
        raise InvalidNHSNumber("An NHS number can only contain numbers, spaces and dashes.")
    if len(compact) != 10:
        raise InvalidNHSNumber(
            f"An NHS number is 10 digits; you entered {len(compact)}. "
            "Check the number and try again."
        )
    synthetic = nhs_number.is_valid(compact, nhs_number.REGION_SYNTHETIC)
    if not nhs_number.is_valid(compact):
        raise InvalidNHSNumber(
            "This is not a valid NHS number: the last digit does not match. "
            "Check the number for a mistyped digit."
        )
    if synthetic and not settings.ALLOW_SYNTHETIC_NHS_NUMBERS:
        raise InvalidNHSNumber(
            "This NHS number is from the test range (999), which is not accepted here."
        )
    return compact
