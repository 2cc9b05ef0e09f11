import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)


class EmbeddingsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "embeddings"

    def ready(self) -> None:
        from django.conf import settings

        from embeddings import signals  # noqa: F401  (connects the receiver that logs removals)
        from llmsite.processes import is_server_process, start_in_background

        # Server processes load (and if need be repair) the index at start, in the background:
        # requests that need it meanwhile wait for it. Commands and tests load it at first use.
        mode = settings.EMBEDDINGS_LOAD_AT_START
        if mode == "always" or (mode == "auto" and is_server_process()):
            start_in_background(
                "embeddings-startup", _load_index, failure="loading the embedding index at start failed", logger=logger
            )
        # Servers follow what the other workers write (embeddings/services/sync.py); a command's
        # index is caught up after each of its own writes and needs no thread.
        if is_server_process() and settings.EMBEDDINGS_SYNC_SECONDS > 0:
            start_in_background(
                "embeddings-sync", _follow, failure="the embedding index stopped following the database", logger=logger
            )


def _load_index() -> None:
    from embeddings.services import get_store

    get_store()


def _follow() -> None:
    from embeddings.services import index_follow

    index_follow()
