"""Ends a session after SESSION_IDLE_TIMEOUT without activity (15 minutes) or
SESSION_ABSOLUTE_TIMEOUT after login (12 hours), whichever is first. Only what the user does is
activity.

Background requests: a request the browser makes on its own (polling for progress, the session
timeout warning's status checks, a follower page keeping up with a live meeting) must not keep a
session alive, or a screen left alone would stay signed in for as long as it polls. So:

- every polling element sends the header ``X-Background-Poll: 1``; in a template, put
  ``hx-headers='{"X-Background-Poll": "1"}'`` on the element that has ``hx-trigger="every ..."``
  (htmx merges it with the CSRF header set on ``<body>``); from JavaScript, send the same header
  (``static/js/session.js`` also adds it to any htmx ``every`` poll that forgot it);
- a view that is only ever polled is also marked ``@background_poll``, so it never extends the
  session even if a caller forgets the header;
- background requests are still checked against both limits. Once the session has ended, an htmx
  or background request (or a script asking for JSON) gets an empty 401 with ``HX-Redirect`` to
  the sign-in page: htmx then loads the sign-in page in place of the whole page, so no patient
  data stays on screen. (A 302 would not do: the browser follows it inside the XMLHttpRequest
  and htmx would swap the sign-in form into the fragment.)
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

LOGIN_AT = "login_at"
LAST_SEEN = "last_seen"
BACKGROUND_POLL_HEADER = "X-Background-Poll"


def is_background_poll(request) -> bool:
    return request.headers.get(BACKGROUND_POLL_HEADER) == "1"


def background_poll(view):
    """Marks a view as polled in the background: requests to it never extend the session."""
    view.background_poll = True
    return view


@dataclass(frozen=True)
class TimeLeft:
    idle: timedelta
    absolute: timedelta

    @property
    def idle_expired(self) -> bool:
        return self.idle < timedelta(0)

    @property
    def absolute_expired(self) -> bool:
        return self.absolute < timedelta(0)


def time_left(session, now: datetime) -> TimeLeft:
    """How long the session has before each limit ends it (negative once it has)."""
    login_at = _read(session, LOGIN_AT) or now
    last_seen = _read(session, LAST_SEEN) or now
    return TimeLeft(
        idle=last_seen + settings.SESSION_IDLE_TIMEOUT - now,
        absolute=login_at + settings.SESSION_ABSOLUTE_TIMEOUT - now,
    )


def record_activity(session, now: datetime) -> None:
    session[LAST_SEEN] = now.isoformat()


def signed_out_response(request):
    """Sends the browser to the sign-in page: the whole page, for htmx and background requests."""
    login = reverse(settings.LOGIN_URL)
    from_script = not request.accepts("text/html")  # fetch() asking for JSON
    if request.headers.get("HX-Request") or is_background_poll(request) or from_script:
        page = _page_shown(request)
        response = HttpResponse(status=401)
        response["HX-Redirect"] = f"{login}?next={quote(page, safe='/')}" if page else login
        return response
    return redirect(f"{login}?next={request.path}")


class SessionLimitsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            session = request.session
            now = timezone.now()
            left = time_left(session, now)
            if left.idle_expired or left.absolute_expired:
                logout(request)
                messages.info(
                    request,
                    f"You were signed out after {_in_words(settings.SESSION_IDLE_TIMEOUT)} "
                    "without activity."
                    if left.idle_expired
                    else "You were signed out because you signed in more than "
                    f"{_in_words(settings.SESSION_ABSOLUTE_TIMEOUT)} ago.",
                )
                return signed_out_response(request)
            if LOGIN_AT not in session:
                session[LOGIN_AT] = now.isoformat()
            if LAST_SEEN not in session:
                record_activity(session, now)
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        # Here rather than in __call__ so that a request refused before its view (a failed CSRF
        # check) is not activity either.
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not is_background_poll(request)
            and not getattr(view_func, "background_poll", False)
        ):
            record_activity(request.session, timezone.now())
        return None


def _read(session, key) -> datetime | None:
    value = session.get(key)
    return datetime.fromisoformat(value) if value else None


def _page_shown(request) -> str:
    """The path of the page an htmx or background request came from, to return to it after
    signing in (never the fragment's own URL)."""
    for header in ("HX-Current-URL", "Referer"):
        url = request.headers.get(header, "")
        if url and url_has_allowed_host_and_scheme(
            url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            parts = urlsplit(url)
            return parts.path + (f"?{parts.query}" if parts.query else "")
    return ""


def _in_words(delta: timedelta) -> str:
    count, unit = int(delta.total_seconds()), "second"
    for name, size in (("hour", 3600), ("minute", 60)):
        if count >= size and count % size == 0:
            count, unit = count // size, name
            break
    return f"{count} {unit}{'' if count == 1 else 's'}"
