"""Ends a session after 15 minutes without activity or 12 hours after login, whichever is first."""

from datetime import datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.shortcuts import redirect
from django.utils import timezone

LOGIN_AT = "login_at"
LAST_SEEN = "last_seen"


def _read(session, key) -> datetime | None:
    value = session.get(key)
    return datetime.fromisoformat(value) if value else None


class SessionLimitsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = timezone.now()
            session = request.session
            login_at = _read(session, LOGIN_AT) or now
            last_seen = _read(session, LAST_SEEN) or now
            idle = now - last_seen > settings.SESSION_IDLE_TIMEOUT
            too_old = now - login_at > settings.SESSION_ABSOLUTE_TIMEOUT
            if idle or too_old:
                logout(request)
                messages.info(
                    request,
                    "You were signed out after 15 minutes without activity."
                    if idle
                    else "You were signed out because you signed in more than 12 hours ago.",
                )
                return redirect(f"{_login_path()}?next={request.path}")
            session[LOGIN_AT] = login_at.isoformat()
            session[LAST_SEEN] = now.isoformat()
        return self.get_response(request)


def _login_path() -> str:
    from django.urls import reverse

    return reverse(settings.LOGIN_URL)
