from django.apps import AppConfig


class AvatarCreatorConfig(AppConfig):
    name = "avatar_creator"
    verbose_name = "Avatar creator"
    default_auto_field = "django.db.models.BigAutoField"
