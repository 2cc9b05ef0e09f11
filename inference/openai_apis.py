"""OpenAI-compatible API under /v1/: chat completions, embeddings and models for every OpenAI client.

The same services as /api/v1/predict (cache, rate limits, usage records); errors in OpenAI's
shape (llmsite.errors switches on the /v1/ prefix). Shapes follow OpenAI's reference field for
field so the official SDKs, LangChain, Open WebUI and the like work unmodified.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import numpy as np
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import SCOPE_CHAT, SCOPE_EMBEDDINGS
from inference import selectors, services, sse
from inference.apis import (
    ResponseFormatField,
    ToolChoiceField,
    ToolsField,
    TopPField,
    completion_request,
    max_tokens_field,
)
from inference.protocol import MAX_MESSAGES, CompletionRequest
from inference.providers.base import (
    MAX_STOP,
    MAX_TOOLS,
    MAX_TOP_LOGPROBS,
    SEED_MAX,
    TEMPERATURE_MAX,
    TextDelta,
    ToolCall,
    ToolCallDelta,
)
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError, error_response
from llmsite.schema import MODEL_ERRORS, event_stream
from llmsite.serializers import StrictCharField
from usage.services import Meter

OPENAI_ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_CHOICES = 8  # n: choices one request may ask for (inference/openai_completions.py runs them)
# Parameters OpenAI clients send by default or commonly: accepted when they ask for nothing we
# would have to ignore (their neutral value), refused otherwise rather than silently dropped.
NEUTRAL = {
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "functions": (None, []),  # the deprecated form of tools
    "function_call": (None, "none", "auto"),
    "store": (None, False, True),
    "metadata": (None, {}),
    "service_tier": (None, "auto", "default"),
    "modalities": (None, ["text"]),
    "reasoning_effort": (None,),
    "prediction": (None,),
    "audio": (None,),
    "web_search_options": (None,),
    "prompt_cache_key": (None,),
    "safety_identifier": (None,),
    "verbosity": (None,),
}


TEXT_PART = {
    "type": "object",
    "properties": {"type": {"enum": ["text"]}, "text": {"type": "string"}},
    "required": ["text"],
}


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "items": TEXT_PART}]})
class ContentField(serializers.Field):
    """A message's content: a string, or an array of `{"type": "text", "text": ...}` parts joined."""

    default_error_messages = {
        "invalid": "content must be a string or an array of text parts",
        "part": "only text content parts are supported (got {kind!r})",
    }

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, str):
            return data
        if not isinstance(data, list):
            self.fail("invalid")
        texts = []
        for part in data:
            if not isinstance(part, dict) or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                if kind == "text" or not isinstance(part, dict):
                    self.fail("invalid")
                self.fail("part", kind=kind)
            if part.get("type", "text") != "text":
                self.fail("part", kind=part.get("type"))
            texts.append(part["text"])
        return "".join(texts)

    def to_representation(self, value: Any) -> Any:
        return value


class FunctionCallSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    arguments = serializers.CharField(allow_blank=True, trim_whitespace=False, help_text="the arguments' JSON text")


class ToolCallSerializer(serializers.Serializer):
    """A call the model made: in an assistant message the client sends back, and in an answer."""

    id = serializers.CharField(max_length=256)
    type = serializers.ChoiceField(choices=["function"])
    function = FunctionCallSerializer()


class ChatMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=OPENAI_ROLES)
    content = ContentField(required=False, allow_null=True)  # null (or absent) on an assistant turn with tool_calls
    name = serializers.CharField(required=False, max_length=64)  # accepted; the models here ignore names
    tool_calls = ToolCallSerializer(many=True, required=False, max_length=MAX_TOOLS)  # assistant turns
    tool_call_id = serializers.CharField(required=False, max_length=256)  # tool turns: the call this answers

    def validate_role(self, value: str) -> str:
        return "system" if value == "developer" else value  # newer clients send system prompts as developer

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        role = attrs["role"]
        if attrs.get("tool_calls") and role != "assistant":
            raise serializers.ValidationError({"tool_calls": "only assistant messages carry tool_calls"})
        if role == "tool" and not attrs.get("tool_call_id"):
            raise serializers.ValidationError(
                {"tool_call_id": "a tool message needs tool_call_id: the id of the call it answers"}
            )
        if role != "tool" and "tool_call_id" in attrs:
            raise serializers.ValidationError({"tool_call_id": "only tool messages carry tool_call_id"})
        if attrs.get("content") is None and not attrs.get("tool_calls"):
            raise serializers.ValidationError(
                {"content": "content is required unless an assistant turn has tool_calls"}
            )
        return attrs


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": MAX_STOP},
        ]
    }
)
class StopField(serializers.Field):
    default_error_messages = {"invalid": f"stop must be a string or a list of at most {MAX_STOP} strings"}

    def to_internal_value(self, data: Any) -> list[str]:
        if data is None:
            return []
        if isinstance(data, str):
            return [data]
        if isinstance(data, list) and len(data) <= MAX_STOP and all(isinstance(s, str) and s for s in data):
            return data
        self.fail("invalid")

    def to_representation(self, value: Any) -> Any:
        return value


