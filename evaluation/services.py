"""Evaluation and promotion use cases, one function each; the API, the commands, the job and the signal call these.

- `evaluation_start(...)`: validate (400 naming the field), write the queued row and enqueue its job
  (`evaluation.tasks.evaluate`, queue `training`) in one transaction. Returns at once.
- `evaluation_create(..., claim=True)` + `evaluation_execute(e)`: what `manage.py evaluate` does here.
- `evaluation_claim(...)` + `evaluation_execute(e)`: what the job does in a job worker.
- `evaluation_cancel(...)`, `evaluations_reap(...)`: as for training runs; an evaluation whose worker
  died is failed with the reason, never left `running`.
- `evaluation_after_training(run=...)`: the automatic evaluation of a run's model (signal receiver).
- `model_promote(...)`, `model_rollback(...)`: the default model changes through
  `inference.services.provider_activate` and each change is logged as a `Promotion`.

What one evaluation measures (evaluation/README.md): per model, the held-out loss and perplexity
(local models), the accuracy on the question set (`evaluation/data/questions.jsonl`) through the
pool at temperature 0; with a judge, the pairwise verdicts with positions swapped.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from evaluation import engine
from evaluation.models import Evaluation, EvaluationExample, Promotion
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError
from llmsite.model_store import ModelNotFound
from llmsite.processes import pid_alive

logger = logging.getLogger(__name__)

Status = Evaluation.Status
QUESTIONS = Path(__file__).resolve().parent / "data" / "questions.jsonl"
MAX_MODEL_CHARS = 500
MAX_REASON_CHARS = 1000
SYSTEM_PROMPT = "You are the llmsite assistant. Answer the question about llmsite in one short sentence."
JUDGE_MAX_TOKENS = 4
MAX_LOSS_ROWS = 200  # per model: the figure covers the whole split, the table its first rows


class Conflict(ApplicationError):
    status = 409
    code = ErrorCode.CONFLICT


def _not_found(what: str) -> ApplicationError:
    return ApplicationError(what, code=ErrorCode.NOT_FOUND, status=404)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def questions() -> list[engine.Question]:
    """The question set (EVALUATION_QUESTIONS, default evaluation/data/questions.jsonl)."""
    try:
        return engine.load_questions(Path(settings.EVALUATION_QUESTIONS or QUESTIONS))
    except engine.EvaluationError as exc:
        raise ApplicationError(str(exc), status=500, code=ErrorCode.INVALID) from exc


# --- model ids ----------------------------------------------------------------------------------------
def default_model_id() -> str:
    """The pool id of the site's default model now (the active ProviderConfig, else settings)."""
    from inference.engine import configured_spec
    from inference.registry import model_id

    return model_id(configured_spec())


def _spec(value: Any, field: str):
    """The ProviderSpec serving the pool id `value`; a 400 naming `field` when it is no model."""
    from inference.engine import configured_spec
    from inference.registry import UnknownModel, spec_for_model

    if not isinstance(value, str) or not 0 < len(value) <= MAX_MODEL_CHARS:
        raise ApplicationError(f"{field} must be a model id of 1 to {MAX_MODEL_CHARS} characters", field=field)
    try:
        return spec_for_model(value, configured_spec())
    except UnknownModel as exc:
        raise ApplicationError(exc.message, field=field) from exc
    except OSError as exc:  # a name no file system accepts
        raise ApplicationError(f"The model `{value[:80]}` does not exist ({exc.strerror})", field=field) from exc


def _model_id(value: Any, field: str) -> str:
    from inference.registry import model_id

    return model_id(_spec(value, field))


def _local_folder(model: str) -> Path | None:
    """The folder of a local model (None for a remote one)."""
    from llmsite.model_store import resolve_llm_folder

    spec = _spec(model, "model")
    if spec.provider != "hf":
        return None
    return resolve_llm_folder(spec.model, settings.MODELS_DIR)


