"""Training use cases, one function each; the API, the admin, the commands and the jobs all call these.

- `run_start(...)`: validate a request (bounds from settings, 400 naming the limit), queue the run and
  enqueue its job (`training.tasks.train_run`, queue `training`) in the same transaction. Returns at once.
- A run's `method` is `sft` (training.trainer, on chat and text datasets) or `dpo` (training.preference,
  TRL's DPOTrainer, on preference datasets); both report the same events, recorded the same way.
- `run_create(..., claim=True)` + `run_execute(run)`: what `manage.py train` does in its own process.
- `run_claim(run_id=...)` + `run_execute(run)`: what the job does in a job worker (`manage.py db_worker`).
- `run_export(run_id=...)`: the OpenVINO export of a succeeded run's model, its own job after training.
- `run_cancel(...)`: a queued run is cancelled at once, a running one stops between two steps.
- `runs_reap(...)`: runs whose worker died are recorded as ended (stale heartbeat, or a dead pid on
  this host): failed, with the reason, and the checkpoint it was writing removed; or succeeded
  when the worker died after its checkpoint was complete and in place. A queued run whose job ended
  without training it is failed too.

The run row stays the domain object (status, progress, metrics, cancellation, checkpoints); the job
row (django_tasks_db's `DBTaskResult`, `run.task_id`) is how it reaches a worker. The job claims the
run by moving it to `running` in one conditional UPDATE, then writes `heartbeat_at` every
TRAINING_HEARTBEAT_SECONDS from a small thread, which also carries a cancel request from the database
to the trainer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from llmsite.devices import ACCELERATORS, DEVICES
from llmsite.error_codes import ErrorCode
from llmsite.errors import ApplicationError
from llmsite.model_store import ALIASES, PACKAGED_LLMS, ModelNotFound, resolve_llm_folder
from llmsite.processes import pid_alive
from training import datasets as ds
from training.models import EpochMetric, TrainingRun
from training.preference import DpoOptions, PreferencePair, train_dpo
from training.signals import run_succeeded
from training.trainer import (
    EpochDone,
    Evaluated,
    Event,
    Example,
    Prepared,
    StepDone,
    TrainingCancelled,
    TrainingConfig,
    TrainingError,
    partial_checkpoints,
    resolve_device,
    saved_manifest,
    train,
)

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_DATASETS = 8
MAX_SEED = 2**31 - 1
DEFAULTS: dict[str, Any] = {
    "datasets": ["dialogue"],
    "epochs": 2,
    "max_steps": None,
    "batch_size": 4,
    "grad_accum_steps": 1,
    "learning_rate": 5e-5,
    "warmup_ratio": 0.1,
    "weight_decay": 0.0,
    "max_length": 512,
    "eval_fraction": 0.1,
    "seed": 0,
}
# What a dpo run uses where it names nothing; the rest of DEFAULTS holds for both methods.
DPO_DEFAULTS: dict[str, Any] = {"datasets": ["preferences"], "beta": 0.1}
MAX_BETA = 10.0
METHOD_FIELDS = ("method", "beta", "lora")
Status = TrainingRun.Status
Method = TrainingRun.Method


class Conflict(ApplicationError):
    status = 409
    code = ErrorCode.CONFLICT


# --- validation -------------------------------------------------------------------------------------
def _bounded_int(value: Any, field: str, low: int, high: int, setting: str | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApplicationError(f"{field} must be a whole number", field=field)
    if not low <= value <= high:
        limit = f" ({setting})" if setting else ""
        raise ApplicationError(f"{field} must be {low} to {high}{limit}; got {value}", field=field)
    return value


def _bounded_float(value: Any, field: str, low: float, high: float, *, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApplicationError(f"{field} must be a finite number", field=field)
    if value > high or value < low or (low_open and value == low):
        opening = "more than" if low_open else "at least"
        raise ApplicationError(f"{field} must be {opening} {low:g} and at most {high:g}; got {value:g}", field=field)
    return float(value)


def _dataset_kind(name: str, path: Path | None, known: dict[str, ds.DatasetInfo]) -> str:
    if path is not None:
        return ds.kind_of(str(path)) or "chat"
    if name in ds.EXPORTS:
        return ds.EXPORTS[name][2]
    return known[name].kind


def _check_method(name: str, kind: str, method: str) -> None:
    """A preference dataset trains a dpo run only, and a dpo run trains on preference datasets only."""
    if method == Method.DPO and kind != "preference":
        raise ApplicationError(
            f"a dpo run trains on preference datasets (pairs of a chosen and a rejected answer); {name!r} is a "
            f"{kind} dataset: train it with method sft",
            field="datasets",
        )
    if method != Method.DPO and kind == "preference":
        raise ApplicationError(
            f"dataset {name!r} holds preference pairs (a chosen and a rejected answer): they train method dpo runs",
            field="datasets",
        )


def _check_available(name: str) -> None:
    """An export dataset (feedback, feedback-pairs, arena) that has nothing to offer is a 400, never a crash later."""
    try:  # the exports stream lazily: one example tells whether there is anything to train on
        if name == ds.FEEDBACK:
            ds.load_feedback(max_examples=1)
        else:
            ds.load_exported_pairs(name, max_examples=1)
    except ds.DatasetError as exc:
        raise ApplicationError(f"dataset {name!r} is unavailable: {exc.message}", field="datasets") from exc


def _validate_datasets(names: Any, *, allow_paths: bool, method: str = Method.SFT) -> list[str]:
    if not isinstance(names, list | tuple) or not names:
        raise ApplicationError("datasets must be a non-empty list of dataset names", field="datasets")
    if len(names) > MAX_DATASETS:
        raise ApplicationError(f"at most {MAX_DATASETS} datasets per run; got {len(names)}", field="datasets")
    if len(set(names)) != len(names):
        raise ApplicationError("datasets must not repeat a name", field="datasets")
    known = ds.file_datasets(settings.TRAINING_DATASETS_DIR)
    chosen = []
    for name in names:
        if not isinstance(name, str):
            raise ApplicationError("datasets must be a list of names (strings)", field="datasets")
        if allow_paths and (os.sep in name or name.endswith(ds.CHAT_SUFFIXES + ds.TEXT_SUFFIXES)):
            path = Path(name).expanduser().resolve()
            if not path.is_file():
                raise ApplicationError(f"dataset file {path} does not exist", field="datasets")
            _check_method(name, _dataset_kind(name, path, known), method)
            chosen.append(str(path))
            continue
        if name not in known and name not in ds.EXPORTS:
            listing = ", ".join([*sorted(known), *ds.EXPORTS])
            raise ApplicationError(f"unknown dataset {name!r}; known: {listing}", field="datasets")
        _check_method(name, _dataset_kind(name, None, known), method)
        if name in ds.EXPORTS:
            _check_available(name)
        chosen.append(name)
    return chosen


def _base_folder(base_model: str) -> Path:
    try:
        return resolve_llm_folder(base_model, settings.MODELS_DIR)
    except ModelNotFound as exc:
        raise ApplicationError(str(exc), field="base_model") from exc


def _context_window(folder: Path) -> int | None:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    window = config.get("max_position_embeddings") or config.get("n_positions")
    return window if isinstance(window, int) else None


def _default_name(base_model: str) -> str:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    stem = re.sub(r"[^A-Za-z0-9_.-]", "-", Path(base_model).name)[:40].lstrip(".-_") or "model"
    return f"{stem}-ft-{stamp}"


def _validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ApplicationError(
            "name must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", field="name"
        )
    if name in PACKAGED_LLMS or name in ALIASES:
        raise ApplicationError(f"{name!r} is the name of a packaged model; choose another name", field="name")
    if (settings.MODELS_DIR / name).exists():
        raise Conflict(
            f"a model named {name!r} already exists in {settings.MODELS_DIR}; choose another name", field="name"
        )
    return name


def _validate_method(fields: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    method = values["method"]
    if method not in Method.values:
        raise ApplicationError(f"method must be one of {', '.join(Method.values)}; got {method!r}", field="method")
    if method != Method.DPO:
        for option in ("beta", "lora"):
            if fields.get(option) not in (None, False):
                raise ApplicationError(f"{option} applies to dpo runs only (method dpo)", field=option)
        return {"method": method, "beta": None, "lora": False}
    if not isinstance(values.get("lora", False), bool):
        raise ApplicationError("lora must be true or false", field="lora")
    beta = _bounded_float(values["beta"], "beta", 0.0, MAX_BETA, low_open=True)
    return {"method": method, "beta": beta, "lora": bool(values.get("lora", False))}


def _validated(fields: dict[str, Any], *, allow_paths: bool) -> dict[str, Any]:
    method = fields.get("method") or Method.SFT
    defaults = {**DEFAULTS, **(DPO_DEFAULTS if method == Method.DPO else {}), "method": method}
    values = {**defaults, **{k: v for k, v in fields.items() if v is not None}}
    clean: dict[str, Any] = _validate_method(fields, values)
    clean["datasets"] = _validate_datasets(values["datasets"], allow_paths=allow_paths, method=clean["method"])
    clean["epochs"] = _bounded_int(values["epochs"], "epochs", 1, settings.TRAINING_MAX_EPOCHS, "TRAINING_MAX_EPOCHS")
    if values["max_steps"] is not None:
        clean["max_steps"] = _bounded_int(
            values["max_steps"], "max_steps", 1, settings.TRAINING_MAX_STEPS, "TRAINING_MAX_STEPS"
        )
    else:
        clean["max_steps"] = None
    clean["batch_size"] = _bounded_int(
        values["batch_size"], "batch_size", 1, settings.TRAINING_MAX_BATCH_SIZE, "TRAINING_MAX_BATCH_SIZE"
    )
    clean["grad_accum_steps"] = _bounded_int(
        values["grad_accum_steps"], "grad_accum_steps", 1, settings.TRAINING_MAX_GRAD_ACCUM, "TRAINING_MAX_GRAD_ACCUM"
    )
    clean["learning_rate"] = _bounded_float(
        values["learning_rate"], "learning_rate", 0.0, settings.TRAINING_MAX_LEARNING_RATE, low_open=True
    )
    clean["warmup_ratio"] = _bounded_float(values["warmup_ratio"], "warmup_ratio", 0.0, 0.5)
    clean["weight_decay"] = _bounded_float(values["weight_decay"], "weight_decay", 0.0, 1.0)
    clean["eval_fraction"] = _bounded_float(values["eval_fraction"], "eval_fraction", 0.0, 0.5)
    clean["seed"] = _bounded_int(values["seed"], "seed", 0, MAX_SEED)
    clean["max_length"] = _bounded_int(
        values["max_length"], "max_length", 16, settings.TRAINING_MAX_LENGTH, "TRAINING_MAX_LENGTH"
    )
    base_model = values.get("base_model") or settings.TRAINING_BASE_MODEL
    if not isinstance(base_model, str):
        raise ApplicationError("base_model must be a model name", field="base_model")
    base_model = ALIASES.get(base_model, base_model)
    window = _context_window(_base_folder(base_model))
    if window is not None and clean["max_length"] > window:
        raise ApplicationError(
            f"max_length must be at most {window}, the context window of {base_model}; got {clean['max_length']}",
            field="max_length",
        )
    clean["base_model"] = base_model
    device = values.get("device") or settings.TRAINING_DEVICE
    if device not in DEVICES:
        raise ApplicationError(f"device must be one of {', '.join(DEVICES)}; got {device!r}", field="device")
    if device in ACCELERATORS:
        try:
            resolve_device(device)
        except TrainingError as exc:
            raise ApplicationError(str(exc), field="device") from exc
    clean["device"] = device
    clean["name"] = _validate_name(values.get("name") or _default_name(base_model))
    clean["serve"] = bool(values.get("serve", False))
    return clean


# --- creating, starting, cancelling -----------------------------------------------------------------
def worker_id() -> str:
    """host:pid of this process: who holds a running run."""
    return f"{socket.gethostname()}:{os.getpid()}"


# Any constant: the key of the PostgreSQL advisory lock that serialises run creation (its first bytes spell "trai").
RUN_CREATION_LOCK = 0x74726169


def _serialise_run_creation() -> None:
    """Hold, until the transaction ends, the lock that makes "count active runs, then insert" atomic.

    Under PostgreSQL's READ COMMITTED two transactions could both count 3 of 4 and both insert; a
    transaction-scoped advisory lock makes the second wait for the first to commit. SQLite needs none:
    its transactions here are IMMEDIATE, so a second writer waits at BEGIN.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RUN_CREATION_LOCK])


def run_create(*, user: Any = None, source: str = "api", claim: bool = False, **fields: Any) -> TrainingRun:
    """A validated run, queued (or, with `claim`, already running in this process); raises ApplicationError.

    Fields: name, base_model, method (sft, dpo), datasets, epochs, max_steps, batch_size, grad_accum_steps,
    learning_rate, warmup_ratio, weight_decay, max_length, eval_fraction, seed, device, serve, and for
    dpo beta and lora; each may be None for its default. Dataset paths are accepted from the command line only.
    """
    unknown = set(fields) - {*DEFAULTS, *METHOD_FIELDS, "name", "base_model", "device", "serve"}
    if unknown:
        raise ApplicationError(f"unknown field {sorted(unknown)[0]!r}", field=sorted(unknown)[0])
    clean = _validated(fields, allow_paths=source == "cli")
    now = timezone.now()
    try:
        with transaction.atomic():
            _serialise_run_creation()
            active = TrainingRun.objects.filter(status__in=TrainingRun.ACTIVE).count()
            if active >= settings.TRAINING_MAX_ACTIVE_RUNS:
                raise Conflict(
                    f"{active} runs are queued or running; the limit is {settings.TRAINING_MAX_ACTIVE_RUNS} "
                    "(TRAINING_MAX_ACTIVE_RUNS): wait for one to finish or cancel one"
                )
            run = TrainingRun(
                **clean,
                created_by=user if user is not None and user.is_authenticated else None,
                source=source,
            )
            if claim:
                run.status, run.worker, run.started_at, run.heartbeat_at = Status.RUNNING, worker_id(), now, now
            run.save()
    except IntegrityError as exc:
        raise Conflict(f"a run named {clean['name']!r} is already queued or running", field="name") from exc
    return run


def run_start(*, user: Any = None, source: str = "api", **fields: Any) -> TrainingRun:
    """Queue a run and enqueue its job, both or neither; returns at once with the queued run."""
    from training.tasks import train_run

    with transaction.atomic():
        run = run_create(user=user, source=source, **fields)
        # The job row is written in this transaction: a worker sees the run and its job together, or neither.
        run.task_id = train_run.enqueue(run.pk).id
        run.save(update_fields=["task_id"])
    return run


def run_cancel(*, run_id: int) -> TrainingRun:
    """Cancel a queued run now, or ask a running one to stop between two steps; 409 when already finished."""
    now = timezone.now()
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            raise ApplicationError(f"no training run {run_id}", code=ErrorCode.NOT_FOUND, status=404)
        if run.status == Status.QUEUED:
            run.status, run.finished_at, run.cancel_requested = Status.CANCELLED, now, True
            run.save(update_fields=["status", "finished_at", "cancel_requested"])
        elif run.status == Status.RUNNING:
            run.cancel_requested = True
            run.save(update_fields=["cancel_requested"])
        else:
            raise Conflict(f"run {run_id} has already finished ({run.status})")
    event = _cancel_events.get(run.pk)
    if event is not None:  # running in this process: stop without waiting for the heartbeat
        event.set()
    return run