class StreamOptionsSerializer(serializers.Serializer):
    include_usage = serializers.BooleanField(required=False, default=False)
    include_obfuscation = serializers.BooleanField(required=False)  # accepted; nothing is obfuscated


def _refuse_unknown(serializer: serializers.Serializer, data: Any, neutral: dict[str, tuple] = NEUTRAL) -> None:
    """Refuse fields the serializer does not know, unless `neutral` accepts their value (OpenAI's defaults)."""
    if not isinstance(data, dict):
        return
    for name, value in data.items():
        if name in serializer.fields:
            continue
        if name in neutral:
            if value not in neutral[name]:
                raise serializers.ValidationError({name: f"{name}={value!r} is not supported by this server"})
            continue
        raise serializers.ValidationError({name: f"Unrecognized request argument supplied: {name}"})


def _created() -> int:
    return int(time.time())


class UsageSerializer(serializers.Serializer):
    class Meta:
        ref_name = "OpenAIUsage"

    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class AssistantMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["assistant"])
    content = serializers.CharField(allow_null=True, help_text="null when the answer is only tool calls")
    refusal = serializers.CharField(allow_null=True)
    annotations = serializers.ListField(child=serializers.DictField())
    tool_calls = ToolCallSerializer(many=True, required=False, help_text="present when the model called tools")


class ChoiceSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    message = AssistantMessageSerializer()
    logprobs = serializers.DictField(allow_null=True)
    finish_reason = serializers.ChoiceField(choices=["stop", "length", "content_filter", "tool_calls"])


class ChatCompletionSerializer(serializers.Serializer):
    """OpenAI's `chat.completion` object, as this server fills it."""

    id = serializers.CharField()
    object = serializers.CharField(help_text="`chat.completion`")
    created = serializers.IntegerField()
    model = serializers.CharField()
    choices = ChoiceSerializer(many=True)
    usage = UsageSerializer()
    system_fingerprint = serializers.CharField(allow_null=True)
    service_tier = serializers.CharField()


