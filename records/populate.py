"""Populating patients' records: ask every enabled source and the demographics service at once,
apply the identity rule per source, normalise, merge, and freeze a snapshot per patient.

The asking runs in an event loop on a helper thread; every database write stays on the calling
thread (a Celery task, a command, a test), which freezes each patient's snapshot as soon as that
patient's answers are in, so progress shows case by case (patients whose answers arrived while
others were being frozen are frozen together, in one transaction).

Internal sources (the cancer registry: records.internal_sources) read the database, so they are
asked on the calling thread, once for all the run's patients, while the helper thread asks the
FHIR sources; each patient's internal answers join their FHIR answers when those arrive."""

import asyncio
import json
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date

import httpx
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .demographics import Demographics, DemographicsUnavailable, fetch_demographics_async
from .federation import TLS, Federation, SourceAnswer, SourceConfig
from .identity import check_identity
from .internal_sources import InternalAnswer, ask_internal, check_internal_identity, is_internal
from .merge import merge
from .models import Patient, Snapshot, Source, SourceResult
from .normalise import normalise
from .patient_index import apply_demographics

Status = SourceResult.Status
_DONE = object()
# At most this many patients' snapshots are frozen in one transaction (those whose answers
# arrived while the previous ones were being frozen).
FREEZE_BATCH = 16


@dataclass(frozen=True)
class PatientJob:
    patient_id: int
    nhs_number: str
    birth_date: date | None


@dataclass
class PatientAnswers:
    job: PatientJob
    answers: list[SourceAnswer]
    demographics: Demographics | None = None
    demographics_problem: str = ""
    elapsed_ms: int = 0


@dataclass
class Assessed:
    """The answers after the identity rule and normalisation: what goes into the snapshot."""

    summary: dict
    statuses: dict
    restricted: bool = False
    deceased: bool = False
    items: list = field(default_factory=list)


def sources_to_ask(names: list[str] | None = None) -> list[Source]:
    """Every enabled source: FHIR servers, and internal sources of a kind that has an adapter in
    settings.RECORD_SOURCE_ADAPTERS."""
    kinds = [Source.Kind.FHIR, *getattr(settings, "RECORD_SOURCE_ADAPTERS", {})]
    sources = Source.objects.filter(enabled=True, kind__in=kinds).select_related("organisation")
    if names:
        sources = sources.filter(name__in=names)
    return list(sources)


def populate_patients(
    patient_ids,
    *,
    reason: str,
    sources: list[Source] | None = None,
    on_snapshot=None,
    concurrency: int | None = None,
) -> list[Snapshot]:
    """Populates each patient; calls on_snapshot(snapshot) as each one is frozen."""
    jobs = [
        PatientJob(p.pk, p.nhs_number, p.birth_date)
        for p in Patient.objects.filter(pk__in=list(patient_ids))
    ]
    sources = sources if sources is not None else sources_to_ask()
    configs = [SourceConfig.of(s) for s in sources]
    remote = [c for c in configs if not is_internal(c)]
    source_rows = {s.pk: s for s in sources}
    answers: queue.Queue = queue.Queue()

    def ask_everyone():
        try:
            asyncio.run(_ask_all(jobs, remote, answers.put, concurrency))
        except BaseException as error:  # noqa: BLE001 - handed to the calling thread
            answers.put(error)
        finally:
            answers.put(_DONE)

    asker = threading.Thread(target=ask_everyone, name="record-federation", daemon=True)
    asker.start()
    # Meanwhile, on this thread (they read the database): the internal sources, for everyone.
    internal = ask_internal([c for c in configs if is_internal(c)], jobs)
    snapshots, finished = [], False
    while not finished:
        arrived = [answers.get()]
        # Patients whose answers arrived while the last ones were being frozen are frozen
        # together: one transaction (one commit, one INSERT of their source results) for all.
        while len(arrived) < FREEZE_BATCH and arrived[-1] is not _DONE:
            try:
                arrived.append(answers.get_nowait())
            except queue.Empty:
                break
        finished = arrived[-1] is _DONE
        ready = [item for item in arrived if isinstance(item, PatientAnswers)]
        for item in ready:
            _join_answers(item, internal, configs)
        if ready:
            snapshots += freeze_all(
                ready, reason=reason, sources=source_rows, on_snapshot=on_snapshot
            )
        failure = next((item for item in arrived if isinstance(item, BaseException)), None)
        if failure is not None:
            asker.join()
            raise failure
    asker.join()
    return snapshots


