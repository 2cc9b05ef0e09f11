"""Liveness and readiness probes.

`/healthz` answers while the process runs. `/readyz` runs each check in
`settings.READINESS_CHECKS` (dotted paths to callables returning `(ok, detail)`) and says
by name which one is not ready, so an operator sees the reason without reading logs; while the
server shuts down it answers 503 with status `shutting_down`.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.utils.module_loading import import_string
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from llmsite.shutdown import drain

Check = Callable[[], tuple[bool, str]]


def database_check() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready", with its reason
        return False, f"database unreachable: {exc}"
    return True, connection.vendor


def run_checks() -> dict[str, dict[str, object]]:
    results: dict[str, dict[str, object]] = {}
    for name, path in settings.READINESS_CHECKS.items():
        check: Check = import_string(path)
        try:
            ok, detail = check()
        except Exception as exc:  # a crashing check is a failing check, not a 500
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        results[name] = {"ok": ok, "detail": detail}
    return results


class HealthzApi(APIView):
    """Answers 200 as long as the serving process's event loop runs (no database, no model)."""

    # Served by llmsite.liveness in front of Django under ASGI (no middleware thread hops); this view
    # documents it in the schema and answers the test client and what liveness passes on.
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Liveness: 200 while the process runs",
        responses=inline_serializer("Health", {"status": serializers.CharField()}),
        tags=["health"],
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


class ReadyzApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Readiness: 200 when the database, the active provider and the embedding index are usable",
        responses={
            (200, "application/json"): inline_serializer(
                "Readiness", {"status": serializers.CharField(), "checks": serializers.DictField()}
            ),
            (503, "application/json"): inline_serializer(
                "NotReady", {"status": serializers.CharField(), "checks": serializers.DictField()}
            ),
        },
        tags=["health"],
    )
    def get(self, request: Request) -> Response:
        checks = run_checks()
        if drain.draining:  # a balancer stops sending work here; what runs finishes (llmsite/shutdown.py)
            detail = f"shutting down: {drain.active} requests finishing, {drain.remaining():.0f} s of grace left"
            checks["shutdown"] = {"ok": False, "detail": detail}
            return Response({"status": "shutting_down", "checks": checks}, status=503)
        ready = all(c["ok"] for c in checks.values())
        return Response({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)
