"""Where a GP letter goes over MESH, and what its envelope says: the one addressing module.

Today a letter goes to the mailbox of the patient's GP practice as the app knows it
(``Organisation.mesh_mailbox_id``), with the GP Connect Send Document workflow ID and the bare
PDF. The national route (DOMAIN.md, "Letters to GPs") addresses the patient instead, as
``GPPROVIDER_<NHS number>_<birth date>_<surname>``, lets MESH route to the practice where the
patient is registered, and wraps the PDF in an ITK3 bundle; ``gp_provider_address`` builds that
address (the local mesh-sandbox does not route it, so nothing sends to it yet), and the wrapping
belongs here too when it comes. Nothing here puts a name or an NHS number in the envelope's
subject, filename or local id: MESH tracking shows those to operators.
"""

import re
from dataclasses import dataclass
from datetime import date

import nhs_number
from django.conf import settings

from accounts.models import Organisation

# Mailbox ids are upper-case letters and digits (e.g. X26ABC1, M85011OT001).
_MAILBOX_ID = re.compile(r"^[A-Z0-9]{3,20}$")


@dataclass(frozen=True)
class MailboxAddress:
    """The MESH mailbox a letter goes to, or none and why (shown on a ``manual`` letter)."""

    mailbox_id: str | None
    reason: str = ""

    def __bool__(self) -> bool:
        return bool(self.mailbox_id)


def mailbox_for(organisation: Organisation | None) -> MailboxAddress:
    """The MESH mailbox of a GP practice, from the app's own practice-to-mailbox mapping."""
    if organisation is None:
        return MailboxAddress(None, "The patient has no GP practice recorded.")
    if organisation.kind != Organisation.Kind.GP_PRACTICE:
        return MailboxAddress(None, f"{organisation} is not a GP practice.")
    mailbox = (organisation.mesh_mailbox_id or "").strip().upper()
    if not mailbox:
        return MailboxAddress(None, f"{organisation} has no MESH mailbox recorded.")
    if not _MAILBOX_ID.match(mailbox):
        return MailboxAddress(None, f"{organisation} has an invalid MESH mailbox id.")
    return MailboxAddress(mailbox)


_SURNAME_DROPPED = re.compile(r"[^A-Z'\-]")


def gp_provider_address(nhs_number_value: str, birth_date: date, surname: str) -> str:
    """The GP Connect Send Document ``Mex-To`` that MESH routes to the patient's registered
    practice: ``GPPROVIDER_<NHS number>_<YYYYMMDD>_<SURNAME>``.

    The NHS number is the ten digits (spaces allowed on the way in, checked by its check digit);
    the surname is upper-cased, with spaces and other characters than letters, hyphens and
    apostrophes dropped. Not used for sending yet (see the module's docstring)."""
    digits = re.sub(r"\s", "", nhs_number_value or "")
    if not (digits.isdigit() and len(digits) == 10 and nhs_number.is_valid(digits)):
        raise ValueError("Not a valid NHS number.")
    if not isinstance(birth_date, date):
        raise ValueError("A birth date is needed.")
    cleaned = _SURNAME_DROPPED.sub("", (surname or "").upper())
    if not any(ch.isalpha() for ch in cleaned):
        raise ValueError("A surname is needed.")
    return f"GPPROVIDER_{digits}_{birth_date:%Y%m%d}_{cleaned}"


def workflow_id() -> str:
    """GP Connect Send Document's workflow (version 2), unless the settings say otherwise."""
    return settings.MESH_WORKFLOW_ID


def local_id(letter) -> str:
    """The MESH local id of a letter: its public UUID, the same for every attempt to send it, so
    that MESH tracking can say whether an interrupted attempt got through."""
    return str(letter.public_id)


def subject(letter) -> str:
    """The envelope's subject: no patient identifiers (tracking shows it to operators)."""
    return "MDT outcome letter"


def filename(letter) -> str:
    return f"mdt-outcome-{letter.public_id}.pdf"
