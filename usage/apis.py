"""Usage REST API under /api/v1/usage (docs/api.md, Usage): your usage and limits; staff see and set everyone's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsStaff, api_key_of
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError
from llmsite.serializers import StrictSerializer
from usage import selectors, services
from usage.windows import KINDS

User = get_user_model()
MAX_SPAN = timedelta(days=400)


class TotalsSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    cached_requests = serializers.IntegerField()
    cancelled_requests = serializers.IntegerField()
    failed_requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost = serializers.FloatField(help_text="in the price table's currency (USAGE_CURRENCY)")


class DayUsageSerializer(TotalsSerializer):
    day = serializers.DateField()


class ModelUsageSerializer(TotalsSerializer):
    model = serializers.CharField()


class KeyUsageSerializer(TotalsSerializer):
    key = serializers.IntegerField(allow_null=True, help_text="the API key's id; null: a login (session or JWT)")
    name = serializers.CharField()


class LimitStateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=list(KINDS))
    scope = serializers.ChoiceField(choices=["user", "key"], help_text="whose limit: the user's or the API key's")
    limit = serializers.FloatField(help_text="requests, tokens, or spend in the currency")
    used = serializers.FloatField(help_text="in the current window, reservations of running requests included")
    remaining = serializers.FloatField()
    resets_at = serializers.DateTimeField()


class UsageApi(APIView):
    class InputSerializer(StrictSerializer):
        since = serializers.DateTimeField(required=False, help_text="default: 30 days before `until`")
        until = serializers.DateTimeField(required=False, help_text="default: now")
        user = serializers.IntegerField(required=False, min_value=1, help_text="staff: another user's usage")
        all = serializers.BooleanField(required=False, default=False, help_text="staff: everyone's usage")

        class Meta:
            ref_name = "UsageQuery"

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            until = attrs.get("until") or timezone.now() + timedelta(hours=1)
            since = attrs.get("since") or until - selectors.DEFAULT_SPAN
            if since >= until:
                raise serializers.ValidationError({"since": "since must be before until"})
            if until - since > MAX_SPAN:
                raise serializers.ValidationError({"since": f"at most {MAX_SPAN.days} days per query"})
            attrs["since"], attrs["until"] = since, until
            return attrs

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "UsageReport"

        since = serializers.DateTimeField()
        until = serializers.DateTimeField()
        user = serializers.IntegerField(allow_null=True, help_text="whose usage; null: everyone's (staff, all=true)")
        totals = TotalsSerializer()
        limits = LimitStateSerializer(many=True, help_text="the limits on that user (and on the key used), now")
        by_day = DayUsageSerializer(many=True)
        by_model = ModelUsageSerializer(many=True)
        by_key = KeyUsageSerializer(many=True)

    @extend_schema(
        operation_id="usage_get",
        summary="Your usage (totals, per day, model and API key) and your limits with what remains",
        parameters=[InputSerializer],
        responses={
            200: OutputSerializer,
            403: OpenApiResponse(description="`user`/`all` are for staff"),
            404: OpenApiResponse(description="no user has the id `user`"),
        },
        tags=["usage"],
    )
    def get(self, request: Request) -> Response:
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        whose: Any = request.user
        if data.get("user") is not None or data["all"]:
            if not IsStaff().has_permission(request, self):
                raise ApplicationError(
                    "Only staff can read other users' usage.", code=ErrorCode.PERMISSION_DENIED, status=403
                )
            whose = None if data["all"] else get_object_or_404(User, pk=data["user"])
        body = selectors.summary(since=data["since"], until=data["until"], user=whose)
        key = api_key_of(request) if whose == request.user else None
        body["user"] = whose.pk if whose is not None else None
        body["limits"] = [s.as_dict() for s in services.limit_states(whose, key)] if whose is not None else []
        return Response(self.OutputSerializer(body).data)


def _spend_field() -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=14, decimal_places=6, min_value=0, required=False, allow_null=True)


def _count_field() -> serializers.IntegerField:
    return serializers.IntegerField(min_value=0, max_value=2**62, required=False, allow_null=True)


class LimitsSerializer(StrictSerializer):
    """A user's own limits; null clears one (the site default applies again); absent ones stay as they are."""

    requests_per_minute = _count_field()
    tokens_per_minute = _count_field()
    tokens_per_day = _count_field()
    tokens_per_month = _count_field()
    spend_per_day = _spend_field()
    spend_per_month = _spend_field()

    class Meta:
        ref_name = "UsageLimits"


class UserLimitsApi(APIView):
    permission_classes = [IsStaff]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "UserUsageLimits"

        user = serializers.IntegerField()
        own = serializers.DictField(help_text="the limits set on this user (kinds not here take the site default)")
        limits = LimitStateSerializer(many=True, help_text="every limit that applies now, with what is used")

    def _body(self, user: Any) -> dict[str, Any]:
        row = getattr(user, "usage_limit", None)
        own = {
            kind: float(value) if KINDS[kind].unit == "spend" else value
            for kind, value in (row.values() if row else {}).items()
        }
        return {"user": user.pk, "own": own, "limits": [s.as_dict() for s in services.limit_states(user)]}

    @extend_schema(operation_id="usage_limits_get", responses={200: OutputSerializer}, tags=["usage"])
    def get(self, request: Request, user_id: int) -> Response:
        user = get_object_or_404(User, pk=user_id)
        return Response(self.OutputSerializer(self._body(user)).data)

    @extend_schema(
        operation_id="usage_limits_set",
        summary="Set a user's limits (staff): requests/tokens per minute, tokens per day/month, spend per day/month",
        request=LimitsSerializer,
        responses={200: OutputSerializer, 404: OpenApiResponse(description="no such user")},
        tags=["usage"],
    )
    def put(self, request: Request, user_id: int) -> Response:
        user = get_object_or_404(User, pk=user_id)
        data = LimitsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.limits_set(user=user, values=dict(data.validated_data))
        return Response(self.OutputSerializer(self._body(User.objects.get(pk=user.pk))).data)
