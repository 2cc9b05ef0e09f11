"""Inference REST API: thin views that parse, call a service, render (API.md, Inference)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.ratelimits import ratelimit_api
from inference import selectors, services
from inference.providers.base import ROLES
from inference.registry import DEVICES, PROVIDER_NAMES

# Accepted by the contract, served by later work: refused clearly instead of ignored.
NOT_YET = {
    "collection": "retrieval (collection, top_k) is not supported yet",
    "top_k": "retrieval (collection, top_k) is not supported yet",
    "conversation": "conversations are not supported yet",
}
MAX_MESSAGES = 500
MAX_STOP = 4


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into text."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not declare (and names the later-issue ones) instead of ignoring them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            for name in data:
                if name in NOT_YET:
                    raise serializers.ValidationError({name: NOT_YET[name]}, code="not_supported")
                if name not in self.fields:
                    raise serializers.ValidationError({name: f"unknown field {name!r}"}, code="unknown_field")
        return super().to_internal_value(data)


class MessageSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=ROLES)
    content = StrictCharField(allow_blank=True, trim_whitespace=False)


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class PredictApi(APIView):
    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "Predict"

        prompt = StrictCharField(required=False, trim_whitespace=False)
        messages = MessageSerializer(many=True, required=False, allow_empty=False, max_length=MAX_MESSAGES)
        max_new_tokens = serializers.IntegerField(required=False, min_value=1)
        temperature = serializers.FloatField(required=False, min_value=0, max_value=2)
        top_p = serializers.FloatField(required=False, max_value=1)
        stop = serializers.ListField(
            child=StrictCharField(trim_whitespace=False), required=False, max_length=MAX_STOP, allow_empty=True
        )
        seed = serializers.IntegerField(required=False, min_value=0, max_value=2**63 - 1)
        stream = serializers.BooleanField(required=False, default=False)

        def validate_max_new_tokens(self, value: int) -> int:
            if value > settings.LLM_MAX_NEW_TOKENS:
                raise serializers.ValidationError(f"Ensure this value is at most {settings.LLM_MAX_NEW_TOKENS}.")
            return value

        def validate_top_p(self, value: float) -> float:
            if value <= 0:
                raise serializers.ValidationError("Ensure this value is greater than 0 (top_p is in (0, 1]).")
            return value

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if ("prompt" in attrs) == ("messages" in attrs):
                raise serializers.ValidationError({"prompt": "give exactly one of prompt or messages"})
            chars = len(attrs.get("prompt", "")) + sum(len(m["content"]) for m in attrs.get("messages", []))
            if chars > settings.LLM_MAX_PROMPT_CHARS:
                field = "prompt" if "prompt" in attrs else "messages"
                raise serializers.ValidationError(
                    {field: f"the input has {chars} characters; the limit is {settings.LLM_MAX_PROMPT_CHARS}"}
                )
            if attrs.get("stream"):
                raise serializers.ValidationError({"stream": "streaming arrives with SSE; send stream=false for now"})
            return attrs

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "Completion"

        id = serializers.CharField()
        text = serializers.CharField()
        provider = serializers.CharField()
        model = serializers.CharField()
        usage = UsageSerializer()
        cached = serializers.BooleanField()
        latency_ms = serializers.FloatField()
        finish_reason = serializers.ChoiceField(choices=["stop", "length", "cancelled"])

    @extend_schema(
        summary="Complete a prompt or a chat with the active model",
        description="Deterministic requests (temperature 0, or a seed) are cached: header `X-Cache: HIT|MISS`.",
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            400: OpenApiResponse(description="invalid input, or the prompt does not fit the context window"),
            429: OpenApiResponse(description="rate limited (RATELIMIT_PREDICT per user); see Retry-After"),
            503: OpenApiResponse(description="no model is loaded (the reason is in the message)"),
        },
        tags=["inference"],
    )
    @ratelimit_api(group="predict")
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data.pop("stream", None)
        result = services.complete(user=request.user, source="api", **data)
        return Response(result.as_dict(), headers={"X-Cache": "HIT" if result.cached else "MISS"})


class ProviderModelSerializer(serializers.Serializer):
    name = serializers.CharField()
    detail = serializers.CharField()


class ActiveProviderSerializer(serializers.Serializer):
    provider = serializers.CharField()
    model = serializers.CharField()
    device = serializers.CharField()
    state = serializers.ChoiceField(choices=["idle", "loading", "ready", "failed"])
    reason = serializers.CharField()


class ProviderInfoSerializer(serializers.Serializer):
    name = serializers.CharField()
    available = serializers.BooleanField()
    reason = serializers.CharField()
    active = serializers.BooleanField()
    models = ProviderModelSerializer(many=True)


class ProviderListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ProviderList"

        active = ActiveProviderSerializer()
        providers = ProviderInfoSerializer(many=True)

    @extend_schema(
        summary="Providers, their models and availability, and the active one",
        tags=["inference"],
        responses=OutputSerializer,
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.provider_list())


class ProviderActivateApi(APIView):
    permission_classes = [IsAdminUser]

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "ProviderActivate"

        provider = serializers.ChoiceField(choices=PROVIDER_NAMES)
        model = StrictCharField(required=False, max_length=500)
        device = serializers.ChoiceField(choices=DEVICES, required=False)

    @extend_schema(
        summary="Switch the active provider/model/device (staff); 200 once switched",
        request=InputSerializer,
        responses={
            200: ActiveProviderSerializer,
            400: OpenApiResponse(description="that provider or model cannot serve"),
        },
        tags=["inference"],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.provider_activate(**serializer.validated_data, load_here=True)
        return Response(selectors.provider_list()["active"])


class CacheStatsApi(APIView):
    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "CacheStats"

        hits = serializers.IntegerField()
        misses = serializers.IntegerField()
        hit_rate = serializers.FloatField()
        entries = serializers.IntegerField(allow_null=True)
        max_entries = serializers.IntegerField(allow_null=True)
        ttl = serializers.IntegerField(allow_null=True)

    @extend_schema(summary="Response cache counters", responses=OutputSerializer, tags=["inference"])
    def get(self, request: Request) -> Response:
        return Response(services.cache_stats())


class CacheClearApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(summary="Drop every cached answer (staff)", request=None, responses={204: None}, tags=["inference"])
    def delete(self, request: Request) -> Response:
        services.cache_clear()
        return Response(status=status.HTTP_204_NO_CONTENT)
