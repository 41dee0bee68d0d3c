from django.conf import settings
from django.http import HttpRequest


def project(request: HttpRequest) -> dict[str, str]:
    """The project's name, in every page's title and header."""
    return {"project_name": settings.PROJECT_NAME}
