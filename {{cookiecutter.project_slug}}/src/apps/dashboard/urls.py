from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from apps.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboard:fleet"), name="index"),
    path("fleet/", views.fleet, name="fleet"),
    path("fleet/<str:username>/", views.device_detail, name="device"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="dashboard/login.html", redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
