"""Inference REST API: thin views that parse, call a service, render (docs/api.md, Inference)."""

from __future__ import annotations

from typing import Any

from django.core.validators import MaxValueValidator, RegexValidator
from django.http import HttpRequest, HttpResponseBase
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import SCOPE_CHAT
from accounts.permissions import IsStaff
from inference import selectors, services, sse
from inference.protocol import (
    MAX_COLLECTION_CHARS,
    MAX_MESSAGES,
    MAX_MODEL_CHARS,
    MAX_TOP_K,
    RETRIEVAL_MODES,
    CompletionRequest,
)
from inference.providers.base import (
    FINISH_REASONS,
    MAX_STOP,
    MAX_TOOLS,
    ROLES,
    SEED_MAX,
    TEMPERATURE_MAX,
    InvalidParameter,
)
from inference.registry import DEVICES, PROVIDER_NAMES
from llmsite.errors import ApplicationError, error_response
from llmsite.schema import MODEL_ERRORS, event_stream
from llmsite.serializers import StrictCharField, StrictSerializer, setting
from usage.services import Meter


def completion_request(fields: dict[str, Any], *, wire_names: dict[str, str] | None = None) -> CompletionRequest:
    """The one request type from a parser's fields; a broken bound is the serializer error naming its field.

    `wire_names` maps a request field to the name the client sent it under (/v1's `max_tokens`).
    """
    try:
        return CompletionRequest.from_fields(fields)
    except InvalidParameter as exc:
        field = (wire_names or {}).get(exc.field, exc.field)
        raise serializers.ValidationError({field: exc.message.replace(exc.field, field)}) from exc


def max_tokens_field(name: str, **kwargs: Any) -> serializers.IntegerField:
    """How many tokens an answer may have: 1 to LLM_MAX_NEW_TOKENS (the schema shows this server's cap)."""
    cap = MaxValueValidator(setting("LLM_MAX_NEW_TOKENS"), f"{name} is at most %(limit_value)s on this server")
    return serializers.IntegerField(required=False, min_value=1, validators=[cap], **kwargs)


@extend_schema_field({"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1})
class TopPField(serializers.FloatField):
    """Nucleus sampling's share of probability: above 0, at most 1 (CompletionRequest checks both ends)."""

    def __init__(self, **kwargs: Any):
        # No min_value: its validator would make the schema's minimum inclusive.
        super().__init__(required=False, max_value=1, **kwargs)


@extend_schema_field(
    {
        "type": "object",
        "properties": {
            "type": {"enum": ["text", "json_object", "json_schema"]},
            "json_schema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 64},
                    "description": {"type": "string"},
                    "schema": {"type": "object", "additionalProperties": True},
                    "strict": {"type": "boolean", "nullable": True},
                },
                "required": ["name"],
            },
        },
        "required": ["type"],
        "description": "The answer's shape: `json_object` (a JSON object) or `json_schema` (JSON that fits "
        "the schema), enforced token by token on local models. A schema keyword that cannot be enforced "
        "is a 400 naming it.",
    }
)
class ResponseFormatField(serializers.JSONField):
    """OpenAI's `response_format`; `ResponseFormat.parse` (in CompletionRequest) checks it."""


# OpenAI's `tools` and `tool_choice`, as predict, the WebSocket and /v1/chat/completions take them.
FUNCTION_TOOL = {
    "type": "object",
    "properties": {
        "type": {"enum": ["function"]},
        "function": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-zA-Z0-9_-]{1,64}$"},
                "description": {"type": "string"},
                "parameters": {"type": "object", "description": 'a JSON schema of "type": "object"'},
                "strict": {"type": "boolean", "nullable": True},
            },
            "required": ["name"],
            "additionalProperties": False,
        },
    },
    "required": ["type", "function"],
}


@extend_schema_field({"type": "array", "items": FUNCTION_TOOL, "maxItems": MAX_TOOLS})
class ToolsField(serializers.JSONField):
    """OpenAI's `tools` (functions only); `inference.providers.tools.parse_tools` (in CompletionRequest) checks them."""


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": ["none", "auto", "required"]},
            {
                "type": "object",
                "properties": {
                    "type": {"enum": ["function"]},
                    "function": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
                },
                "required": ["type", "function"],
            },
        ]
    }
)
class ToolChoiceField(serializers.JSONField):
    """How the model may use the tools; checked with them."""


# Ollama's durations as llmsite.durations parses them: seconds, or 1h30m, 5m, 90s, 500ms; negative: forever.
KEEP_ALIVE = RegexValidator(
    r"^-?(\d+(\.\d+)?|(\d+(\.\d+)?(ms|s|m|h))+)$", "keep_alive must be seconds or a duration such as 5m or 1h30m"
)


class MessageSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=ROLES)
    content = StrictCharField(allow_blank=True, trim_whitespace=False)


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class PredictToolCallSerializer(serializers.Serializer):
    class Meta:
        ref_name = "CompletionToolCall"

    id = serializers.CharField(help_text="the call's id (a `tool` turn answering it names it)")
    name = serializers.CharField(help_text="the function called")
    arguments = serializers.CharField(help_text="the arguments: the JSON text of an object")


class SourceSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="the passage (a document or one chunk of it)")
    document_id = serializers.IntegerField(help_text="the document the passage comes from")
    title = serializers.CharField()
    snippet = serializers.CharField()
    score = serializers.FloatField(help_text="the retrieval mode's score: cosine, BM25 or fused rank")
    metadata = serializers.DictField()
    page = serializers.IntegerField(required=False, help_text="the passage's page in its file, when known")
    heading = serializers.CharField(required=False, help_text="the heading the passage is under, when known")


class PredictApi(APIView):
    required_scope = SCOPE_CHAT

    content_negotiation_class = sse.EventStreamNegotiation

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "Predict"
            one_of = (("prompt",), ("messages",))

        prompt = StrictCharField(required=False, trim_whitespace=False)
        messages = MessageSerializer(many=True, required=False, allow_empty=False, max_length=MAX_MESSAGES)
        # Types and the bounds the schema documents; CompletionRequest checks every rule (validate()).
        max_new_tokens = max_tokens_field("max_new_tokens")
        temperature = serializers.FloatField(required=False, min_value=0, max_value=TEMPERATURE_MAX)
        top_p = TopPField()
        stop = serializers.ListField(
            child=StrictCharField(trim_whitespace=False), required=False, max_length=MAX_STOP, allow_empty=True
        )
        seed = serializers.IntegerField(required=False, min_value=0, max_value=SEED_MAX)
        stream = serializers.BooleanField(required=False, default=False)
        collection = StrictCharField(
            required=False,
            max_length=MAX_COLLECTION_CHARS,
            help_text="answer from this document collection (sources are returned)",
        )
        top_k = serializers.IntegerField(
            required=False, min_value=1, max_value=MAX_TOP_K, help_text="passages to retrieve (default RAG_TOP_K)"
        )
        retrieval_mode = serializers.ChoiceField(
            choices=RETRIEVAL_MODES,
            required=False,
            help_text="rank passages by meaning (vector), words (keyword) or both (hybrid; EMBEDDINGS_SEARCH_MODE)",
        )
        conversation = serializers.IntegerField(
            required=False, min_value=1, help_text="append to this conversation of yours; its history goes first"
        )
        model = StrictCharField(
            required=False,
            max_length=MAX_MODEL_CHARS,
            help_text="the model to answer (ids: GET /api/v1/models); default: the conversation's, else the site's",
        )
        keep_alive = serializers.CharField(
            required=False,
            max_length=32,
            validators=[KEEP_ALIVE],
            help_text="how long that model stays loaded once idle: seconds, or 5m, 1h; negative keeps it (Ollama's)",
        )
        response_format = ResponseFormatField(required=False, allow_null=True)
        tools = ToolsField(required=False, allow_null=True, help_text="functions the model may call (OpenAI's shape)")
        tool_choice = ToolChoiceField(
            required=False, allow_null=True, help_text="auto (default), none, required, or one function by name"
        )
        parallel_tool_calls = serializers.BooleanField(
            required=False, allow_null=True, help_text="false: at most one call per answer"
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            stream = attrs.pop("stream", False)
            return {"request": completion_request(attrs), "stream": stream}

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
        finish_reason = serializers.ChoiceField(choices=FINISH_REASONS)
        tool_calls = PredictToolCallSerializer(
            many=True, required=False, help_text='present when the model called tools (finish_reason "tool_calls")'
        )
        sources = SourceSerializer(many=True, required=False, help_text="present when a collection was given")
        conversation = serializers.IntegerField(required=False, help_text="present when a conversation was given")
        message = serializers.IntegerField(required=False, help_text="the stored answer's id: rate it with feedback")
        fallback = serializers.DictField(
            child=serializers.CharField(),
            required=False,
            help_text="present when a fallback answered: {requested, reason}",
        )

    @extend_schema(
        summary="Complete a prompt or a chat with a model (the default unless `model` names one)",
        description=(
            "Deterministic requests (temperature 0, or a seed) are cached: header `X-Cache: HIT|MISS`.\n\n"
            'With `stream: true` the answer is `text/event-stream`: `data: {"delta": ...}` frames as tokens '
            "are produced, `event: tool_call` frames `{index, id, name, arguments}` as tool calls are written "
            "(`id` and `name` on a call's first piece only; its `arguments` pieces join into the JSON text), "
            "then `event: done` with the response fields except `text`; a failure after the "
            'first frame is `event: error` with `data: {"error": {...}}`. Errors before the first token are '
            "ordinary HTTP errors. Closing the connection cancels the generation."
        ),
        request=InputSerializer,
        responses={
            (200, "application/json"): OutputSerializer,
            (200, "text/event-stream"): event_stream("with `stream: true`: `data: {delta}` frames, then `done`"),
            400: OpenApiResponse(description="invalid input, or the prompt does not fit the context window"),
            403: OpenApiResponse(description="the API key's scopes or model list do not allow this"),
            404: OpenApiResponse(description="no such model, or no conversation or collection of yours by that id"),
            **MODEL_ERRORS,
        },
        tags=["inference"],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        asked = serializer.validated_data["request"]
        meter = Meter.for_request(request)
        if serializer.validated_data["stream"]:
            return sse.StreamRequested(request.user, asked, meter=meter)
        result = services.complete(asked, user=request.user, source="api", meter=meter)
        return Response(result.as_dict(), headers={"X-Cache": "HIT" if result.cached else "MISS", **meter.headers()})


async def _predict_stream(request: HttpRequest, asked: sse.StreamRequested) -> HttpResponseBase:
    # The first event is awaited before the response starts, so a prompt that does not fit or a
    # missing model is a real 4xx/5xx, not a 200 stream.
    events = services.complete_stream(asked.request, user=asked.user, source="sse", meter=asked.meter)
    try:
        first = await anext(events)
    except ApplicationError as exc:
        return error_response(request, exc)
    return sse.event_stream_response(sse.predict_frames(first, events), headers=asked.meter.headers())


# POST /api/v1/predict: JSON answers from PredictApi, `stream: true` served on the event loop.
predict = sse.streaming_view(PredictApi, _predict_stream)


class ProviderModelSerializer(serializers.Serializer):
    name = serializers.CharField()
    detail = serializers.CharField()


class ActiveProviderSerializer(serializers.Serializer):
    provider = serializers.CharField()
    model = serializers.CharField()
    device = serializers.CharField()
    state = serializers.ChoiceField(choices=["idle", "loading", "ready", "failed"])
    reason = serializers.CharField()
    engine = serializers.CharField(help_text="what computes a local model's answers: openvino or transformers")
    engine_reason = serializers.CharField(help_text="why transformers serves a local model rather than OpenVINO")


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
    permission_classes = [IsStaff]

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
            400: OpenApiResponse(description="that provider or model cannot serve (nothing changed)"),
        },
        tags=["inference"],
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.provider_activate(**serializer.validated_data, load_here=True)
        return Response(selectors.provider_list()["active"])


class ReplicaSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="the replica's base URL (any credentials removed)")
    state = serializers.ChoiceField(
        choices=["up", "cooling_down", "probing"],
        help_text="up: in service; cooling_down: out after a failure until it is probed; probing: being asked now",
    )
    healthy = serializers.BooleanField(help_text="in service (state up)")
    in_flight = serializers.IntegerField(help_text="requests running on it from this server process")
    failures = serializers.IntegerField(help_text="its failures so far (requests and probes)")
    last_error = serializers.CharField(help_text="why it last failed ('' if never)")
    retry_in = serializers.FloatField(allow_null=True, help_text="seconds until it is probed; null while in service")


class PoolModelSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="what to send as `model`")
    kind = serializers.ChoiceField(choices=["local", "remote", "embedding"])
    state = serializers.ChoiceField(choices=["loaded", "loading", "idle", "unavailable"])
    reason = serializers.CharField(help_text="why it is unavailable")
    memory_mb = serializers.FloatField(allow_null=True, help_text="its runner process's resident memory")
    queue = serializers.IntegerField(help_text="requests running or waiting on it")
    last_used = serializers.DateTimeField(allow_null=True)
    default = serializers.BooleanField(help_text="answers requests that name no model")
    fallbacks = serializers.ListField(child=serializers.CharField(), help_text="tried in order when it cannot answer")
    engine = serializers.CharField(required=False, help_text="openvino or transformers, once a local model is loaded")
    keep_alive = serializers.FloatField(
        required=False, allow_null=True, help_text="seconds idle before it unloads; null: it stays"
    )
    replicas = ReplicaSerializer(
        many=True,
        required=False,
        help_text="a loaded remote model served by several base URLs (OPENAI_BASE_URL): each replica's health",
    )


class ModelPoolApi(APIView):
    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ModelPool"

        data = PoolModelSerializer(many=True)

    @extend_schema(
        summary="Every callable model with its state, memory, queue and last use (the default first)",
        responses=OutputSerializer,
        tags=["inference"],
    )
    def get(self, request: Request) -> Response:
        return Response({"data": selectors.models_list()})


class ModelLoadApi(APIView):
    """Staff: load a model now (`load`) or unload it (`unload`; an answer running finishes first)."""

    permission_classes = [IsStaff]
    action = "load"

    @extend_schema(
        summary="Load or unload a model of the pool (staff)",
        request=None,
        responses={
            200: PoolModelSerializer,
            404: OpenApiResponse(description="unknown model"),
            503: OpenApiResponse(description="the model cannot load (the message says why)"),
        },
        tags=["inference"],
    )
    def post(self, request: Request, model: str) -> Response:
        return Response(services.model_load(model) if self.action == "load" else services.model_unload(model))


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
    permission_classes = [IsStaff]

    @extend_schema(summary="Drop every cached answer (staff)", request=None, responses={204: None}, tags=["inference"])
    def delete(self, request: Request) -> Response:
        services.cache_clear()
        return Response(status=status.HTTP_204_NO_CONTENT)
