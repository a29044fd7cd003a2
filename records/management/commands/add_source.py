from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import URLValidator

from accounts.models import Organisation
from records.models import Source


class Command(BaseCommand):
    help = "Adds (or updates) a FHIR R4 record source: manage.py add_source NAME URL."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("url")
        parser.add_argument("--ods", help="ODS code of the organisation that owns the source")
        parser.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
        parser.add_argument("--token", default="", help="bearer token")
        parser.add_argument("--disabled", action="store_true")

    def handle(self, *args, name, url, ods, timeout, token, disabled, **options):
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError as error:
            raise CommandError(f"{url!r} is not an http(s) URL.") from error
        organisation = None
        if ods:
            organisation = Organisation.objects.filter(ods_code=ods.upper()).first()
            if organisation is None:
                raise CommandError(f"No organisation has the ODS code {ods!r}.")
        source, created = Source.objects.update_or_create(
            name=name,
            defaults={
                "kind": Source.Kind.FHIR,
                "base_url": url,
                "organisation": organisation,
                "timeout_s": timeout,
                "auth": Source.Auth.BEARER if token else Source.Auth.NONE,
                "token": token,
                "enabled": not disabled,
            },
        )
        self.stdout.write(f"{'Added' if created else 'Updated'} source {source.name}: {url}")
