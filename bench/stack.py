"""The real stack on loopback: a fresh PostgreSQL database, a Redis db, the fake image API, the web server (gunicorn
gthread, gunicorn with uvicorn workers, or granian), Celery (and, for the recovery scenario, Celery beat).

Everything started here is started in its own session and killed by its process group; `Stack.close()` undoes
everything (processes, the bench database, the Redis db, the temporary folder) and is safe to call twice.
"""

import contextlib
import os
import resource
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


def _postgres_titles() -> list[tuple[int, str]]:
    """(pid, process title) of every PostgreSQL process ("postgres: <user> <db> <host>(<port>) ..."), read from
    /proc: asking the server itself needs a connection, which is what may be missing."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                title = handle.read().decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres:"):
            found.append((int(entry), title))
    return found


def database_backends(db_name: str) -> list[int]:
    """PostgreSQL backend processes serving `db_name` (their title says "postgres <db> 127.0.0.1(...)")."""
    return [pid for pid, title in _postgres_titles() if f" {db_name} " in title]


def backends_cpu(db_name: str) -> tuple[dict[int, float], float]:
    """CPU seconds of each live backend of `db_name`, and of every PostgreSQL process that has exited so far (the
    postmaster's reaped children). A backend ends whenever the app closes its connection (Django's CONN_MAX_AGE: every
    60 s per thread), and its CPU then leaves the live sum: what it used since a snapshot is found in the second figure
    instead (which also counts any other database's backend that exits meanwhile; during a scenario, those are the
    bench's)."""
    titles = _postgres_titles()
    live = {pid: proc_cpu_seconds(pid) for pid, title in titles if f" {db_name} " in title}
    postmaster = _proc_field(f"/proc/{titles[0][0]}/status", "PPid:") if titles else 0
    reaped = proc_cpu_seconds(postmaster, with_children=True) - proc_cpu_seconds(postmaster) if postmaster else 0.0
    return live, reaped


def reported_usage(usage: dict) -> dict:
    """An exact CPU usage (Stack.cpu_usage with `exact`, or a sum of several) as the report gives it: rounded, with the
    cores the rest of the machine used on average."""
    wall, other = usage["wall_seconds"], usage["other_processes_seconds"]
    return {
        "wall_seconds": round(wall, 1),
        "machine_busy_seconds": round(usage["machine_busy_seconds"], 1),
        "cpu_seconds": {role: round(value, 1) for role, value in usage["cpu_seconds"].items()},
        "other_processes_seconds": round(other, 1),
        "other_processes_cores": round(other / wall, 2) if wall else 0.0,
    }


def _proc_field(path: str, name: str) -> int:
    """The number after `name` in a /proc file of `key: value` lines; 0 when the process is gone."""
    try:
        with open(path) as handle:
            for line in handle:
                if line.startswith(name):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_threads(pid: int) -> int:
    """The `Threads:` count of /proc/<pid>/status; 0 when the process is gone."""
    return _proc_field(f"/proc/{pid}/status", "Threads:")


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def tcp_connections(pids: list[int], *, server_port: int) -> dict[str, int]:
    """The TCP connections the processes hold open, by peer: `clients` (to their own `server_port`), `redis` (to
    6379), `postgresql` (to 5432) and `other` (matched through the socket inodes of /proc/net/tcp). Established ones
    and those the peer has closed but the process has not yet (CLOSE_WAIT: a client gone, a thread still on it)."""
    inodes = set().union(*(_socket_inodes(pid) for pid in pids)) if pids else set()
    kinds = {"clients": 0, "redis": 0, "postgresql": 0, "other": 0}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                lines = handle.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] not in inodes or fields[3] not in ("01", "08"):  # ESTABLISHED, CLOSE_WAIT
                continue
            local, remote = int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)
            if local == server_port:
                kinds["clients"] += 1
            elif remote == 6379:
                kinds["redis"] += 1
            elif remote == 5432:
                kinds["postgresql"] += 1
            else:
                kinds["other"] += 1
    return kinds


