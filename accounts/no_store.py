"""Keeps pages for signed-in users out of every cache: they may show patient data."""

from django.utils.cache import add_never_cache_headers


class NoStoreMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        shows_patients = bool(getattr(request, "audit", None) and request.audit.patient_ids)
        if shows_patients or (user is not None and user.is_authenticated):
            add_never_cache_headers(response)  # Cache-Control: max-age=0, no-cache, no-store, ...
        return response
