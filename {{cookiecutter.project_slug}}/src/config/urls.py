"""Top-level URLs: the index and health check (apps.main) and the admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("apps.main.urls")),
    path("admin/", admin.site.urls),
]
