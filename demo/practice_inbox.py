"""The demo region's GP practices at the other end of MESH: a process that, every few seconds,
lists each demo practice's MESH inbox, downloads every message and acknowledges it, as a
practice's document workflow would. MESH tracking then says the letter was acknowledged.

One practice is deliberately left unpolled, so that its letters stay ``sent`` and show as overdue.
Each demo practice has a mailbox of its own in the local mesh-sandbox (``scripts/mesh-sandbox.sh
run`` registers the ids ``practice_mailbox_ids()`` lists, with the sandbox's password).
"""

import logging
import threading

import requests
from mesh_client import MeshError

logger = logging.getLogger(__name__)

# Dudley Road Family Practice never reads its MESH inbox: its letters show as overdue.
UNPOLLED_PRACTICE = "M88004"
# The password mesh-sandbox gives the mailboxes it registers from its store's folders.
SANDBOX_MAILBOX_PASSWORD = "password"  # noqa: S105 - not a secret: the sandbox's fixed one
DEFAULT_INTERVAL_S = 3.0


def practice_mailbox_id(ods_code: str) -> str:
    """A demo practice's MESH mailbox id, in the shape of real ones (ODS code, "OT", number)."""
    return f"{ods_code.upper()}OT001"


def practice_mailbox_ids() -> list[str]:
    """Every demo practice's mailbox (the unpolled one too): what the sandbox must know."""
    from .region import PRACTICES

    return [practice_mailbox_id(code) for code, _, _ in PRACTICES]


def polled_mailboxes() -> list[str]:
    """The mailboxes of the demo practices, as seeded in the database, except the unpolled one."""
    from accounts.models import Organisation

    from .region import PRACTICES

    codes = [code for code, _, _ in PRACTICES if code != UNPOLLED_PRACTICE]
    return sorted(
        Organisation.objects.filter(ods_code__in=codes, kind=Organisation.Kind.GP_PRACTICE)
        .exclude(mesh_mailbox_id="")
        .values_list("mesh_mailbox_id", flat=True)
    )


def drain_mailbox(mailbox_id: str, password: str = SANDBOX_MAILBOX_PASSWORD) -> list[str]:
    """Downloads and acknowledges every message in one mailbox's inbox; their message ids. The
    documents themselves are dropped: this stands in for the practice's system."""
    from mdt.mesh import client

    done = []
    with client(mailbox_id, password) as mesh:
        for message_id in mesh.list_messages():
            message = mesh.retrieve_message(message_id)
            try:
                size = len(message.read())
            finally:
                message.close()
            mesh.acknowledge_message(message_id)
            logger.info(
                "Practice mailbox %s acknowledged %s (%s bytes)", mailbox_id, message_id, size
            )
            done.append(message_id)
    return done


def poll_once(mailboxes: list[str]) -> int:
    """One round over the mailboxes; how many messages were acknowledged. A mailbox that fails
    is logged and left for the next round."""
    count = 0
    for mailbox_id in mailboxes:
        try:
            count += len(drain_mailbox(mailbox_id))
        except requests.ConnectionError:
            logger.warning("MESH is not answering; the practices try again shortly")
            break
        except (MeshError, requests.RequestException) as error:
            logger.warning("Practice mailbox %s: %s", mailbox_id, error)
    return count


def run(interval_s: float = DEFAULT_INTERVAL_S, stop: threading.Event | None = None) -> None:
    """Polls until ``stop`` is set (or forever). The mailbox list is read again every round, so
    seeding while this runs is picked up."""
    stop = stop or threading.Event()
    while not stop.is_set():
        poll_once(polled_mailboxes())
        stop.wait(interval_s)