# --- creating and starting ----------------------------------------------------------------------------
def _validated(
    *, model: Any, against: Any, judge: Any, limit: Any, max_tokens: Any
) -> tuple[str, str, str, dict[str, Any]]:
    model_id = _model_id(model, "model")
    if against in (None, ""):
        default = default_model_id()
        try:
            baseline = _model_id(default, "against") if default != model_id else ""
        except ApplicationError:  # a default no longer servable (its folder removed): nothing to compare with
            baseline = ""
    else:
        baseline = _model_id(against, "against")
        if baseline == model_id:
            raise ApplicationError("against must name another model than model", field="against")
    judge = judge if judge not in (None, "") else settings.EVALUATION_JUDGE_MODEL
    judge_id = _model_id(judge, "judge") if judge else ""
    high = min(settings.EVALUATION_MAX_QUESTIONS, len(questions()))
    limit = settings.EVALUATION_DEFAULT_LIMIT if limit is None else limit
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= high:
        raise ApplicationError(
            f"limit must be a whole number from 1 to {high} (questions); got {limit!r}", field="limit"
        )
    max_tokens = settings.EVALUATION_MAX_NEW_TOKENS if max_tokens is None else max_tokens
    cap = min(settings.LLM_MAX_NEW_TOKENS, 512)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= cap:
        raise ApplicationError(f"max_tokens must be a whole number from 1 to {cap}", field="max_tokens")
    return model_id, baseline, judge_id, {"limit": limit, "max_tokens": max_tokens}


def evaluation_create(
    *,
    model: Any,
    against: Any = None,
    judge: Any = None,
    limit: Any = None,
    max_tokens: Any = None,
    user: Any = None,
    training_run: Any = None,
    source: str = "api",
    claim: bool = False,
) -> Evaluation:
    """A validated evaluation, queued (or, with `claim`, already running in this process); raises ApplicationError.

    `against` defaults to the site's default model when `model` is another one (else no baseline);
    `judge` to EVALUATION_JUDGE_MODEL; `limit` (questions) to EVALUATION_DEFAULT_LIMIT.
    """
    model_id, baseline, judge_id, options = _validated(
        model=model, against=against, judge=judge, limit=limit, max_tokens=max_tokens
    )
    if training_run is None:
        training_run = _run_of(model_id)
    now = timezone.now()
    with transaction.atomic():
        active = Evaluation.objects.filter(status__in=Evaluation.ACTIVE).count()
        if active >= settings.EVALUATION_MAX_ACTIVE:
            raise Conflict(
                f"{active} evaluations are queued or running; the limit is {settings.EVALUATION_MAX_ACTIVE} "
                "(EVALUATION_MAX_ACTIVE): wait for one to finish or cancel one"
            )
        evaluation = Evaluation(
            model=model_id,
            baseline=baseline,
            judge=judge_id,
            options=options,
            created_by=user if user is not None and getattr(user, "is_authenticated", False) else None,
            training_run=training_run,
            source=source,
        )
        if claim:
            evaluation.status, evaluation.worker = Status.RUNNING, worker_id()
            evaluation.started_at = evaluation.heartbeat_at = now
        evaluation.save()
    return evaluation


def evaluation_start(**fields: Any) -> Evaluation:
    """Queue an evaluation and enqueue its job, both or neither; returns at once with the queued row."""
    from evaluation.tasks import evaluate

    with transaction.atomic():
        evaluation = evaluation_create(**fields)
        evaluation.task_id = evaluate.enqueue(evaluation.pk).id
        evaluation.save(update_fields=["task_id"])
    return evaluation


def evaluation_after_training(*, run: Any) -> Evaluation | None:
    """The automatic evaluation of a succeeded run's model against the default (EVALUATION_AFTER_TRAINING)."""
    if not settings.EVALUATION_AFTER_TRAINING:
        return None
    try:
        return evaluation_start(
            model=run.name, limit=settings.EVALUATION_AUTO_LIMIT, training_run=run, source="training"
        )
    except ApplicationError as exc:  # the run's outcome stands whatever happens here
        logger.warning("training run %s: its model was not evaluated: %s", run.pk, exc.message)
        return None


