import signal
import threading

from django.core.management.base import BaseCommand

from demo import practice_inbox


class Command(BaseCommand):
    help = (
        "The demo GP practices' side of MESH: every few seconds, downloads and acknowledges the "
        f"messages in each demo practice's mailbox except {practice_inbox.UNPOLLED_PRACTICE}'s "
        "(left unpolled, so its letters show as overdue). Runs until interrupted."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--interval", type=float, default=practice_inbox.DEFAULT_INTERVAL_S, help="seconds"
        )
        parser.add_argument("--once", action="store_true", help="one round, then exit")
        parser.add_argument(
            "--list-mailboxes",
            action="store_true",
            help="print every demo practice's mailbox id (for scripts/mesh-sandbox.sh) and exit",
        )

    def handle(self, *args, interval, once, list_mailboxes, **options):
        if list_mailboxes:
            self.stdout.write(" ".join(practice_inbox.practice_mailbox_ids()))
            return
        if once:
            count = practice_inbox.poll_once(practice_inbox.polled_mailboxes())
            self.stdout.write(f"Acknowledged {count} messages.")
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            practice_inbox.run(interval, stop)
        except KeyboardInterrupt:
            pass