def run_claim(*, run_id: int) -> TrainingRun | None:
    """Take the queued run `run_id` for this process; None when it is no longer queued (cancelled, taken)."""
    now = timezone.now()
    taken = TrainingRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
        status=Status.RUNNING, worker=worker_id(), started_at=now, heartbeat_at=now
    )
    return TrainingRun.objects.get(pk=run_id) if taken else None


# --- reaping runs whose worker died -------------------------------------------------------------------
def runs_reap(*, startup: bool = False) -> int:
    """Record the end of the running runs whose worker is gone (see `_end_dead`); returns how many.

    Gone means: no heartbeat for TRAINING_STALE_SECONDS (any host), or a worker on this host
    whose process no longer exists, or, at start-up, a run held under this very host:pid
    (a restarted container often gets the same pid).
    """
    now = timezone.now()
    stale = now - dt.timedelta(seconds=settings.TRAINING_STALE_SECONDS)
    reaped = 0
    running = TrainingRun.objects.filter(status=Status.RUNNING)
    for run in running.filter(Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True)):
        seen = timezone.localtime(run.heartbeat_at).isoformat(timespec="seconds") if run.heartbeat_at else "never"
        reaped += _end_dead(run, f"its worker {run.worker or '?'} stopped sending heartbeats (last: {seen})")
    host = socket.gethostname()
    me = worker_id()
    for run in running.filter(worker__startswith=f"{host}:"):
        pid = run.worker.rsplit(":", 1)[1]
        if startup and run.worker == me:
            reaped += _end_dead(run, f"its worker {run.worker} was restarted while the run was running")
        elif pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            reaped += _end_dead(run, f"its worker process {run.worker} ended while the run was running")
    return reaped + _fail_orphans()


