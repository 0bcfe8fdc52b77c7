from typing import cast

from django.contrib import admin
from django.urls import URLPattern, include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView
from rest_framework import routers
from rest_framework.negotiation import DefaultContentNegotiation

from .grid.views import auth, blobs, legacy, metrics, nodes, schedules, stats, tasks, waiting

handler400 = "kolejka.server.grid.errors.bad_request"
handler403 = "kolejka.server.grid.errors.permission_denied"
handler404 = "kolejka.server.grid.errors.page_not_found"
handler500 = "kolejka.server.grid.errors.server_error"


# DRF's list route (``prefix/``): GET list, POST create.
_LIST = cast(routers.Route, routers.SimpleRouter.routes[0])


class Router(routers.SimpleRouter):
    """DRF's router, plus ``PUT`` on a collection (the viewset's `upsert`) for resources named
    by a field of their body: ``PUT images/ {"name": ..., "reference": ...}``."""

    routes = [  # noqa: RUF012  (DRF's own attribute)
        _LIST._replace(mapping={**_LIST.mapping, "put": "upsert"}),
        *routers.SimpleRouter.routes[1:],
    ]


router = Router()
router.register("auth", auth.AuthViewSet, basename="auth")
router.register("blobs", blobs.BlobViewSet, basename="blobs")
router.register("tasks", tasks.TaskViewSet, basename="tasks")
router.register("batches", tasks.BatchViewSet, basename="batches")
router.register("schedules", schedules.ScheduleViewSet, basename="schedules")
router.register("nodes", nodes.NodeViewSet, basename="nodes")
router.register("leases", nodes.LeaseViewSet, basename="leases")
router.register("images", stats.ImageViewSet, basename="images")
router.register("queue", stats.QueueViewSet, basename="queue")

API = "api/v1/"
# The long-polls' routes, which wait on the event loop under ASGI (grid/views/waiting.py).
WAITING = {"tasks-detail", "tasks-result", "tasks-log", "nodes-claim"}


def api_urls() -> list[URLPattern]:
    patterns = [pattern for pattern in router.urls if isinstance(pattern, URLPattern)]
    for pattern in patterns:
        if pattern.name in WAITING:
            pattern.callback = waiting.waiting(pattern.callback)
    assert {pattern.name for pattern in patterns} >= WAITING
    return patterns


# The original kolejka's paths (docs/api.md, "The legacy API"): HEAD wherever GET is.
LEGACY = [
    path("login/", legacy.LegacyAuthViewSet.as_view({"get": "login_page", "post": "login"})),
    path("logout/", legacy.LegacyAuthViewSet.as_view({"get": "logout", "post": "logout"})),
    path("settings/", legacy.LegacyAuthViewSet.as_view({"get": "server_settings"})),
    path("blob/reference/", legacy.LegacyBlobViewSet.as_view({"post": "upload"})),
    path("blob/reference/<str:reference>/", legacy.LegacyBlobViewSet.as_view({"get": "retrieve"})),
    path(
        "blob/blob/<str:reference>/",
        legacy.LegacyBlobViewSet.as_view({"get": "retrieve", "post": "known"}),
    ),
    path("task/task/", legacy.LegacyTaskViewSet.as_view({"post": "submit"})),
    path(
        "task/task/<str:key>/",
        legacy.LegacyTaskViewSet.as_view({"get": "retrieve", "delete": "destroy"}),
    ),
    path("task/result/<str:key>/", legacy.LegacyTaskViewSet.as_view({"get": "result_get"})),
]

urlpatterns = [
    # The web board; `/login/` and `/logout/` are the legacy API's.
    path("", RedirectView.as_view(pattern_name="board:tasks")),
    path("board/", include("kolejka.server.board.urls")),
    path("admin/", admin.site.urls),
    path(
        API + "schema/",
        SpectacularAPIView.as_view(content_negotiation_class=DefaultContentNegotiation),
        name="schema",
    ),
    path(API, include(api_urls())),
    path("metrics", metrics.MetricsViewSet.as_view({"get": "list"}), name="metrics"),
    *LEGACY,
]
