"""/api/: the JSON API, its OpenAPI schema and the Swagger UI."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from apps.api import views

app_name = "api"

router = SimpleRouter()
router.register("devices", views.DeviceViewSet, basename="device")

urlpatterns = [
    *router.urls,
    path("devices/<str:username>/history/", views.DeviceHistoryView.as_view(), name="device-history"),
    path("devices/<str:username>/presence/", views.DevicePresenceView.as_view(), name="device-presence"),
    path("devices/<str:username>/commands/", views.DeviceCommandsView.as_view(), name="device-commands"),
    path("commands/<uuid:pk>/", views.CommandDetailView.as_view(), name="command-detail"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
