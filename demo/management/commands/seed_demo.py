from django.core.management.base import BaseCommand

from accounts.audit import record_system_event
from demo.password import demo_password
from demo.region import seed_region


class Command(BaseCommand):
    help = (
        "Seeds the demo region (organisations, teams, users, 200 patients, meetings). Idempotent."
    )

    def handle(self, *args, **options):
        counts = seed_region(demo_password())
        record_system_event(
            "seed_demo", "Seeding the demo region with synthetic patients", "seed_demo"
        )
        self.stdout.write(
            "Demo region: " + ", ".join(f"{value} {name}" for name, value in counts.items())
        )