class ChatCompletionsApi(APIView):
    required_scope = SCOPE_CHAT

    content_negotiation_class = sse.EventStreamNegotiation

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ChatCompletionRequest"

        model = StrictCharField(max_length=500)
        messages = ChatMessageSerializer(many=True, allow_empty=False, max_length=MAX_MESSAGES)
        max_tokens = max_tokens_field("max_tokens", allow_null=True)
        max_completion_tokens = max_tokens_field("max_completion_tokens", allow_null=True)
        temperature = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=TEMPERATURE_MAX)
        top_p = TopPField(allow_null=True)
        stop = StopField(required=False, allow_null=True)
        seed = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=SEED_MAX)
        n = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_CHOICES)
        logprobs = serializers.BooleanField(required=False, allow_null=True)
        top_logprobs = serializers.IntegerField(
            required=False, allow_null=True, min_value=0, max_value=MAX_TOP_LOGPROBS
        )
        user = serializers.CharField(required=False, allow_blank=True, max_length=256)
        stream = serializers.BooleanField(required=False, default=False, allow_null=True)
        stream_options = StreamOptionsSerializer(required=False, allow_null=True)
        response_format = ResponseFormatField(required=False, allow_null=True)
        tools = ToolsField(required=False, allow_null=True)
        tool_choice = ToolChoiceField(required=False, allow_null=True)
        parallel_tool_calls = serializers.BooleanField(required=False, allow_null=True)

        def to_internal_value(self, data: Any) -> Any:
            _refuse_unknown(self, data)
            return super().to_internal_value(data)

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if attrs.get("stream_options") and not attrs.get("stream"):
                raise serializers.ValidationError({"stream_options": "stream_options is only allowed with stream"})
            if attrs.get("top_logprobs") is not None and not attrs.get("logprobs"):
                raise serializers.ValidationError({"top_logprobs": "top_logprobs needs logprobs: true"})
            attrs["request"] = _completion_request(attrs)
            return attrs

    @extend_schema(
        summary="OpenAI-compatible chat completion (streamed with `stream: true`)",
        request=InputSerializer,
        responses={
            (200, "application/json"): ChatCompletionSerializer,
            (200, "text/event-stream"): event_stream(
                "with `stream: true`: `chat.completion.chunk` frames, then `data: [DONE]`"
            ),
            404: OpenApiResponse(description="unknown model"),
            **MODEL_ERRORS,
        },
        tags=["openai"],
    )
    def post(self, request: Request) -> HttpResponseBase:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        served = data["model"]
        meter = Meter.for_request(request)
        if data.get("stream"):
            options = data.get("stream_options") or {}
            return sse.StreamRequested(
                request.user,
                data["request"],
                meter=meter,
                model=served,
                include_usage=options.get("include_usage", False),
                n=data.get("n") or 1,
            )
        from inference.openai_completions import chat_logprobs, choice_requests, complete_all

        results, meter = complete_all(choice_requests(data["request"], data.get("n") or 1), http=request)
        result = results[0]
        completion_tokens = sum(r.usage.completion_tokens for r in results)  # the prompt is read once
        return Response(
            {
                "id": _chat_completion_id(result.id),
                "object": "chat.completion",
                "created": _created(),
                "model": result.model_id if result.fallback else served,  # a fallback names itself
                "choices": [
                    {
                        "index": index,
                        "message": _assistant_message(r),
                        "logprobs": chat_logprobs(r.logprobs),
                        # A refusal is told by `message.refusal` (OpenAI's "stop"); a stream has sent it as content.
                        "finish_reason": "stop" if r.finish_reason == "refusal" else _finish_reason(r.finish_reason),
                    }
                    for index, r in enumerate(results)
                ],
                "usage": {
                    "prompt_tokens": result.usage.prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": result.usage.prompt_tokens + completion_tokens,
                },
                "system_fingerprint": None,
                "service_tier": "default",
            },
            headers={"X-Cache": "HIT" if all(r.cached for r in results) else "MISS", **meter.headers()},
        )


class OpenAIRequestSchema(OpenApiSerializerExtension):
    """A /v1 request refuses fields it does not know: `additionalProperties: false`. OpenAI's common
    parameters (NEUTRAL) are left out of the schema: they are accepted at their neutral value only."""

    target_class = ChatCompletionsApi.InputSerializer

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["additionalProperties"] = False
            schema["description"] = (
                "Also accepted, at their neutral value only (anything else is a 400 rather than silently ignored): "
                + ", ".join(sorted(NEUTRAL))
            )
        return schema


def _assistant_message(result: services.CompletionResult) -> dict[str, Any]:
    """The answer as OpenAI's assistant message: content null when it is only tool calls."""
    message: dict[str, Any] = {"role": "assistant", "content": result.text, "refusal": None, "annotations": []}
    if result.finish_reason == "refusal":  # the model declined: OpenAI says why in `refusal`, with no content
        message["content"], message["refusal"] = None, result.text
    if result.tool_calls:
        message["content"] = result.text or None
        message["tool_calls"] = [_tool_call(call) for call in result.tool_calls]
    return message


