"""A logging filter that keeps patient identifiers out of every log line, whatever logged them
(Django, Celery, httpx):

- NHS numbers: ten digits, optionally grouped 3-3-4 with spaces or dashes, anywhere;
- names and other free text in SQL: the string literals of logged SQL (django.db.backends logs
  statements with their parameters when DEBUG is on) are replaced.

Our own code never logs patient objects' names (Patient.__str__ is "Patient #id"), and Celery
tasks take ids only.
"""

import logging
import re

# Not inside a longer run of letters and digits: hex ids (Celery task ids, MESH message ids) are
# not NHS numbers, and mangling them makes them unsearchable in the logs.
NHS_NUMBER_PATTERN = re.compile(r"(?<![0-9A-Za-z])\d{3}[ -]?\d{3}[ -]?\d{4}(?![0-9A-Za-z])")
SQL_STRING_LITERAL = re.compile(r"'(?:[^']|'')*'")
REDACTED = "[NHS number]"


def redact(text: str) -> str:
    return NHS_NUMBER_PATTERN.sub(REDACTED, text)


def redact_sql(text: str) -> str:
    return SQL_STRING_LITERAL.sub("'[redacted]'", text)


class RedactPatientIdentifiers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken log call must not break the request
            return True
        if record.name.startswith("django.db.backends"):
            message = redact_sql(message)
        record.msg = redact(message)
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
