"""Error pages in the NHS.UK look (Django's defaults look for .html templates)."""

from django.shortcuts import render


def not_found(request, exception=None):
    return render(request, "404.jinja", status=404)


def forbidden(request, exception=None):
    return render(request, "403.jinja", status=403)


def server_error(request):
    return render(request, "500.jinja", status=500)


def csrf_failure(request, reason=""):
    return render(request, "csrf_failure.jinja", status=403)