def _join_answers(
    result: PatientAnswers, internal: dict[str, list[SourceAnswer]], configs: list[SourceConfig]
) -> None:
    """Adds the patient's internal answers to their FHIR answers, in the sources' order."""
    order = {config.id: index for index, config in enumerate(configs)}
    joined = result.answers + internal.get(result.job.nhs_number, [])
    result.answers = sorted(joined, key=lambda answer: order.get(answer.source.id, len(order)))


async def _ask_all(
    jobs: list[PatientJob], configs: list[SourceConfig], deliver, concurrency: int | None = None
) -> None:
    """Asks the FHIR sources in `configs` (and the demographics service) about every job; runs in
    the helper thread's event loop, so it never touches the database."""
    async with (
        Federation(configs, concurrency=concurrency) as federation,
        httpx.AsyncClient(
            verify=TLS, headers={"Accept": "application/fhir+json"}
        ) as demographics_client,
    ):
        # As many patients in flight as a source takes requests at once: patients then finish
        # one after another (and are frozen while others are asked) instead of all at the end.
        in_flight = asyncio.Semaphore(federation.concurrency)

        async def one(job: PatientJob) -> None:
            async with in_flight:
                await ask_one(job)

        async def ask_one(job: PatientJob) -> None:
            started = time.monotonic()
            demographics_call = asyncio.ensure_future(
                _demographics(demographics_client, job.nhs_number)
            )
            answers = await federation.ask_all(job.nhs_number)
            demographics, problem = await demographics_call
            deliver(
                PatientAnswers(
                    job, answers, demographics, problem, round((time.monotonic() - started) * 1000)
                )
            )

        await asyncio.gather(*(one(job) for job in jobs))


async def _demographics(client, nhs_number) -> tuple[Demographics | None, str]:
    try:
        found = await fetch_demographics_async(client, nhs_number)
    except DemographicsUnavailable as down:
        return None, str(down)
    if found is None:
        return None, "The demographics service does not know this NHS number."
    if found.nhs_number != nhs_number:
        # e.g. a superseded number: never apply another NHS number's details to this patient.
        return None, (
            "The demographics service answered with a different NHS number (ending "
            f"{found.nhs_number[-4:]}); its details were not used."
        )
    return found, ""


def assess(result: PatientAnswers) -> Assessed:
    """Applies the identity rule to each source and merges what passes."""
    job = result.job
    birth_date = result.demographics.birth_date if result.demographics else job.birth_date
    statuses, items, unhandled = {}, [], Counter()
    restricted = bool(result.demographics and result.demographics.restricted)
    deceased = bool(result.demographics and result.demographics.deceased)
    for answer in result.answers:
        if isinstance(answer, InternalAnswer):
            if answer.status in (Status.OK, Status.PARTIAL):
                problem = check_internal_identity(answer.identities, job.nhs_number, birth_date)
                if problem:
                    answer.status = Status.IDENTITY_MISMATCH
                    answer.detail = f"Nothing from this source is shown: {problem}"
                else:
                    items.extend(answer.items)
        elif answer.status in (Status.OK, Status.PARTIAL):
            identity = check_identity(
                answer.patients,
                answer.resources,
                job.nhs_number,
                birth_date,
                patient_full_urls=answer.patient_full_urls,
            )
            restricted = restricted or identity.restricted
            if not identity.ok:
                answer.status = Status.IDENTITY_MISMATCH
                answer.detail = f"Nothing from this source is shown: {identity.reason}"
            else:
                deceased = deceased or bool(identity.deceased)
                normalised = normalise(answer.resources, answer.source.badge)
                items.extend(normalised.items)
                unhandled.update(normalised.unhandled)
        statuses[answer.source.name] = {
            "status": answer.status,
            "label": Status(answer.status).label,
            "detail": answer.detail,
            "elapsed_ms": answer.elapsed_ms,
            "badge": answer.source.badge,
            "counts": answer.counts,
        }
    demographics = result.demographics.as_dict() if result.demographics else None
    if demographics and restricted:
        demographics["address"] = demographics["postcode"] = ""
    merged = merge(items)
    summary = {
        "demographics": demographics,
        "demographics_problem": result.demographics_problem,
        "record": merged.as_dict(),
        "unhandled": dict(unhandled),
        "restricted": restricted,
        "deceased": deceased,
    }
    return Assessed(summary, statuses, restricted, deceased, items)