def _fail_orphans() -> int:
    """Fail the queued runs whose job ended without training them (its worker died before it took the run)."""
    ended = DBTaskResult.objects.filter(status__in=[TaskResultStatus.FAILED, TaskResultStatus.SUCCESSFUL])
    orphans = TrainingRun.objects.filter(status=Status.QUEUED, task_id__in=ended.values("id"))
    failed = 0
    for run in orphans:
        job = DBTaskResult.objects.filter(pk=run.task_id).values_list("traceback", flat=True).first() or ""
        why = job.strip().splitlines()[-1] if job.strip() else "no reason recorded"
        failed += TrainingRun.objects.filter(pk=run.pk, status=Status.QUEUED).update(
            status=Status.FAILED, finished_at=timezone.now(), error=f"its job ended before the run started: {why}"
        )
    return failed


def _end_dead(run: TrainingRun, why: str) -> int:
    """End a run whose worker died: succeeded if its checkpoint had landed complete, else failed.

    The checkpoint lands by one rename, after its manifest was written: a model folder whose
    manifest names this run is the run's complete result. Anything less is a hidden partial
    folder (never listed or loadable), removed here.
    """
    rows = TrainingRun.objects.filter(pk=run.pk, status=Status.RUNNING, worker=run.worker)
    output = settings.MODELS_DIR / run.name
    manifest = saved_manifest(output)
    if manifest is not None and manifest.get("run") == run.pk and manifest.get("name") == run.name:
        metrics = manifest.get("metrics") if isinstance(manifest.get("metrics"), dict) else {}
        note = f"its worker died after saving the checkpoint: {why}"
        if run.serve:
            note += "; it was not made the served model"
        updated = rows.update(
            status=Status.SUCCEEDED,
            finished_at=timezone.now(),
            output_dir=str(output),
            step=metrics.get("steps", run.step),
            eval_loss_before=metrics.get("eval_loss_before", run.eval_loss_before),
            eval_loss_after=metrics.get("eval_loss_after", run.eval_loss_after),
            final_metrics={**metrics, "recovered": note},
        )
        if updated:
            logger.warning("training run %s recorded as succeeded: %s", run.pk, note)
        return updated
    updated = rows.update(status=Status.FAILED, finished_at=timezone.now(), error=f"the run was interrupted: {why}")
    if updated:
        logger.warning("training run %s marked failed: %s", run.pk, why)
        # No run of this name is active now (names are unique among active runs): nobody writes these.
        for folder in partial_checkpoints(output):
            shutil.rmtree(folder, ignore_errors=True)
    return updated


# --- executing ------------------------------------------------------------------------------------------
_cancel_events: dict[int, threading.Event] = {}


class _Heartbeat:
    """Writes the run's heartbeat and relays a cancel request from the database, from its own thread."""

    def __init__(self, run: TrainingRun, cancel: threading.Event):
        self.run_id = run.pk
        self.worker = run.worker
        self.cancel = cancel
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"training-heartbeat-{run.pk}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=2)  # a beat stuck on a busy database ends by itself; it owns nothing

    def _loop(self) -> None:
        try:
            while not self.stopped.wait(settings.TRAINING_HEARTBEAT_SECONDS):
                self.beat()
        finally:
            connection.close()

    def beat(self) -> None:
        try:
            runs = TrainingRun.objects.filter(pk=self.run_id, status=Status.RUNNING, worker=self.worker)
            if not runs.update(heartbeat_at=timezone.now()):
                self.cancel.set()  # reaped or changed elsewhere: this worker no longer owns the run
            elif runs.filter(cancel_requested=True).exists():
                self.cancel.set()
        except Exception:  # a busy database must not kill the heartbeat; the next beat retries
            logger.exception("training heartbeat for run %s failed", self.run_id)


def _pairs(run: TrainingRun) -> list[PreferencePair]:
    pairs: list[PreferencePair] = []
    limits = {"max_examples": settings.TRAINING_MAX_EXAMPLES, "max_bytes": settings.TRAINING_MAX_DATASET_BYTES}
    for name in run.datasets:
        if os.path.isabs(name):
            pairs += ds.load_pairs_file(Path(name), **limits)
        else:
            pairs += ds.load_pairs(name, data_dir=settings.TRAINING_DATASETS_DIR, **limits)
    return pairs