def _run_of(model_id: str) -> Any:
    """The succeeded training run that made `model_id`, if any (its datasets and split give the held-out loss)."""
    from training.models import TrainingRun

    return TrainingRun.objects.filter(name=model_id, status=TrainingRun.Status.SUCCEEDED).order_by("-id").first()


def evaluation_claim(*, evaluation_id: int) -> Evaluation | None:
    """Take the queued evaluation for this process; None when it is no longer queued (cancelled, taken)."""
    now = timezone.now()
    taken = Evaluation.objects.filter(pk=evaluation_id, status=Status.QUEUED).update(
        status=Status.RUNNING, worker=worker_id(), started_at=now, heartbeat_at=now
    )
    return Evaluation.objects.get(pk=evaluation_id) if taken else None


def evaluation_cancel(*, evaluation_id: int) -> Evaluation:
    """Cancel a queued evaluation now, or ask a running one to stop after its current example; 409 when finished."""
    with transaction.atomic():
        evaluation = Evaluation.objects.select_for_update().filter(pk=evaluation_id).first()
        if evaluation is None:
            raise _not_found(f"no evaluation {evaluation_id}")
        if evaluation.status == Status.QUEUED:
            evaluation.status, evaluation.finished_at = Status.CANCELLED, timezone.now()
            evaluation.cancel_requested = True
            evaluation.save(update_fields=["status", "finished_at", "cancel_requested"])
        elif evaluation.status == Status.RUNNING:
            evaluation.cancel_requested = True
            evaluation.save(update_fields=["cancel_requested"])
        else:
            raise Conflict(f"evaluation {evaluation_id} has already finished ({evaluation.status})")
    event = _cancel_events.get(evaluation.pk)
    if event is not None:
        event.set()
    return evaluation


# --- reaping evaluations whose worker died ------------------------------------------------------------
def evaluations_reap(*, startup: bool = False) -> int:
    """Fail the running evaluations whose worker is gone, and the queued ones whose job ended; returns how many.

    Gone: no heartbeat for EVALUATION_STALE_SECONDS, a worker on this host whose process no longer
    exists, or, at start-up, one held under this very host:pid (a restarted container).
    """
    now = timezone.now()
    stale = now - dt.timedelta(seconds=settings.EVALUATION_STALE_SECONDS)
    running = Evaluation.objects.filter(status=Status.RUNNING)
    reaped = 0
    for evaluation in running.filter(Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)):
        seen = (
            timezone.localtime(evaluation.heartbeat_at).isoformat(timespec="seconds")
            if evaluation.heartbeat_at
            else "never"
        )
        reaped += _end_dead(
            evaluation, f"its worker {evaluation.worker or '?'} stopped sending heartbeats (last: {seen})"
        )
    me = worker_id()
    for evaluation in running.filter(worker__startswith=f"{socket.gethostname()}:"):
        pid = evaluation.worker.rsplit(":", 1)[1]
        if startup and evaluation.worker == me:
            reaped += _end_dead(evaluation, f"its worker {evaluation.worker} was restarted while it ran")
        elif pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            reaped += _end_dead(evaluation, f"its worker process {evaluation.worker} ended while it ran")
    ended = DBTaskResult.objects.filter(status__in=[TaskResultStatus.FAILED, TaskResultStatus.SUCCESSFUL])
    for evaluation in Evaluation.objects.filter(status=Status.QUEUED, task_id__in=ended.values("id")):
        reaped += Evaluation.objects.filter(pk=evaluation.pk, status=Status.QUEUED).update(
            status=Status.FAILED, finished_at=now, error="its job ended before the evaluation started"
        )
    return reaped


