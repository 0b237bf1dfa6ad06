import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lumiku.settings.local")

app = Celery("lumiku")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_connections(sender=None, **kwargs):
    """Around a task, as around a request: drop a database connection that broke or outlived CONN_MAX_AGE and keep
    a healthy one (CELERY_DB_REUSE_MAX stops Celery from closing it every time). In-process tasks run inside the
    caller's request and transaction, so they are left alone."""
    if sender is not None and not getattr(sender.request, "is_eager", False):
        from django.db import close_old_connections

        close_old_connections()
