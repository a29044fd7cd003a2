"""Administrators manage the record sources here. Patients, snapshots and source results hold
patient data and are not in the admin."""

from django.contrib import admin

from .models import Source


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "base_url", "organisation", "timeout_s", "enabled"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "base_url"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "base_url", "organisation", "enabled"]}),
        ("Limits", {"fields": ["timeout_s", "page_cap", "max_response_mb"]}),
        ("Authentication", {"fields": ["auth", "token", "username", "password"]}),
    ]