def raise_open_files_limit(wanted: int = 65536) -> tuple[int, int]:
    """Raise this process's RLIMIT_NOFILE soft limit towards `wanted` (capped by the hard limit); every process the
    stack starts inherits it (1000 event streams need 1000+ sockets in the web server and in the stream client)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def postgres_client_backends() -> int:
    """PostgreSQL backends serving a client, over every database (max_connections is for them all): processes titled
    "postgres: <user> <db> <host>(<port>) ..." or "... [local] ..."."""
    return sum(1 for _, title in _postgres_titles() if "(" in title or "[local]" in title)


def proc_pss_kb(pid: int) -> int:
    return _proc_field(f"/proc/{pid}/smaps_rollup", "Pss:")


@dataclass
class CpuSnapshot:
    wall: float
    machine: float
    roles: dict[str, float]
    backends: dict[int, float] = field(default_factory=dict)  # the bench database's live backends: pid -> CPU s
    backends_reaped: float = 0.0  # CPU s of every PostgreSQL process reaped so far


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
        for n in range(2, 1000):  # a restarted process keeps the log of the one before it
            if not self.log_path.exists():
                break
            self.log_path = log_dir / f"{name}-{n}.log"
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


# The web servers `--server` chooses among: the process title of the root process and of its workers (for memory).
SERVERS = {
    "gthread": ("gunicorn master", "gunicorn worker"),
    "uvicorn": ("gunicorn master (uvicorn)", "uvicorn worker"),
    "granian": ("granian main", "granian worker"),
}
# Celery's pools the bench can run the worker with: production's prefork (one process per slot) or one process with a
# thread per slot (an A/B of the hand-over between processes; no time limits, see bench/README.md).
WORKER_POOLS = ("prefork", "threads")
# granian holds at most this many requests in flight per worker (its default is backlog / workers = 512): above the
# 1000 event streams of scenario 8 plus the probes beside them, whichever worker the connections land on.
GRANIAN_BACKPRESSURE = 2048


class Stack:
    def __init__(
        self,
        *,
        latency: float,
        web_workers: int,
        web_threads: int,
        server: str = "granian",
        keep_logs: bool = False,
        image: str = "photo",
        extra_env: dict[str, str] | None = None,
        worker_pool: str = "prefork",
    ):
        if server not in SERVERS:
            raise ValueError(f"unknown server {server!r}")
        if worker_pool not in WORKER_POOLS:
            raise ValueError(f"unknown worker pool {worker_pool!r}")
        self.worker_pool = worker_pool
        self.latency = latency
        self.server = server
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
        self.beat: Process | None = None
        self.worker_slots = 0
        self.worker_warm = False
        self.port = 0
        self._db_created = False
        self._celery_reaped = 0.0
        self._web_reaped = 0.0  # CPU of a web server stopped by restart_web()
        self._redis_used = False
        self._closed = False

    # CPU accounting: who used the machine during a scenario (the bench shares it with whatever else runs)

    def web_pids(self) -> list[int]:
        """The web server's processes: its root (gunicorn's master, granian's main process) and every descendant."""
        if self.web is None or not self.web.alive():
            return []
        return [self.web.pid, *descendants(self.web.pid)]

    def web_worker_pids(self) -> list[int]:
        """The processes that serve requests: the root's children (gunicorn's workers, granian's workers)."""
        return _children(self.web.pid) if self.web is not None and self.web.alive() else []

    def cpu_snapshot(self) -> CpuSnapshot:
        roles = {"web server": 0.0, "celery": 0.0, "postgresql (bench db)": 0.0, "bench clients": 0.0}
        roles["web server"] = sum(proc_cpu_seconds(pid, with_children=True) for pid in self.web_pids())
        processes = [self.worker, self.beat]
        for pid in [pid for p in processes if p and p.alive() for pid in [p.pid, *descendants(p.pid)]]:
            roles["celery"] += proc_cpu_seconds(pid, with_children=True)
        backends, backends_reaped = backends_cpu(DB_NAME)
        roles["postgresql (bench db)"] = sum(backends.values())
        me = os.getpid()
        # This process, its reaped children (load generators, stopped workers) and the fake image API.
        roles["bench clients"] = proc_cpu_seconds(me, with_children=True) - self._celery_reaped - self._web_reaped
        roles["celery"] += self._celery_reaped
        roles["web server"] += self._web_reaped
        if self.fake is not None:
            roles["bench clients"] += proc_cpu_seconds(self.fake.pid)
        return CpuSnapshot(
            wall=time.monotonic(), machine=machine_busy_seconds(), roles=roles, backends=backends,
            backends_reaped=backends_reaped,
        )  # fmt: skip

    @staticmethod
    def cpu_usage(before: CpuSnapshot, after: CpuSnapshot, *, exact: bool = False) -> dict:
        """CPU seconds per role between two snapshots, and what everything else on the machine used; rounded for the
        report (`reported_usage`) unless `exact`, for a caller that sums several short runs first."""
        roles = {role: max(after.roles[role] - before.roles.get(role, 0.0), 0.0) for role in after.roles}
        # Per backend. One that ended meanwhile left the live sum; its whole life's CPU joined the reaped figure, less
        # what it had used by the first snapshot (see backends_cpu).
        ended = sum(seconds for pid, seconds in before.backends.items() if pid not in after.backends)
        roles["postgresql (bench db)"] = max(
            sum(seconds - before.backends.get(pid, 0.0) for pid, seconds in after.backends.items())
            + (after.backends_reaped - before.backends_reaped - ended),
            0.0,
        )
        machine = after.machine - before.machine
        usage = {
            "wall_seconds": after.wall - before.wall,
            "machine_busy_seconds": machine,
            "cpu_seconds": roles,
            "other_processes_seconds": max(machine - sum(roles.values()), 0.0),
        }
        return usage if exact else reported_usage(usage)

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
        for process in (self.beat, self.worker, self.web):
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

    def web_command(self) -> list[str]:
        """The command line of the chosen server (`--server`), listening on 127.0.0.1:self.port."""
        bind = f"127.0.0.1:{self.port}"
        if self.server == "gthread":
            return [
                PYTHON, "-m", "gunicorn", "lumiku.wsgi:application", "--bind", bind,
                "--worker-class", "gthread", "--workers", str(self.web_workers), "--threads", str(self.web_threads),
                "--timeout", "240", "--no-control-socket",
            ]  # fmt: skip
        if self.server == "uvicorn":
            # uvicorn.workers is deprecated in favour of the uvicorn-worker package; it still works, and is kept.
            return [
                PYTHON, "-m", "gunicorn", "lumiku.asgi:application", "--bind", bind,
                "--worker-class", "uvicorn.workers.UvicornWorker", "--workers", str(self.web_workers),
                "--timeout", "240", "--no-control-socket",
            ]  # fmt: skip
        # granian: HTTP/1 only (the clients speak HTTP/1.1), no websockets, its default event loop (asyncio here:
        # uvloop is not installed) and a backpressure above the streams scenario's connections.
        return [
            PYTHON, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", str(self.web_workers), "--http", "1", "--no-ws",
            "--backpressure", str(GRANIAN_BACKPRESSURE), "lumiku.asgi:application",
        ]  # fmt: skip

    def start_web(self) -> None:
        self.port = free_port()
        # Production's settings plus the bench-only URLconf with the floor route (bench/settings.py).
        env = {**self.env(), "DJANGO_SETTINGS_MODULE": "bench.settings"}
        self.web = Process(f"web-{self.server}", self.web_command(), env=env, log_dir=self.log_dir)
        root_role, child_role = SERVERS[self.server]
        self.memory.watch(self.web.pid, root_role=root_role, child_role=child_role)
        deadline = time.monotonic() + 60
        conn = Connection(self.port, timeout=5)
        while time.monotonic() < deadline:
            if not self.web.alive():
                raise RuntimeError(f"{self.server} exited early:\n{self.web.log()[-4000:]}")
            try:
                # Unauthenticated: 401 proves Django answered. Every worker must have booted before we measure.
                if conn.request("GET", "/api/auth/me").status == 401 and len(self.web_worker_pids()) >= (
                    self.web_workers
                ):
                    conn.close()
                    time.sleep(1.0)
                    return
            except (OSError, WireError):
                conn.close()
            time.sleep(0.2)
        conn.close()
        raise RuntimeError(f"{self.server} did not become ready:\n{self.web.log()[-4000:]}")

    def restart_web(self) -> None:
        """Stop the web server and start it again (on a new port): what is left of its connections goes with it."""
        if self.web is not None:
            self.memory.unwatch(self.web.pid)
            me = os.getpid()
            before = proc_cpu_seconds(me, with_children=True) - proc_cpu_seconds(me)
            self.web.stop(timeout=20)
            self._web_reaped += proc_cpu_seconds(me, with_children=True) - proc_cpu_seconds(me) - before
        self.start_web()

    def start_worker(self, slots: int) -> None:
        """(Re)start the Celery worker with `slots` pool slots: prefork processes, or threads of one process."""
        self.stop_worker()
        command = [
            PYTHON, "-m", "celery", "-A", "lumiku", "worker", "--loglevel=INFO", f"--pool={self.worker_pool}",
            f"--concurrency={slots}", "-n", f"bench-{uuid.uuid4().hex[:8]}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        self.worker = Process(f"celery-{slots}", command, env=self.env(), log_dir=self.log_dir)
        self.worker_slots = slots
        self.worker_warm = False  # set by a scenario once every pool process has run a first task
        self.memory.watch(self.worker.pid, root_role="celery main", child_role=f"celery pool child ({slots} slots)")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if not self.worker.alive():
                raise RuntimeError(f"the Celery worker exited early:\n{self.worker.log()[-4000:]}")
            forked = self.worker_pool != "prefork" or len(_children(self.worker.pid)) >= slots
            if " ready." in self.worker.log() and forked:
                time.sleep(1.0)
                return
            time.sleep(0.2)
        raise RuntimeError(f"the Celery worker did not become ready:\n{self.worker.log()[-4000:]}")

    def stop_worker(self) -> None:
        if self.worker is not None:
            self._stop_celery(self.worker)
            self.worker = None

    def _stop_celery(self, process: Process) -> None:
        self.memory.unwatch(process.pid)
        me = os.getpid()
        before = proc_cpu_seconds(me, with_children=True) - proc_cpu_seconds(me)
        process.stop(timeout=20)
        # A stopped Celery process's CPU time now counts as this process's children's: keep it as Celery's.
        self._celery_reaped += proc_cpu_seconds(me, with_children=True) - proc_cpu_seconds(me) - before

    def fake_api_connections(self) -> int:
        """Established TCP connections to the fake image API (its side of them, in /proc/net/tcp): > 0 while a
        worker's call to it is in flight, or while a pool process keeps its connection open between calls (the fake
        keeps them open, as a real provider does)."""
        port = f"{int(self.fake_url.rsplit(':', 1)[1]):04X}"
        count = 0
        with open("/proc/net/tcp") as handle:
            next(handle)
            for line in handle:
                fields = line.split()
                if fields[1].endswith(f":{port}") and fields[3] == "01":
                    count += 1
        return count

    def kill_worker(self) -> float:
        """SIGKILL the whole Celery worker (main process and every pool process, one process group) at once, as an
        out-of-memory kill or a lost machine would; returns time.time() of the kill."""
        if self.worker is None:
            raise RuntimeError("no worker to kill")
        me = os.getpid()
        before = proc_cpu_seconds(me, with_children=True) - proc_cpu_seconds(me)
        killed_at = time.time()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.popen.wait(10)
        self.memory.unwatch(self.worker.pid)
        self.worker.stop()  # closes its log; the group is gone already
        self._celery_reaped += proc_cpu_seconds(me, with_children=True) - proc_cpu_seconds(me) - before
        self.worker = None
        return killed_at

    def start_beat(self) -> None:
        """Celery beat with the project's own schedule (CELERY_BEAT_SCHEDULE: the reaper every AVATAR_REAP_INTERVAL)."""
        self.stop_beat()
        command = [
            PYTHON, "-m", "celery", "-A", "lumiku", "beat", "--loglevel=INFO",
            "--schedule", str(self.tmp / "celerybeat-schedule"),
        ]  # fmt: skip
        self.beat = Process("celery-beat", command, env=self.env(), log_dir=self.log_dir)
        self.memory.watch(self.beat.pid, root_role="celery beat", child_role="celery beat")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not self.beat.alive():
                raise RuntimeError(f"Celery beat exited early:\n{self.beat.log()[-4000:]}")
            if "beat: Starting" in self.beat.log():
                return
            time.sleep(0.2)
        raise RuntimeError(f"Celery beat did not start:\n{self.beat.log()[-4000:]}")

    def stop_beat(self) -> None:
        if self.beat is not None:
            self._stop_celery(self.beat)
            self.beat = None