def _end_dead(evaluation: Evaluation, why: str) -> int:
    updated = Evaluation.objects.filter(pk=evaluation.pk, status=Status.RUNNING, worker=evaluation.worker).update(
        status=Status.FAILED, finished_at=timezone.now(), error=f"the evaluation was interrupted: {why}"
    )
    if updated:
        logger.warning("evaluation %s marked failed: %s", evaluation.pk, why)
    return updated


# --- executing ----------------------------------------------------------------------------------------
_cancel_events: dict[int, threading.Event] = {}


class _Heartbeat:
    """Writes the evaluation's heartbeat and relays a cancel request from the database, from its own thread."""

    def __init__(self, evaluation: Evaluation, cancel: threading.Event):
        self.pk, self.worker, self.cancel = evaluation.pk, evaluation.worker, cancel
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"evaluation-heartbeat-{evaluation.pk}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=2)

    def _loop(self) -> None:
        try:
            while not self.stopped.wait(settings.EVALUATION_HEARTBEAT_SECONDS):
                try:
                    rows = Evaluation.objects.filter(pk=self.pk, status=Status.RUNNING, worker=self.worker)
                    if not rows.update(heartbeat_at=timezone.now()) or rows.filter(cancel_requested=True).exists():
                        self.cancel.set()
                except Exception:  # a busy database must not end the heartbeat; the next beat retries
                    logger.exception("evaluation heartbeat for %s failed", self.pk)
        finally:
            connection.close()


class _Cancelled(Exception):
    pass


