"""Arena REST API (docs/api.md, Arena): thin views over arena.services and arena.selectors."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import SCOPE_CHAT
from accounts.permissions import IsStaff
from arena import selectors, services
from arena.models import Battle
from inference import sse
from inference.apis import max_tokens_field
from inference.protocol import MAX_MODEL_CHARS
from llmsite.errors import ApplicationError, error_body, error_response
from llmsite.schema import MODEL_ERRORS, event_stream
from llmsite.serializers import StrictCharField, StrictSerializer
from usage.services import Meter

TAGS = ["arena"]


class SideSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ArenaSide"

    text = serializers.CharField(help_text="the answer ('' while it is being written)")
    finish_reason = serializers.CharField(help_text="stop, length, cancelled or error ('' while running)")
    error = serializers.CharField(required=False, help_text="present when this side failed: why")


class BattleOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ArenaBattle"

    id = serializers.IntegerField()
    prompt = serializers.CharField()
    a = SideSerializer()
    b = SideSerializer()
    finished = serializers.BooleanField(help_text="both answers have ended")
    vote = serializers.ChoiceField(choices=Battle.Vote.choices, allow_null=True)
    model_a = serializers.CharField(allow_null=True, help_text="null until you voted")
    model_b = serializers.CharField(allow_null=True, help_text="null until you voted")
    created = serializers.DateTimeField()


def _side(battle: Battle, name: str) -> dict[str, Any]:
    side = {"text": getattr(battle, f"answer_{name}"), "finish_reason": getattr(battle, f"finish_reason_{name}")}
    if getattr(battle, f"error_{name}"):
        side["error"] = getattr(battle, f"error_{name}")
    return side


def battle_body(battle: Battle) -> dict[str, Any]:
    """A battle as its owner sees it: the models stay hidden until the vote."""
    revealed = bool(battle.vote)
    return {
        "id": battle.pk,
        "prompt": battle.prompt,
        "a": _side(battle, "a"),
        "b": _side(battle, "b"),
        "finished": battle.finished is not None,
        "vote": battle.vote or None,
        "model_a": battle.model_a if revealed else None,
        "model_b": battle.model_b if revealed else None,
        "created": battle.created.isoformat(),
    }


class BattleCreateApi(APIView):
    required_scope = SCOPE_CHAT
    content_negotiation_class = sse.EventStreamNegotiation

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "ArenaBattleCreate"

        prompt = StrictCharField(max_length=services.MAX_PROMPT_CHARS, trim_whitespace=False)
        models = serializers.ListField(
            child=StrictCharField(max_length=MAX_MODEL_CHARS),
            required=False,
            min_length=2,
            max_length=2,
            help_text="two different model ids (GET /api/v1/models); default: two picked at random. "
            "Votes on battles whose models you named do not count on the leaderboard.",
        )
        max_tokens = max_tokens_field("max_tokens", help_text="the most tokens each answer may have")
        stream = serializers.BooleanField(required=False, default=False)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ArenaBattleCreated"

        id = serializers.IntegerField()
        a = SideSerializer()
        b = SideSerializer()

    @extend_schema(
        summary="Start a battle: two anonymous models answer the prompt at the same time",
        description=(
            "The answers are labelled `a` and `b`; the models are revealed by the vote.\n\n"
            "With `stream: true` (or `Accept: text/event-stream`): `event: battle` `{id}`, then "
            '`event: token` `{"side": "a"|"b", "text"}` frames of both answers as they come, '
            '`event: done` `{"side", "finish_reason"}` once per side, or `event: error` '
            '`{"side", "error": {...}}` for a side that failed (the other side still finishes). '
            "Closing the connection cancels both answers."
        ),
        request=InputSerializer,
        responses={
            (201, "application/json"): OutputSerializer,
            (200, "text/event-stream"): event_stream("with `stream: true`: battle, token, done and error events"),
            400: OpenApiResponse(description="invalid input: the prompt, the models or max_tokens (`field` names it)"),
            409: OpenApiResponse(description="fewer than two models can answer: the arena needs two"),
            **MODEL_ERRORS,
        },
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        asked = services.battle_request(prompt=fields["prompt"], max_new_tokens=fields.get("max_tokens"))
        meter = Meter.for_request(request)
        battle = services.battle_start(
            user=request.user, prompt=fields["prompt"], models=fields.get("models"), meter=meter
        )
        stream = fields["stream"] or "text/event-stream" in request.headers.get("Accept", "")
        return sse.StreamRequested(request.user, asked, meter=meter, battle=battle, stream=stream)


async def _battle_frames(battle: Battle, events: Any) -> Any:
    """The battle's SSE frames; leaving early (a client gone) closes `events`, which cancels both answers."""
    try:
        yield sse.frame({"id": battle.pk}, "battle")
        async for event in events:
            if isinstance(event, services.Token):
                yield sse.frame({"side": event.side, "text": event.text}, "token")
            elif isinstance(event, services.SideDone):
                yield sse.frame({"side": event.side, "finish_reason": event.finish_reason}, "done")
            else:
                error = event.error
                yield sse.frame({"side": event.side, **error_body(error.code, error.message)}, "error")
    finally:
        await events.aclose()


