"""The real stack on loopback: a fresh PostgreSQL database, a Redis db, the fake image API, gunicorn and Celery.

Everything started here is started in its own session and killed by its process group; `Stack.close()` undoes
everything (processes, the bench database, the Redis db, the temporary folder) and is safe to call twice.
"""

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
from wire import Connection, WireError

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DB_NAME = os.environ.get("BENCH_DB_NAME", "lumiku_bench")
PG_ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_URL = os.environ.get("BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DB_NAME}")
# A Redis db reserved for the benchmark (the tests use 15); flushed before and after a run.
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except OSError:
        return []


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def proc_memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB; (0, 0) when the process is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """utime + stime of a process (and of its reaped children): 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICK


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent not idle since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / _TICK


def database_backends(db_name: str) -> list[int]:
    """PostgreSQL backend processes serving `db_name` (their title says "postgres <db> 127.0.0.1(...)")."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                title = handle.read().decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres:") and f" {db_name} " in title:
            found.append(int(entry))
    return found


def proc_pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class CpuSnapshot:
    wall: float
    machine: float
    roles: dict[str, float]


@dataclass
class RoleMemory:
    """Peak memory of one kind of process: the largest single process and the largest sum seen at one time."""

    peak_process_kb: int = 0
    peak_total_kb: int = 0
    peak_total_pss_kb: int = 0
    processes: set = field(default_factory=set)


class MemoryMonitor:
    """Samples VmRSS/VmHWM of every process under the roots it watches, every `interval` seconds.

    VmHWM is the kernel's own high-water mark of a process's RSS, so a short spike between two samples is still
    counted; the sum per role (e.g. all gunicorn workers) uses the sampled VmRSS. RSS counts the pages forked
    children still share with their parent once per child, so `sample(pss=True)` (slower: the kernel walks the
    page tables; run at the end of each scenario) also sums PSS, each shared page split between its sharers.
    """

    def __init__(self, interval: float = 0.25):
        self.interval = interval
        self.roles: dict[str, RoleMemory] = {}
        self._roots: dict[int, tuple[str, str]] = {}  # pid -> (role of the root itself, role of its descendants)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def watch(self, pid: int, *, root_role: str, child_role: str) -> None:
        with self._lock:
            self._roots[pid] = (root_role, child_role)

    def unwatch(self, pid: int) -> None:
        self.sample(pss=True)
        with self._lock:
            self._roots.pop(pid, None)

    def sample(self, *, pss: bool = False) -> None:
        with self._lock:
            roots = dict(self._roots)
        totals: dict[str, int] = {}
        pss_totals: dict[str, int] = {}
        for root, (root_role, child_role) in roots.items():
            for pid, role in [(root, root_role)] + [(child, child_role) for child in descendants(root)]:
                rss, hwm = proc_memory_kb(pid)
                if not rss and not hwm:
                    continue
                with self._lock:
                    memory = self.roles.setdefault(role, RoleMemory())
                    memory.peak_process_kb = max(memory.peak_process_kb, hwm, rss)
                    memory.processes.add(pid)
                totals[role] = totals.get(role, 0) + rss
                if pss:
                    pss_totals[role] = pss_totals.get(role, 0) + proc_pss_kb(pid)
        with self._lock:
            for role, total in totals.items():
                self.roles[role].peak_total_kb = max(self.roles[role].peak_total_kb, total)
            for role, total in pss_totals.items():
                self.roles[role].peak_total_pss_kb = max(self.roles[role].peak_total_pss_kb, total)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def report(self) -> dict:
        with self._lock:
            return {
                role: {
                    "peak_process_mb": round(memory.peak_process_kb / 1024, 1),
                    "peak_total_mb": round(memory.peak_total_kb / 1024, 1),
                    "total_pss_mb": round(memory.peak_total_pss_kb / 1024, 1),
                    "processes": len(memory.processes),
                }
                for role, memory in sorted(self.roles.items())
            }


class Process:
    def __init__(self, name: str, command: list[str], *, env: dict[str, str], log_dir: Path, stdin=None):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=stdin,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.alive():
            try:
                os.killpg(self.pid, sig)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(10)
            except ProcessLookupError:
                pass
        # Whatever it left in its group (a pool child that outlived its parent) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self._log.close()


