"""Evaluation and promotion REST API (docs/api.md, Evaluation): thin views over `evaluation.services`.

Everything here is for staff. Reads first fail the evaluations whose worker died
(`services.evaluations_reap`), so no client polls a dead evaluation forever.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsStaff
from evaluation import selectors, services
from evaluation.models import Evaluation, EvaluationExample, Promotion
from llmsite.serializers import (
    OFFSET_MAX,
    PAGE_MAX,
    PageQuerySerializer,
    StrictCharField,
    StrictSerializer,
    page,
    page_serializer,
)

TAGS = ["evaluation"]
NOT_FOUND = OpenApiResponse(description="no evaluation has that id")
EXAMPLES_DEFAULT = 200


class ModelFiguresSerializer(serializers.Serializer):
    class Meta:
        ref_name = "EvaluationModelFigures"

    eval_loss = serializers.FloatField(allow_null=True, required=False, help_text="Null for remote models.")
    perplexity = serializers.FloatField(allow_null=True, required=False)
    eval_examples = serializers.IntegerField(required=False)
    loss_note = serializers.CharField(required=False, help_text="Why there is no loss, when there is none.")
    questions = serializers.IntegerField(required=False)
    correct = serializers.IntegerField(required=False)
    accuracy = serializers.FloatField(allow_null=True, required=False)
    qa_errors = serializers.IntegerField(required=False)


class EvaluationSerializer(serializers.Serializer):
    class Meta:
        ref_name = "Evaluation"

    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Evaluation.Status.values)
    model = serializers.CharField()
    baseline = serializers.CharField(help_text="Empty when the model was evaluated alone.")
    judge = serializers.CharField(help_text="Empty without a judge.")
    options = serializers.DictField(help_text="limit, max_tokens and the held-out split (datasets, fraction, seed).")
    metrics = serializers.DictField(
        help_text='{"models": {id: figures}, "judge": {wins, losses, ties, win_rate} or null}'
    )
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    progress = serializers.SerializerMethodField(help_text="done / total, 0 to 1 (null before it is known).")
    error = serializers.CharField()
    source = serializers.CharField(help_text="api, cli or training (evaluated after a training run)")
    training_run = serializers.IntegerField(source="training_run_id", allow_null=True)
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    task_id = serializers.UUIDField(allow_null=True)
    cancel_requested = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_progress(self, obj: Evaluation) -> float | None:
        return min(1.0, obj.done / obj.total) if obj.total else None


class ExampleSerializer(serializers.Serializer):
    class Meta:
        ref_name = "EvaluationExample"

    kind = serializers.ChoiceField(choices=EvaluationExample.Kind.values)
    index = serializers.IntegerField()
    model = serializers.CharField(help_text="The model answering; for judge rows, the judge.")
    question_id = serializers.CharField()
    prompt = serializers.CharField()
    expected = serializers.ListField(child=serializers.CharField())
    answer = serializers.CharField()
    correct = serializers.BooleanField(allow_null=True)
    loss = serializers.FloatField(allow_null=True)
    verdicts = serializers.DictField()
    error = serializers.CharField()


class ExamplePageSerializer(serializers.Serializer):
    class Meta:
        ref_name = "EvaluationExamplePage"

    count = serializers.IntegerField()
    limit = serializers.IntegerField()
    offset = serializers.IntegerField()
    results = ExampleSerializer(many=True)


class EvaluationDetailSerializer(EvaluationSerializer):
    class Meta:
        ref_name = "EvaluationDetail"

    examples = ExamplePageSerializer()


def _evaluation_or_404(evaluation_id: int) -> Evaluation:
    evaluation = selectors.evaluation_get(evaluation_id=evaluation_id)
    if evaluation is None:
        raise Http404("No evaluation matches the given query.")
    return evaluation


class EvaluationListStartApi(APIView):
    permission_classes = [IsStaff]

    class QuerySerializer(PageQuerySerializer):
        class Meta:
            ref_name = "EvaluationListQuery"

        status = serializers.ChoiceField(choices=Evaluation.Status.values, required=False)
        model = serializers.CharField(required=False, max_length=services.MAX_MODEL_CHARS)

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "EvaluationStart"

        model = StrictCharField(max_length=services.MAX_MODEL_CHARS, help_text="The pool id of the model evaluated.")
        against = StrictCharField(
            required=False,
            allow_null=True,
            max_length=services.MAX_MODEL_CHARS,
            help_text="The baseline's pool id (default: the site's default model, when `model` is another one).",
        )
        judge = StrictCharField(
            required=False,
            allow_null=True,
            max_length=services.MAX_MODEL_CHARS,
            help_text="A pool id that judges the answers pairwise (default: EVALUATION_JUDGE_MODEL; none if empty).",
        )
        limit = serializers.IntegerField(
            required=False, allow_null=True, help_text="Questions, 1 to EVALUATION_MAX_QUESTIONS (default 20)."
        )
        max_tokens = serializers.IntegerField(
            required=False, allow_null=True, help_text="Tokens per answer (default EVALUATION_MAX_NEW_TOKENS, 48)."
        )

    OutputSerializer = page_serializer(EvaluationSerializer, ref_name="EvaluationPage")

    @extend_schema(
        operation_id="evaluations_list",
        summary="Evaluations, newest first (staff)",
        parameters=[QuerySerializer],
        responses={200: OutputSerializer},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        services.evaluations_reap()
        data = query.validated_data
        rows = selectors.evaluation_list(status=data.get("status"), model=data.get("model"))
        return Response(self.OutputSerializer(page(rows, limit=data["limit"], offset=data["offset"])).data)

    @extend_schema(
        operation_id="evaluations_start",
        summary="Evaluate a model against a baseline in the background (staff); answers at once with the queued row",
        request=InputSerializer,
        responses={
            202: EvaluationSerializer,
            400: OpenApiResponse(description="invalid input or unknown model; `field` names the input"),
            409: OpenApiResponse(description="too many evaluations are queued or running"),
        },
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        evaluation = services.evaluation_start(user=request.user, source="api", **data.validated_data)
        response = Response(EvaluationSerializer(evaluation).data, status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/evaluations/{evaluation.pk}"
        return response


class EvaluationDetailApi(APIView):
    permission_classes = [IsStaff]

    class QuerySerializer(serializers.Serializer):
        class Meta:
            ref_name = "EvaluationDetailQuery"

        kind = serializers.ChoiceField(choices=EvaluationExample.Kind.values, required=False)
        limit = serializers.IntegerField(required=False, default=EXAMPLES_DEFAULT, min_value=1, max_value=PAGE_MAX * 5)
        offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=OFFSET_MAX)

    @extend_schema(
        operation_id="evaluations_retrieve",
        summary="One evaluation: status, progress, figures per model, per-example results (a page of them)",
        parameters=[QuerySerializer],
        responses={200: EvaluationDetailSerializer, 404: NOT_FOUND},
        tags=TAGS,
    )
    def get(self, request: Request, evaluation_id: int) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        services.evaluations_reap()
        evaluation = _evaluation_or_404(evaluation_id)
        data = query.validated_data
        rows = selectors.example_list(evaluation=evaluation, kind=data.get("kind"))
        body: Any = EvaluationSerializer(evaluation).data
        body["examples"] = ExamplePageSerializer(page(rows, limit=data["limit"], offset=data["offset"])).data
        return Response(body)


class EvaluationCancelApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        operation_id="evaluations_cancel",
        summary="Cancel an evaluation (staff): a queued one at once, a running one after its current example",
        request=None,
        responses={200: EvaluationSerializer, 404: NOT_FOUND, 409: OpenApiResponse(description="already finished")},
        tags=TAGS,
    )
    def post(self, request: Request, evaluation_id: int) -> Response:
        return Response(EvaluationSerializer(services.evaluation_cancel(evaluation_id=evaluation_id)).data)


class PromotionSerializer(serializers.Serializer):
    class Meta:
        ref_name = "Promotion"

    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Promotion.Kind.values)
    model = serializers.CharField(help_text="The pool id made the default.")
    provider = serializers.CharField()
    device = serializers.CharField()
    previous = serializers.SerializerMethodField(help_text="The default before: {provider, model, device}.")
    evaluation = serializers.IntegerField(source="evaluation_id", allow_null=True)
    reverts = serializers.IntegerField(
        source="reverts_id", allow_null=True, help_text="Rollbacks: the promotion undone."
    )
    user = serializers.CharField(source="user.username", allow_null=True, default=None)
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()

    def get_previous(self, obj: Promotion) -> dict[str, str]:
        return {"provider": obj.previous_provider, "model": obj.previous_model, "device": obj.previous_device}


class PromoteApi(APIView):
    permission_classes = [IsStaff]

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "ModelPromote"

        reason = StrictCharField(max_length=services.MAX_REASON_CHARS, help_text="Why (kept in the audit log).")
        evaluation = serializers.IntegerField(
            required=False,
            allow_null=True,
            min_value=1,
            max_value=2**63 - 1,
            help_text="The evidence: an evaluation id.",
        )

    @extend_schema(
        operation_id="models_promote",
        summary="Make a model the site's default (staff), logged with its reason and evaluation",
        request=InputSerializer,
        responses={
            201: PromotionSerializer,
            400: OpenApiResponse(description="unknown model or evaluation, no reason, or the model cannot load"),
            409: OpenApiResponse(description="the model is already the default"),
        },
        tags=TAGS,
    )
    def post(self, request: Request, model: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        promotion = services.model_promote(
            model=model,
            reason=data.validated_data["reason"],
            evaluation_id=data.validated_data.get("evaluation"),
            user=request.user,
        )
        return Response(PromotionSerializer(promotion).data, status=status.HTTP_201_CREATED)


class RollbackApi(APIView):
    permission_classes = [IsStaff]

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "ModelRollback"

        reason = StrictCharField(required=False, allow_blank=True, max_length=services.MAX_REASON_CHARS)

    @extend_schema(
        operation_id="models_rollback",
        summary="Make the default what it was before the newest promotion not yet rolled back (staff)",
        request=InputSerializer,
        responses={201: PromotionSerializer, 409: OpenApiResponse(description="there is nothing to roll back")},
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        promotion = services.model_rollback(reason=data.validated_data.get("reason", ""), user=request.user)
        return Response(PromotionSerializer(promotion).data, status=status.HTTP_201_CREATED)


class PromotionListApi(APIView):
    permission_classes = [IsStaff]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "PromotionPage"

        default = serializers.DictField(help_text="The default model now: {id, provider, model, device}.")
        rollback_to = serializers.DictField(
            allow_null=True, help_text="What a rollback would restore: {provider, model, device}; null when nothing."
        )
        count = serializers.IntegerField()
        limit = serializers.IntegerField()
        offset = serializers.IntegerField()
        results = PromotionSerializer(many=True)

    @extend_schema(
        operation_id="models_promotions",
        summary="The promotion log, newest first, with the current default (staff)",
        parameters=[PageQuerySerializer],
        responses={200: OutputSerializer},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        query = PageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        body = page(
            selectors.promotion_list(), limit=query.validated_data["limit"], offset=query.validated_data["offset"]
        )
        target = services.rollback_target()
        body["default"] = selectors.default_model()
        body["rollback_to"] = (
            {"provider": target.previous_provider, "model": target.previous_model, "device": target.previous_device}
            if target
            else None
        )
        return Response(self.OutputSerializer(body).data)