async def _battle_answers(request: HttpRequest, asked: sse.StreamRequested) -> HttpResponseBase:
    battle = asked.options["battle"]
    events = services.battle_run(battle, asked.request, user=asked.user, meter=asked.meter)
    if asked.options["stream"]:
        return sse.event_stream_response(_battle_frames(battle, events))
    failures: list[ApplicationError] = []
    try:
        async for event in events:
            if isinstance(event, services.SideFailed):
                failures.append(event.error)
    finally:
        await events.aclose()  # the battle row is complete once this returns
    if len(failures) == len(services.SIDES):  # nothing to show: the first failure is the answer
        return error_response(request, failures[0])
    return JsonResponse({"id": battle.pk, "a": _side(battle, "a"), "b": _side(battle, "b")}, status=201)


# POST /api/v1/arena/battles: validation in BattleCreateApi, both answers on the event loop.
battle_create = sse.streaming_view(BattleCreateApi, _battle_answers)


class BattleDetailApi(APIView):
    required_scope = SCOPE_CHAT

    @extend_schema(
        summary="One of your battles (its models only after your vote)",
        responses={200: BattleOutputSerializer, 404: OpenApiResponse(description="no battle of yours has that id")},
        tags=TAGS,
    )
    def get(self, request: Request, battle_id: int) -> Response:
        return Response(battle_body(selectors.battle_get(user=request.user, battle_id=battle_id)))


class BattleVoteApi(APIView):
    required_scope = SCOPE_CHAT

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "ArenaVote"

        vote = serializers.ChoiceField(choices=Battle.Vote.choices)

    @extend_schema(
        summary="Vote on your battle (once); the answer reveals both models",
        request=InputSerializer,
        responses={
            200: BattleOutputSerializer,
            400: OpenApiResponse(description="vote is not a, b, tie or both_bad"),
            404: OpenApiResponse(description="no battle of yours has that id"),
            409: OpenApiResponse(description="already voted, answers still being written, or a side failed"),
        },
        tags=TAGS,
    )
    def post(self, request: Request, battle_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        battle = services.battle_vote(user=request.user, battle_id=battle_id, vote=data.validated_data["vote"])
        return Response(battle_body(battle))


class LeaderboardRowSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ArenaRating"

    model = serializers.CharField()
    rating = serializers.FloatField(help_text="Bradley-Terry strength on an Elo-like scale; the models' mean is 1000")
    ci_low = serializers.FloatField(help_text="95 % bootstrap interval, low end")
    ci_high = serializers.FloatField(help_text="95 % bootstrap interval, high end")
    votes = serializers.IntegerField(help_text="blind votes comparing this model (a, b or tie)")


class LeaderboardApi(APIView):
    @extend_schema(
        summary="The arena leaderboard, best first",
        description="Blind votes only; a tie counts half a win each way, both_bad is no comparison.",
        responses=LeaderboardRowSerializer(many=True),
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.leaderboard())


class VotesExportApi(APIView):
    permission_classes = [IsStaff]
    content_negotiation_class = sse.EventStreamNegotiation  # any Accept (a JSONL download's) gets the file

    @extend_schema(
        summary="Every voted battle as JSONL, one battle with its exchange and vote per line (staff)",
        responses={(200, "application/jsonl"): OpenApiTypes.STR},
        tags=TAGS,
    )
    def get(self, request: Request) -> HttpResponse:
        body = "".join(services.jsonl_line(row) for row in services.battle_export_rows())
        response = HttpResponse(body, content_type="application/jsonl; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="arena-votes.jsonl"'
        return response
