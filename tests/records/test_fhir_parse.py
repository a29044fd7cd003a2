import json

import pytest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation

from records.fhir_parse import (
    FhirOperationOutcome,
    NotFHIR,
    parse_bundle,
    split_batch_response,
)


def observation(id_="obs1", **extra):
    return {
        "resourceType": "Observation",
        "id": id_,
        "status": "final",
        "code": {"text": "Body weight"},
        "subject": {"reference": "Patient/p1"},
        **extra,
    }


def searchset(*resources, **extra):
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {
                "fullUrl": f"https://trust.example/fhir/{r['resourceType']}/{r.get('id')}",
                "resource": r,
            }
            for r in resources
        ],
        **extra,
    }


def test_a_searchset_is_read_into_r4b_models():
    parsed = parse_bundle(searchset(observation()))
    assert len(parsed.resources) == 1
    assert isinstance(parsed.resources[0], Observation)
    assert parsed.dropped == 0
    assert parsed.bundle_type == "searchset"


def test_an_r4_medication_statement_is_read_although_r5_has_no_such_resource():
    statement = {
        "resourceType": "MedicationStatement",
        "id": "ms1",
        "status": "active",
        "medicationCodeableConcept": {"text": "Gefitinib 250 mg tablets"},
        "subject": {"reference": "Patient/p1"},
    }
    assert isinstance(parse_bundle(searchset(statement)).resources[0], MedicationStatement)


@pytest.mark.parametrize("as_type", [bytes, str, dict])
def test_bytes_text_and_decoded_json_are_all_accepted(as_type):
    bundle = searchset(observation())
    body = {bytes: lambda b: json.dumps(b).encode(), str: json.dumps, dict: lambda b: b}[as_type](
        bundle
    )
    assert len(parse_bundle(body).resources) == 1


def test_invalid_json_is_not_fhir():
    with pytest.raises(NotFHIR, match="not valid JSON"):
        parse_bundle(b'{"resourceType": "Bundle", ')


@pytest.mark.parametrize("body", [b"[1, 2]", b'{"hello": "world"}', b'"Bundle"'])
def test_json_that_is_not_a_fhir_resource_is_not_fhir(body):
    with pytest.raises(NotFHIR, match="not a FHIR resource"):
        parse_bundle(body)


def test_a_resource_other_than_a_bundle_is_not_fhir_for_a_search():
    with pytest.raises(NotFHIR, match="answered with a Patient where a Bundle was expected"):
        parse_bundle({"resourceType": "Patient", "id": "p1"})


def test_a_malformed_bundle_envelope_is_not_fhir():
    with pytest.raises(NotFHIR, match="Bundle is malformed: type"):
        parse_bundle({"resourceType": "Bundle", "entry": []})


def test_an_operation_outcome_is_raised_with_its_text_and_codes():
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "not-found", "diagnostics": "No such patient"},
            {"severity": "error", "code": "processing", "details": {"text": "Search failed"}},
        ],
    }
    with pytest.raises(FhirOperationOutcome) as raised:
        parse_bundle(json.dumps(outcome))
    assert "error: No such patient" in str(raised.value)
    assert "error: Search failed" in str(raised.value)
    assert raised.value.codes == ("not-found", "processing")
    assert isinstance(raised.value, NotFHIR)


def test_unreadable_entries_are_dropped_and_counted_without_losing_the_bundle():
    bundle = searchset(observation("good"))
    bundle["entry"] += [
        {"resource": {"resourceType": "NotAResource", "id": "x"}},
        {"resource": {"resourceType": "Observation", "id": "bad", "status": "final"}},
        {"resource": {"id": "no-type"}},
        {"resource": {"resourceType": "Coding", "code": "x"}},
        {"fullUrl": "https://trust.example/fhir/Observation/gone"},
        "not an object",
    ]
    parsed = parse_bundle(bundle)
    assert [r.id for r in parsed.resources] == ["good"]
    assert parsed.dropped == 6
    assert parsed.drop_reasons == [
        "entry 2: NotAResource/x: unknown resource type 'NotAResource'",
        "entry 3: Observation/bad: not a valid R4 Observation: code: Field required",
        "entry 4: no resourceType",
        "entry 5: unknown resource type 'Coding'",
        "entry 6: no resource",
        "entry 7: not a JSON object",
    ]


def test_drop_reasons_never_quote_the_data():
    bad = observation("bad", valueQuantity={"value": "Jane Smith, 1 Trevelyan Square"})
    parsed = parse_bundle(searchset(bad))
    assert parsed.dropped == 1
    assert "Smith" not in parsed.drop_reasons[0]
    assert "Trevelyan" not in parsed.drop_reasons[0]


def test_outcome_entries_in_a_searchset_are_warnings_not_resources():
    bundle = searchset(observation())
    bundle["entry"].append(
        {
            "search": {"mode": "outcome"},
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [
                    {"severity": "warning", "code": "processing", "diagnostics": "_sort ignored"}
                ],
            },
        }
    )
    parsed = parse_bundle(bundle)
    assert len(parsed.resources) == 1
    assert parsed.warnings == ["warning: _sort ignored"]
    assert parsed.dropped == 0


def test_the_next_link_and_total_are_read():
    bundle = searchset(
        observation(),
        total=40,
        link=[
            {"relation": "self", "url": "https://trust.example/fhir/Observation?patient=p1"},
            {"relation": "next", "url": "https://trust.example/fhir/Observation?patient=p1&page=2"},
        ],
    )
    parsed = parse_bundle(bundle)
    assert parsed.next_url == "https://trust.example/fhir/Observation?patient=p1&page=2"
    assert parsed.total == 40


def test_a_last_page_has_no_next_url():
    parsed = parse_bundle(searchset(observation()))
    assert parsed.next_url is None
    assert parsed.total is None


def test_full_urls_line_up_with_resources():
    bundle = searchset(observation("a"), observation("b"))
    bundle["entry"].insert(1, {"resource": {"resourceType": "Nope"}})
    parsed = parse_bundle(bundle)
    assert [r.id for r in parsed.resources] == ["a", "b"]
    assert parsed.full_urls == [
        "https://trust.example/fhir/Observation/a",
        "https://trust.example/fhir/Observation/b",
    ]


def test_a_batch_response_is_split_into_status_and_inner_bundle():
    not_found = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "not-found", "diagnostics": "Unknown resource type"}
        ],
    }
    response = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {"resource": searchset(observation()), "response": {"status": "200 OK"}},
            {"response": {"status": "404 Not Found", "outcome": not_found}},
            {"response": {"status": "garbled"}},
        ],
    }
    parts = split_batch_response(json.dumps(response))
    assert [status for status, _ in parts] == [200, 404, 0]
    assert len(parse_bundle(parts[0][1]).resources) == 1
    with pytest.raises(FhirOperationOutcome, match="Unknown resource type"):
        parse_bundle(parts[1][1])
    assert parts[2][1] is None


def test_a_body_that_is_not_a_batch_response_is_refused():
    with pytest.raises(NotFHIR, match="batch-response"):
        split_batch_response(searchset(observation()))
