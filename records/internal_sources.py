"""Sources answered inside this system rather than over FHIR: the cancer registry (issue 4).

`records` never imports the app that owns such a source (an import-linter contract), so the app
plugs in through a setting that maps a Source kind to the dotted path of its adapter:

    RECORD_SOURCE_ADAPTERS = {"registry": "registry.source.answer_for_patients"}

An adapter is called once per population run, on the calling thread (it reads the database;
the FHIR asking meanwhile runs on its helper thread), with the source and every patient of the
run, and returns an `InternalAnswer` per NHS number:

    adapter(source: SourceConfig, patients: Sequence[PatientRef]) -> Mapping[str, InternalAnswer]

A patient it leaves out is `not_found`; if it raises, every patient's answer from that source is
`error` and the other sources still show. An InternalAnswer is a SourceAnswer, so `assess` and
`freeze` treat it like any other (status, detail, elapsed time, counts, raw for audit), but it
carries ready-made normalised Items instead of FHIR resources, and the identity of each record
it drew on. The FHIR identity rule does not apply (the source matched the patient by NHS number
in the database, not by searching a server); `check_internal_identity` does instead: every record
carries the NHS number asked for and, where both are known, the birth date the demographics
service gives. Anything else makes the answer `identity_mismatch`, and nothing of it is shown."""

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

from .federation import SourceAnswer, SourceConfig
from .models import Source, SourceResult

logger = logging.getLogger(__name__)
Status = SourceResult.Status


class PatientRef(Protocol):
    """What an adapter is told about each patient (records.populate.PatientJob)."""

    patient_id: int  # 0 for a patient not in the region's index (record_summary)
    nhs_number: str
    birth_date: date | None


@dataclass(frozen=True)
class RecordIdentity:
    """Who one of the source's records says it is about."""

    nhs_number: str
    birth_date: date | None


@dataclass
class InternalAnswer(SourceAnswer):
    """One internal source's answer about one patient: normalised Items, ready to merge."""

    items: list = field(default_factory=list)  # records.normalise.Item
    identities: list[RecordIdentity] = field(default_factory=list)
    records: int = 0  # the rows the items were drawn from (registrations and treatments)

    @property
    def counts(self) -> dict:
        return {
            "resources": self.records,
            "items": len(self.items),
            "dropped": self.dropped,
            "pages_cut": 0,
            "requests": 0,
        }


def is_internal(source: SourceConfig | Source) -> bool:
    return source.kind != Source.Kind.FHIR


def check_internal_identity(
    identities: Iterable[RecordIdentity], nhs_number: str, birth_date: date | None
) -> str:
    """ "" when every record is about this patient; otherwise the reason, for clinicians, which
    (like the FHIR identity rule's) never quotes another person's NHS number or birth date."""
    for identity in identities:
        if identity.nhs_number != nhs_number:
            return (
                "A record from the source carries a different NHS number (ending "
                f"{identity.nhs_number[-4:]}) from the one asked for."
            )
        if birth_date is not None and identity.birth_date not in (None, birth_date):
            return (
                "A record from the source has a different birth date from the demographics service."
            )
    return ""


def ask_internal(
    sources: Sequence[SourceConfig], patients: Sequence[PatientRef]
) -> dict[str, list[SourceAnswer]]:
    """Every internal source's answer about each patient, by NHS number. Runs on the calling
    thread: adapters read the database."""
    answers: dict[str, list[SourceAnswer]] = {p.nhs_number: [] for p in patients}
    if not patients:
        return answers
    for source in sources:
        started = time.monotonic()
        try:
            # A savepoint: a failed query must not spoil the caller's transaction.
            with transaction.atomic():
                found = dict(_adapter(source.kind)(source, patients))
        except AdapterMissing as error:
            logger.error("Internal source %s: %s", source.name, error)
            found, detail = {}, str(error)
        except Exception as error:  # noqa: BLE001 - one source's failure must not fail the run
            logger.exception("Internal source %s could not answer", source.name)
            found, detail = {}, f"The source could not be read ({type(error).__name__})."
        else:
            detail = ""
        if detail:
            found = {
                p.nhs_number: InternalAnswer(source, status=Status.ERROR, detail=detail)
                for p in patients
            }
        elapsed_ms = round((time.monotonic() - started) * 1000)
        for patient in patients:
            answer = found.get(patient.nhs_number) or InternalAnswer(
                source,
                status=Status.NOT_FOUND,
                detail="The source holds nothing for this NHS number.",
            )
            # The run's query answered every patient at once: each waited that long.
            answer.elapsed_ms = answer.elapsed_ms or elapsed_ms
            answers[patient.nhs_number].append(answer)
    return answers


class AdapterMissing(LookupError):
    """No adapter is configured for a source's kind: the message says so, for administrators."""


def _adapter(kind: str):
    adapters: Mapping[str, str] = getattr(settings, "RECORD_SOURCE_ADAPTERS", {})
    path = adapters.get(kind)
    if not path:
        raise AdapterMissing(
            f"No adapter is configured for sources of kind {kind!r} (RECORD_SOURCE_ADAPTERS)."
        )
    return import_string(path)
