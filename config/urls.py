from django.contrib import admin
from django.urls import include, path

from .health import healthz

urlpatterns = [
    path("healthz/", healthz, name="healthz"),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("records/", include("records.urls")),
    path("registry/", include("registry.urls")),
    path("", include("mdt.urls")),
]

handler403 = "config.error_views.forbidden"
handler404 = "config.error_views.not_found"
handler500 = "config.error_views.server_error"