def freeze(result: PatientAnswers, *, reason: str, sources: dict[int, Source]) -> Snapshot:
    (snapshot,) = freeze_all([result], reason=reason, sources=sources)
    return snapshot


def freeze_all(
    results: list[PatientAnswers], *, reason: str, sources: dict[int, Source], on_snapshot=None
) -> list[Snapshot]:
    """Freezes each patient's snapshot with its source results, in one transaction, and calls
    on_snapshot(snapshot) for each inside it (so a case is linked to its snapshot in the same
    commit that makes the snapshot)."""
    assessed = [assess(result) for result in results]
    with transaction.atomic():
        # Every patient of the batch locked in one query, in the order of their keys.
        ids = [result.job.patient_id for result in results]
        locked = {
            patient.pk: patient
            for patient in Patient.objects.select_for_update().filter(pk__in=ids).order_by("pk")
        }
        snapshots = [
            _freeze_one(locked[result.job.patient_id], result, facts, reason)
            for result, facts in zip(results, assessed, strict=True)
        ]
        _insert_source_results(zip(snapshots, results, strict=True), sources)
        if on_snapshot is not None:
            for snapshot in snapshots:
                on_snapshot(snapshot)
    return snapshots


def _freeze_one(
    patient: Patient, result: PatientAnswers, assessed: Assessed, reason: str
) -> Snapshot:
    if result.demographics is not None:
        patient = apply_demographics(result.demographics, patient)
    changed = []
    if assessed.restricted and not patient.restricted:
        patient.restricted, patient.address, patient.postcode = True, "", ""
        changed += ["restricted", "address", "postcode"]
    if assessed.deceased and not patient.deceased:
        patient.deceased = True
        changed.append("deceased")
    if changed:
        patient.save(update_fields=changed)
    return Snapshot.objects.create(
        patient=patient,
        reason=reason[:200],
        summary=assessed.summary,
        per_source_status=assessed.statuses,
        elapsed_ms=result.elapsed_ms,
    )


_RESULT_COLUMNS = ("snapshot", "source", "status", "detail", "raw", "elapsed_ms", "counts")


def _insert_source_results(frozen, sources: dict[int, Source]) -> None:
    """One INSERT for every source result of the snapshots: the raw FHIR responses as JSON text
    cast to jsonb. (Django 5.2's bulk_create sends JSON columns as a text[] array through
    UNNEST, which psycopg escapes element by element in Python: most of a freeze's CPU.)"""
    rows = [
        (
            snapshot.pk,
            sources[answer.source.id].pk,
            str(answer.status),
            answer.detail,
            json.dumps(answer.raw),
            answer.elapsed_ms,
            json.dumps(answer.counts),
        )
        for snapshot, result in frozen
        for answer in result.answers
    ]
    if not rows:
        return
    meta, quote = SourceResult._meta, connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in _RESULT_COLUMNS)
    values = ", ".join(["(%s, %s, %s, %s, %s::jsonb, %s, %s::jsonb)"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {values}",  # noqa: S608 - names from the model
            [value for row in rows for value in row],
        )


def latest_snapshot(patient_id: int) -> Snapshot | None:
    return Snapshot.objects.filter(patient_id=patient_id).first()


def is_stale(snapshot: Snapshot) -> bool:
    age = timezone.now() - snapshot.created_at
    return age.total_seconds() > settings.FEDERATION_STALE_AFTER_HOURS * 3600


def summarise_now(nhs_number: str, sources: list[Source]) -> tuple[Assessed, PatientAnswers]:
    """Asks the sources now and returns the assessed record without storing a snapshot (for
    support staff's record_summary command)."""
    indexed = Patient.objects.filter(nhs_number=nhs_number).first()
    job = PatientJob(
        indexed.pk if indexed else 0, nhs_number, indexed.birth_date if indexed else None
    )
    delivered: list[PatientAnswers] = []
    configs = [SourceConfig.of(s) for s in sources]
    remote = [c for c in configs if not is_internal(c)]
    # Its own thread, like populate_patients: the caller may already run an event loop.
    asker = threading.Thread(target=lambda: asyncio.run(_ask_all([job], remote, delivered.append)))
    asker.start()
    internal = ask_internal([c for c in configs if is_internal(c)], [job])
    asker.join()
    if not delivered:
        raise RuntimeError("The sources could not be asked (see the log).")
    _join_answers(delivered[0], internal, configs)
    return assess(delivered[0]), delivered[0]
