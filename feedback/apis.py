"""Feedback REST API (docs/api.md, Feedback): thin views over feedback.services and feedback.selectors."""

from __future__ import annotations

import datetime as dt
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import SCOPE_CHAT
from accounts.ratelimits import ratelimit_api
from feedback import selectors, services
from feedback.models import Feedback
from llmsite.serializers import PageQuerySerializer, StrictCharField, StrictSerializer, page, page_serializer

TAGS = ["feedback"]
RATING_CHOICES = [(1, "good"), (-1, "bad")]


@extend_schema_field(OpenApiTypes.STR)
class DateOrDateTimeField(serializers.Field):
    """`2025-06-01` (the whole day) or an ISO 8601 date-time."""

    default_error_messages = {"invalid": "Use a date (YYYY-MM-DD) or an ISO 8601 date-time."}

    def to_internal_value(self, data: Any) -> dt.date | dt.datetime:
        value = selectors.parse_when(data) if isinstance(data, str) else None
        if value is None:
            self.fail("invalid")
        return value

    def to_representation(self, value: Any) -> str:
        return value.isoformat()


class FeedbackOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "Feedback"

    id = serializers.IntegerField()
    rating = serializers.ChoiceField(choices=RATING_CHOICES)
    comment = serializers.CharField(
        allow_null=True, help_text="Plain text (markup removed); escape it when you show it."
    )
    message = serializers.IntegerField(source="message_id", allow_null=True)
    conversation = serializers.SerializerMethodField()
    prompt = serializers.CharField()
    response = serializers.CharField()
    provider = serializers.CharField()
    model = serializers.CharField()
    user = serializers.CharField(source="user.username")
    created = serializers.DateTimeField()

    def get_conversation(self, obj: Feedback) -> int | None:
        return obj.message.conversation_id if obj.message_id else None


class FeedbackApi(APIView):
    required_scope = SCOPE_CHAT

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "FeedbackCreate"
            # A message knows its own text, provider and model; a pair brings them.
            one_of = (("message",), ("response", "prompt", "provider", "model", "completion"))

        rating = serializers.ChoiceField(choices=RATING_CHOICES, help_text="1 (good) or -1 (bad).")
        comment = StrictCharField(
            required=False,
            allow_null=True,
            allow_blank=True,
            trim_whitespace=False,
            help_text="Plain text, at most FEEDBACK_COMMENT_MAX_CHARS (5000) characters; markup is removed.",
        )
        message = serializers.IntegerField(
            required=False, min_value=1, help_text="An assistant message of one of your conversations."
        )
        prompt = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
        response = StrictCharField(
            required=False, allow_blank=True, trim_whitespace=False, help_text="The answer you rate, without a message."
        )
        provider = StrictCharField(required=False, max_length=32)
        model = StrictCharField(required=False, max_length=500)
        completion = StrictCharField(
            required=False, max_length=64, help_text="The `id` predict answered with (fills provider and model)."
        )

    class QuerySerializer(PageQuerySerializer):
        class Meta:
            ref_name = "FeedbackListQuery"

        rating = serializers.ChoiceField(choices=RATING_CHOICES, required=False)
        provider = serializers.CharField(required=False)
        model = serializers.CharField(required=False)
        since = DateOrDateTimeField(required=False, help_text="From this date or date-time (inclusive).")
        until = DateOrDateTimeField(required=False, help_text="Up to this date or date-time (inclusive).")

    OutputSerializer = page_serializer(FeedbackOutputSerializer, ref_name="FeedbackPage")

    @extend_schema(
        operation_id="feedback_list",
        summary="Your feedback (staff: everyone's), newest first",
        parameters=[QuerySerializer],
        responses={200: OutputSerializer, 400: OpenApiResponse(description="invalid filter")},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = dict(query.validated_data)
        limit, offset = filters.pop("limit"), filters.pop("offset")
        rows = selectors.feedback_list(user=request.user, **filters)
        return Response(self.OutputSerializer(page(rows, limit=limit, offset=offset)).data)

    @extend_schema(
        operation_id="feedback_create",
        summary="Rate an answer: a message of your conversation, or a prompt/response pair",
        description="201 for a new rating; 200 when it replaces your earlier rating of the same message.",
        request=InputSerializer,
        responses={
            201: FeedbackOutputSerializer,
            200: FeedbackOutputSerializer,
            400: OpenApiResponse(description="rating not 1/-1, comment over the limit, or a bad combination"),
            404: OpenApiResponse(description="no message (or completion) of yours has that id"),
            429: OpenApiResponse(description="rate limited (RATELIMIT_FEEDBACK per user); see Retry-After"),
        },
        tags=TAGS,
    )
    @ratelimit_api(group="feedback")
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        feedback, created = services.feedback_create(user=request.user, **data.validated_data)
        return Response(
            FeedbackOutputSerializer(feedback).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )
