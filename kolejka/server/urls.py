from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from .grid.views import auth, blobs, nodes, stats, tasks

handler400 = "kolejka.server.grid.errors.bad_request"
handler403 = "kolejka.server.grid.errors.permission_denied"
handler404 = "kolejka.server.grid.errors.page_not_found"
handler500 = "kolejka.server.grid.errors.server_error"

API = "api/v1/"

urlpatterns = [
    path("admin/", admin.site.urls),
    path(API + "schema/", SpectacularAPIView.as_view(), name="schema"),
    path(API + "auth/token/", auth.TokenView.as_view()),
    path(API + "auth/me/", auth.MeView.as_view()),
    path(API + "blobs/", blobs.BlobUploadView.as_view()),
    path(API + "blobs/<str:reference>/", blobs.BlobView.as_view()),
    path(API + "tasks/", tasks.TaskListView.as_view()),
    path(API + "tasks/batch/", tasks.BatchSubmitView.as_view()),
    path(API + "tasks/<str:key>/", tasks.TaskView.as_view()),
    path(API + "tasks/<str:key>/cancel/", tasks.TaskCancelView.as_view()),
    path(API + "tasks/<str:key>/retry/", tasks.TaskRetryView.as_view()),
    path(API + "tasks/<str:key>/result/", tasks.TaskResultView.as_view()),
    path(API + "batches/<str:key>/", tasks.BatchView.as_view()),
    path(API + "nodes/", nodes.NodeListView.as_view()),
    path(API + "nodes/<str:name>/", nodes.NodeView.as_view()),
    path(API + "nodes/<str:name>/drain/", nodes.NodeDrainView.as_view()),
    path(API + "nodes/<str:name>/health/", nodes.NodeHealthView.as_view()),
    path(API + "nodes/<str:name>/claim/", nodes.NodeClaimView.as_view()),
    path(API + "leases/<str:lease_id>/heartbeat/", nodes.LeaseHeartbeatView.as_view()),
    path(API + "leases/<str:lease_id>/result/", nodes.LeaseResultView.as_view()),
    path(API + "leases/<str:lease_id>/fail/", nodes.LeaseFailView.as_view()),
    path(API + "leases/<str:lease_id>/release/", nodes.LeaseReleaseView.as_view()),
    path(API + "images/", stats.ImagesView.as_view()),
    path(API + "queue/stats/", stats.QueueStatsView.as_view()),
]
