from django.urls import path

from . import api

urlpatterns = [
    path("express/tasks", api.ExpressTaskListView.as_view(), name="express-task-list"),
    path("express/tasks/upsert/<str:external_id>", api.UpsertView.as_view(), name="express-task-upsert"),
    path("express/tasks/<str:external_id>", api.ExpressTaskView.as_view(), name="express-task"),
    path("express/tasks/<str:external_id>/status/new", api.ExpressStatusNewView.as_view(), name="express-status-new"),
    path("express/tasks/<str:external_id>/status", api.ExpressStatusListView.as_view(), name="express-status-list"),
    path("task/", api.TravtusTaskView.as_view(), name="travtus-task"),
    path("requests/<uuid:request_id>", api.TaskRequestView.as_view(), name="task-request"),
]
