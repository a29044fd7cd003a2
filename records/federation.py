"""Asking every source about a patient at once (httpx.AsyncClient, one connection pool and one
concurrency limit per source), with a per-source deadline, one retry for idempotent GETs, the
shared circuit breaker, paging with a page cap, and a size limit on every response.

This module only talks to sources and classifies what they said; records.populate turns the
answers into a frozen snapshot."""

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, urljoin

import httpx
from django.conf import settings
from django.utils import timezone

from .breaker import BreakerState, CircuitBreaker
from .fhir_parse import FhirOperationOutcome, NotFHIR, parse_bundle, split_batch_response
from .identity import distinct_patients
from .models import Source, SourceResult

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
CLINICAL_TYPES = (
    "Condition",
    "Observation",
    "Procedure",
    "MedicationRequest",
    "MedicationAdministration",
    "MedicationStatement",
    "DiagnosticReport",
    "ImagingStudy",
    "Encounter",
    "DocumentReference",
    "AllergyIntolerance",
)
PAGE_SIZE = 100
RETRY_STATUSES = {502, 503, 504}
RAW_TEXT_LIMIT = 2000
# One TLS context for every client: building one loads the CA bundle (tens of ms of CPU each).
TLS = httpx.create_ssl_context()
logger = logging.getLogger(__name__)
Status = SourceResult.Status


class SourceProblem(Exception):
    """The source answered, but not with something we can use; the message says what."""


class SourceUnreachable(Exception):
    """No connection could be made: counts against the breaker."""


class SourceFailing(SourceProblem):
    """The source answered with a server error (5xx): counts against the breaker."""


@dataclass(frozen=True)
class SourceConfig:
    """What the async code needs of a Source, read from the database beforehand."""

    id: int
    name: str
    badge: str
    base_url: str
    timeout_s: float
    page_cap: int
    max_bytes: int
    headers: tuple[tuple[str, str], ...] = ()
    basic_auth: tuple[str, str] | None = None
    kind: str = Source.Kind.FHIR  # other kinds are answered inside (records.internal_sources)

    @classmethod
    def of(cls, source: Source) -> "SourceConfig":
        headers = [("Accept", "application/fhir+json")]
        if source.auth == Source.Auth.BEARER:
            headers.append(("Authorization", f"Bearer {source.token}"))
        return cls(
            id=source.pk,
            name=source.name,
            badge=source.badge,
            base_url=source.base_url.rstrip("/") + "/",
            timeout_s=source.timeout_s,
            page_cap=source.page_cap,
            max_bytes=source.max_response_mb * 1024 * 1024,
            headers=tuple(headers),
            basic_auth=(source.username, source.password)
            if source.auth == Source.Auth.BASIC
            else None,
            kind=str(source.kind),
        )


@dataclass
class SourceAnswer:
    """One source's answer about one patient."""

    source: SourceConfig
    status: str = Status.OK
    detail: str = ""
    elapsed_ms: int = 0
    raw: list[dict] = field(default_factory=list)
    patients: list = field(default_factory=list)
    patient_full_urls: list[str] = field(default_factory=list)
    resources: list = field(default_factory=list)
    dropped: int = 0
    drop_reasons: list[str] = field(default_factory=list)
    pages_cut: int = 0
    requests: int = 0

    @property
    def counts(self) -> dict:
        return {
            "resources": len(self.resources),
            "dropped": self.dropped,
            "pages_cut": self.pages_cut,
            "requests": self.requests,
        }


