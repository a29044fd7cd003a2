"""The session timeout warning's endpoints: how long the session has left (polled in the
background, so asking never extends it) and "Stay signed in" (the user acting, so it does)."""

from django.conf import settings
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from .session_limits import background_poll, record_activity, signed_out_response, time_left


@background_poll
@require_GET
def session_status(request):
    if not request.user.is_authenticated:
        return signed_out_response(request)
    return _time_left_response(request)


@require_POST
def stay_signed_in(request):
    if not request.user.is_authenticated:
        return signed_out_response(request)
    record_activity(request.session, timezone.now())
    return _time_left_response(request)


def _time_left_response(request):
    left = time_left(request.session, timezone.now())
    return JsonResponse(
        {
            "idle_seconds_left": round(left.idle.total_seconds(), 1),
            "absolute_seconds_left": round(left.absolute.total_seconds(), 1),
            "idle_timeout_seconds": settings.SESSION_IDLE_TIMEOUT.total_seconds(),
            "warning_seconds": settings.SESSION_WARNING_BEFORE.total_seconds(),
        }
    )
