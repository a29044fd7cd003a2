import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo.histories import write_demo_histories
from demo.sources import DEMO_PDS_PORT, DEMO_SOURCES, run_demo_servers
from records.models import Patient


class Command(BaseCommand):
    help = (
        "Serves the demo region's FHIR sources (RRK, RWP, RL4, the GP record and the "
        "demographics service) on ports 8101-8105 from var/demo-fhir, writing the patients' "
        "histories from the patient index first if they are missing (or with --rewrite). "
        "Runs until interrupted."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--data",
            type=Path,
            default=Path(settings.BASE_DIR) / "var" / "demo-fhir",
            help="where the histories are (default var/demo-fhir)",
        )
        parser.add_argument("--rewrite", action="store_true", help="write the histories again")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--latency-ms", type=int, default=0)
        parser.add_argument(
            "--write-only", action="store_true", help="write the histories if needed and exit"
        )

    def handle(self, *args, data: Path, rewrite, seed, latency_ms, write_only, **options):
        # manifest.json is written last, so its presence means a complete set of histories.
        if rewrite or not (data / "manifest.json").exists():
            patients = list(Patient.objects.select_related("gp_practice").order_by("nhs_number"))
            if not patients:
                raise CommandError("The patient index is empty: run `manage.py seed_demo` first.")
            counts = write_demo_histories(patients, data, seed=seed)
            self.stdout.write(
                f"Wrote histories for {len(patients)} patients to {data}: "
                + ", ".join(f"{count} {source}" for source, count in counts.items())
            )
        if write_only:
            return
        servers = run_demo_servers(data, latency_ms=latency_ms)
        names = [name for name, _, _ in DEMO_SOURCES] + ["Demographics service (PDS)"]
        for name, server in zip(names, servers, strict=True):
            self.stdout.write(f"  {name:<32} {server.base_url}")
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        try:
            while not stopped.wait(1):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            for server in servers:
                server.stop()
        self.stdout.write(f"Stopped the demo sources (ports {DEMO_SOURCES[0][2]}-{DEMO_PDS_PORT}).")
