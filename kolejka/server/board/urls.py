from django.contrib.auth import views as auth
from django.urls import path

from . import batches, nodes, tasks

app_name = "board"
urlpatterns = [
    path("", tasks.board, name="tasks"),
    path("columns/", tasks.columns_fragment, name="columns"),
    path("tasks/<str:key>/", tasks.task_page, name="task"),
    path("tasks/<str:key>/live/", tasks.task_fragment, name="task-live"),
    path("tasks/<str:key>/cancel/", tasks.cancel, name="cancel"),
    path("tasks/<str:key>/retry/", tasks.retry, name="retry"),
    path("tasks/<str:key>/rejudge/", tasks.rejudge, name="rejudge"),
    path("tasks/<str:key>/files/<path:name>", tasks.download, name="file"),
    path("batches/", batches.batches_page, name="batches"),
    path("batches/live/", batches.batches_fragment, name="batches-live"),
    path("nodes/", nodes.nodes_page, name="nodes"),
    path("nodes/live/", nodes.nodes_fragment, name="nodes-live"),
    path("nodes/<str:name>/drain/", nodes.drain, name="drain"),
    path(
        "login/",
        auth.LoginView.as_view(
            template_name="board/login.html",
            redirect_authenticated_user=True,
            next_page="board:tasks",
        ),
        name="login",
    ),
    path("logout/", auth.LogoutView.as_view(next_page="board:login"), name="logout"),
]
