import os
import sys
import threading
from pathlib import Path

from django.apps import AppConfig

SERVER_PROGRAMS = ("daphne", "uvicorn", "gunicorn", "hypercorn")


def is_server_process(argv: list[str] | None = None) -> bool:
    """Whether this process serves HTTP (daphne, uvicorn, gunicorn, runserver's serving child)."""
    argv = sys.argv if argv is None else argv
    if not argv:
        return False
    if any(part in SERVER_PROGRAMS for part in Path(argv[0]).parts):
        return True
    if len(argv) > 1 and argv[1] == "runserver":
        return os.environ.get("RUN_MAIN") == "true" or "--noreload" in argv
    return False


class EmbeddingsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "embeddings"

    def ready(self) -> None:
        from django.conf import settings

        # Server processes load (and if need be repair) the index at start, in the background:
        # requests that need it meanwhile wait for it. Commands and tests load it at first use.
        mode = settings.EMBEDDINGS_LOAD_AT_START
        if mode == "always" or (mode == "auto" and is_server_process()):
            threading.Thread(target=_load_in_background, name="embeddings-startup", daemon=True).start()


def _load_in_background() -> None:
    import logging

    from django.apps import apps
    from django.db import close_old_connections

    apps.ready_event.wait()  # ready() runs before the app registry is complete
    from embeddings.services import get_store

    try:
        get_store()
    except Exception:
        logging.getLogger(__name__).exception("loading the embedding index at start failed")
    finally:
        close_old_connections()
