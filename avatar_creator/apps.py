from django.apps import AppConfig


class AvatarCreatorConfig(AppConfig):
    name = "avatar_creator"
    verbose_name = "Avatar creator"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Registers the start-up checks, the embedded default's request-path purge and the kept answers' invalidation.
        from avatar_creator import answers, checks, housekeeping  # noqa: F401
