from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from .models import (
    Backlog,
    Batch,
    Blob,
    BlobGrant,
    Image,
    Lease,
    Node,
    Task,
    TaskFile,
    User,
    Wakeup,
)


@admin.register(User)
class KolejkaUserAdmin(UserAdmin):
    list_display = ("username", "role", "quota", "is_active", "last_login")
    list_filter = ("role", "is_active")
    fieldsets = (*UserAdmin.fieldsets, ("kolejka", {"fields": ("role", "quota")}))  # type: ignore[misc]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("key", "owner", "state", "priority", "attempts", "node", "created")
    list_filter = ("state",)
    search_fields = ("key", "owner__username")
    raw_id_fields = ("owner", "batch", "node", "lease")


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ("id", "task", "node", "attempt", "expires", "ended", "outcome")
    list_filter = ("outcome",)
    raw_id_fields = ("task", "node")


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "slots", "draining", "last_seen")
    list_filter = ("draining",)


@admin.register(Blob)
class BlobAdmin(admin.ModelAdmin):
    list_display = ("reference", "size", "created", "touched")
    search_fields = ("reference",)


@admin.register(BlobGrant)
class BlobGrantAdmin(admin.ModelAdmin):
    list_display = ("user", "blob", "created")
    raw_id_fields = ("user", "blob")


@admin.register(TaskFile)
class TaskFileAdmin(admin.ModelAdmin):
    list_display = ("task", "name", "blob", "output")
    raw_id_fields = ("task", "blob")


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ("name", "blob", "updated")
    raw_id_fields = ("blob",)


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ("key", "owner", "created")


@admin.register(Backlog)
class BacklogAdmin(admin.ModelAdmin):
    list_display = ("owner", "priority", "queued")


@admin.register(Wakeup)
class WakeupAdmin(admin.ModelAdmin):
    list_display = ("id", "topic", "created")
