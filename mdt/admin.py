"""Teams and their members are managed in the admin; meetings and cases are not (they hold
patient data and are changed through the audited pages)."""

from django.contrib import admin

from .models import Team, TeamMember


class TeamMemberInline(admin.TabularInline):
    model = TeamMember
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "tumour_site", "host"]
    list_filter = ["tumour_site", "host"]
    inlines = [TeamMemberInline]