class _Runner:
    """Runs one claimed evaluation: held-out loss, answers, judge; progress and rows into the database."""

    def __init__(self, evaluation: Evaluation, cancel: threading.Event, on_progress: Callable[[int, int], None] | None):
        self.evaluation = evaluation
        self.cancel = cancel
        self.on_progress = on_progress or (lambda done, total: None)
        self.rows = Evaluation.objects.filter(pk=evaluation.pk)
        self.done = 0
        self.questions = questions()[: evaluation.options.get("limit", settings.EVALUATION_DEFAULT_LIMIT)]
        self.max_tokens = evaluation.options.get("max_tokens", settings.EVALUATION_MAX_NEW_TOKENS)
        models = evaluation.models
        self.total = len(models) * (1 + len(self.questions)) + (
            len(self.questions) if evaluation.judge and evaluation.baseline else 0
        )
        self.metrics: dict[str, Any] = {"models": {m: {} for m in models}, "judge": None}

    def step(self) -> None:
        self.done += 1
        self.rows.update(done=self.done, metrics=self.metrics)
        self.on_progress(self.done, self.total)
        self.check()

    def check(self) -> None:
        if self.cancel.is_set():
            raise _Cancelled

    def run(self) -> dict[str, Any]:
        evaluation = self.evaluation
        self.rows.update(total=self.total, done=0)
        self.on_progress(0, self.total)
        split = self._split()
        self.rows.update(options={**evaluation.options, "split": split["about"]})
        for model in evaluation.models:
            self._loss(model, split)
        answers = {model: self._answers(model) for model in evaluation.models}
        if evaluation.judge and evaluation.baseline:
            self._judge(answers[evaluation.model], answers[evaluation.baseline])
        return self.metrics

    # --- held-out loss --------------------------------------------------------------------------------
    def _split(self) -> dict[str, Any]:
        """The examples and split of the model's training run, else the trainer's defaults."""
        from training import datasets as ds
        from training.services import DEFAULTS

        run = self.evaluation.training_run
        if run is not None:
            names = run.datasets
            fraction, seed, max_length, batch_size = run.eval_fraction, run.seed, run.max_length, run.batch_size
        else:
            names = DEFAULTS["datasets"]
            fraction, seed = DEFAULTS["eval_fraction"], DEFAULTS["seed"]
            max_length, batch_size = DEFAULTS["max_length"], DEFAULTS["batch_size"]
        about = {
            "datasets": names,
            "eval_fraction": fraction,
            "seed": seed,
            "max_length": max_length,
            "batch_size": batch_size,
            "training_run": run.pk if run is not None else None,
        }
        examples: list[Any] = []
        error = ""
        limits = {"max_examples": settings.TRAINING_MAX_EXAMPLES, "max_bytes": settings.TRAINING_MAX_DATASET_BYTES}
        try:
            for name in names:
                if os.path.isabs(name):
                    examples += ds.load_file(Path(name), **limits)
                else:
                    examples += ds.load(name, data_dir=settings.TRAINING_DATASETS_DIR, **limits)
        except ds.DatasetError as exc:
            error = f"the held-out split could not be loaded: {exc.message}"
        return {"about": about, "examples": examples, "error": error}

    def _loss(self, model: str, split: dict[str, Any]) -> None:
        figures = self.metrics["models"][model]
        about = split["about"]
        try:
            folder = _local_folder(model)
        except (ApplicationError, ModelNotFound) as exc:  # removed since it was named: the answers will say so too
            folder, split = None, {**split, "error": getattr(exc, "message", str(exc))}
        if folder is None and not split["error"]:
            figures.update(eval_loss=None, perplexity=None, loss_note="remote model: no weights here to measure")
        elif folder is None or split["error"]:
            figures.update(eval_loss=None, perplexity=None, loss_note=split["error"])
        else:
            try:
                result = engine.heldout_loss(
                    folder,
                    split["examples"],
                    eval_fraction=about["eval_fraction"],
                    seed=about["seed"],
                    max_length=about["max_length"],
                    batch_size=about["batch_size"],
                    device=settings.EVALUATION_DEVICE,
                    threads=settings.TRAINING_THREADS or None,
                    should_stop=self.cancel.is_set,
                )
            except engine.EvaluationCancelled as exc:
                raise _Cancelled from exc
            except engine.EvaluationError as exc:
                figures.update(eval_loss=None, perplexity=None, loss_note=str(exc))
            else:
                figures.update(result.metrics())
                EvaluationExample.objects.bulk_create(
                    EvaluationExample(
                        evaluation=self.evaluation,
                        kind=EvaluationExample.Kind.LOSS,
                        index=index,
                        model=model,
                        question_id=row.source[:64],
                        prompt=row.prompt,
                        loss=row.loss,
                    )
                    for index, row in enumerate(result.per_example[:MAX_LOSS_ROWS])
                )
        self.step()

    # --- answers --------------------------------------------------------------------------------------
    def _complete(self, model: str, messages: list[dict[str, str]], max_tokens: int) -> str:
        from inference.protocol import CompletionRequest
        from inference.providers.base import SamplingParams
        from inference.services import complete

        request = CompletionRequest(
            messages=messages,
            model=model,
            sampling=SamplingParams(max_new_tokens=max_tokens, temperature=0.0, seed=0),
        )
        return complete(request, user=self.evaluation.created_by, source="evaluation").text

    def _answers(self, model: str) -> list[str]:
        answers, correct, errors, last_error = [], [], 0, ""
        for index, question in enumerate(self.questions):
            messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question.question}]
            error = ""
            try:
                answer = self._complete(model, messages, self.max_tokens)
            except ApplicationError as exc:
                answer, error = "", exc.message
                errors += 1
                last_error = exc.message
            right = engine.is_correct(answer, question.answers) if not error else False
            answers.append(answer)
            correct.append(right)
            EvaluationExample.objects.create(
                evaluation=self.evaluation,
                kind=EvaluationExample.Kind.QA,
                index=index,
                model=model,
                question_id=question.id,
                prompt=question.question,
                expected=list(question.answers),
                answer=answer,
                correct=right,
                error=error,
            )
            self.metrics["models"][model].update(engine.accuracy(correct, errors))
            self.step()
        if self.questions and errors == len(self.questions):
            raise ApplicationError(f"{model} answered no question: {last_error}", field="model")
        return answers

    # --- the judge ------------------------------------------------------------------------------------
    def _judge(self, mine: list[str], theirs: list[str]) -> None:
        judge = self.evaluation.judge
        outcomes: list[engine.Outcome] = []
        errors = 0
        for index, question in enumerate(self.questions):
            replies, error = [], ""
            if engine.normalise(mine[index]) == engine.normalise(theirs[index]):
                # The same answer twice: a tie, and nothing for the judge to read (nor positions to swap).
                replies = ["T", "T"]
            try:
                for first, second in ((mine[index], theirs[index]), (theirs[index], mine[index]))[len(replies) :]:
                    replies.append(
                        self._complete(judge, engine.judge_messages(question, first, second), JUDGE_MAX_TOKENS)
                    )
            except ApplicationError as exc:
                error = exc.message
                errors += 1
            verdicts = [engine.parse_verdict(reply) for reply in replies] + ["unclear"] * (2 - len(replies))
            outcome = engine.combine(verdicts[0], verdicts[1])
            outcomes.append(outcome)
            EvaluationExample.objects.create(
                evaluation=self.evaluation,
                kind=EvaluationExample.Kind.JUDGE,
                index=index,
                model=judge,
                question_id=question.id,
                prompt=question.question,
                expected=list(question.answers),
                answer=" | ".join(replies),
                verdicts={"first": verdicts[0], "swapped": verdicts[1], "outcome": outcome, "replies": replies},
                error=error,
            )
            self.metrics["judge"] = {"model": judge, **engine.judge_summary(outcomes), "errors": errors}
            self.step()


