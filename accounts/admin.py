"""Administrators manage organisations, users and roles here. Patient data is not editable in
the admin (it would bypass scoping and audit); the audit log has its own page."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import Membership, Organisation, User


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["ods_code", "name", "kind", "mesh_mailbox_id"]
    list_filter = ["kind"]
    search_fields = ["ods_code", "name"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    inlines = [MembershipInline]
