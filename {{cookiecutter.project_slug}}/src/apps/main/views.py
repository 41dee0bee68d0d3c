from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.main.health import public_view, run_checks


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 when every dependency answers, 503 otherwise, so load balancers and compose can act on it.

    Everyone sees the state of each check; signed-in staff also see its details (latency, error).
    """
    healthy, checks = run_checks()
    if not request.user.is_staff:
        checks = public_view(checks)
    return JsonResponse(
        {"status": "ok" if healthy else "degraded", "checks": checks},
        status=200 if healthy else 503,
    )
