import os

from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    before_task_publish,
    task_postrun,
    task_prerun,
)

from lumiku import observability

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


# Logs carry the request id from the request that queued a task into the worker, and the task's preview id
# (lumiku/observability.py).
before_task_publish.connect(observability.attach_request_id, weak=False)
task_prerun.connect(observability.enter_task, weak=False)
task_postrun.connect(observability.leave_task, weak=False)


@after_setup_logger.connect
@after_setup_task_logger.connect
def log_like_the_web(logger=None, **kwargs):
    """The worker's own log handlers get the request and preview ids, and JSON lines when LOG_FORMAT=json."""
    from django.conf import settings

    json_lines = getattr(settings, "LOG_FORMAT", "plain") == "json"
    for handler in logger.handlers if logger is not None else []:
        handler.addFilter(observability.ContextFilter())
        if json_lines:
            handler.setFormatter(observability.JsonFormatter())
