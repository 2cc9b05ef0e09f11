import threading

from django.apps import AppConfig


class EmbeddingsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "embeddings"

    def ready(self) -> None:
        from django.conf import settings

        # Server processes load (and if need be repair) the index at start, in the background:
        # requests that need it meanwhile wait for it. Commands and tests load it at first use.
        from llmsite.processes import is_server_process

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