def _tool_call(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def _message(message: dict[str, Any]) -> dict[str, Any]:
    """A /v1 message as the one request type's turn: tool calls as {id, name, arguments}."""
    turn: dict[str, Any] = {"role": message["role"], "content": message.get("content") or ""}
    if message.get("tool_calls"):
        turn["tool_calls"] = [
            {"id": c["id"], "name": c["function"]["name"], "arguments": c["function"]["arguments"]}
            for c in message["tool_calls"]
        ]
    if message.get("tool_call_id") is not None:
        turn["tool_call_id"] = message["tool_call_id"]
    return turn


def _completion_request(data: dict[str, Any]) -> CompletionRequest:
    """/v1's fields as the one request type; a broken bound names the field the client sent."""
    tokens_field = "max_completion_tokens" if data.get("max_completion_tokens") else "max_tokens"
    fields = {
        "messages": [_message(m) for m in data["messages"]],
        "max_new_tokens": data.get("max_completion_tokens") or data.get("max_tokens"),
        "temperature": data.get("temperature"),
        "top_p": data.get("top_p"),
        "stop": data.get("stop") or None,
        "seed": data.get("seed"),
        "model": data["model"],
        "response_format": data.get("response_format"),
        "logprobs": (data.get("top_logprobs") or 0) if data.get("logprobs") else None,
        "tools": data.get("tools"),
        "tool_choice": data.get("tool_choice"),
        "parallel_tool_calls": data.get("parallel_tool_calls"),
    }
    return completion_request(fields, wire_names={"max_new_tokens": tokens_field})


# OpenAI's finish reasons: why our providers stop, in the words OpenAI clients switch on. Anthropic's
# "refusal" (withheld for safety) is what OpenAI calls content_filter.
OPENAI_FINISH_REASONS = {
    "length": "length",
    "content_filter": "content_filter",
    "refusal": "content_filter",
    "tool_calls": "tool_calls",
}


def _chat_logprobs(entries: Any) -> Any:
    from inference.openai_completions import chat_logprobs

    return chat_logprobs(entries)


def _finish_reason(reason: str) -> str:
    return OPENAI_FINISH_REASONS.get(reason, "stop")


def _chat_completion_id(completion_id: str) -> str:
    """The /v1 id of a completion: the same hex as its usage record and predict's `cmpl-` id."""
    return f"chatcmpl-{completion_id.removeprefix('cmpl-')}"


async def _chat_stream(request: HttpRequest, asked: sse.StreamRequested) -> HttpResponseBase:
    if asked.options.get("n", 1) > 1:
        from inference.openai_completions import chat_stream_n

        return await chat_stream_n(request, asked, chunk_id=_chat_completion_id)
    # The id is chosen before the first frame, so every chunk carries the one the usage record gets.
    request_id = uuid.uuid4()
    answering: dict[str, str] = {}  # set before the first event: the model that answers, when a fallback does
    events = services.complete_stream(
        asked.request,
        user=asked.user,
        source="openai",
        request_id=request_id,
        on_fallback=lambda model_id: answering.update(model=model_id),
        meter=asked.meter,
    )
    try:
        first = await anext(events)
    except ApplicationError as exc:
        return error_response(request, exc)
    return sse.event_stream_response(
        _chunks(
            first,
            events,
            completion_id=services.completion_id(request_id),
            model=answering.get("model", asked.options["model"]),
            include_usage=asked.options["include_usage"],
        ),
        headers=asked.meter.headers(),
    )


async def _chunks(first: Any, events: Any, *, completion_id: str, model: str, include_usage: bool):
    """`chat.completion.chunk` frames: role first, content deltas, the finish reason, usage, `[DONE]`."""
    head = {
        "id": _chat_completion_id(completion_id),
        "object": "chat.completion.chunk",
        "created": _created(),
        "model": model,
    }
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, logprobs: Any = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
        return sse.frame({**head, "system_fingerprint": None, "choices": [choice], **extra})

    try:
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        event = first
        while True:
            if isinstance(event, TextDelta):
                if event.text or event.logprobs:
                    yield chunk({"content": event.text}, logprobs=_chat_logprobs(event.logprobs))
            elif isinstance(event, ToolCallDelta):
                for delta in _tool_call_chunks(event):
                    yield chunk(delta)
            else:
                yield chunk({}, _finish_reason(event.finish_reason))
                if include_usage:
                    yield sse.frame({**head, "system_fingerprint": None, "choices": [], "usage": event.usage.as_dict()})
                yield b"data: [DONE]\n\n"
                return
            event = await anext(events)
    except ApplicationError as exc:
        # After the first byte the status is sent: OpenAI's clients raise on an in-band error object.
        yield sse.frame({"error": {"message": exc.message, "type": "api_error", "param": None, "code": exc.code}})
    finally:
        await events.aclose()


def _tool_call_chunks(event: ToolCallDelta) -> list[dict[str, Any]]:
    """A tool call piece as OpenAI streams it: a call's first chunk has its id, type, name and arguments "",
    then chunks carry pieces of its arguments' text."""
    chunks = []
    if event.id is not None:
        head = {"index": event.index, "id": event.id, "type": "function"}
        chunks.append({"tool_calls": [{**head, "function": {"name": event.name, "arguments": ""}}]})
    if event.arguments:
        chunks.append({"tool_calls": [{"index": event.index, "function": {"arguments": event.arguments}}]})
    return chunks


chat_completions = sse.streaming_view(ChatCompletionsApi, _chat_stream)


NON_BLANK = {"type": "string", "minLength": 1, "pattern": r"\S"}


@extend_schema_field({"oneOf": [NON_BLANK, {"type": "array", "items": NON_BLANK, "minItems": 1}]})
class EmbeddingInputField(serializers.JSONField):
    """A text or a list of texts (not token arrays); the embeddings services check each text and the batch."""


@extend_schema_field({"oneOf": [{"type": "array", "items": {"type": "number"}}, {"type": "string"}]})
class EmbeddingVectorField(serializers.JSONField):
    """A vector: floats, or with `encoding_format: base64` their little-endian float32 bytes in base64."""


class EmbeddingSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="`embedding`")
    index = serializers.IntegerField()
    embedding = EmbeddingVectorField()


class EmbeddingUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class EmbeddingListSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="`list`")
    data = EmbeddingSerializer(many=True)
    model = serializers.CharField()
    usage = EmbeddingUsageSerializer()


class EmbeddingsApi(APIView):
    required_scope = SCOPE_EMBEDDINGS

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "EmbeddingsRequest"

        input = EmbeddingInputField()
        model = StrictCharField(max_length=500)
        encoding_format = serializers.ChoiceField(choices=["float", "base64"], required=False, default="float")
        dimensions = serializers.IntegerField(required=False, allow_null=True, min_value=1)
        user = serializers.CharField(required=False, max_length=256)

        def to_internal_value(self, data: Any) -> Any:
            _refuse_unknown(self, data)
            return super().to_internal_value(data)

        def validate_input(self, value: Any) -> list[str]:
            texts = [value] if isinstance(value, str) else value
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise serializers.ValidationError(
                    "input must be a string or a list of strings (token arrays are not supported)"
                )
            return texts

    @extend_schema(
        summary="OpenAI-compatible embeddings",
        request=InputSerializer,
        responses={
            200: EmbeddingListSerializer,
            404: OpenApiResponse(description="not this server's embedding model"),
            429: MODEL_ERRORS[429],
            503: OpenApiResponse(description="the embedding model cannot be loaded (the message says why)"),
        },
        tags=["openai"],
    )
    def post(self, request: Request) -> Response:
        from embeddings.services import encode_with_usage

        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        served = _short(settings.EMBEDDING_MODEL)
        if data["model"] not in (settings.EMBEDDING_MODEL, served):
            raise ApplicationError(
                f"The model `{data['model']}` does not exist; this server embeds with `{served}`",
                code=ErrorCode.MODEL_NOT_FOUND,
                status=404,
                field="model",
            )
        model, vectors, tokens = encode_with_usage(texts=data["input"], field="input", meter=Meter.for_request(request))
        if data.get("dimensions") not in (None, vectors.shape[1]):
            raise ApplicationError(f"{model} makes {vectors.shape[1]}-dimensional vectors only", field="dimensions")
        rows = []
        for index, vector in enumerate(vectors):
            if data["encoding_format"] == "base64":
                embedding: Any = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
            else:
                embedding = vector.tolist()
            rows.append({"object": "embedding", "index": index, "embedding": embedding})
        return Response(
            {"object": "list", "data": rows, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        )


class EmbeddingsRequestSchema(OpenAIRequestSchema):
    target_class = EmbeddingsApi.InputSerializer


def _short(name: str) -> str:
    return name.rstrip("/").rsplit("/", 1)[-1]


class ModelSerializer(serializers.Serializer):
    class Meta:
        ref_name = "OpenAIModel"

    id = serializers.CharField()
    object = serializers.CharField(help_text="`model`")
    created = serializers.IntegerField()
    owned_by = serializers.CharField()


class ModelListSerializer(serializers.Serializer):
    class Meta:
        ref_name = "OpenAIModelList"

    object = serializers.CharField(help_text="`list`")
    data = ModelSerializer(many=True)


class ModelListApi(APIView):
    @extend_schema(
        operation_id="openai_models_list",
        summary="Models this server can serve (OpenAI shape)",
        responses=ModelListSerializer,
        tags=["openai"],
    )
    def get(self, request: Request) -> Response:
        return Response({"object": "list", "data": selectors.openai_models()})


class ModelDetailApi(APIView):
    @extend_schema(
        operation_id="openai_models_retrieve",
        summary="One model (OpenAI shape); 404 when unknown",
        responses={200: ModelSerializer, 404: OpenApiResponse(description="unknown model")},
        tags=["openai"],
    )
    def get(self, request: Request, model: str) -> Response:
        for entry in selectors.openai_models():
            if entry["id"] == model:
                return Response(entry)
        raise ApplicationError(
            f"The model `{model}` does not exist", code=ErrorCode.MODEL_NOT_FOUND, status=404, field="model"
        )
