"""Top-level URLs: the fleet dashboard (also at /), the health check, the JSON API and the admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("apps.dashboard.urls")),
    path("", include("apps.main.urls")),
    path("api/", include("apps.api.urls")),
    path("admin/", admin.site.urls),
]