def _examples(run: TrainingRun) -> list[Example]:
    examples: list[Example] = []
    for name in run.datasets:
        if os.path.isabs(name):
            examples += ds.load_file(
                Path(name),
                max_examples=settings.TRAINING_MAX_EXAMPLES,
                max_bytes=settings.TRAINING_MAX_DATASET_BYTES,
            )
        else:
            examples += ds.load(
                name,
                data_dir=settings.TRAINING_DATASETS_DIR,
                max_examples=settings.TRAINING_MAX_EXAMPLES,
                max_bytes=settings.TRAINING_MAX_DATASET_BYTES,
            )
    return examples


def _recorder(run: TrainingRun, then: Callable[[Event], None] | None) -> Callable[[Event], None]:
    """The trainer's callback: progress and per-epoch metrics into the database, then `then`."""
    rows = TrainingRun.objects.filter(pk=run.pk)

    def record(event: Event) -> None:
        if isinstance(event, Prepared):
            rows.update(
                total_steps=event.total_steps,
                train_examples=event.train_examples,
                eval_examples=event.eval_examples,
                device_used=event.device,
            )
        elif isinstance(event, Evaluated) and event.stage == "before":
            rows.update(eval_loss_before=event.loss)
        elif isinstance(event, StepDone):
            rows.update(step=event.step)
        elif isinstance(event, EpochDone):
            EpochMetric.objects.update_or_create(
                run_id=run.pk,
                epoch=event.epoch,
                defaults={
                    "step": event.step,
                    "train_loss": event.train_loss,
                    "eval_loss": event.eval_loss,
                    "learning_rate": event.learning_rate,
                    "tokens_per_second": event.tokens_per_second,
                    "seconds": event.elapsed,
                    "extra": event.extra,
                },
            )
            rows.update(step=event.step, eval_loss_after=event.eval_loss)
        if then is not None:
            then(event)

    return record


def _finish(run: TrainingRun, status: str, **fields: Any) -> None:
    updated = TrainingRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
        status=status, finished_at=timezone.now(), **fields
    )
    if not updated:
        logger.warning("training run %s changed state while it ran; its outcome (%s) was not recorded", run.pk, status)
    elif status == Status.SUCCEEDED:
        run_succeeded.send(sender=TrainingRun, run=TrainingRun.objects.get(pk=run.pk))


