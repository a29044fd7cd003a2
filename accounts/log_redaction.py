"""A logging filter that removes NHS numbers from every log line, whatever logged them (Django,
Celery, httpx): ten digits, optionally grouped 3-3-4 with spaces or dashes."""

import logging
import re

NHS_NUMBER_PATTERN = re.compile(r"(?<!\d)\d{3}[ -]?\d{3}[ -]?\d{4}(?!\d)")
REDACTED = "[NHS number]"


def redact(text: str) -> str:
    return NHS_NUMBER_PATTERN.sub(REDACTED, text)


class RedactPatientIdentifiers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken log call must not break the request
            return True
        record.msg = redact(message)
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
