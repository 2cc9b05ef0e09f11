"""Training REST API (docs/api.md, Training): thin views over `training.services` and `training.selectors`.

Any signed-in user may read runs and metrics; starting and cancelling runs is for staff.
Bounds (epochs, steps, batch size, learning rate, ...) are checked in the service, so the API
and `manage.py train` refuse the same things with the same messages. Reads first mark failed
the runs whose worker died (`services.runs_reap`), so no client ever polls a dead run forever.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsStaff
from llmsite.devices import DEVICES
from llmsite.serializers import PageQuerySerializer, StrictCharField, StrictSerializer, page, page_serializer
from training import selectors, services
from training.models import TrainingRun

TAGS = ["training"]
NOT_FOUND = OpenApiResponse(description="no training run has that id")


class HyperparametersSerializer(serializers.Serializer):
    class Meta:
        ref_name = "TrainingHyperparameters"

    epochs = serializers.IntegerField()
    max_steps = serializers.IntegerField(allow_null=True)
    batch_size = serializers.IntegerField()
    grad_accum_steps = serializers.IntegerField()
    learning_rate = serializers.FloatField()
    warmup_ratio = serializers.FloatField()
    weight_decay = serializers.FloatField()
    max_length = serializers.IntegerField()
    eval_fraction = serializers.FloatField()
    seed = serializers.IntegerField()
    beta = serializers.FloatField(allow_null=True, help_text="DPO only (null for sft runs).")
    lora = serializers.BooleanField(help_text="DPO only: LoRA adapters, merged into the saved model.")


class RunSerializer(serializers.Serializer):
    class Meta:
        ref_name = "TrainingRun"

    id = serializers.IntegerField()
    name = serializers.CharField(help_text="The model name; once succeeded, serve it as provider hf, model <name>.")
    base_model = serializers.CharField()
    method = serializers.ChoiceField(
        choices=TrainingRun.Method.values, help_text="sft (chat and text data) or dpo (preference pairs)."
    )
    datasets = serializers.ListField(child=serializers.CharField())
    status = serializers.ChoiceField(choices=TrainingRun.Status.values)
    hyperparameters = HyperparametersSerializer(source="*")
    device = serializers.CharField(help_text="As requested (auto, cpu, cuda, mps).")
    device_used = serializers.CharField()
    serve = serializers.BooleanField(help_text="Serve the model when the run succeeds.")
    source = serializers.CharField(help_text="api, cli or admin")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    heartbeat_at = serializers.DateTimeField(allow_null=True)
    task_id = serializers.UUIDField(allow_null=True, help_text="The run's background job (null for manage.py train).")
    task_status = serializers.SerializerMethodField(
        help_text="The job's state: READY (waiting for a worker), RUNNING, SUCCESSFUL or FAILED; null without a job."
    )
    cancel_requested = serializers.BooleanField()
    step = serializers.IntegerField(help_text="Optimizer steps done.")
    total_steps = serializers.IntegerField(allow_null=True)
    progress = serializers.SerializerMethodField(help_text="step / total_steps, 0 to 1 (null before it is known).")
    train_examples = serializers.IntegerField(allow_null=True)
    eval_examples = serializers.IntegerField(allow_null=True)
    eval_loss_before = serializers.FloatField(
        allow_null=True, help_text="Held-out loss before training: cross-entropy (sft) or the DPO loss (dpo)."
    )
    eval_loss_after = serializers.FloatField(allow_null=True)
    perplexity_before = serializers.FloatField(allow_null=True, help_text="null for dpo runs.")
    perplexity_after = serializers.FloatField(allow_null=True)
    model = serializers.SerializerMethodField(help_text="The servable model name once the run succeeded, else null.")
    output_dir = serializers.CharField()
    final_metrics = serializers.DictField()
    error = serializers.CharField()

    def get_progress(self, obj: TrainingRun) -> float | None:
        if not obj.total_steps:
            return None
        return min(1.0, obj.step / obj.total_steps)

    def get_task_status(self, obj: TrainingRun) -> str | None:
        return selectors.run_task_status(run=obj)

    def get_model(self, obj: TrainingRun) -> str | None:
        if obj.status != TrainingRun.Status.SUCCEEDED or not (settings.MODELS_DIR / obj.name / "config.json").is_file():
            return None  # not finished, or its folder was removed since
        return obj.name


class MetricSerializer(serializers.Serializer):
    class Meta:
        ref_name = "TrainingEpochMetric"

    epoch = serializers.IntegerField()
    step = serializers.IntegerField()
    train_loss = serializers.FloatField()
    eval_loss = serializers.FloatField(allow_null=True)
    eval_perplexity = serializers.FloatField(allow_null=True)
    learning_rate = serializers.FloatField()
    tokens_per_second = serializers.FloatField()
    seconds = serializers.FloatField(help_text="Seconds since the run began training.")
    extra = serializers.DictField(
        child=serializers.FloatField(allow_null=True),
        help_text="dpo runs, on the held-out pairs: preference_accuracy, preference_accuracy_per_token, "
        "logprob_margin, reward_accuracy, reward_margin; empty for sft runs.",
    )
    created_at = serializers.DateTimeField()


def _run_or_404(run_id: int) -> TrainingRun:
    run = selectors.run_get(run_id=run_id)
    if run is None:
        raise Http404("No training run matches the given query.")
    return run


class RunListStartApi(APIView):
    def get_permissions(self):
        return [IsStaff()] if self.request.method == "POST" else super().get_permissions()

    class QuerySerializer(PageQuerySerializer):
        class Meta:
            ref_name = "TrainingRunListQuery"

        status = serializers.ChoiceField(choices=TrainingRun.Status.values, required=False)

    class InputSerializer(StrictSerializer):
        class Meta:
            ref_name = "TrainingRunStart"

        name = StrictCharField(
            required=False, max_length=64, help_text="The model name (default: <base model>-ft-<timestamp>)."
        )
        base_model = StrictCharField(required=False, max_length=500, help_text="Default: TRAINING_BASE_MODEL.")
        method = serializers.ChoiceField(
            choices=TrainingRun.Method.values,
            required=False,
            help_text="sft (default): learn the answers of chat and text datasets; dpo: prefer the chosen answer "
            "of preference pairs (TRL's DPOTrainer).",
        )
        datasets = serializers.ListField(
            child=StrictCharField(max_length=64),
            required=False,
            help_text='Dataset names from GET /api/v1/training/datasets (default ["dialogue"], for dpo '
            '["preferences"]), at most 8; a dpo run takes preference datasets only, an sft run none of them.',
        )
        epochs = serializers.IntegerField(required=False, help_text="1 to TRAINING_MAX_EPOCHS (20); default 2.")
        max_steps = serializers.IntegerField(
            required=False, allow_null=True, help_text="Stop after this many optimizer steps (1 to TRAINING_MAX_STEPS)."
        )
        batch_size = serializers.IntegerField(required=False, help_text="1 to TRAINING_MAX_BATCH_SIZE (64); default 4.")
        grad_accum_steps = serializers.IntegerField(
            required=False, help_text="Micro-batches per optimizer step, 1 to TRAINING_MAX_GRAD_ACCUM (64); default 1."
        )
        learning_rate = serializers.FloatField(
            required=False, help_text="Peak AdamW learning rate, above 0 and at most TRAINING_MAX_LEARNING_RATE."
        )
        warmup_ratio = serializers.FloatField(required=False, help_text="Share of steps warming up, 0 to 0.5.")
        weight_decay = serializers.FloatField(required=False, help_text="0 to 1; default 0.")
        max_length = serializers.IntegerField(
            required=False, help_text="Tokens per sequence, 16 to TRAINING_MAX_LENGTH and the model's context."
        )
        eval_fraction = serializers.FloatField(required=False, help_text="Share held out for evaluation, 0 to 0.5.")
        seed = serializers.IntegerField(required=False, help_text="0 to 2**31-1; default 0.")
        device = serializers.ChoiceField(choices=DEVICES, required=False, help_text="Default: TRAINING_DEVICE.")
        serve = serializers.BooleanField(required=False, help_text="Serve the model when the run succeeds.")
        beta = serializers.FloatField(
            required=False, help_text="dpo only: above 0 and at most 10; default 0.1 (higher stays closer to the base)."
        )
        lora = serializers.BooleanField(
            required=False, help_text="dpo only: train LoRA adapters (peft), merged into the saved model."
        )

    OutputSerializer = page_serializer(RunSerializer, ref_name="TrainingRunPage")

    @extend_schema(
        operation_id="training_runs_list",
        summary="Training runs, newest first",
        parameters=[QuerySerializer],
        responses={200: OutputSerializer},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        services.runs_reap()
        data = query.validated_data
        body = page(selectors.run_list(status=data.get("status")), limit=data["limit"], offset=data["offset"])
        return Response(self.OutputSerializer(body).data)

    @extend_schema(
        operation_id="training_runs_start",
        summary="Start a training run in the background (staff); answers at once with the queued run",
        request=InputSerializer,
        responses={
            202: RunSerializer,
            400: OpenApiResponse(description="invalid input; the message names the limit and `field` the input"),
            409: OpenApiResponse(description="the model name is taken, or too many runs are queued or running"),
        },
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = services.run_start(user=request.user, source="api", **data.validated_data)
        response = Response(RunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/training/runs/{run.pk}"
        return response


class RunDetailApi(APIView):
    @extend_schema(
        operation_id="training_runs_retrieve",
        summary="One training run: status, progress, losses before and after",
        responses={200: RunSerializer, 404: NOT_FOUND},
        tags=TAGS,
    )
    def get(self, request: Request, run_id: int) -> Response:
        services.runs_reap()
        return Response(RunSerializer(_run_or_404(run_id)).data)


class RunMetricsApi(APIView):
    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TrainingRunMetrics"

        run = serializers.IntegerField()
        status = serializers.ChoiceField(choices=TrainingRun.Status.values)
        eval_loss_before = serializers.FloatField(allow_null=True)
        results = MetricSerializer(many=True)

    @extend_schema(
        operation_id="training_runs_metrics",
        summary="A run's metrics, one row per epoch (train loss, eval loss, learning rate, tokens/s)",
        responses={200: OutputSerializer, 404: NOT_FOUND},
        tags=TAGS,
    )
    def get(self, request: Request, run_id: int) -> Response:
        services.runs_reap()
        run = _run_or_404(run_id)
        body = {
            "run": run.pk,
            "status": run.status,
            "eval_loss_before": run.eval_loss_before,
            "results": selectors.run_metrics(run=run),
        }
        return Response(self.OutputSerializer(body).data)


class RunCancelApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        operation_id="training_runs_cancel",
        summary="Cancel a run (staff): a queued run at once, a running one between two steps",
        request=None,
        responses={
            200: RunSerializer,
            404: NOT_FOUND,
            409: OpenApiResponse(description="the run has already finished"),
        },
        tags=TAGS,
    )
    def post(self, request: Request, run_id: int) -> Response:
        run = services.run_cancel(run_id=run_id)
        return Response(RunSerializer(run).data)


class LatestRunApi(APIView):
    class QuerySerializer(serializers.Serializer):
        class Meta:
            ref_name = "TrainingLatestQuery"

        status = serializers.ChoiceField(choices=TrainingRun.Status.values, required=False)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TrainingLatest"

        run = RunSerializer(allow_null=True)
        metrics = MetricSerializer(many=True)

    @extend_schema(
        operation_id="training_latest",
        summary="The most recent run (of a status, when given) with its per-epoch metrics; run is null when none",
        parameters=[QuerySerializer],
        responses={200: OutputSerializer},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        services.runs_reap()
        run = selectors.run_latest(status=query.validated_data.get("status"))
        body: dict[str, Any] = {"run": run, "metrics": selectors.run_metrics(run=run) if run else []}
        return Response(self.OutputSerializer(body).data)


class DatasetSerializer(serializers.Serializer):
    class Meta:
        ref_name = "TrainingDataset"

    name = serializers.CharField()
    kind = serializers.ChoiceField(
        choices=["chat", "text", "preference"], help_text="preference datasets train dpo runs; the others sft runs."
    )
    origin = serializers.ChoiceField(choices=["shipped", "data", "feedback", "arena"])
    available = serializers.BooleanField()
    detail = serializers.CharField(help_text="Why it is unavailable, when it is.")


class DatasetListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TrainingDatasetList"

        results = DatasetSerializer(many=True)

    @extend_schema(
        operation_id="training_datasets",
        summary="Datasets a run may name, with their availability",
        responses={200: OutputSerializer},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer({"results": selectors.dataset_list()}).data)
