"""The demo region's shared password: DEMO_PASSWORD if set, else one generated on first seed and
kept in var/demo-password so `make run` can print it every time."""

import os
import secrets
from pathlib import Path

from django.conf import settings


def demo_password() -> str:
    if os.environ.get("DEMO_PASSWORD"):
        return os.environ["DEMO_PASSWORD"]
    path = Path(settings.BASE_DIR) / "var" / "demo-password"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    password = "mdt-" + secrets.token_urlsafe(9)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password
