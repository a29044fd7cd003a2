from django.core.management.base import BaseCommand

from demo.password import demo_password
from demo.region import USERS


class Command(BaseCommand):
    help = "Prints the demo region's logins."

    def handle(self, *args, **options):
        self.stdout.write(f"Demo logins (password for all: {demo_password()}):")
        for spec in USERS:
            self.stdout.write(f"  {spec.username:<20} {spec.role} at {spec.org}")
