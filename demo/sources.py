"""The demo region's FHIR sources as data (three trusts' records, the GP record and the
demographics service), and starting them all on their fixed local ports."""

from pathlib import Path

from .fhir_server import FhirServer

# (name, ODS code or "GP", port): each serves <data root>/<code>/ at http://127.0.0.1:<port>/fhir
DEMO_SOURCES = [
    ("UHB electronic patient record", "RRK", 8101),
    ("Worcestershire Acute EPR", "RWP", 8102),
    ("Royal Wolverhampton EPR", "RL4", 8103),
    ("GP record", "GP", 8104),
]
DEMO_PDS_PORT = 8105  # the demographics service (PDS shape), serving <data root>/PDS/
DEMO_HOST = "127.0.0.1"


def demo_source_url(port: int, host: str = DEMO_HOST) -> str:
    return f"http://{host}:{port}/fhir"


def run_demo_servers(
    data_root: Path,
    latency_ms: int = 0,
    *,
    host: str = DEMO_HOST,
    ports: dict[str, int] | None = None,
) -> list[FhirServer]:
    """Starts the four sources and the demographics service; returns them started, in
    DEMO_SOURCES order with the demographics service last. `ports` overrides a port by code
    ("RRK", ..., "PDS"), e.g. 0 in tests. If one cannot start, those already started stop."""
    ports = ports or {}
    data_root = Path(data_root)
    servers: list[FhirServer] = []
    try:
        for _, code, port in DEMO_SOURCES:
            server = FhirServer(
                data_root / code, port=ports.get(code, port), latency_ms=latency_ms, host=host
            )
            servers.append(server.start())
        pds = FhirServer(
            data_root / "PDS",
            port=ports.get("PDS", DEMO_PDS_PORT),
            latency_ms=latency_ms,
            host=host,
            pds=True,
        )
        servers.append(pds.start())
    except Exception:
        for server in servers:
            server.stop()
        raise
    return servers
