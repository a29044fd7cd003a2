"""A small local FHIR R4 read/search endpoint that serves resources from files, standing in for a
trust's or a GP system's FHIR API (and, with ``pds=True``, for the demographics service) in the
demo region, the tests and the benchmarks. It behaves like a real server on the wire; the client
that talks to it is the same one that talks to a real trust.

Data on disk
------------
``data_dir`` is read once at start (and again on ``reload()``): every ``*.json`` file under it,
in sorted path order, holds either one resource or a Bundle whose entries' resources are loaded.
A ``collection`` Bundle whose first entry is a Patient is that patient's chart (the layout
``demo.histories`` writes: ``<SOURCE>/<patient id>.json``): every other entry is filed under that
Patient for ``patient=``/``subject=`` searches, whatever its own reference says, so a misfiled
record (the wrong-patient data case) is written by putting it in the wrong chart. Resources outside
a chart are filed under their ``subject`` or ``patient`` reference. ``resources=`` takes the same
items as the files (resources or Bundles), after the files. A resource without an id gets one;
every resource gets ``meta.versionId`` and ``meta.lastUpdated`` if it lacks them; two resources
with the same type and id are an error.

URLs (base ``http://127.0.0.1:PORT/fhir``)
------------------------------------------
- ``GET  [base]/metadata``: CapabilityStatement (FHIR 4.0.1): the types, their search parameters,
  and ``rest[0].interaction`` ``batch`` (not in PDS mode).
- ``GET  [base]/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018`` (also a bare
  value, and ``_id``): searchset Bundle of 0 or more Patients.
- ``GET  [base]/{Type}?patient={id}`` or ``?subject={id}`` (the id, ``Patient/{id}`` or an absolute
  reference; comma-separated values mean "any of"); ``AllergyIntolerance`` has ``patient`` only, as
  in R4. ``_count`` (default ``page_size``, at most 1000; ``0`` gives the total only), ``_id``.
  An unknown parameter is a 400.
- ``POST [base]/{Type}/_search`` with a form-encoded body: the same search, nothing in the URL.
- Paging: every searchset has ``total``, a ``self`` link and, while more remain, a ``next`` link
  (and ``previous`` after the first page), absolute URLs of the HAPI shape
  ``[base]?_getpages={token}&_getpagesoffset={offset}&_count={n}&_bundletype=searchset``. Follow
  them as given. The result set is fixed when the search runs; a token the server has forgotten
  (it keeps the latest 2000 searches) answers 410 Gone.
- ``GET  [base]/{Type}/{id}``: read, with ``ETag: W/"{versionId}"`` and ``Last-Modified``.
- ``POST [base]`` (or ``[base]/``) with a ``batch`` Bundle of GET entries (``request.url`` relative
  such as ``Condition?patient=rrk-1&_count=100``, or absolute): a ``batch-response`` Bundle, one
  entry per request in order, each with ``response.status`` (``"200 OK"``) and ``resource`` (the
  searchset or the resource), or a 4xx status with ``response.outcome``. Other entry methods
  answer ``405``; a ``transaction`` is a 400.
- Errors are OperationOutcomes with a proper status: 404 unknown type or id, 400 bad parameters,
  405 other methods. Every body is ``application/fhir+json; charset=utf-8``.

PDS mode (``pds=True``): only Patient. ``GET [base]/Patient/{nhs number}`` returns the PDS-shaped
Patient (the files hold them with the NHS number as id), 404 with PDS's ``RESOURCE_NOT_FOUND``
OperationOutcome if unknown, 400 ``INVALID_RESOURCE_ID`` if the id is not a valid NHS number.

Latency and faults
------------------
``latency_ms`` is slept before every answer, on the request's own thread, so concurrent requests
overlap. ``fault`` (settable at runtime; ``fault_match`` limits it to requests whose target
contains that text, e.g. ``"_getpages"`` to fail only second and later pages):

- ``http500``: 500 with an HTML error page.
- ``html``: 200 ``text/html``, a sign-in page (an SSO proxy in front of the API).
- ``invalid_json``: 200 ``application/fhir+json`` whose body is the real answer cut in half.
- ``not_fhir``: 200 ``application/json`` ``{"status": "ok", ...}``.
- ``operation_outcome``: 500 with an OperationOutcome (HAPI's shape for a lost database).
- ``hang``: waits 30 s, then answers normally; ``stop()`` still returns at once (the connection
  is dropped unanswered).
- ``oversize``: searchsets (and the searchsets in a batch) get one more DocumentReference whose
  attachment pads the body past 20 MB. Reads and metadata answer normally.
- ``endless_next``: every searchset page has a ``next`` link; past the end the offset wraps, so
  pages repeat earlier entries for ever (only a page cap stops a client).
- ``slow_drip``: headers at once, then the body in about a hundred pieces over about 25 s.

A source that is down is a server not started or stopped: the connection is refused.

CLI: ``python -m demo.fhir_server --data DIR --port N [--latency-ms N] [--pds]`` serves until
interrupted. It logs method, path (never the query string, which can hold an NHS number) and
status.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import logging
import signal
import socket
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import nhs_number

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json; charset=utf-8"
BASE_PATH = "/fhir"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
MAX_PAGE_SIZE = 1000
KEPT_SEARCHES = 2000
HANG_SECONDS = 30.0
DRIP_SECONDS = 25.0
OVERSIZE_BYTES = 21 * 1024 * 1024
FAULTS = frozenset(
    {
        "http500",
        "html",
        "invalid_json",
        "not_fhir",
        "operation_outcome",
        "hang",
        "oversize",
        "endless_next",
        "slow_drip",
    }
)

# Types that carry a patient: R4 gives them a `patient` search parameter and, where the element
# is `subject`, a `subject` one too.
SUBJECT_TYPES = frozenset(
    {
        "CarePlan",
        "Condition",
        "DiagnosticReport",
        "DocumentReference",
        "Encounter",
        "ImagingStudy",
        "MedicationAdministration",
        "MedicationRequest",
        "MedicationStatement",
        "Observation",
        "Procedure",
        "ServiceRequest",
        "Specimen",
    }
)
PATIENT_ONLY_TYPES = frozenset({"AllergyIntolerance"})
PLAIN_TYPES = frozenset({"Location", "Medication", "Organization", "Practitioner"})
RESULT_PARAMS = frozenset({"_count", "_format", "_pretty", "_total"})
JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})

LOGIN_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Sign in - Trust Integration Gateway</title></head><body><main><h1>Sign in</h1>
<p>Your session has expired. Sign in to continue.</p>
<form method="post" action="/auth/login">
<label for="u">Username</label><input id="u" name="username">
<label for="p">Password</label><input id="p" name="password" type="password">
<button type="submit">Sign in</button></form></main></body></html>
"""
ERROR_PAGE = b"""<!DOCTYPE html>
<html><head><title>500 Internal Server Error</title></head><body>
<h1>Internal Server Error</h1>
<p>The server encountered an internal error or misconfiguration and was unable to complete your
request.</p><hr><address>Apache/2.4.58 Server</address></body></html>
"""


