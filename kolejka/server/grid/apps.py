from django.apps import AppConfig


class GridConfig(AppConfig):
    name = "kolejka.server.grid"
    label = "kolejka"
    verbose_name = "kolejka"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, schema  # noqa: F401  (register the system checks and schema parts)
