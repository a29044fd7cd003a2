"""Reading an NHS number typed by a person: spaces and dashes allowed, the check digit checked by
the `nhs-number` package, test numbers only where the setting allows synthetic numbers.

The package's synthetic region is 900 000 0000 to 999 999 9999: it holds the 999 range the demo
region uses and the PDS sandbox's 900 000 0009, none of which is ever issued to a person."""

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
            "This NHS number is from the test range (starting with 9), which is not accepted here."
        )
    return compact