class FhirError(Exception):
    """An error answer: HTTP status and an OperationOutcome."""

    def __init__(self, status: int, code: str, diagnostics: str, details: dict | None = None):
        super().__init__(diagnostics)
        self.status = status
        self.outcome = operation_outcome(code, diagnostics, details)


def operation_outcome(code: str, diagnostics: str, details: dict | None = None) -> dict:
    issue = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if details:
        issue["details"] = details
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def _pds_error(status: int, code: str, spine_code: str, display: str) -> FhirError:
    details = {
        "coding": [
            {
                "system": "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode",
                "version": "1",
                "code": spine_code,
                "display": display,
            }
        ]
    }
    return FhirError(status, code, display, details)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"


def _patient_id(reference: str) -> str | None:
    """The id in `Patient/1`, `http://host/fhir/Patient/1` or `Patient/1/_history/2`."""
    parts = [part for part in urlsplit(reference).path.split("/") if part]
    for index, part in enumerate(parts[:-1]):
        if part == "Patient":
            return parts[index + 1]
    return None


def _reference_of(resource: dict) -> str | None:
    for element in ("subject", "patient"):
        value = resource.get(element)
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            return value["reference"]
    return None


@dataclass
class _Store:
    """The loaded resources, indexed by type and id, by type, and by the patient they are filed
    under; loaded once and then only read, so requests share it without locks."""

    by_key: dict[tuple[str, str], dict] = field(default_factory=dict)
    by_type: dict[str, list[dict]] = field(default_factory=dict)
    by_patient: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    filed_under: dict[int, str] = field(default_factory=dict)  # id(resource) -> patient id
    position: dict[int, int] = field(default_factory=dict)  # id(resource) -> load order

    @classmethod
    def load(cls, data_dir: Path | None, resources: list[dict] | None) -> _Store:
        store = cls()
        loaded_at = _now().isoformat()
        counter = itertools.count(1)
        items: list[tuple[str, dict]] = []
        if data_dir is not None:
            if not Path(data_dir).is_dir():
                raise FileNotFoundError(f"no data directory at {data_dir}")
            for path in sorted(Path(data_dir).rglob("*.json")):
                try:
                    items.append((str(path), json.loads(path.read_text(encoding="utf-8"))))
                except ValueError as error:
                    raise ValueError(f"{path} is not JSON: {error}") from error
        items.extend(("resources", item) for item in resources or [])
        for origin, item in items:
            if not isinstance(item, dict) or not isinstance(item.get("resourceType"), str):
                raise ValueError(f"{origin}: not a FHIR resource")
            if item["resourceType"] != "Bundle":
                store._add(item, None, origin, loaded_at, counter)
                continue
            entries = [e["resource"] for e in item.get("entry") or [] if "resource" in e]
            chart = None
            if item.get("type") == "collection" and entries:
                if entries[0].get("resourceType") == "Patient":
                    chart = store._add(entries[0], None, origin, loaded_at, counter)["id"]
                    entries = entries[1:]
            for resource in entries:
                store._add(resource, chart, origin, loaded_at, counter)
        return store

    def _add(self, resource, chart, origin, loaded_at, counter) -> dict:
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise ValueError(f"{origin}: an entry is not a FHIR resource")
        rtype = resource["resourceType"]
        rest = {k: copy.deepcopy(v) for k, v in resource.items() if k not in ("id", "meta")}
        meta = {
            "versionId": "1",
            "lastUpdated": loaded_at,
            **copy.deepcopy(resource.get("meta", {})),
        }
        resource = {
            "resourceType": rtype,
            "id": str(resource.get("id") or f"{rtype.lower()}-{next(counter)}"),
            "meta": meta,
            **rest,
        }
        key = (rtype, str(resource["id"]))
        if key in self.by_key:
            raise ValueError(f"{origin}: {rtype}/{resource['id']} appears twice")
        self.by_key[key] = resource
        self.position[id(resource)] = len(self.position)
        self.by_type.setdefault(rtype, []).append(resource)
        reference = _reference_of(resource)
        patient = chart if chart is not None else (_patient_id(reference) if reference else None)
        if rtype == "Patient":
            patient = resource["id"]
        if patient is not None:
            self.filed_under[id(resource)] = patient
            self.by_patient.setdefault((rtype, patient), []).append(resource)
        return resource


