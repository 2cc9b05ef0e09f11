import logging
import threading

from django.apps import AppConfig

logger = logging.getLogger(__name__)


class TrainingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "training"

    def ready(self) -> None:
        from llmsite.processes import is_server_process

        # A server that starts marks failed the runs its previous life left `running` (training
        # threads die with their process), then resumes the queued ones when it trains in-process.
        # In the background: the database is not for ready() itself.
        if is_server_process():
            threading.Thread(target=_recover_at_start, name="training-startup", daemon=True).start()


def _recover_at_start() -> None:
    from django.apps import apps
    from django.conf import settings
    from django.db import close_old_connections

    apps.ready_event.wait()
    from training import services
    from training.models import TrainingRun

    try:
        reaped = services.runs_reap(startup=True)
        if reaped:
            logger.warning("marked %d interrupted training run(s) failed", reaped)
        if settings.TRAINING_EXECUTOR == "thread" and TrainingRun.objects.filter(status="queued").exists():
            services.worker_kick()
    except Exception:
        logger.exception("recovering training runs at start failed")
    finally:
        close_old_connections()