class Federation:
    """One population run: a connection pool and a concurrency limit per source, shared by every
    patient the run asks about."""

    def __init__(
        self,
        sources: list[SourceConfig],
        breaker: CircuitBreaker | None = None,
        concurrency: int | None = None,
    ):
        self.sources = sources
        self.breaker = breaker or CircuitBreaker()
        self.concurrency = limit = concurrency or settings.FEDERATION_CONCURRENCY_PER_SOURCE
        # Made on a source's first request: a source whose breaker is open gets none.
        self._clients: dict[int, httpx.AsyncClient] = {}
        self._slots = {s.id: asyncio.Semaphore(limit) for s in sources}
        self._batch_support: dict[int, asyncio.Task] = {}

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        for reading in self._batch_support.values():
            reading.cancel()  # a shielded read still waiting on a slow source
        await asyncio.gather(*(client.aclose() for client in self._clients.values()))
        await self.breaker.close()

    def _client(self, source: SourceConfig) -> httpx.AsyncClient:
        client = self._clients.get(source.id)
        if client is None:
            client = self._clients[source.id] = httpx.AsyncClient(
                verify=TLS,
                headers=dict(source.headers),
                auth=source.basic_auth,
                timeout=httpx.Timeout(source.timeout_s),
                limits=httpx.Limits(
                    max_connections=self.concurrency, max_keepalive_connections=self.concurrency
                ),
                follow_redirects=False,
            )
        return client

    async def ask_all(self, nhs_number: str) -> list[SourceAnswer]:
        # Every source's breaker in one round trip to Redis.
        states = await self.breaker.check_all([s.id for s in self.sources])
        return list(
            await asyncio.gather(
                *(
                    self.ask(s, nhs_number, state)
                    for s, state in zip(self.sources, states, strict=True)
                )
            )
        )

    async def ask(
        self, source: SourceConfig, nhs_number: str, state: BreakerState | None = None
    ) -> SourceAnswer:
        """One source's answer; `state` is its breaker's, if just read (else it is read here)."""
        answer = SourceAnswer(source)
        if state is None:
            state = await self.breaker.check(source.id)
        if state.open:
            since = timezone.localtime(datetime.fromtimestamp(state.since, UTC))
            answer.status = Status.SKIPPED
            answer.detail = f"Not asked: the source has not been answering since {since:%H:%M:%S}."
            return answer
        started = time.monotonic()
        try:
            async with asyncio.timeout(source.timeout_s):
                await self._query(source, nhs_number, answer)
        except TimeoutError:
            answer.status = Status.TIMEOUT
            answer.detail = f"No complete answer within {source.timeout_s:g} seconds."
            await self.breaker.failed(source.id)
        except (SourceUnreachable, SourceFailing) as error:
            answer.status = Status.ERROR
            answer.detail = str(error)
            await self.breaker.failed(source.id)
        except (SourceProblem, NotFHIR, FhirOperationOutcome) as error:
            answer.status = Status.ERROR
            answer.detail = str(error)
            await self._alive(source, state)  # it answered: it is alive
        except Exception as error:  # noqa: BLE001 - one odd answer must not fail every patient
            logger.exception("Unexpected failure reading %s", source.name)
            answer.status = Status.ERROR
            answer.detail = f"The source's answer could not be used ({type(error).__name__})."
        else:
            await self._alive(source, state)
        finally:
            answer.elapsed_ms = round((time.monotonic() - started) * 1000)
        return answer

    async def _alive(self, source: SourceConfig, state: BreakerState) -> None:
        """Clears the source's failures, if any were on record when it was asked (one Redis
        command saved per source and patient in the usual case; a failure another worker records
        meanwhile is kept, not wiped by an answer to an earlier question)."""
        if state.recorded:
            await self.breaker.succeeded(source.id)

    async def _query(self, source: SourceConfig, nhs_number: str, answer: SourceAnswer) -> None:
        identifier = quote(f"{NHS_NUMBER_SYSTEM}|{nhs_number}", safe="")
        # The CapabilityStatement (once per run) is read alongside the first patient's search.
        batch_supported = asyncio.ensure_future(self._supports_batch(source, answer))
        try:
            await self._query_patient(source, identifier, batch_supported, answer)
        finally:
            if not batch_supported.done():
                batch_supported.cancel()  # only this patient's wait: the shared read goes on

    async def _query_patient(self, source, identifier, batch_supported, answer) -> None:
        found = parse_bundle(await self._get(source, f"Patient?identifier={identifier}", answer))
        answer.patients = [r for r in found.resources if r.get_resource_type() == "Patient"]
        answer.patient_full_urls = [
            url
            for r, url in zip(found.resources, found.full_urls, strict=False)
            if url and r.get_resource_type() == "Patient"
        ]
        self._count_drops(found, answer)
        if not answer.patients and found.dropped:
            # The source knows someone by this NHS number, but its record could not be read.
            raise SourceProblem(
                f"The source's Patient record could not be read ({found.drop_reasons[0]})."
            )
        if not answer.patients:
            answer.status = Status.NOT_FOUND
            answer.detail = "The source does not know this NHS number."
            return
        # The same Patient sent twice (a repeated page) is one patient, as in the identity rule.
        distinct = len(distinct_patients(answer.patients))
        if distinct > 1:
            answer.status = Status.IDENTITY_MISMATCH
            answer.detail = f"The source returned {distinct} patients for one NHS number."
            return
        patient_id = answer.patients[0].id
        searches = [
            f"{kind}?patient={quote(patient_id)}&_count={PAGE_SIZE}" for kind in CLINICAL_TYPES
        ]
        if await batch_supported:
            first_pages = await self._batch(source, searches, answer)
        else:
            first_pages = await asyncio.gather(*(self._get(source, s, answer) for s in searches))
        await asyncio.gather(*(self._read_pages(source, page, answer) for page in first_pages))
        if answer.dropped or answer.pages_cut:
            answer.status = Status.PARTIAL
            parts = []
            if answer.dropped:
                parts.append(f"{answer.dropped} unreadable entries dropped")
            if answer.pages_cut:
                parts.append(f"{answer.pages_cut} searches cut off after {source.page_cap} pages")
            answer.detail = "; ".join(parts).capitalize() + "."

    async def _read_pages(self, source: SourceConfig, first_page, answer: SourceAnswer) -> None:
        page, pages = parse_bundle(first_page), 1
        while True:
            answer.resources.extend(page.resources)
            self._count_drops(page, answer)
            if not page.next_url:
                return
            if pages >= source.page_cap:
                answer.pages_cut += 1
                return
            page, pages = parse_bundle(await self._get(source, page.next_url, answer)), pages + 1

    @staticmethod
    def _count_drops(parsed, answer: SourceAnswer) -> None:
        answer.dropped += parsed.dropped
        answer.drop_reasons.extend(parsed.drop_reasons[:5])

    async def _supports_batch(self, source: SourceConfig, answer: SourceAnswer) -> bool:
        """Read the CapabilityStatement once per run and source (shared by all its patients)."""
        if source.id not in self._batch_support:
            self._batch_support[source.id] = asyncio.ensure_future(
                self._read_capabilities(source, answer)
            )
        # Shielded: one patient's deadline cancelling its wait must not cancel the shared read
        # (every other patient awaiting it would get CancelledError and the whole run fail).
        return await asyncio.shield(self._batch_support[source.id])

    async def _read_capabilities(self, source: SourceConfig, answer: SourceAnswer) -> bool:
        try:
            statement = await self._get(source, "metadata", answer, keep_raw=False)
        except (SourceProblem, SourceUnreachable):
            return False
        if not isinstance(statement, dict):
            return False
        for rest in statement.get("rest") or []:
            if any(i.get("code") == "batch" for i in rest.get("interaction") or []):
                return True
        return False

    async def _batch(self, source: SourceConfig, searches: list[str], answer: SourceAnswer):
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": s}} for s in searches],
        }
        response = await self._send(source, "POST", source.base_url, answer, json=bundle)
        pages = []
        for status, resource in split_batch_response(response):
            if status != 200 or resource is None:
                detail = _outcome_text(resource)
                raise SourceProblem(
                    f"A search in the batch failed with status {status}"
                    + (f": {detail}." if detail else ".")
                )
            pages.append(resource)
        return pages

    async def _get(self, source: SourceConfig, path: str, answer: SourceAnswer, keep_raw=True):
        url = path if path.startswith("http") else urljoin(source.base_url, path)
        root = source.base_url.rstrip("/")
        if not (url == root or url.startswith((root + "/", root + "?"))):
            raise SourceProblem("The source sent a link to another server, which was not followed.")
        return await self._send(source, "GET", url, answer, keep_raw=keep_raw)

    async def _send(self, source, method, url, answer, *, keep_raw=True, json=None):
        """One request (one retry for a GET that could not connect or met a gateway error),
        read up to the size limit. Returns the parsed JSON."""
        client = self._client(source)
        attempts = 2 if method == "GET" else 1
        for attempt in range(attempts):
            try:
                async with self._slots[source.id]:
                    answer.requests += 1
                    status, body = await self._read_limited(client, method, url, source, json)
            except httpx.TimeoutException as error:
                raise TimeoutError from error
            except httpx.TransportError as error:
                if attempt + 1 < attempts:
                    await asyncio.sleep(0.1)
                    continue
                raise SourceUnreachable(
                    f"The source could not be reached ({type(error).__name__})."
                ) from error
            if status in RETRY_STATUSES and attempt + 1 < attempts:
                await asyncio.sleep(0.1)
                continue
            break
        parsed = _json_or_none(body)
        if keep_raw:
            answer.raw.append(
                {
                    "request": f"{method} {url}",
                    "status": status,
                    "body": parsed
                    if parsed is not None
                    else body[:RAW_TEXT_LIMIT].decode("utf-8", "replace"),
                }
            )
        if status != 200:
            detail = _outcome_text(parsed) if isinstance(parsed, dict) else ""
            failure = SourceFailing if status >= 500 else SourceProblem
            raise failure(
                f"The source answered with HTTP {status}{': ' + detail if detail else ''}."
            )
        if parsed is None:
            raise NotFHIR("The source's answer was not JSON (perhaps an error or login page).")
        return parsed

    @staticmethod
    async def _read_limited(client, method, url, source: SourceConfig, json):
        async with client.stream(method, url, json=json) as response:
            declared = int(response.headers.get("content-length") or 0)
            if declared > source.max_bytes:
                raise SourceProblem(_too_large(source))
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > source.max_bytes:
                    raise SourceProblem(_too_large(source))
                chunks.append(chunk)
            return response.status_code, b"".join(chunks)


def _too_large(source: SourceConfig) -> str:
    return f"An answer was larger than {source.max_bytes // (1024 * 1024)} MB and was not read."


def _json_or_none(body: bytes):
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _outcome_text(resource) -> str:
    if not isinstance(resource, dict) or resource.get("resourceType") != "OperationOutcome":
        return ""
    texts = []
    for issue in resource.get("issue") or []:
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
        if text:
            texts.append(str(text))
    return "; ".join(texts)[:300]