class Stack:
    def __init__(
        self,
        *,
        latency: float,
        web_workers: int,
        web_threads: int,
        keep_logs: bool = False,
        image: str = "photo",
        extra_env: dict[str, str] | None = None,
    ):
        self.latency = latency
        self.extra_env = extra_env or {}
        self.image = image
        self.web_workers = web_workers
        self.web_threads = web_threads
        self.keep_logs = keep_logs
        self.tmp = Path(tempfile.mkdtemp(prefix="lumiku-bench-"))
        self.log_dir = self.tmp / "logs"
        self.log_dir.mkdir()
        # The documents the floor route answers (bench/urls.py), written by scenario 3.
        self.floor_dir = self.tmp / "floor"
        self.floor_dir.mkdir()
        self.memory = MemoryMonitor()
        self.fake: subprocess.Popen | None = None
        self.fake_url = ""
        self.web: Process | None = None
        self.worker: Process | None = None
        self.worker_slots = 0
        self.port = 0
        self._db_created = False
        self._celery_reaped = 0.0
        self._redis_used = False
        self._closed = False

    # CPU accounting: who used the machine during a scenario (the bench shares it with whatever else runs)

    def cpu_snapshot(self) -> CpuSnapshot:
        roles = {"web (gunicorn)": 0.0, "celery": 0.0, "postgresql (bench db)": 0.0, "bench clients": 0.0}
        if self.web is not None and self.web.alive():
            roles["web (gunicorn)"] = sum(
                proc_cpu_seconds(pid, with_children=True) for pid in [self.web.pid, *descendants(self.web.pid)]
            )
        for pid in [self.worker.pid, *descendants(self.worker.pid)] if self.worker and self.worker.alive() else []:
            roles["celery"] += proc_cpu_seconds(pid, with_children=True)
        roles["postgresql (bench db)"] = sum(proc_cpu_seconds(pid) for pid in database_backends(DB_NAME))
        me = os.getpid()
        # This process, its reaped children (load generators, stopped workers) and the fake image API.
        roles["bench clients"] = proc_cpu_seconds(me, with_children=True) - self._celery_reaped
        roles["celery"] += self._celery_reaped
        if self.fake is not None:
            roles["bench clients"] += proc_cpu_seconds(self.fake.pid)
        return CpuSnapshot(wall=time.monotonic(), machine=machine_busy_seconds(), roles=roles)

    @staticmethod
    def cpu_usage(before: CpuSnapshot, after: CpuSnapshot) -> dict:
        """CPU seconds per role between two snapshots, and what everything else on the machine used."""
        roles = {role: max(after.roles[role] - before.roles.get(role, 0.0), 0.0) for role in after.roles}
        machine = after.machine - before.machine
        ours = sum(roles.values())
        wall = after.wall - before.wall
        return {
            "wall_seconds": round(wall, 1),
            "machine_busy_seconds": round(machine, 1),
            "cpu_seconds": {role: round(value, 1) for role, value in roles.items()},
            "other_processes_seconds": round(max(machine - ours, 0.0), 1),
            "other_processes_cores": round(max(machine - ours, 0.0) / wall, 2) if wall else 0.0,
        }

    # environment

    def env(self) -> dict[str, str]:
        keep = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER"}
        base = {key: value for key, value in os.environ.items() if key in keep}
        return {
            **base,
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "lumiku.settings.production",
            "DJANGO_SECRET_KEY": self._secret,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_SECURE_HSTS_SECONDS": "0",
            "DATABASE_URL": PG_URL,
            "REDIS_URL": REDIS_URL,
            "SERVE_MEDIA": "true",
            "MEDIA_ROOT": str(self.tmp / "media"),
            "PRIVATE_MEDIA_ROOT": str(self.tmp / "private"),
            "AVATAR_GENERATOR": "huggingface",
            "HUGGINGFACE_API_KEY": "bench-key",
            "HF_INFERENCE_URL": f"{self.fake_url}/models/XLabs-AI/flux-RealismLora",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "AVATAR_PREVIEW_RATE": "1000000/hour",
            "AVATAR_SIGNUP_CREDITS": "10000000",
            "AUTH_THROTTLE_RATE": "100000/min",
            # Scenario 5 queues 10 previews per slot for one user at once: the per-user in-flight limit is not
            # what it measures.
            "AVATAR_MAX_ACTIVE_PREVIEWS": "1000000",
            "LOG_LEVEL": "WARNING",
            "BENCH_FLOOR_DIR": str(self.floor_dir),
            **self.extra_env,
        }

    _secret = secrets.token_urlsafe(50)

    # lifecycle

    def open(self) -> None:
        self.memory.start()
        self._reset_redis()
        self._create_database()
        self._start_fake_api()
        self._migrate()
        self.start_web()

    def close(self) -> list[str]:
        """Tear everything down; returns what could not be cleaned (for the report)."""
        if self._closed:
            return []
        self._closed = True
        problems = []
        for process in (self.worker, self.web):
            if process is not None:
                try:
                    process.stop(timeout=15)
                except OSError as exc:
                    problems.append(f"{process.name}: {exc}")
        if self.fake is not None and self.fake.poll() is None:
            try:
                self.fake.stdin.close()
                self.fake.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.fake.pid, signal.SIGKILL)
                self.fake.wait(5)
        self.memory.stop()
        if self._db_created:
            try:
                self._drop_database()
            except psycopg.Error as exc:
                problems.append(f"drop database {DB_NAME}: {exc}")
        if self._redis_used:
            try:
                redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).flushdb()
            except redis.RedisError as exc:
                problems.append(f"flush {REDIS_URL}: {exc}")
        if self.keep_logs:
            print(f"logs kept in {self.log_dir}", file=sys.stderr)
            shutil.rmtree(self.tmp / "media", ignore_errors=True)
            shutil.rmtree(self.tmp / "private", ignore_errors=True)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return problems

    # pieces

    def _reset_redis(self) -> None:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.ping()
        self._redis_used = True
        client.flushdb()

    def _admin(self):
        return psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5)

    def _create_database(self) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
            self._db_created = True
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')

    def _drop_database(self) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')

    def database_info(self) -> dict:
        with self._admin() as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            max_connections = conn.execute("SHOW max_connections").fetchone()[0]
        info = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).info("server")
        return {"postgresql": version, "postgresql_max_connections": max_connections, "redis": info["redis_version"]}

    def _start_fake_api(self) -> None:
        self.fake = subprocess.Popen(
            [PYTHON, str(ROOT / "bench" / "fake_api.py"), "--latency", str(self.latency), "--image", self.image],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.log_dir / "fake_api.log", "ab"),  # noqa: SIM115 - the child owns it
            start_new_session=True,
            text=True,
        )
        self.memory.watch(self.fake.pid, root_role="fake image API", child_role="fake image API")
        line = self.fake.stdout.readline().strip()
        if not line.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the fake image API did not start: {line!r}")
        self.fake_url = line

    def _migrate(self) -> None:
        result = subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{result.stdout}\n{result.stderr}")

    def start_web(self) -> None:
        self.port = free_port()
        command = [
            PYTHON, "-m", "gunicorn", "lumiku.wsgi:application",
            "--bind", f"127.0.0.1:{self.port}",
            "--worker-class", "gthread",
            "--workers", str(self.web_workers),
            "--threads", str(self.web_threads),
            "--timeout", "240",
            "--no-control-socket",
        ]  # fmt: skip
        # Production's settings plus the bench-only URLconf with the floor route (bench/settings.py).
        env = {**self.env(), "DJANGO_SETTINGS_MODULE": "bench.settings"}
        self.web = Process("gunicorn", command, env=env, log_dir=self.log_dir)
        self.memory.watch(self.web.pid, root_role="gunicorn master", child_role="gunicorn worker")
        deadline = time.monotonic() + 60
        conn = Connection(self.port, timeout=5)
        while time.monotonic() < deadline:
            if not self.web.alive():
                raise RuntimeError(f"gunicorn exited early:\n{self.web.log()[-4000:]}")
            try:
                # Unauthenticated: 401 proves Django answered. Every worker must have booted before we measure.
                if conn.request("GET", "/api/auth/me").status == 401 and len(_children(self.web.pid)) >= (
                    self.web_workers
                ):
                    time.sleep(1.0)
                    return
            except (OSError, WireError):
                conn.close()
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not become ready:\n{self.web.log()[-4000:]}")

    def start_worker(self, slots: int) -> None:
        """(Re)start the Celery worker with `slots` prefork pool processes."""
        self.stop_worker()
        command = [
            PYTHON, "-m", "celery", "-A", "lumiku", "worker", "--loglevel=INFO", "--pool=prefork",
            f"--concurrency={slots}", "-n", f"bench-{uuid.uuid4().hex[:8]}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        self.worker = Process(f"celery-{slots}", command, env=self.env(), log_dir=self.log_dir)
        self.worker_slots = slots
        self.memory.watch(self.worker.pid, root_role="celery main", child_role=f"celery pool child ({slots} slots)")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if not self.worker.alive():
                raise RuntimeError(f"the Celery worker exited early:\n{self.worker.log()[-4000:]}")
            if " ready." in self.worker.log() and len(_children(self.worker.pid)) >= slots:
                time.sleep(1.0)
                return
            time.sleep(0.2)
        raise RuntimeError(f"the Celery worker did not become ready:\n{self.worker.log()[-4000:]}")

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.memory.unwatch(self.worker.pid)
            me = os.getpid()
            before = proc_cpu_seconds(me, with_children=True) - proc_cpu_seconds(me)
            self.worker.stop(timeout=20)
            # A stopped worker's CPU time now counts as this process's children's: keep it as Celery's.
            self._celery_reaped += proc_cpu_seconds(me, with_children=True) - proc_cpu_seconds(me) - before
            self.worker = None
