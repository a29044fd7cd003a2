"""When an htmx request is sent to the login page (signed out, session expired), redirect the
whole page. A 302 will not do: the browser follows it inside htmx's XMLHttpRequest and htmx swaps
the login form into the fragment it was updating. So the 302 becomes an empty 401 carrying
``HX-Redirect``, as ``session_limits.signed_out_response`` answers an expired session."""

from django.conf import settings
from django.http import HttpResponse
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
            whole_page = HttpResponse(status=401)
            whole_page["HX-Redirect"] = response["Location"]
            return whole_page
        return response
