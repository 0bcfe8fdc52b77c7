from django.apps import AppConfig


class BoardConfig(AppConfig):
    name = "kolejka.server.board"
    label = "board"
    verbose_name = "kolejka board"
