"""Routes under /api/webhooks/."""

from rest_framework.routers import SimpleRouter

from .api import EndpointViewSet, MessageViewSet

router = SimpleRouter()
router.register("endpoints", EndpointViewSet, basename="webhook-endpoint")
router.register("messages", MessageViewSet, basename="webhook-message")

urlpatterns = router.urls
