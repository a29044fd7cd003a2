"""The demo region's sources: all five servers start from the written histories, and the
management command writes the histories only when they are missing or asked to."""

import json

import httpx
import pytest
from django.core.management import CommandError, call_command

from demo.histories import write_demo_histories
from demo.sources import DEMO_PDS_PORT, DEMO_SOURCES, run_demo_servers
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

NHS = "https://fhir.nhs.uk/Id/nhs-number"
ANY_FREE_PORT = dict.fromkeys(["RRK", "RWP", "RL4", "GP", "PDS"], 0)


def test_the_demo_sources_are_four_sources_and_the_demographics_service():
    assert [code for _, code, _ in DEMO_SOURCES] == ["RRK", "RWP", "RL4", "GP"]
    assert [port for _, _, port in DEMO_SOURCES] + [DEMO_PDS_PORT] == list(range(8101, 8106))


def test_run_demo_servers_serves_every_source_and_the_demographics_service(tmp_path):
    patient = PatientFactory()
    write_demo_histories([patient], tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    ids = manifest["patients"][patient.nhs_number]["ids"]
    search = {"identifier": f"{NHS}|{patient.nhs_number}"}

    servers = run_demo_servers(tmp_path, ports=ANY_FREE_PORT)
    try:
        *sources, pds = servers
        found = [httpx.get(f"{s.base_url}/Patient", params=search).json() for s in sources]
        demographics = httpx.get(f"{pds.base_url}/Patient/{patient.nhs_number}")
    finally:
        for server in servers:
            server.stop()

    assert len({server.base_url for server in servers}) == 5
    assert [bundle["entry"][0]["resource"]["id"] for bundle in found] == [
        ids[code] for code in ("RRK", "RWP", "RL4", "GP")
    ]
    assert demographics.json()["id"] == patient.nhs_number


def test_the_command_writes_histories_only_when_missing_or_asked(tmp_path):
    PatientFactory.create_batch(3)
    data = tmp_path / "demo-fhir"

    call_command("run_demo_sources", "--write-only", "--data", str(data))
    manifest = data / "manifest.json"
    written = manifest.stat().st_mtime_ns
    (data / "RRK" / "marker.json").write_text(json.dumps({"resourceType": "Basic"}))

    call_command("run_demo_sources", "--write-only", "--data", str(data))
    assert manifest.stat().st_mtime_ns == written
    assert (data / "RRK" / "marker.json").exists()

    call_command("run_demo_sources", "--write-only", "--rewrite", "--data", str(data))
    assert not (data / "RRK" / "marker.json").exists()
    assert len(json.loads(manifest.read_text())["patients"]) == 3


def test_the_command_needs_a_patient_index(tmp_path):
    with pytest.raises(CommandError, match="seed_demo"):
        call_command("run_demo_sources", "--write-only", "--data", str(tmp_path / "demo-fhir"))
