"""When an htmx request is sent to the login page (signed out, session expired), redirect the
whole page: otherwise htmx would swap the login form into the fragment it was updating."""

from django.conf import settings
from django.shortcuts import resolve_url


class HtmxLoginRedirectMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            request.headers.get("HX-Request")
            and response.status_code == 302
            and response["Location"].startswith(resolve_url(settings.LOGIN_URL))
        ):
            response["HX-Redirect"] = response["Location"]
        return response