def run_execute(
    run: TrainingRun,
    *,
    on_event: Callable[[Event], None] | None = None,
    threads: int | None = None,
    export_inline: bool = False,
) -> TrainingRun:
    """Train a run this process has claimed, to its end; the outcome is recorded on the row, never raised.

    When the run succeeds and LLM_EXPORT_AFTER_TRAINING asks for it, the OpenVINO export is enqueued
    as a job of its own (`training.tasks.export_run_model`, which then serves the model if the run
    asked to be served), or done here with `export_inline` (`manage.py train`).
    KeyboardInterrupt and SystemExit are recorded (cancelled / failed) and raised again.
    """
    cancel = _cancel_events.setdefault(run.pk, threading.Event())
    output = settings.MODELS_DIR / run.name
    config = TrainingConfig(
        base_folder=settings.MODELS_DIR,  # replaced below, once the base model resolves
        output_folder=output,
        epochs=run.epochs,
        max_steps=run.max_steps,
        batch_size=run.batch_size,
        grad_accum_steps=run.grad_accum_steps,
        learning_rate=run.learning_rate,
        warmup_ratio=run.warmup_ratio,
        weight_decay=run.weight_decay,
        max_length=run.max_length,
        eval_fraction=run.eval_fraction,
        seed=run.seed,
        device=run.device,
        threads=threads,
        manifest={
            "run": run.pk,
            "name": run.name,
            "base_model_name": run.base_model,
            "datasets": run.datasets,
            "method": run.method,
        },
    )
    try:
        with _Heartbeat(run, cancel):
            if run.cancel_requested:
                raise TrainingCancelled(0)
            base = resolve_llm_folder(run.base_model, settings.MODELS_DIR)
            config = dataclasses.replace(config, base_folder=base)
            recorder = _recorder(run, on_event)
            if run.method == Method.DPO:
                options = DpoOptions(beta=run.beta if run.beta is not None else DPO_DEFAULTS["beta"], lora=run.lora)
                result = train_dpo(config, _pairs(run), options, on_event=recorder, should_stop=cancel.is_set)
            else:
                result = train(config, _examples(run), on_event=recorder, should_stop=cancel.is_set)
    except TrainingCancelled as exc:
        _finish(run, Status.CANCELLED, error=f"cancelled after {exc.step} steps")
    except (ds.DatasetError, TrainingError, ModelNotFound) as exc:
        _finish(run, Status.FAILED, error=str(exc))
    except KeyboardInterrupt:
        _finish(run, Status.CANCELLED, error="interrupted (Ctrl-C or SIGTERM)")
        raise
    except SystemExit:  # a job worker told to stop now (its second SIGTERM, or its server went away)
        _finish(run, Status.FAILED, error="its worker was stopped while the run was running")
        raise
    except BaseException as exc:
        logger.exception("training run %s failed", run.pk)
        _finish(run, Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        if not isinstance(exc, Exception):
            raise
    else:
        export = _export_wanted()
        metrics = result.metrics()
        if export and export_inline:
            metrics.update(_export_for_openvino(run, output))
        _finish(
            run,
            Status.SUCCEEDED,
            output_dir=str(output),
            step=result.steps,
            eval_loss_before=result.eval_loss_before,
            eval_loss_after=result.eval_loss_after,
            final_metrics=metrics,
        )
        if export and not export_inline:
            from training.tasks import export_run_model

            job = export_run_model.enqueue(run.pk)  # it serves the model once exported, when the run asked
            TrainingRun.objects.filter(pk=run.pk).update(final_metrics={**metrics, "openvino_export_task": job.id})
        elif run.serve:
            _serve(run)
    finally:
        _cancel_events.pop(run.pk, None)
    run.refresh_from_db()
    return run


def _export_wanted() -> bool:
    return settings.LLM_ENGINE != "transformers" and settings.LLM_EXPORT_AFTER_TRAINING


def run_export(*, run_id: int) -> dict[str, Any]:
    """Export a succeeded run's model for OpenVINO, note it in the run's metrics, then serve it if the run asked.

    The job after training (`training.tasks.export_run_model`); returns what it added to the metrics.
    """
    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is None:
        raise ApplicationError(f"no training run {run_id}", code=ErrorCode.NOT_FOUND, status=404)
    if run.status != Status.SUCCEEDED:
        raise Conflict(f"run {run_id} has no model to export ({run.status})")
    noted = _export_for_openvino(run, settings.MODELS_DIR / run.name)
    TrainingRun.objects.filter(pk=run.pk).update(final_metrics={**run.final_metrics, **noted})
    if run.serve:
        run.refresh_from_db()
        _serve(run)
    return noted


def _export_for_openvino(run: TrainingRun, output: Path) -> dict[str, Any]:
    """Export the new model for the OpenVINO engine, so it serves on either engine.

    A failed export does not fail the run (transformers still serves the model): it is noted in the metrics.
    """
    from inference.export import ExportFailed, export_openvino

    started = time.monotonic()
    try:
        export_openvino(output, settings.LLM_PRECISION)
    except ExportFailed as exc:
        logger.warning("training run %s: the OpenVINO export failed; transformers serves it: %s", run.pk, exc)
        return {"openvino_export_error": str(exc)[-2000:]}
    return {"openvino_export_seconds": round(time.monotonic() - started, 1)}


def _serve(run: TrainingRun) -> None:
    """Make the run's model the served one (every server picks it up through the active provider row)."""
    from inference.services import provider_activate

    try:
        provider_activate(provider="hf", model=run.name, load_here=False)
    except ApplicationError as exc:
        metrics = {**run.final_metrics, "serve_error": exc.message}
        TrainingRun.objects.filter(pk=run.pk).update(final_metrics=metrics)
        logger.warning("training run %s succeeded but its model could not be served: %s", run.pk, exc.message)


def run_model_serve(*, run_id: int, load_here: bool = True) -> TrainingRun:
    """Serve a succeeded run's model (the admin's "serve" action); 409 unless it succeeded."""
    from inference.services import provider_activate

    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is None:
        raise ApplicationError(f"no training run {run_id}", code=ErrorCode.NOT_FOUND, status=404)
    if run.status != Status.SUCCEEDED:
        raise Conflict(f"run {run_id} has no model to serve ({run.status})")
    provider_activate(provider="hf", model=run.name, load_here=load_here)
    return run