def _finish(evaluation: Evaluation, status: str, **fields: Any) -> None:
    updated = Evaluation.objects.filter(pk=evaluation.pk, status=Status.RUNNING).update(
        status=status, finished_at=timezone.now(), **fields
    )
    if not updated:
        logger.warning(
            "evaluation %s changed state while it ran; its outcome (%s) was not recorded", evaluation.pk, status
        )


def evaluation_execute(evaluation: Evaluation, *, on_progress: Callable[[int, int], None] | None = None) -> Evaluation:
    """Run an evaluation this process has claimed, to its end; the outcome is recorded on the row, never raised.

    `on_progress(done, total)` is called after each unit of work (a model's loss, an answer, a verdict).
    KeyboardInterrupt and SystemExit are recorded (cancelled / failed) and raised again.
    """
    cancel = _cancel_events.setdefault(evaluation.pk, threading.Event())
    runner: _Runner | None = None
    try:
        with _Heartbeat(evaluation, cancel):
            if evaluation.cancel_requested:
                raise _Cancelled
            runner = _Runner(evaluation, cancel, on_progress)
            metrics = runner.run()
    except _Cancelled:
        _finish(evaluation, Status.CANCELLED, error="cancelled", **_so_far(runner))
    except ApplicationError as exc:
        _finish(evaluation, Status.FAILED, error=exc.message, **_so_far(runner))
    except KeyboardInterrupt:
        _finish(evaluation, Status.CANCELLED, error="interrupted (Ctrl-C or SIGTERM)", **_so_far(runner))
        raise
    except SystemExit:
        _finish(evaluation, Status.FAILED, error="its worker was stopped while it ran", **_so_far(runner))
        raise
    except BaseException as exc:
        logger.exception("evaluation %s failed", evaluation.pk)
        _finish(evaluation, Status.FAILED, error=f"{type(exc).__name__}: {exc}", **_so_far(runner))
        if not isinstance(exc, Exception):
            raise
    else:
        _finish(evaluation, Status.SUCCEEDED, metrics=metrics, done=runner.total)
    finally:
        _cancel_events.pop(evaluation.pk, None)
    evaluation.refresh_from_db()
    return evaluation


