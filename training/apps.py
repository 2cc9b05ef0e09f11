import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)


class TrainingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "training"

    def ready(self) -> None:
        from llmsite.processes import is_server_process, start_in_background

        # A server that starts ends the runs its previous life left `running` (training
        # threads die with their process), then resumes the queued ones when it trains in-process.
        # In the background: the database is not for ready() itself.
        if is_server_process():
            start_in_background(
                "training-startup", _recover_at_start, failure="recovering training runs at start failed", logger=logger
            )


def _recover_at_start() -> None:
    from django.conf import settings

    from training import services
    from training.models import TrainingRun

    reaped = services.runs_reap(startup=True)
    if reaped:
        logger.warning("recorded the end of %d training run(s) whose worker died", reaped)
    if settings.TRAINING_EXECUTOR == "thread" and TrainingRun.objects.filter(status="queued").exists():
        services.worker_kick()