@dataclass
class _ResultSet:
    token: str
    resource_type: str
    resources: list[dict]
    self_url: str
    patient: str | None


@dataclass
class _Answer:
    status: int
    body: dict | bytes
    content_type: str = FHIR_JSON
    headers: dict[str, str] = field(default_factory=dict)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for hung or keep-alive connections
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A client that gave up (timeout, reset) is normal here; never print a traceback.
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)


class FhirServer:
    """A FHIR R4 read/search endpoint on 127.0.0.1 serving resources from files or dicts."""

    def __init__(
        self,
        data_dir: Path | None = None,
        resources: list[dict] | None = None,
        *,
        port: int = 0,
        latency_ms: int = 0,
        fault: str | None = None,
        fault_match: str | None = None,
        page_size: int = 50,
        pds: bool = False,
        host: str = "127.0.0.1",
    ):
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.resources = resources
        self.port = port
        self.host = host
        self.latency_ms = latency_ms
        self.fault = fault
        self.fault_match = fault_match
        self.page_size = page_size
        self.pds = pds
        self._store = _Store.load(self.data_dir, self.resources)
        self._searches: OrderedDict[str, _ResultSet] = OrderedDict()
        self._lock = threading.Lock()
        self._count = 0
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def fault(self) -> str | None:
        return self._fault

    @fault.setter
    def fault(self, value: str | None) -> None:
        if value is not None and value not in FAULTS:
            raise ValueError(f"unknown fault {value!r}; one of {sorted(FAULTS)} or None")
        self._fault = value

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._count

    @property
    def base_url(self) -> str:
        """Known once started, and still after stop() (a stopped source refuses connections)."""
        if self.port == 0:
            raise RuntimeError("the server has not been started: its port is not chosen yet")
        return f"http://{self.host}:{self.port}{BASE_PATH}"

    def start(self) -> FhirServer:
        if self._httpd is not None:
            raise RuntimeError("the server is already started")
        self._stopping.clear()
        handler = type("Handler", (_Handler,), {"app": self})
        self._httpd = _HTTPServer((self.host, self.port), handler)
        self.port = self._httpd.server_address[1]  # a restart comes back on the same port
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fhir-server-{self._httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes requests sleeping for latency or a hang
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def reload(self) -> None:
        self._store = _Store.load(self.data_dir, self.resources)

    def __enter__(self) -> FhirServer:
        return self if self._httpd is not None else self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- bookkeeping used by the handler -----------------------------------------------------

    def _counted(self) -> None:
        with self._lock:
            self._count += 1

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _wait(self, seconds: float) -> bool:
        """Sleeps; False if the server is stopping meanwhile."""
        return not self._stopping.wait(seconds) if seconds > 0 else not self._stopping.is_set()

    def _fault_for(self, target: str) -> str | None:
        fault = self._fault
        if fault is not None and self.fault_match is not None and self.fault_match not in target:
            return None
        return fault

    # -- the FHIR interactions ---------------------------------------------------------------

    def _types(self) -> list[str]:
        if self.pds:
            return ["Patient"]
        known = {"Patient"} | SUBJECT_TYPES | PATIENT_ONLY_TYPES | PLAIN_TYPES
        return sorted(known | set(self._store.by_type))

    def _search_params(self, rtype: str) -> list[str]:
        if rtype == "Patient":
            return ["_id", "identifier"]
        if rtype in SUBJECT_TYPES:
            return ["_id", "patient", "subject"]
        if rtype in PATIENT_ONLY_TYPES:
            return ["_id", "patient"]
        return ["_id"]

    def _check_type(self, rtype: str) -> None:
        if rtype not in self._types():
            raise FhirError(
                404,
                "not-supported",
                f"Unknown resource type '{rtype}': this server serves {', '.join(self._types())}.",
            )

    def capability_statement(self, base: str) -> dict:
        param_types = {"_id": "token", "identifier": "token", "patient": "reference"}
        resources = [
            {
                "type": rtype,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": [
                    {"name": name, "type": param_types.get(name, "reference")}
                    for name in self._search_params(rtype)
                ],
            }
            for rtype in self._types()
        ]
        rest = {"mode": "server", "resource": resources}
        if not self.pds:
            rest["interaction"] = [{"code": "batch"}]
        return {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": _now().isoformat(),
            "publisher": "Regional MDT demo",
            "kind": "instance",
            "software": {"name": "demo FHIR endpoint", "version": "1.0"},
            "implementation": {"description": "FHIR R4 read and search", "url": base},
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json", "json"],
            "rest": [rest],
        }

    def get(self, path: str, params: list[tuple[str, str]], base: str, fault: str | None):
        """The answer to a GET (also a batch entry): path relative to the base, no slashes."""
        parts = [part for part in path.split("/") if part]
        for name, value in params:
            if name == "_format" and value not in JSON_FORMATS:
                raise FhirError(406, "not-supported", "This server answers in JSON only.")
        if not parts:
            if any(name == "_getpages" for name, _ in params):
                return _Answer(200, self._page_from_token(params, base, fault))
            raise FhirError(400, "not-supported", "System-level search is not supported.")
        if parts == ["metadata"]:
            return _Answer(200, self.capability_statement(base))
        rtype = parts[0]
        self._check_type(rtype)
        if len(parts) == 1:
            return _Answer(200, self.search(rtype, params, base, fault))
        if len(parts) == 2 and not parts[1].startswith("_") and not parts[1].startswith("$"):
            return self.read(rtype, parts[1])
        raise FhirError(400, "not-supported", f"This server does not support GET {path}.")

    def read(self, rtype: str, resource_id: str) -> _Answer:
        if self.pds:
            digits = resource_id.isdigit() and len(resource_id) == 10
            if not digits or not nhs_number.is_valid(resource_id):
                raise _pds_error(400, "value", "INVALID_RESOURCE_ID", "Resource Id is invalid")
        resource = self._store.by_key.get((rtype, resource_id))
        if resource is None:
            if self.pds:
                raise _pds_error(404, "not-found", "RESOURCE_NOT_FOUND", "Resource not found")
            raise FhirError(404, "not-found", f"Resource {rtype}/{resource_id} is not known.")
        meta = resource.get("meta") or {}
        headers = {"ETag": f'W/"{meta.get("versionId", "1")}"'}
        try:
            updated = datetime.fromisoformat(meta["lastUpdated"].replace("Z", "+00:00"))
            headers["Last-Modified"] = format_datetime(updated.astimezone(UTC), usegmt=True)
        except (KeyError, ValueError, TypeError):
            pass
        return _Answer(200, resource, headers=headers)

    def search(self, rtype: str, params: list[tuple[str, str]], base: str, fault: str | None):
        allowed = set(self._search_params(rtype))
        count = self.page_size
        filters = []
        for name, value in params:
            if name in RESULT_PARAMS:
                if name == "_count":
                    count = self._count_param(value)
                continue
            if name not in allowed:
                raise FhirError(
                    400,
                    "processing",
                    f"Unknown search parameter '{name}' for resource type '{rtype}'. Valid "
                    f"search parameters for this search are: {sorted(allowed)}",
                )
            if value == "":
                continue  # an empty parameter is ignored, as HAPI does
            filters.append((name, [v for v in value.split(",") if v]))
        store = self._store
        patient = None
        patient_filters = [values for name, values in filters if name in ("patient", "subject")]
        if patient_filters:
            wanted = {self._wanted_patient(value) for value in patient_filters[0]}
            wanted.discard(None)
            patient = next(iter(wanted)) if len(wanted) == 1 else None
            candidates = [r for p in wanted for r in store.by_patient.get((rtype, p), [])]
            candidates.sort(key=lambda r: store.position[id(r)])
        else:
            candidates = list(store.by_type.get(rtype, []))
        for name, values in filters:
            candidates = [r for r in candidates if self._matches(store, r, name, values)]
        query = urlencode(params, safe="|:/,")
        result = _ResultSet(
            token=uuid.uuid4().hex,
            resource_type=rtype,
            resources=candidates,
            self_url=f"{base}/{rtype}" + (f"?{query}" if query else ""),
            patient=patient,
        )
        with self._lock:
            self._searches[result.token] = result
            while len(self._searches) > KEPT_SEARCHES:
                self._searches.popitem(last=False)
        return self._page(result, 0, count, base, fault, first=True)

    @staticmethod
    def _whole_number(name: str, value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = -1
        if number < 0:
            raise FhirError(400, "invalid", f"{name} must be a whole number, not '{value}'.")
        return number

    def _count_param(self, value: str) -> int:
        return min(self._whole_number("_count", value), MAX_PAGE_SIZE)

    @staticmethod
    def _wanted_patient(value: str) -> str | None:
        if "/" not in value:
            return value
        return _patient_id(value)

    def _matches(self, store: _Store, resource: dict, name: str, values: list[str]) -> bool:
        if name == "_id":
            return resource.get("id") in values
        if name in ("patient", "subject"):
            wanted = {self._wanted_patient(value) for value in values}
            return store.filed_under.get(id(resource)) in wanted
        if name == "identifier":
            for value in values:
                system, bar, code = value.rpartition("|")
                for identifier in resource.get("identifier") or []:
                    if identifier.get("value") != code:
                        continue
                    if not bar or not system or identifier.get("system") == system:
                        return True
            return False
        return False

    def _page_from_token(self, params, base, fault) -> dict:
        values = dict(params)
        with self._lock:
            result = self._searches.get(values.get("_getpages", ""))
            if result is not None:
                self._searches.move_to_end(result.token)
        if result is None:
            raise FhirError(
                410,
                "not-found",
                f"Search id '{values.get('_getpages')}' does not exist and may have expired.",
            )
        offset = self._whole_number("_getpagesoffset", values.get("_getpagesoffset", "0"))
        count = self._count_param(values.get("_count", str(self.page_size)))
        return self._page(result, offset, count, base, fault, first=False)

    def _page_url(self, base: str, result: _ResultSet, offset: int, count: int) -> str:
        query = urlencode(
            {
                "_getpages": result.token,
                "_getpagesoffset": offset,
                "_count": count,
                "_bundletype": "searchset",
            }
        )
        return f"{base}?{query}"

    def _page(self, result, offset, count, base, fault, *, first) -> dict:
        total = len(result.resources)
        if fault == "endless_next":
            picked = [result.resources[(offset + i) % total] for i in range(count)] if total else []
            more = True
        else:
            picked = result.resources[offset : offset + count]
            more = count > 0 and offset + count < total
        self_url = result.self_url if first else self._page_url(base, result, offset, count)
        links = [{"relation": "self", "url": self_url}]
        if more:
            links.append(
                {"relation": "next", "url": self._page_url(base, result, offset + count, count)}
            )
        if offset > 0 and count > 0:
            previous = max(0, offset - count)
            links.append(
                {"relation": "previous", "url": self._page_url(base, result, previous, count)}
            )
        bundle = {
            "resourceType": "Bundle",
            "id": str(uuid.uuid4()),
            "meta": {"lastUpdated": _now().isoformat()},
            "type": "searchset",
            "total": total,
            "link": links,
        }
        if picked:
            bundle["entry"] = [
                {
                    "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in picked
            ]
        if fault == "oversize":
            self._pad(bundle, base, result.patient)
        return bundle

    @staticmethod
    def _pad(bundle: dict, base: str, patient: str | None) -> None:
        padding = {
            "resourceType": "DocumentReference",
            "id": f"scan-{uuid.uuid4().hex[:12]}",
            "status": "current",
            "type": {"text": "Scanned correspondence"},
            "content": [
                {
                    "attachment": {
                        "contentType": "application/pdf",
                        "title": "Scanned referral bundle",
                        "data": "JVBERi0xLjQK" + "A" * OVERSIZE_BYTES,
                    }
                }
            ],
        }
        if patient is not None:
            padding["subject"] = {"reference": f"Patient/{patient}"}
        bundle.setdefault("entry", []).append(
            {
                "fullUrl": f"{base}/DocumentReference/{padding['id']}",
                "resource": padding,
                "search": {"mode": "match"},
            }
        )

    def batch(self, body: bytes, base: str, fault: str | None) -> _Answer:
        if self.pds:
            raise FhirError(405, "not-supported", "This server does not accept batches.")
        try:
            bundle = json.loads(body)
        except ValueError as error:
            raise FhirError(400, "invalid", f"The request body is not JSON: {error}") from error
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise FhirError(400, "invalid", "POST to the base needs a Bundle of type batch.")
        if bundle.get("type") != "batch":
            raise FhirError(
                400,
                "not-supported",
                f"Bundle type '{bundle.get('type')}' is not supported; "
                "this server accepts batch only.",
            )
        entries = []
        for index, entry in enumerate(bundle.get("entry") or []):
            # One padded searchset is enough to push the whole answer past the limit.
            entry_fault = None if fault == "oversize" and index > 0 else fault
            request = entry.get("request") or {} if isinstance(entry, dict) else {}
            method = str(request.get("method") or "").upper()
            url = str(request.get("url") or "")
            try:
                if method != "GET":
                    raise FhirError(
                        405, "not-supported", f"Batch entries must be GET, not '{method}'."
                    )
                split = urlsplit(url)
                path = split.path
                if split.scheme:
                    path = path.split(BASE_PATH, 1)[-1] if BASE_PATH in path else path
                params = parse_qsl(split.query, keep_blank_values=True)
                answer = self.get(path, params, base, entry_fault)
                response = {"status": _status_line(answer.status)}
                if "ETag" in answer.headers:
                    response["etag"] = answer.headers["ETag"]
                entries.append({"resource": answer.body, "response": response})
            except FhirError as error:
                entries.append(
                    {"response": {"status": _status_line(error.status), "outcome": error.outcome}}
                )
        return _Answer(
            200,
            {
                "resourceType": "Bundle",
                "id": str(uuid.uuid4()),
                "meta": {"lastUpdated": _now().isoformat()},
                "type": "batch-response",
                "link": [{"relation": "self", "url": base}],
                "entry": entries,
            },
        )


class _Handler(BaseHTTPRequestHandler):
    app: FhirServer  # set on the subclass made by FhirServer.start()
    protocol_version = "HTTP/1.1"
    server_version = "FHIRServer/1.0"

    def version_string(self) -> str:
        return self.server_version  # not the Python version

    timeout = 65  # an idle keep-alive connection is closed after this

    def setup(self):
        super().setup()
        self.app._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.app._track(self.connection, False)

    def log_request(self, code="-", size="-"):
        # Never the query string: a search by identifier carries an NHS number.
        path = urlsplit(self.path).path
        logger.info("%s %s %s", self.command, path, getattr(code, "value", code))

    def log_error(self, format, *args):
        logger.debug(format, *args)

    def log_message(self, format, *args):
        logger.debug(format, *args)

    # -- methods -----------------------------------------------------------------------------

    def do_GET(self):
        self._handle(body=None)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(body=self.rfile.read(length) if length > 0 else b"")

    def _not_allowed(self):
        self._handle(body=None, allowed=False)

    do_PUT = do_DELETE = do_PATCH = do_HEAD = _not_allowed

    # -- the answer --------------------------------------------------------------------------

    def _base(self) -> str:
        host = self.headers.get("Host") or f"{self.app.host}:{self.server.server_address[1]}"
        return f"http://{host}{BASE_PATH}"

    def _handle(self, body: bytes | None, allowed: bool = True):
        app = self.app
        app._counted()
        if not app._wait(app.latency_ms / 1000):
            self.close_connection = True
            return
        fault = app._fault_for(self.path)
        if fault == "hang" and not app._wait(HANG_SECONDS):
            self.close_connection = True
            return
        if fault in ("http500", "html", "not_fhir", "operation_outcome"):
            self._send(self._fault_answer(fault))
            return
        try:
            answer = self._route(body, allowed, fault)
        except FhirError as error:
            answer = _Answer(error.status, error.outcome)
        if fault == "invalid_json":
            data = self._encode(answer.body)
            self._send(_Answer(200, data[: max(1, len(data) // 2)]))
        elif fault == "slow_drip":
            self._send(answer, drip=True)
        else:
            self._send(answer)

    def _route(self, body: bytes | None, allowed: bool, fault: str | None) -> _Answer:
        split = urlsplit(self.path)
        path = split.path
        if path != BASE_PATH and not path.startswith(BASE_PATH + "/"):
            raise FhirError(404, "not-found", f"There is no FHIR endpoint at {path}.")
        relative = path[len(BASE_PATH) :]
        params = parse_qsl(split.query, keep_blank_values=True)
        base = self._base()
        if not allowed:
            raise FhirError(405, "not-supported", f"{self.command} is not supported here.")
        if body is None:
            return self.app.get(relative, params, base, fault)
        parts = [part for part in relative.split("/") if part]
        if not parts:
            return self.app.batch(body, base, fault)
        if len(parts) == 2 and parts[1] == "_search":
            self.app._check_type(parts[0])
            form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            return _Answer(200, self.app.search(parts[0], params + form, base, fault))
        raise FhirError(405, "not-supported", "This server is read-only.")

    @staticmethod
    def _fault_answer(fault: str) -> _Answer:
        if fault == "http500":
            return _Answer(500, ERROR_PAGE, "text/html; charset=iso-8859-1")
        if fault == "html":
            return _Answer(200, LOGIN_PAGE, "text/html; charset=utf-8")
        if fault == "not_fhir":
            body = {"status": "ok", "service": "integration-engine", "version": "3.2.1"}
            return _Answer(200, json.dumps(body).encode(), "application/json")
        return _Answer(
            500,
            {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "fatal",
                        "code": "exception",
                        "diagnostics": "HAPI-0389: Failed to call access method: "
                        "org.hibernate.exception.JDBCConnectionException: Unable to acquire "
                        "JDBC Connection",
                    }
                ],
            },
        )

    def _encode(self, body: dict | bytes) -> bytes:
        if isinstance(body, bytes):
            return body
        pretty = "_pretty=true" in urlsplit(self.path).query
        text = json.dumps(
            body, indent=2 if pretty else None, separators=None if pretty else (",", ":")
        )
        return text.encode("utf-8")

    def _send(self, answer: _Answer, drip: bool = False) -> None:
        data = self._encode(answer.body)
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(data)))
            if answer.status == 405:
                self.send_header("Allow", "GET, POST")
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command == "HEAD":
                return
            if not drip:
                self.wfile.write(data)
                return
            self.wfile.flush()
            pieces = 100
            size = max(1, -(-len(data) // pieces))
            for start in range(0, len(data), size):
                if not self.app._wait(DRIP_SECONDS / pieces):
                    self.close_connection = True
                    return
                self.wfile.write(data[start : start + size])
                self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client went away


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve FHIR R4 resources from files.")
    parser.add_argument("--data", type=Path, required=True, help="directory of JSON resources")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--pds", action="store_true", help="serve as the demographics service")
    parser.add_argument("--fault", choices=sorted(FAULTS), default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = FhirServer(
        args.data,
        port=args.port,
        host=args.host,
        latency_ms=args.latency_ms,
        page_size=args.page_size,
        pds=args.pds,
        fault=args.fault,
    ).start()
    logger.info("Serving %s at %s", args.data, server.base_url)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(1):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
