from django.apps import AppConfig


class InferenceConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "inference"

    def ready(self) -> None:
        from django.conf import settings

        from inference import checks  # noqa: F401 - registers the system checks
        from inference.engine import start_for_server
        from llmsite.processes import is_server_process

        # Only server processes load the model: not migrate, other commands or test collection.
        mode = settings.LLM_LOAD_AT_START
        if mode == "always" or (mode == "auto" and is_server_process()):
            start_for_server()
