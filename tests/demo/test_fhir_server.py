"""The demo FHIR endpoint over real HTTP: what a FHIR client sees of it, faults included."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class

from demo.fhir_server import FhirServer
from demo.synthetic import synthetic_nhs_number

NHS = "https://fhir.nhs.uk/Id/nhs-number"
FIRST, SECOND, UNKNOWN = (synthetic_nhs_number(n) for n in (11, 12, 13))


def patient(pid: str, number: str) -> dict:
    return {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": NHS, "value": number}],
        "name": [{"family": "Testpatient", "given": ["Ada"]}],
        "birthDate": "1950-01-01",
    }


def observation(n: int, pid: str) -> dict:
    return {
        "resourceType": "Observation",
        "id": f"obs-{n}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "89247-1"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "valueInteger": n % 5,
    }


def condition(cid: str, pid: str) -> dict:
    return {
        "resourceType": "Condition",
        "id": cid,
        "code": {"text": "Non-small cell lung cancer"},
        "subject": {"reference": f"Patient/{pid}"},
    }


def small_record() -> list[dict]:
    return [
        patient("rrk-1", FIRST),
        patient("rrk-2", SECOND),
        *(observation(n, "rrk-1") for n in range(120)),
        condition("cond-1", "rrk-1"),
        condition("cond-2", "rrk-1"),
        condition("cond-3", "rrk-2"),
        {
            "resourceType": "AllergyIntolerance",
            "id": "allergy-1",
            "patient": {"reference": "Patient/rrk-1"},
            "code": {"text": "No known drug allergy"},
        },
    ]


def validate(resource: dict):
    return get_fhir_model_class(resource["resourceType"]).model_validate(resource)


@pytest.fixture
def server():
    with FhirServer(resources=small_record(), page_size=50) as running:
        yield running


@pytest.fixture
def client():
    with httpx.Client(timeout=10, headers={"Accept": "application/fhir+json"}) as http:
        yield http


def by_nhs_number(number: str) -> dict:
    return {"identifier": f"{NHS}|{number}"}


def test_metadata_is_an_r4_capability_statement_that_declares_batch(server, client):
    response = client.get(f"{server.base_url}/metadata")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    statement = response.json()
    validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    assert {"code": "batch"} in statement["rest"][0]["interaction"]
    params = {
        r["type"]: {p["name"] for p in r["searchParam"]} for r in statement["rest"][0]["resource"]
    }
    assert "identifier" in params["Patient"]
    assert {"patient", "subject"} <= params["Condition"]
    assert params["AllergyIntolerance"] == {"_id", "patient"}


def test_patient_search_by_nhs_number_finds_the_patient(server, client):
    response = client.get(f"{server.base_url}/Patient", params=by_nhs_number(FIRST))

    bundle = response.json()
    validate(bundle)
    assert bundle["type"] == "searchset"
    assert bundle["total"] == 1
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["rrk-1"]
    assert bundle["entry"][0]["fullUrl"] == f"{server.base_url}/Patient/rrk-1"


def test_patient_search_for_an_unknown_nhs_number_is_an_empty_searchset(server, client):
    bundle = client.get(f"{server.base_url}/Patient", params=by_nhs_number(UNKNOWN)).json()

    validate(bundle)
    assert bundle["total"] == 0
    assert "entry" not in bundle


def test_identifier_of_another_system_does_not_match(server, client):
    params = {"identifier": f"https://fhir.example.org/Id/mrn|{FIRST}"}
    assert client.get(f"{server.base_url}/Patient", params=params).json()["total"] == 0


def test_clinical_search_pages_through_next_links_to_the_end(server, client):
    url = f"{server.base_url}/Observation?patient=rrk-1&_count=50"
    sizes, ids = [], []
    while url:
        bundle = client.get(url).json()
        validate(bundle)
        assert bundle["total"] == 120
        sizes.append(len(bundle.get("entry", [])))
        ids += [e["resource"]["id"] for e in bundle.get("entry", [])]
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert links["self"].startswith(server.base_url)
        url = links.get("next")
        if url:
            assert url.startswith(f"{server.base_url}?_getpages=")

    assert sizes == [50, 50, 20]
    assert sorted(ids) == sorted(f"obs-{n}" for n in range(120))


def test_subject_search_takes_a_bare_id_or_a_patient_reference(server, client):
    base = server.base_url
    for params in (
        {"subject": "rrk-1"},
        {"subject": "Patient/rrk-1"},
        {"patient": "Patient/rrk-1"},
    ):
        bundle = client.get(f"{base}/Condition", params=params).json()
        assert sorted(e["resource"]["id"] for e in bundle["entry"]) == ["cond-1", "cond-2"]


def test_count_zero_gives_the_total_only(server, client):
    bundle = client.get(f"{server.base_url}/Observation?patient=rrk-1&_count=0").json()

    assert bundle["total"] == 120
    assert "entry" not in bundle
    assert [link["relation"] for link in bundle["link"]] == ["self"]


@pytest.mark.parametrize(
    "path",
    [
        "/Condition?code=254637007",
        "/AllergyIntolerance?subject=rrk-1",
        "/Observation?patient=rrk-1&_count=lots",
        "?_getpagesoffset=0",
    ],
)
def test_bad_parameters_are_a_400_operation_outcome(server, client, path):
    response = client.get(f"{server.base_url}{path}")

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/fhir+json")
    validate(response.json())
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("path", ["/Spaceship?patient=rrk-1", "/Condition/nope", "/Patient/rrk-9"])
def test_unknown_types_and_ids_are_a_404_operation_outcome(server, client, path):
    response = client.get(f"{server.base_url}{path}")

    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_a_forgotten_page_token_is_410_gone(server, client):
    response = client.get(f"{server.base_url}?_getpages=unknown&_getpagesoffset=50&_count=50")

    assert response.status_code == 410
    assert response.json()["resourceType"] == "OperationOutcome"


def test_read_returns_the_resource_with_its_version(server, client):
    response = client.get(f"{server.base_url}/Condition/cond-1")

    assert response.status_code == 200
    assert response.json()["subject"] == {"reference": "Patient/rrk-1"}
    assert response.headers["etag"] == 'W/"1"'
    assert "last-modified" in response.headers


def test_writes_are_refused(server, client):
    response = client.put(f"{server.base_url}/Condition/cond-1", json=condition("cond-1", "x"))

    assert response.status_code == 405
    assert response.json()["resourceType"] == "OperationOutcome"


def test_batch_answers_each_get_in_order(server, client):
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Condition?patient=rrk-1&_count=100"}},
            {"request": {"method": "GET", "url": "Observation?patient=rrk-1&_count=100"}},
            {"request": {"method": "GET", "url": f"{server.base_url}/Patient/rrk-2"}},
            {"request": {"method": "GET", "url": "Patient/rrk-9"}},
            {"request": {"method": "DELETE", "url": "Patient/rrk-1"}},
        ],
    }

    response = client.post(
        server.base_url, json=batch, headers={"Content-Type": "application/fhir+json"}
    )

    assert response.status_code == 200
    answer = response.json()
    validate(answer)
    assert answer["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in answer["entry"]]
    assert statuses == ["200 OK", "200 OK", "200 OK", "404 Not Found", "405 Method Not Allowed"]
    conditions, observations, second, *_ = (e.get("resource") for e in answer["entry"])
    assert conditions["type"] == "searchset"
    assert conditions["total"] == 2
    assert len(observations["entry"]) == 100
    assert second["id"] == "rrk-2"
    assert answer["entry"][3]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    # The next page of a batched search is an ordinary GET.
    next_url = next(x["url"] for x in observations["link"] if x["relation"] == "next")
    assert len(client.get(next_url).json()["entry"]) == 20
    assert server.request_count == 2


def test_a_transaction_is_refused(server, client):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}

    response = client.post(f"{server.base_url}/", json=bundle)

    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_search_by_post_keeps_the_nhs_number_out_of_the_url(server, client):
    response = client.post(f"{server.base_url}/Patient/_search", data=by_nhs_number(FIRST))

    assert response.json()["entry"][0]["resource"]["id"] == "rrk-1"


def test_a_chart_files_its_entries_under_its_patient(tmp_path, client):
    # A misfiled record (the wrong-patient data case): it sits in rrk-1's chart but says rrk-9.
    chart = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": patient("rrk-1", FIRST)},
            {"resource": condition("mine", "rrk-1")},
            {"resource": condition("misfiled", "rrk-9")},
        ],
    }
    (tmp_path / "rrk-1.json").write_text(json.dumps(chart))

    with FhirServer(tmp_path) as server:
        bundle = client.get(f"{server.base_url}/Condition?patient=rrk-1").json()

    found = {e["resource"]["id"]: e["resource"]["subject"] for e in bundle["entry"]}
    assert found == {
        "mine": {"reference": "Patient/rrk-1"},
        "misfiled": {"reference": "Patient/rrk-9"},
    }


def test_reload_picks_up_new_files(tmp_path, client):
    (tmp_path / "patient.json").write_text(json.dumps(patient("rrk-1", FIRST)))
    with FhirServer(tmp_path) as server:
        assert client.get(f"{server.base_url}/Condition?patient=rrk-1").json()["total"] == 0
        (tmp_path / "more").mkdir()
        (tmp_path / "more" / "c.json").write_text(json.dumps(condition("c1", "rrk-1")))

        server.reload()

        assert client.get(f"{server.base_url}/Condition?patient=rrk-1").json()["total"] == 1


def test_two_resources_with_one_id_are_refused():
    with pytest.raises(ValueError, match="appears twice"):
        FhirServer(resources=[condition("c1", "a"), condition("c1", "b")])


def test_request_count_counts_every_request(server, client):
    for _ in range(3):
        client.get(f"{server.base_url}/metadata")
    client.get(f"{server.base_url}/Nothing")

    assert server.request_count == 4


# -- the demographics service ----------------------------------------------------------------


@pytest.fixture
def pds():
    restricted = patient(FIRST, FIRST)
    restricted["meta"] = {
        "security": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
        ]
    }
    with FhirServer(resources=[restricted], pds=True) as running:
        yield running


def test_pds_reads_a_patient_by_nhs_number(pds, client):
    response = client.get(f"{pds.base_url}/Patient/{FIRST}")

    assert response.status_code == 200
    assert response.json()["meta"]["security"][0]["code"] == "R"


def test_pds_answers_404_for_an_unknown_nhs_number(pds, client):
    response = client.get(f"{pds.base_url}/Patient/{SECOND}")

    assert response.status_code == 404
    outcome = response.json()
    validate(outcome)
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "RESOURCE_NOT_FOUND"


def test_pds_answers_400_for_an_invalid_nhs_number(pds, client):
    wrong_check_digit = FIRST[:9] + str((int(FIRST[9]) + 1) % 10)

    response = client.get(f"{pds.base_url}/Patient/{wrong_check_digit}")

    assert response.status_code == 400
    assert response.json()["issue"][0]["details"]["coding"][0]["code"] == "INVALID_RESOURCE_ID"


def test_pds_serves_patients_only_and_no_batch(pds, client):
    statement = client.get(f"{pds.base_url}/metadata").json()

    assert [r["type"] for r in statement["rest"][0]["resource"]] == ["Patient"]
    assert "interaction" not in statement["rest"][0]
    assert client.get(f"{pds.base_url}/Condition?patient={FIRST}").status_code == 404


# -- latency ---------------------------------------------------------------------------------


def test_latency_delays_each_answer_but_concurrent_requests_overlap(server):
    server.latency_ms = 150

    def fetch(_):
        with httpx.Client(timeout=5) as http:
            started = time.perf_counter()
            assert http.get(f"{server.base_url}/Condition?patient=rrk-1").status_code == 200
            return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        each = list(pool.map(fetch, range(8)))
    wall = time.perf_counter() - started

    assert min(each) >= 0.15
    assert wall < 0.9  # sequential would be 8 x 150 ms = 1.2 s (slack for a loaded machine)


# -- faults ----------------------------------------------------------------------------------


def test_http500_is_an_html_error_page(server, client):
    server.fault = "http500"

    response = client.get(f"{server.base_url}/Patient", params=by_nhs_number(FIRST))

    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text


def test_html_is_a_sign_in_page_with_status_200(server, client):
    server.fault = "html"

    response = client.get(f"{server.base_url}/Patient", params=by_nhs_number(FIRST))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Sign in" in response.text


def test_invalid_json_is_fhir_labelled_but_broken(server, client):
    server.fault = "invalid_json"

    response = client.get(f"{server.base_url}/Condition?patient=rrk-1")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_not_fhir_is_valid_json_without_a_resource_type(server, client):
    server.fault = "not_fhir"

    response = client.get(f"{server.base_url}/Condition?patient=rrk-1")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert "resourceType" not in response.json()


def test_operation_outcome_is_a_server_error_with_an_outcome(server, client):
    server.fault = "operation_outcome"

    response = client.get(f"{server.base_url}/Condition?patient=rrk-1")

    assert response.status_code == 500
    validate(response.json())
    assert response.json()["issue"][0]["severity"] == "fatal"


def test_hang_times_out_the_client_and_stop_still_returns_at_once():
    server = FhirServer(resources=small_record(), fault="hang").start()
    dropped = []

    def wait_for_an_answer():
        try:
            httpx.get(f"{server.base_url}/metadata", timeout=60)
        except httpx.HTTPError as error:
            dropped.append(error)

    hung_elsewhere = threading.Thread(target=wait_for_an_answer, daemon=True)
    try:
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"{server.base_url}/metadata", timeout=0.3)
        hung_elsewhere.start()
        time.sleep(0.1)
    finally:
        started = time.perf_counter()
        server.stop()
        stopped_in = time.perf_counter() - started

    assert stopped_in < 1.0
    hung_elsewhere.join(timeout=2)
    assert not hung_elsewhere.is_alive()  # its connection was dropped, not left hanging
    assert len(dropped) == 1


def test_oversize_pads_a_searchset_past_20_mb(server, client):
    server.fault = "oversize"

    response = client.get(f"{server.base_url}/Condition?patient=rrk-1")

    assert len(response.content) > 20 * 1024 * 1024
    bundle = response.json()
    assert bundle["type"] == "searchset"
    padding = bundle["entry"][-1]["resource"]
    assert padding["resourceType"] == "DocumentReference"
    assert padding["subject"] == {"reference": "Patient/rrk-1"}


def test_endless_next_never_stops_offering_a_next_page(server, client):
    server.fault = "endless_next"
    url = f"{server.base_url}/Condition?patient=rrk-1&_count=1"
    seen = []
    for _ in range(10):
        bundle = client.get(url).json()
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        url = next(link["url"] for link in bundle["link"] if link["relation"] == "next")

    assert len(seen) == 10
    assert set(seen) == {"cond-1", "cond-2"}


def test_slow_drip_sends_the_body_slowly(server, client):
    server.fault = "slow_drip"
    received = 0

    with client.stream("GET", f"{server.base_url}/Observation?patient=rrk-1") as response:
        expected = int(response.headers["content-length"])
        started = time.perf_counter()
        for chunk in response.iter_raw():
            received += len(chunk)
            if time.perf_counter() - started > 1.0:
                break

    assert 0 < received < expected / 4


def test_fault_match_limits_the_fault_to_matching_requests(server, client):
    server.fault, server.fault_match = "http500", "_getpages"

    first = client.get(f"{server.base_url}/Observation?patient=rrk-1&_count=50")
    next_url = next(link["url"] for link in first.json()["link"] if link["relation"] == "next")
    second = client.get(next_url)

    assert first.status_code == 200
    assert second.status_code == 500


def test_a_fault_can_be_cleared_at_runtime(server, client):
    server.fault = "http500"
    assert client.get(f"{server.base_url}/metadata").status_code == 500

    server.fault = None

    assert client.get(f"{server.base_url}/metadata").status_code == 200


def test_an_unknown_fault_is_refused(server):
    with pytest.raises(ValueError, match="unknown fault"):
        server.fault = "gremlins"


def test_a_stopped_server_refuses_connections_and_can_come_back_on_its_port(client):
    server = FhirServer(resources=small_record()).start()
    url = f"{server.base_url}/metadata"
    server.stop()

    with pytest.raises(httpx.ConnectError):
        client.get(url)

    server.start()
    try:
        assert client.get(url).status_code == 200
    finally:
        server.stop()


def test_oversize_pads_one_searchset_of_a_batch(server, client):
    server.fault = "oversize"
    searches = ["Condition?patient=rrk-1", "Observation?patient=rrk-1", "Condition?patient=rrk-2"]
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": url}} for url in searches],
    }

    response = client.post(server.base_url, json=batch)

    assert 20 * 1024 * 1024 < len(response.content) < 25 * 1024 * 1024
    assert [e["response"]["status"] for e in response.json()["entry"]] == ["200 OK"] * 3
