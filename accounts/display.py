"""How dates, times and NHS numbers are written for people (NHS style: 3 March 2027, 09:30)."""

from datetime import date, datetime

from django.utils import timezone


def format_nhs_number(value: str | None) -> str:
    if not value:
        return ""
    digits = "".join(ch for ch in str(value) if ch.isdigit())
    if len(digits) != 10:
        return str(value)
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def format_date(value: date | datetime | str | None) -> str:
    """Also takes an ISO date string (as stored in snapshots); partial dates stay as written."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value[:10])
        except ValueError:
            return value
    if isinstance(value, datetime):
        value = timezone.localtime(value)
    return f"{value.day} {value:%B %Y}"


def format_time(value: datetime | None) -> str:
    if value is None:
        return ""
    return f"{timezone.localtime(value):%H:%M}"


def format_datetime(value: datetime | None) -> str:
    if value is None:
        return ""
    return f"{format_date(value)}, {format_time(value)}"
