"""Prints a patient's merged record and each source's status, for scripts and support staff:
manage.py record_summary NHS_NUMBER [--source NAME=URL ...] [--json] --reason "..."."""

import hashlib
import json

from django.core.management.base import BaseCommand, CommandError

from accounts.audit import record_system_event
from records.models import Patient, Source
from records.nhs_numbers import InvalidNHSNumber, parse_nhs_number
from records.populate import sources_to_ask, summarise_now


class Command(BaseCommand):
    help = "Asks the record sources about a patient now and prints the merged summary."

    def add_arguments(self, parser):
        parser.add_argument("nhs_number")
        parser.add_argument(
            "--source",
            action="append",
            default=[],
            metavar="NAME=URL",
            help="ask only this FHIR R4 server (repeatable); NAME alone picks a configured source",
        )
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.add_argument(
            "--timeout", type=float, default=5.0, help="per-source timeout for --source URLs"
        )
        parser.add_argument(
            "--reason", default="Support: record_summary command", help="recorded in the audit log"
        )

    def handle(self, *args, nhs_number, source, json: bool, timeout, reason, **options):
        try:
            nhs = parse_nhs_number(nhs_number)
        except InvalidNHSNumber as error:
            raise CommandError(str(error)) from error
        sources = self._sources(source, timeout)
        if not sources:
            raise CommandError("No enabled sources to ask.")
        assessed, _answers = summarise_now(nhs, sources)
        patient = Patient.objects.filter(nhs_number=nhs).first()
        record_system_event(
            "command:record_summary", reason, "record_summary", [patient.pk] if patient else []
        )
        output = {"nhs_number": nhs, "sources": assessed.statuses, "summary": assessed.summary}
        if json:
            self.stdout.write(_dumps(output))
            return
        self._print(output)

    def _sources(self, specs: list[str], timeout: float) -> list[Source]:
        if not specs:
            return sources_to_ask()
        sources = []
        for spec in specs:
            name, _, url = spec.partition("=")
            if not url:
                configured = Source.objects.filter(name=name).first()
                if configured is None:
                    raise CommandError(f"No source is called {name!r}; give NAME=URL.")
                sources.append(configured)
                continue
            if not url.startswith(("http://", "https://")):
                raise CommandError(f"{url!r} is not an http(s) URL.")
            # A source for this run only, never saved: a negative id derived from the URL, so its
            # circuit breaker is its own and not another one-off source's.
            ad_hoc_id = -int(hashlib.sha256(url.encode()).hexdigest()[:12], 16)
            sources.append(Source(pk=ad_hoc_id, name=name, base_url=url, timeout_s=timeout))
        return sources

    def _print(self, output: dict) -> None:
        self.stdout.write(f"NHS number {output['nhs_number']}")
        for name, status in output["sources"].items():
            detail = f": {status['detail']}" if status["detail"] else ""
            self.stdout.write(f"  {name}: {status['label']} ({status['elapsed_ms']} ms){detail}")
        record = output["summary"].get("record") or {}
        for item in record.get("timeline") or []:
            origins = ", ".join(o["source"] for o in item.get("sources") or [])
            when = item.get("date") or "undated"
            self.stdout.write(f"  {when:<10}  {item['kind']:<18} {item['title']}  [{origins}]")
        for conflict in record.get("conflicts") or []:
            self.stdout.write(f"  CONFLICT: {conflict['description']}")


def _dumps(data) -> str:
    return json.dumps(data, indent=2, default=str)
