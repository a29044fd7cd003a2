"""Loads cancer registry CSV files from the command line with a progress bar, then prints the
import report: manage.py import_registry TUMOURS.csv [--treatments TREATMENTS.csv] [--quiet]."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from registry.importer import import_treatments, import_tumours
from registry.models import ImportRun


class Command(BaseCommand):
    # No system checks: they import every app's URLs and views, seconds of start-up that a data
    # load does not need (migrate and the web server run them).
    requires_system_checks = []
    help = (
        "Imports a cancer registry tumour file (COSD items, one row per tumour) and, optionally, "
        "its treatments file, then prints the report. Exits non-zero only for a file that cannot "
        "be read at all; rows that fail a check are quarantined and listed."
    )

    def add_arguments(self, parser):
        parser.add_argument("tumours", metavar="FILE", help="the tumour CSV file")
        parser.add_argument(
            "--treatments", metavar="FILE", help="a treatments CSV file, loaded after the tumours"
        )
        parser.add_argument("--quiet", action="store_true", help="no progress bar")
        parser.add_argument(
            "--show", type=int, default=20, metavar="N", help="quarantined lines to list (20)"
        )

    def handle(self, *args, tumours, treatments, quiet, show, **options):
        run = self._import(import_tumours, tumours, quiet)
        self._report(run, show)
        if treatments and run.status == ImportRun.Status.FAILED:
            self.stdout.write("Treatments not imported: the tumour file could not be read.")
        elif treatments:
            treatment_run = self._import(import_treatments, treatments, quiet)
            self._report(treatment_run, show)
            if treatment_run.status == ImportRun.Status.FAILED:
                raise CommandError(treatment_run.error)
        if run.status == ImportRun.Status.FAILED:
            raise CommandError(run.error)

    def _import(self, importer, path: str, quiet: bool) -> ImportRun:
        # Progress goes to stderr (and only to a terminal, unless --quiet): stdout is the report.
        file = Path(path)
        with tqdm(
            desc=file.name,
            total=file.stat().st_size if file.is_file() else None,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=True if quiet else None,
            file=sys.stderr,
        ) as bar:

            def progress(bytes_read: int, bytes_total: int, run: ImportRun) -> None:
                bar.total = bytes_total
                bar.set_postfix_str(
                    f"{run.rows_read:,} rows, {run.rows_quarantined:,} quarantined", refresh=False
                )
                bar.update(bytes_read - bar.n)

            return importer(path, progress=progress)

    def _report(self, run: ImportRun, show: int) -> None:
        write = self.stdout.write
        write(f"{run.get_kind_display()} from {run.file_name} (import #{run.pk}): {run.status}")
        if run.status == ImportRun.Status.FAILED:
            write(f"  {run.error}")
            if not run.rows_read:
                return
        counts = [
            ("rows read", run.rows_read),
            ("created", run.rows_created),
            ("updated", run.rows_updated),
            ("unchanged", run.rows_unchanged),
        ]
        if run.kind == ImportRun.Kind.TUMOURS:
            counts.append(("older (ignored)", run.rows_older))
        counts.append(("quarantined", run.rows_quarantined))
        for label, count in counts:
            write(f"  {label:<16}{count:>12,}")
        unknown = getattr(run, "unknown_submitters", {})
        if unknown:
            listed = ", ".join(
                f"{code} ({count:,} rows)" for code, count in sorted(unknown.items())
            )
            write(
                f"  Loaded but flagged, submitting organisation not known to the region: {listed}"
            )
        if run.rows_quarantined and show > 0:
            write(f"  Quarantined lines (the first {min(show, run.rows_quarantined)}):")
            for row in run.quarantined.order_by("line")[:show]:
                lead = f"    line {row.line}: "
                first, *rest = row.reasons
                write(lead + first)
                for reason in rest:
                    write(" " * len(lead) + reason)
