import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)


class TrainingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "training"

    def ready(self) -> None:
        from jobs.signals import worker_tick
        from llmsite.processes import is_server_process, start_in_background

        # Every job worker, as it starts and on each heartbeat, ends the runs a dead worker left `running`
        # (a restarted worker first of all its own previous life's: the same host:pid).
        worker_tick.connect(_reap_on_worker_tick, dispatch_uid="training.runs_reap")
        # A server that starts ends them too, so the API never shows a dead run as running.
        # In the background: the database is not for ready() itself.
        if is_server_process():
            start_in_background(
                "training-startup", _recover_at_start, failure="recovering training runs at start failed", logger=logger
            )


def _reap_on_worker_tick(*, startup: bool = False, **kwargs: object) -> None:
    from training import services

    reaped = services.runs_reap(startup=startup)
    if reaped:
        logger.warning("recorded the end of %d training run(s) whose worker died", reaped)


def _recover_at_start() -> None:
    _reap_on_worker_tick()
