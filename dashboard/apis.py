"""`GET /api/v1/metrics` (JSON aggregates, staff) and `GET /metrics` (Prometheus, staff or the scrape token)."""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import BearerAuthentication
from accounts.models import SCOPE_METRICS
from accounts.permissions import IsStaff
from dashboard import prometheus, selectors
from llmsite.serializers import StrictSerializer


class MetricsToken:
    """request.auth when the caller presented METRICS_TOKEN (a scraper, not a user)."""


class MetricsTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <METRICS_TOKEN>`, compared in constant time; anything else is left to the next class."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        expected = settings.METRICS_TOKEN
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not expected or not isinstance(header, str):
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        if hmac.compare_digest(token.strip().encode(), expected.encode()):
            return AnonymousUser(), MetricsToken()
        return None  # maybe a JWT or an API key: BearerAuthentication decides

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="metrics"'


class IsStaffOrMetricsToken(BasePermission):
    message = "Only staff or the metrics scrape token can read the metrics."

    def has_permission(self, request: Any, view: Any) -> bool:
        return isinstance(request.auth, MetricsToken) or IsStaff().has_permission(request, view)


class PlainNegotiation(DefaultContentNegotiation):
    """Errors are always JSON; the exposition itself picks its format from Accept (text or OpenMetrics)."""

    def select_renderer(self, request: Any, renderers: list[Any], format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


class PrometheusApi(APIView):
    required_scope = SCOPE_METRICS

    authentication_classes = [MetricsTokenAuthentication, BearerAuthentication, SessionAuthentication]
    permission_classes = [IsStaffOrMetricsToken]
    content_negotiation_class = PlainNegotiation

    @extend_schema(
        operation_id="prometheus_metrics",
        summary="Prometheus exposition: request counters and latency histograms, tokens, cache, streams, model state",
        description=(
            "Text exposition format 0.0.4 (OpenMetrics when the Accept header asks for it). For staff (session, "
            "JWT or API key) or `Authorization: Bearer <METRICS_TOKEN>`."
        ),
        responses={
            (200, "text/plain"): OpenApiTypes.STR,
            401: OpenApiResponse(description="no credentials, or credentials that are not valid"),
            403: OpenApiResponse(description="authenticated, but not staff"),
        },
        tags=["dashboard"],
    )
    def get(self, request: Request) -> HttpResponse:
        body, content_type = prometheus.exposition_for(request.META.get("HTTP_ACCEPT", ""))
        response = HttpResponse(body, content_type=content_type)
        response["Cache-Control"] = "no-store"
        return response


class MetricsApi(APIView):
    required_scope = SCOPE_METRICS

    permission_classes = [IsStaff]

    class InputSerializer(StrictSerializer):
        window = serializers.ChoiceField(choices=list(selectors.WINDOWS), default=selectors.DEFAULT_WINDOW)
        usage_order = serializers.ChoiceField(choices=list(selectors.USAGE_ORDERS), default="tokens")

    class EndpointSerializer(serializers.Serializer):
        endpoint = serializers.CharField(help_text="the URL pattern's route, e.g. /api/v1/predict")
        requests = serializers.IntegerField()
        errors = serializers.IntegerField(help_text="5xx answers")
        avg_ms = serializers.FloatField()
        p50_ms = serializers.FloatField()
        p95_ms = serializers.FloatField()
        max_ms = serializers.FloatField()

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "DashboardMetrics"

        window = serializers.ChoiceField(choices=list(selectors.WINDOWS))
        since = serializers.DateTimeField()
        until = serializers.DateTimeField()
        bucket = serializers.ChoiceField(choices=["minute", "hour", "day"], help_text="the width of `timeline` points")
        requests = serializers.DictField(help_text="total, server_errors, client_errors, streamed, avg_ms")
        endpoints = serializers.ListField(child=serializers.DictField(), help_text="busiest routes first (50 at most)")
        status_codes = serializers.ListField(child=serializers.DictField(), help_text="[{status, count}]")
        timeline = serializers.ListField(child=serializers.DictField(), help_text="[{t, requests, errors}] per bucket")
        inference = serializers.DictField(
            help_text="cache {requests, cached, hit_rate, lifetime {hits, misses, hit_rate}}; models [{provider, "
            "model, requests, cached, errors, prompt_tokens, completion_tokens, tokens_per_second, ttft_avg_ms, "
            "ttft_p50_ms, ttft_p95_ms}]"
        )
        feedback = serializers.DictField(help_text="bucket, up, down, timeline [{t, up, down}]")
        training = serializers.DictField(help_text="available, runs [{id, name, status, ..., epochs [{epoch, ...}]}]")
        embeddings = serializers.DictField(help_text="documents, chunks, indexed, collections, index {state, ...}")
        usage = serializers.DictField(
            help_text="the ledger's heaviest users, API keys and models of the window (whole hours), by `order` "
            "(tokens or spend): order, currency, top_users, top_keys, top_models [{id, name, requests, "
            "prompt_tokens, completion_tokens, total_tokens, cost}] (10 each); a key's row adds prefix and user "
            "(its owner), and id null for requests made without a key"
        )

    @extend_schema(
        operation_id="dashboard_metrics",
        summary="Dashboard aggregates over a time window (staff)",
        parameters=[
            OpenApiParameter(
                "window", OpenApiTypes.STR, enum=list(selectors.WINDOWS), default=selectors.DEFAULT_WINDOW
            ),
            OpenApiParameter(
                "usage_order",
                OpenApiTypes.STR,
                enum=list(selectors.USAGE_ORDERS),
                default="tokens",
                description="how `usage` ranks its rows: by total tokens or by spend",
            ),
        ],
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(description="unknown window (or another query parameter)"),
            401: OpenApiResponse(description="not authenticated"),
            403: OpenApiResponse(description="not staff"),
        },
        tags=["dashboard"],
    )
    def get(self, request: Request) -> Response:
        params = self.InputSerializer(data=request.query_params.dict())
        params.is_valid(raise_exception=True)
        summary = selectors.metrics_summary(
            window=params.validated_data["window"], usage_order=params.validated_data["usage_order"]
        )
        return Response(summary, headers={"Cache-Control": "no-store"})
