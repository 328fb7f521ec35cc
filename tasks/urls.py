from django.urls import path
from rest_framework.routers import SimpleRouter

from . import api, api_resources

router = SimpleRouter()
router.trailing_slash = "/?"  # both /api/tasks and /api/tasks/ answer
router.register("tasks", api_resources.TaskViewSet, basename="task")
router.register("persons", api_resources.PersonViewSet, basename="person")
router.register("groups", api_resources.GroupViewSet, basename="group")
router.register("units", api_resources.UnitViewSet, basename="unit")
router.register("resources", api_resources.ResourceViewSet, basename="resource")

urlpatterns = [
    path("express/tasks", api.ExpressTaskListView.as_view(), name="express-task-list"),
    path("express/tasks/upsert/<str:external_id>", api.UpsertView.as_view(), name="express-task-upsert"),
    path("express/tasks/<str:external_id>", api.ExpressTaskView.as_view(), name="express-task"),
    path("express/tasks/<str:external_id>/status/new", api.ExpressStatusNewView.as_view(), name="express-status-new"),
    path("express/tasks/<str:external_id>/status", api.ExpressStatusListView.as_view(), name="express-status-list"),
    path("task/", api.TravtusTaskView.as_view(), name="travtus-task"),
    path("requests/<uuid:request_id>", api.TaskRequestView.as_view(), name="task-request"),
    *router.urls,
]
