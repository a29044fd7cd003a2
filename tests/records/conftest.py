"""Fixtures for the federated record store's integration tests: real FHIR servers on 127.0.0.1
(demo.fhir_server), Source rows pointing at them with short timeouts, a demographics service, and
small builders for the FHIR resources the tests write by hand."""

from datetime import date

import pytest
import redis
from django.conf import settings

from demo.fhir_server import FhirServer
from records.breaker import breaker_key
from records.models import Source, SourceResult
from records.populate import populate_patients
from tests.factories import PatientFactory

NHS = "https://fhir.nhs.uk/Id/nhs-number"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
SNOMED = "http://snomed.info/sct"
LUNG_CANCER = {"system": SNOMED, "code": "254637007", "display": "Non-small cell lung cancer"}
DIABETES = {"system": SNOMED, "code": "44054006", "display": "Type 2 diabetes mellitus"}
BORN = date(1950, 1, 1)  # every hand-written Patient's birth date unless a test says otherwise


# -- FHIR written by hand ---------------------------------------------------------------------


def patient(pid: str, nhs_number: str, birth_date: str = "1950-01-01", **extra) -> dict:
    resource = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": NHS, "value": nhs_number}],
        "name": [{"use": "official", "family": "Testpatient", "given": ["Ada"]}],
        "gender": "female",
        "birthDate": birth_date,
    }
    return {**resource, **extra}


def condition(cid: str, pid: str, coding: dict = LUNG_CANCER, onset="2025-03-01", **extra):
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [coding]},
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": onset,
        **extra,
    }


def observations(pid: str, count: int, prefix: str = "obs") -> list[dict]:
    """`count` ECOG performance status Observations, a day apart."""
    return [
        {
            "resourceType": "Observation",
            "id": f"{prefix}-{n}",
            "status": "final",
            "code": {
                "coding": [
                    {"system": "http://loinc.org", "code": "89247-1", "display": "ECOG score"}
                ]
            },
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": f"2025-01-{n % 28 + 1:02d}",
            "valueInteger": n % 5,
        }
        for n in range(count)
    ]


def chart(the_patient: dict, *resources: dict) -> dict:
    """A patient's chart as demo.fhir_server reads it: everything after the Patient is filed
    under that Patient, whatever its own reference says."""
    entries = [the_patient, *resources]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in entries],
    }


def pds_patient(nhs_number: str, birth_date: str = "1950-01-01", **extra) -> dict:
    """A PDS-shaped Patient: the NHS number is its id."""
    resource = {
        "resourceType": "Patient",
        "id": nhs_number,
        "meta": {"security": [{"system": CONFIDENTIALITY, "code": "U"}]},
        "identifier": [{"system": NHS, "value": nhs_number}],
        "name": [{"use": "usual", "family": "Testpatient", "given": ["Ada"]}],
        "gender": "female",
        "birthDate": birth_date,
        "address": [
            {"use": "home", "line": ["1 Open Street", "Birmingham"], "postalCode": "B1 1AA"}
        ],
    }
    return {**resource, **extra}


def restricted_meta() -> dict:
    return {"security": [{"system": CONFIDENTIALITY, "code": "R", "display": "restricted"}]}


# -- populating and reading the result --------------------------------------------------------


def populate_one(patient_row):
    (snapshot,) = populate_patients([patient_row.pk], reason="test")
    return snapshot


def results(snapshot) -> dict[str, SourceResult]:
    return {r.source.name: r for r in snapshot.results.select_related("source")}


def titles_by_source(snapshot) -> dict[str, set[str]]:
    """The titles of the merged record's items, by the source (badge) each came from."""
    found: dict[str, set[str]] = {}
    for item in snapshot.summary["record"]["timeline"]:
        for origin in item["sources"]:
            found.setdefault(origin["source"], set()).add(item["title"])
    return found


@pytest.fixture
def ada():
    """A patient in the region's index, born on BORN."""
    return PatientFactory(given_name="Ada", family_name="Testpatient", birth_date=BORN)


# -- servers and sources ----------------------------------------------------------------------


@pytest.fixture
def serve():
    """serve(resources, **FhirServer options) -> a started server, stopped after the test."""
    started = []

    def start(resources=(), server_class=FhirServer, **options):
        server = server_class(resources=list(resources), **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def breaker_keys():
    """Deletes breaker state in Redis (the test key space) for the given source ids, now and
    after the test, so that ids reused by a new test database never inherit an open breaker."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    touched: set[int] = set()

    def reset(*source_ids: int) -> None:
        touched.update(source_ids)
        if source_ids:
            client.delete(*(breaker_key(i) for i in source_ids))

    yield reset
    reset(*touched)
    client.close()


@pytest.fixture
def make_source(breaker_keys):
    """make_source(server_or_url, name, **Source fields) -> a saved Source with a 1 s timeout."""

    def make(server, name: str, **fields) -> Source:
        url = server if isinstance(server, str) else server.base_url
        fields.setdefault("timeout_s", 1.0)
        source = Source.objects.create(name=name, base_url=url, **fields)
        breaker_keys(source.pk)
        return source

    return make


@pytest.fixture
def demographics(serve, settings):
    """demographics(*pds_patients) -> a started demographics service the settings point at."""

    def start(*resources, **options):
        server = serve(resources, pds=True, **options)
        settings.DEMOGRAPHICS_URL = server.base_url
        return server

    return start


@pytest.fixture
def stopped_url(serve):
    """The base URL of a server that has been stopped: the connection is refused."""
    server = serve()
    server.stop()
    return server.base_url


@pytest.fixture
def healthy(serve, make_source, ada):
    """A source that answers well about `ada`: one lung cancer diagnosis."""
    server = serve([chart(patient("rrk-1", ada.nhs_number), condition("dx-1", "rrk-1"))])
    return make_source(server, "Healthy Trust")
