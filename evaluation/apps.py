import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)


class EvaluationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "evaluation"

    def ready(self) -> None:
        from jobs.signals import worker_tick
        from llmsite.processes import is_server_process, start_in_background
        from training.models import TrainingRun
        from training.signals import run_succeeded

        # Every finished training run's model is evaluated against the default (EVALUATION_AFTER_TRAINING).
        run_succeeded.connect(_evaluate_run, sender=TrainingRun, dispatch_uid="evaluation.after_training")
        # A job worker, as it starts and on each heartbeat, and a server as it starts, end the evaluations
        # a dead worker left `running`.
        worker_tick.connect(_reap_on_worker_tick, dispatch_uid="evaluation.evaluations_reap")
        if is_server_process():
            start_in_background(
                "evaluation-startup",
                _reap_on_worker_tick,
                failure="recovering evaluations at start failed",
                logger=logger,
            )


def _evaluate_run(*, run, **kwargs: object) -> None:
    from evaluation import services

    try:
        services.evaluation_after_training(run=run)
    except Exception:  # a failed enqueue must never fail the run that succeeded
        logger.exception("the evaluation of training run %s was not queued", run.pk)


def _reap_on_worker_tick(*, startup: bool = False, **kwargs: object) -> None:
    from evaluation import services

    reaped = services.evaluations_reap(startup=startup)
    if reaped:
        logger.warning("recorded the end of %d evaluation(s) whose worker died", reaped)
