"""A real Celery worker process on the real broker (Redis) and the test database (PostgreSQL)."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import kombu.pools
import pytest

from tests.services import redis_url, require_postgresql, require_redis

ROOT = Path(__file__).resolve().parent.parent


class CeleryWorker:
    def __init__(self, *, env: dict[str, str], log_path: Path, concurrency: int = 2):
        self.env = env
        self.log_path = log_path
        self.concurrency = concurrency
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        command = [
            sys.executable, "-m", "celery", "-A", "lumiku", "worker", "--loglevel=INFO", "--pool=prefork",
            f"--concurrency={self.concurrency}", "-n", f"test-{uuid.uuid4().hex[:8]}@%h",
            "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited early:\n{self.log()}")
            if " ready." in self.log():
                return
            time.sleep(0.2)
        raise RuntimeError(f"the Celery worker did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def pool_pids(self) -> list[int]:
        """The pids of the prefork pool's processes (Linux: read from /proc)."""
        if not self.process:
            return []
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited while we looked
            if int(fields[1]) == self.process.pid:
                pids.append(int(stat.parent.name))
        return pids

    def kill_pool(self) -> None:
        """SIGKILL the pool processes only (as the OOM killer would); the main process lives on and replaces them."""
        for pid in self.pool_pids():
            os.kill(pid, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and its pool) as a crash would."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "_log", None):
            self._log.close()


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":  # the test database is a file (lumiku/settings/test.py): others can open it
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def use_broker(url: str | None) -> None:
    """Point this (test) process's Celery app at a broker, or back to in-process tasks with None."""
    from lumiku.celery import app

    app.conf.broker_url = url or "memory://"
    app.conf.task_always_eager = url is None
    # Connection and producer pools are cached per broker URL, process-wide: drop them all.
    kombu.pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture(name="worker_env")
def worker_env_fixture(transactional_db, fake_image_api, tmp_path):
    """The environment for a worker process: real broker, the test database, the fake image API."""
    require_postgresql()
    require_redis()
    import redis

    redis.Redis.from_url(redis_url()).flushdb()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "lumiku.settings.test",
        "DATABASE_URL": _database_url(),
        "LUMIKU_TEST_BROKER_URL": redis_url(),
        "LUMIKU_TEST_GENERATOR": "huggingface",
        "LUMIKU_TEST_HF_KEY": "hf_worker_key",
        "LUMIKU_TEST_HF_URL": f"{fake_image_api.url}/models/XLabs-AI/flux-RealismLora",
    }
    return env


@pytest.fixture(name="start_worker")
def start_worker_fixture(worker_env, tmp_path, settings):
    """Start real workers on demand (one after another, or several), each with extra environment variables.

    The test process publishes to the real broker while the fixture is active; every worker is stopped afterwards.
    """
    settings.AVATAR_GENERATOR = "huggingface"
    workers: list[CeleryWorker] = []

    def start(**extra_env: str) -> CeleryWorker:
        worker = CeleryWorker(env={**worker_env, **extra_env}, log_path=tmp_path / f"worker-{len(workers) + 1}.log")
        workers.append(worker)
        worker.start()
        return worker

    use_broker(redis_url())
    try:
        yield start
    finally:
        use_broker(None)
        for worker in workers:
            worker.stop()


@pytest.fixture(name="celery_worker")
def celery_worker_fixture(worker_env, tmp_path, settings):
    settings.AVATAR_GENERATOR = "huggingface"
    worker = CeleryWorker(env=worker_env, log_path=tmp_path / "worker.log")
    worker.start()
    use_broker(redis_url())
    try:
        yield worker
    finally:
        use_broker(None)
        worker.stop()