def _so_far(runner: _Runner | None) -> dict[str, Any]:
    return {"metrics": runner.metrics} if runner is not None else {}


# --- promotion and rollback ---------------------------------------------------------------------------
_promotion_lock = threading.Lock()  # one change of the default at a time in this process


def _current_default() -> dict[str, Any]:
    from inference.engine import configured_spec

    spec = configured_spec()
    return {
        "previous_provider": spec.provider,
        "previous_model": spec.model,
        "previous_device": spec.device,
        "previous_parameters": dict(spec.parameters),
    }


def _reason(reason: Any, *, required: bool) -> str:
    if reason is None:
        reason = ""
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        raise ApplicationError(f"reason must be text of at most {MAX_REASON_CHARS} characters", field="reason")
    reason = reason.strip()
    if required and not reason:
        raise ApplicationError("reason is required: say why this model becomes the default", field="reason")
    return reason


def model_promote(
    *, model: Any, reason: Any, user: Any = None, evaluation_id: int | None = None, load_here: bool = True
) -> Promotion:
    """Make `model` the site's default (through provider_activate) and log it; 409 when it already is.

    With `load_here` (the API, in a server) the model loads first and a model that cannot load
    changes nothing (400); without it (`manage.py promote`) every server picks the new row up.
    """
    from inference.registry import model_id
    from inference.services import provider_activate

    reason = _reason(reason, required=True)
    spec = _spec(model, "model")
    target = model_id(spec)
    evaluation = None
    if evaluation_id is not None:
        evaluation = Evaluation.objects.filter(pk=evaluation_id).first()
        if evaluation is None:
            raise ApplicationError(f"no evaluation {evaluation_id}", field="evaluation")
        if target not in evaluation.models:
            raise ApplicationError(f"evaluation {evaluation_id} did not evaluate {target}", field="evaluation")
    with _promotion_lock:
        previous = _current_default()
        if target == default_model_id():
            raise Conflict(f"{target} is already the default model", field="model")
        config = provider_activate(provider=spec.provider, model=spec.model, device=spec.device, load_here=load_here)
        return Promotion.objects.create(
            kind=Promotion.Kind.PROMOTE,
            model=target,
            provider=config.provider,
            device=config.device,
            evaluation=evaluation,
            user=user if user is not None and getattr(user, "is_authenticated", False) else None,
            reason=reason,
            **previous,
        )


def rollback_target() -> Promotion | None:
    """The promotion a rollback would undo: the newest one no rollback has undone yet."""
    return (
        Promotion.objects.filter(kind=Promotion.Kind.PROMOTE, reverted_by__isnull=True)
        .order_by("-created_at", "-id")
        .first()
    )


def model_rollback(*, reason: Any = "", user: Any = None, load_here: bool = True) -> Promotion:
    """Make the default what it was before the newest promotion not yet undone, and log it; 409 when there is none."""
    from inference.registry import ProviderSpec, model_id
    from inference.services import provider_activate

    reason = _reason(reason, required=False)
    with _promotion_lock:
        undo = rollback_target()
        if undo is None:
            raise Conflict("there is no promotion to roll back")
        previous = _current_default()
        config = provider_activate(
            provider=undo.previous_provider,
            model=undo.previous_model,
            device=undo.previous_device or None,
            parameters=undo.previous_parameters or {},
            load_here=load_here,
        )
        try:
            return Promotion.objects.create(
                kind=Promotion.Kind.ROLLBACK,
                model=model_id(ProviderSpec(config.provider, config.model, config.device)),
                provider=config.provider,
                device=config.device,
                reverts=undo,
                evaluation=undo.evaluation,
                user=user if user is not None and getattr(user, "is_authenticated", False) else None,
                reason=reason,
                **previous,
            )
        except IntegrityError as exc:  # another server rolled the same promotion back at the same moment
            raise Conflict(f"promotion {undo.pk} was rolled back meanwhile") from exc
