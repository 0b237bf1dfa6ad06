"""The measured scenarios. Each takes the Context and returns a JSON-able dict of figures.

Every loop here is bounded twice: by a count and by a wall-clock deadline, and every request has a timeout.
"""

import contextlib
import json
import queue
import random
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import redis
from stack import (
    DB_NAME,
    PYTHON,
    REDIS_URL,
    Stack,
    database_backends,
    postgres_client_backends,
    proc_cpu_seconds,
    proc_memory_kb,
    proc_pss_kb,
    proc_threads,
    reported_usage,
    tcp_connections,
)
from stats import summary
from wire import Connection, EventStream, Response

BENCH_DIR = Path(__file__).resolve().parent
API = "/api/avatar-creator"
FINISHED = {"succeeded", "failed", "canceled", "expired"}
PERSONA = {
    "prompt": "Professional Indonesian woman with modern hijab, smiling",
    "gender": "female",
    "ageRange": "adult",
    "style": "professional",
    "ethnicity": "Indonesian",
    "bodyType": "half_body",
}
PASSWORD = "bench-Pa55word-not-secret"


class BenchError(Exception):
    pass


@dataclass
class User:
    username: str
    token: str
    project_id: str = ""
    succeeded: list[str] = field(default_factory=list)  # preview ids ready to save
    saved: list[str] = field(default_factory=list)  # preview ids already saved


@dataclass
class Counts:
    previews: int = 200
    clients: int = 20
    poll_interval: float = 1.0
    sync_rounds: int = 3
    sync_clients: int = 20
    saves: int = 200
    concurrent_saves: int = 100
    save_concurrency: int = 4
    legacy_saves: int = 50
    read_seconds: float = 20.0  # per route, and as long again for its floor
    read_slices: int = 4  # each split into this many slices, route and floor alternating
    read_connections: int = 16
    scaling_slots: tuple[int, ...] = (1, 2, 4)
    scaling_per_slot: int = 10
    live_previews: int = 60
    live_clients: int = 10
    live_sync_calls: int = 20
    live_sync_clients: int = 5
    streams: int = 1000
    streams_users: int = 5
    streams_connecting: int = 10  # streams being opened at once (each open is a Django call: a thread, a query)
    streams_probe_seconds: float = 10.0
    recovery_rounds: int = 3

    @classmethod
    def quick(cls) -> "Counts":
        return cls(
            previews=40, sync_rounds=1, saves=40, concurrent_saves=20, legacy_saves=10, read_seconds=5.0, read_slices=1,
            scaling_per_slot=3, live_previews=20, live_sync_calls=10, streams=200, streams_probe_seconds=5.0,
            recovery_rounds=1,
        )  # fmt: skip


@dataclass
class Context:
    stack: Stack
    latency: float
    counts: Counts
    slots: int = 20  # the Celery pool of scenarios 1, S, 2, 7 and 9
    users: list[User] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.stack.port


def call(conn: Connection, method: str, path: str, *, token: str, expect: tuple[int, ...] = (200,), **kwargs):
    response = conn.request(method, path, token=token, **kwargs)
    if response.status not in expect:
        raise BenchError(f"{method} {path} -> {response.status}: {response.body[:300]!r}")
    return response


def iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def seconds_between(start: str, end: str) -> float:
    return (iso(end) - iso(start)).total_seconds()


# Set-up


def register_users(ctx: Context, count: int) -> None:
    """`count` users, each with a project, registered through the API (PBKDF2 is slow: in parallel)."""
    run_id = f"{time.time_ns():x}"[-8:]

    def make(i: int) -> User:
        conn = Connection(ctx.port, timeout=60)
        username = f"bench{run_id}u{i}"
        body = {"username": username, "password": PASSWORD, "email": f"{username}@example.com"}
        registered = conn.request("POST", "/api/auth/register", json_body=body)
        if registered.status != 201:
            raise BenchError(f"register -> {registered.status}: {registered.body[:300]!r}")
        user = User(username=username, token=registered.json()["token"])
        project = call(
            conn, "POST", f"{API}/projects", token=user.token, expect=(201,), json_body={"name": f"Bench {i}"}
        )
        user.project_id = project.json()["project"]["id"]
        conn.close()
        return user

    with ThreadPoolExecutor(max_workers=4) as pool:
        ctx.users.extend(pool.map(make, range(len(ctx.users), len(ctx.users) + count)))


def ensure_users(ctx: Context, count: int) -> None:
    if len(ctx.users) < count:
        register_users(ctx, count - len(ctx.users))


# 1. Preview overhead (async + polling)


def _preview_one(ctx: Context, conn: Connection, user: User, deadline: float) -> dict:
    """Request one preview with Prefer: respond-async and poll it to the end; the client's and the server's view."""
    started = time.perf_counter()
    accepted = call(
        conn, "POST", f"{API}/projects/{user.project_id}/avatars/generate-preview", token=user.token,
        expect=(202,), json_body=PERSONA, headers={"Prefer": "respond-async"},
    )  # fmt: skip
    accepted_s = time.perf_counter() - started
    preview_id = accepted.json()["preview"]["id"]
    location = accepted.header("location") or f"{API}/previews/{preview_id}"
    polls: list[float] = []
    while True:
        time.sleep(ctx.counts.poll_interval)
        poll_started = time.perf_counter()
        polled = call(conn, "GET", location, token=user.token)
        polls.append(time.perf_counter() - poll_started)
        preview = polled.json()["preview"]
        if preview["status"] in FINISHED:
            break
        if time.perf_counter() > deadline:
            raise BenchError(f"preview {preview_id} still {preview['status']} at the scenario deadline")
    seen = time.perf_counter() - started
    outcome = {"id": preview_id, "status": preview["status"], "accepted_s": accepted_s, "polls": polls}
    if preview["status"] == "succeeded":
        user.succeeded.append(preview_id)
        outcome.update(
            client_overhead=seen - ctx.latency,
            server_overhead=seconds_between(preview["createdAt"], preview["finishedAt"]) - ctx.latency,
            queue_wait=seconds_between(preview["createdAt"], preview["startedAt"]),
            run_overhead=seconds_between(preview["startedAt"], preview["finishedAt"]) - ctx.latency,
        )
    return outcome


def generate_previews(ctx: Context, total: int, clients: int, *, stagger: bool = True) -> list[dict]:
    """`total` previews from `clients` concurrent clients (one user each), each waited for by polling.

    With `stagger`, each client starts after a random pause within one latency L, as independent users would;
    started in lock step, all 20 previews would also finish in the same instant, every round.
    """
    ensure_users(ctx, clients)
    deadline = time.perf_counter() + 120 + total / clients * (ctx.latency + 5)
    outcomes, errors = run_clients(
        ctx, ctx.users[:clients], total, lambda conn, user: _preview_one(ctx, conn, user, deadline),
        deadline=deadline, stagger=ctx.latency if stagger else 0.0, seed=20260101, timeout=30,
    )  # fmt: skip
    if errors:
        outcomes.append({"status": "client error", "errors": errors[:5], "error_count": len(errors)})
    return outcomes


def scenario_preview(ctx: Context) -> dict:
    c = ctx.counts
    # Warm-up, measured apart: the first task of each pool process pays for its database connection, its HTTP
    # client and lazy imports, which a long-running worker has paid long ago. In lock step it hits every process.
    cold = generate_previews(ctx, c.clients, c.clients, stagger=False)
    ctx.stack.worker_warm = True
    outcomes = generate_previews(ctx, c.previews, c.clients)
    ok = [o for o in outcomes if o.get("status") == "succeeded"]
    statuses: dict[str, int] = {}
    for outcome in outcomes:
        statuses[outcome["status"]] = statuses.get(outcome["status"], 0) + outcome.get("error_count", 1)
    return {
        "previews": c.previews,
        "clients": c.clients,
        "worker_slots": ctx.stack.worker_slots,
        "poll_interval_ms": round(c.poll_interval * 1000),
        "statuses": statuses,
        "client_errors": [e for o in outcomes for e in o.get("errors", [])],
        "cold_start_server_overhead_ms": summary([o["server_overhead"] for o in cold if "server_overhead" in o]),
        "client_overhead_ms": summary([o["client_overhead"] for o in ok]),
        "server_overhead_ms": summary([o["server_overhead"] for o in ok]),
        "queue_wait_ms": summary([o["queue_wait"] for o in ok]),
        "run_overhead_ms": summary([o["run_overhead"] for o in ok]),
        "accept_202_ms": summary([o["accepted_s"] for o in outcomes if "accepted_s" in o]),
        "status_poll_ms": summary([p for o in outcomes for p in o.get("polls", [])]),
    }


# Sync default: waiting generate-preview calls must not starve other requests


def _cheap_gets(
    ctx: Context, user: User, path: str, stop: threading.Event, out: list, errors: list, *, keep_alive: bool
) -> None:
    """GET `path` every 100 ms until stopped (bounded: 10 minutes, 100 000 requests). Gently: it measures whether
    other calls are served while the waiting calls hold their threads, so it must not load the server itself."""
    conn = Connection(ctx.port, timeout=60)
    deadline = time.perf_counter() + 600
    try:
        while not stop.is_set() and time.perf_counter() < deadline and len(out) < 100_000:
            started = time.perf_counter()
            try:
                call(conn, "GET", path, token=user.token)
                out.append(time.perf_counter() - started)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
            if not keep_alive:
                conn.close()
            time.sleep(0.1)
    finally:
        conn.close()


def scenario_sync(ctx: Context) -> dict:
    c = ctx.counts
    ensure_users(ctx, c.sync_clients + 1)
    observer = ctx.users[c.sync_clients]
    if not observer.succeeded:
        generate_previews_for(ctx, observer, 1)
    path = f"{API}/previews/{observer.succeeded[0]}"

    errors: list[str] = []

    def cheap_window(seconds: float, keep_alive: bool) -> list[float]:
        out: list[float] = []
        stop = threading.Event()
        thread = threading.Thread(
            target=_cheap_gets,
            args=(ctx, observer, path, stop, out, errors),
            kwargs={"keep_alive": keep_alive},
            daemon=True,
        )
        thread.start()
        time.sleep(seconds)
        stop.set()
        thread.join(30)
        return out

    idle_keep = cheap_window(3.0, True)
    idle_new = cheap_window(3.0, False)

    sync_times: list[float] = []
    server_overheads: list[float] = []
    queue_waits: list[float] = []
    busy_keep: list[float] = []
    busy_new: list[float] = []
    stop = threading.Event()
    watchers = [
        threading.Thread(
            target=_cheap_gets,
            args=(ctx, observer, path, stop, out, errors),
            kwargs={"keep_alive": keep_alive},
            daemon=True,
        )
        for out, keep_alive in ((busy_keep, True), (busy_new, False))
    ]

    def waiting_call(user: User) -> None:
        conn = Connection(ctx.port, timeout=ctx.latency + 120)
        try:
            started = time.perf_counter()
            response = call(
                conn, "POST", f"{API}/projects/{user.project_id}/avatars/generate-preview", token=user.token,
                json_body=PERSONA,
            )  # fmt: skip
            sync_times.append(time.perf_counter() - started)
            preview = response.json()["preview"]
            if preview.get("finishedAt"):
                server_overheads.append(seconds_between(preview["createdAt"], preview["finishedAt"]) - ctx.latency)
                queue_waits.append(seconds_between(preview["createdAt"], preview["startedAt"]))
            if preview["status"] != "succeeded" or not preview.get("imageBase64"):
                errors.append(f"sync preview came back {preview['status']}")
            else:
                user.succeeded.append(preview["id"])
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    for watcher in watchers:
        watcher.start()
    try:
        time.sleep(0.5)
        for _ in range(c.sync_rounds):
            callers = [
                threading.Thread(target=waiting_call, args=(ctx.users[i],), daemon=True) for i in range(c.sync_clients)
            ]
            for caller in callers:
                caller.start()
            for caller in callers:
                caller.join(ctx.latency + 150)
    finally:
        stop.set()
        for watcher in watchers:
            watcher.join(30)
    return {
        "waiting_calls": c.sync_clients,
        "rounds": c.sync_rounds,
        "worker_slots": ctx.stack.worker_slots,
        "errors": errors[:10],
        "error_count": len(errors),
        "sync_call_overhead_ms": summary([t - ctx.latency for t in sync_times]),
        "sync_server_overhead_ms": summary(server_overheads),
        "sync_queue_wait_ms": summary(queue_waits),
        "cheap_get_idle_keepalive_ms": summary(idle_keep),
        "cheap_get_idle_new_connection_ms": summary(idle_new),
        "cheap_get_while_waiting_keepalive_ms": summary(busy_keep),
        "cheap_get_while_waiting_new_connection_ms": summary(busy_new),
    }


def generate_previews_for(ctx: Context, user: User, count: int) -> None:
    conn = Connection(ctx.port, timeout=30)
    deadline = time.perf_counter() + 60 + count * (ctx.latency + 5)
    try:
        for _ in range(count):
            _preview_one(ctx, conn, user, deadline)
    finally:
        conn.close()


def ensure_succeeded(ctx: Context, total: int) -> None:
    """At least `total` unsaved succeeded previews across the first `clients` users (unmeasured set-up)."""
    have = sum(len(u.succeeded) for u in ctx.users)
    if have < total:
        generate_previews(ctx, total - have, ctx.counts.clients)


# 2. Save


def _take_previews(ctx: Context, count: int) -> list[tuple[User, str]]:
    ensure_succeeded(ctx, count)
    taken: list[tuple[User, str]] = []
    while len(taken) < count:
        progressed = False
        for user in ctx.users:
            if user.succeeded and len(taken) < count:
                taken.append((user, user.succeeded.pop()))
                progressed = True
        if not progressed:
            raise BenchError(f"only {len(taken)} succeeded previews to save, {count} wanted")
    return taken


def _run_saves(ctx: Context, jobs: list, concurrency: int, make_request) -> tuple[list[float], list[str], list]:
    times: list[float] = []
    errors: list[str] = []
    responses: list[Response] = []
    work: queue.Queue = queue.Queue()
    for job in jobs:
        work.put(job)
    deadline = time.perf_counter() + 60 + len(jobs) * 2

    def worker() -> None:
        conn = Connection(ctx.port, timeout=60)
        try:
            while time.perf_counter() < deadline:
                try:
                    job = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    response = make_request(conn, job)
                    times.append(response.seconds)
                    responses.append(response)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    conn.close()
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(deadline - time.perf_counter(), 0) + 30)
    return times, errors, responses


def save_by_id(conn: Connection, job: tuple[User, str]) -> Response:
    user, preview_id = job
    response = call(
        conn, "POST", f"{API}/projects/{user.project_id}/avatars/save-preview", token=user.token, expect=(201,),
        json_body={"previewId": preview_id, "name": "Bench avatar"},
    )  # fmt: skip
    user.saved.append(preview_id)
    return response


def legacy_body(ctx: Context, user: User, preview_id: str) -> tuple[dict, Response]:
    """What a legacy client holds after a waiting generate-preview: the image and thumbnail as base64."""
    conn = Connection(ctx.port, timeout=30)
    try:
        fetched = call(conn, "GET", f"{API}/previews/{preview_id}?include=base64", token=user.token)
    finally:
        conn.close()
    preview = fetched.json()["preview"]
    body = {
        "name": "Bench legacy avatar",
        "imageBase64": preview["imageBase64"],
        "thumbnailBase64": preview["thumbnailBase64"],
        "generationPrompt": preview["prompt"],
        "gender": preview["gender"],
        "ageRange": preview["ageRange"],
        "style": preview["style"],
        "ethnicity": preview["ethnicity"],
        "bodyType": preview["bodyType"],
    }
    return body, fetched


def save_legacy(body: dict):
    encoded = json.dumps(body, separators=(",", ":")).encode()

    def make(conn: Connection, user: User) -> Response:
        return call(
            conn, "POST", f"{API}/projects/{user.project_id}/avatars/save-preview", token=user.token, expect=(201,),
            body=encoded, headers={"Content-Type": "application/json"},
        )  # fmt: skip

    return make


def scenario_save(ctx: Context) -> dict:
    """Saves one at a time (the latency of a save: the target), then the same under 4 concurrent savers."""
    c = ctx.counts
    jobs = _take_previews(ctx, c.saves + c.concurrent_saves + 1)
    source_user, source_id = jobs.pop()
    sequential, concurrent = jobs[: c.saves], jobs[c.saves :]
    by_id_times, by_id_errors, _ = _run_saves(ctx, sequential, 1, save_by_id)
    busy_times, busy_errors, _ = _run_saves(ctx, concurrent, c.save_concurrency, save_by_id)
    body, _ = legacy_body(ctx, source_user, source_id)
    legacy_users = [ctx.users[i % c.clients] for i in range(c.legacy_saves)]
    legacy_times, legacy_errors, _ = _run_saves(ctx, legacy_users, 1, save_legacy(body))
    return {
        "concurrency": c.save_concurrency,
        "by_preview_id_ms": summary(by_id_times),
        "by_preview_id_concurrent_ms": summary(busy_times),
        "by_preview_id_errors": (by_id_errors + busy_errors)[:5],
        "legacy_base64_ms": summary(legacy_times),
        "legacy_base64_errors": legacy_errors[:5],
        "legacy_image_bytes": len(body["imageBase64"]) * 3 // 4,
    }


# 4. Bytes on the wire


def scenario_bytes(ctx: Context) -> dict:
    (user, preview_id), = _take_previews(ctx, 1)  # fmt: skip
    conn = Connection(ctx.port, timeout=60)
    try:
        status_only = call(conn, "GET", f"{API}/previews/{preview_id}", token=user.token)
        body, with_base64 = legacy_body(ctx, user, preview_id)
        by_id = save_by_id(conn, (user, preview_id))
        legacy = save_legacy(body)(conn, user)
    finally:
        conn.close()

    def wire(response: Response) -> dict:
        return {
            "request_bytes": response.sent_bytes,
            "response_bytes": response.received_bytes,
            "total_bytes": response.sent_bytes + response.received_bytes,
        }

    return {
        "save_by_preview_id": wire(by_id),
        "save_legacy_base64": wire(legacy),
        "preview_status": wire(status_only),
        "preview_with_base64": wire(with_base64),
        "legacy_flow_total_bytes": with_base64.received_bytes + legacy.sent_bytes + legacy.received_bytes,
        "by_id_flow_total_bytes": status_only.received_bytes + by_id.sent_bytes + by_id.received_bytes,
    }


# 3. Read throughput

LIST_AVATARS = 20


def run_loadgen(ctx: Context, path: str, token: str, *, seconds: float) -> dict:
    """Run the load generator process for `seconds`; adds the server's CPU cost per request (web workers +
    database). The latencies and the CPU come back exact (`latencies_s`, `cpu`), for a caller that merges slices."""
    c = ctx.counts
    before = ctx.stack.cpu_snapshot()
    command = [
        PYTHON, str(BENCH_DIR / "loadgen.py"), "--port", str(ctx.port), "--path", path, "--token", token,
        "--duration", str(seconds), "--connections", str(c.read_connections), "--raw",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        raise BenchError(f"loadgen failed: {result.stderr[-2000:]}")
    figures = json.loads(result.stdout)
    usage = ctx.stack.cpu_usage(before, ctx.stack.cpu_snapshot(), exact=True)
    if figures["requests"]:
        figures["server_cpu_ms_per_request"] = round(1000 * _server_cpu_seconds(usage) / figures["requests"], 2)
    figures["cpu"] = usage
    return figures


def run_against_floor(ctx: Context, path: str, floor_path: str, token: str) -> tuple[dict, dict]:
    """The route and its floor under the same load, in alternating slices (route, floor, route, floor, ...), each
    given `read_seconds` in all. The CPU per request of each is summed over its slices: this VM's speed drifts by
    a quarter within a minute (bench/README.md), and alternating makes a slow spell slow both alike instead of
    whichever ran in it."""
    c = ctx.counts
    slices = max(1, c.read_slices)
    runs: dict[str, list[dict]] = {path: [], floor_path: []}
    for _ in range(slices):
        for each in (path, floor_path):
            runs[each].append(run_loadgen(ctx, each, token, seconds=c.read_seconds / slices))
    route, floor = (_merged(runs[each]) for each in (path, floor_path))
    route["slice_ratios"] = [
        round(r["server_cpu_ms_per_request"] / f["server_cpu_ms_per_request"], 2)
        for r, f in zip(runs[path], runs[floor_path], strict=True)
        if r.get("server_cpu_ms_per_request") and f.get("server_cpu_ms_per_request")
    ]
    if route.get("server_cpu_ms_per_request") and floor.get("server_cpu_ms_per_request"):
        route["cpu_ratio_to_floor"] = round(route["server_cpu_ms_per_request"] / floor["server_cpu_ms_per_request"], 2)
    return route, floor


def _merged(runs: list[dict]) -> dict:
    """One load generator result from several slices of the same path: counts and CPU summed, latencies pooled."""
    latencies = [value for run in runs for value in run.pop("latencies_s")]
    seconds = sum(run["seconds"] for run in runs)
    requests = sum(run["requests"] for run in runs)
    errors: dict[str, int] = {}
    for run in runs:
        for name, count in run["errors"].items():
            errors[name] = errors.get(name, 0) + count
    usages = [run["cpu"] for run in runs]  # exact (run_loadgen)
    usage = {
        key: sum(u[key] for u in usages) for key in ("wall_seconds", "machine_busy_seconds", "other_processes_seconds")
    }
    usage["cpu_seconds"] = {role: sum(u["cpu_seconds"][role] for u in usages) for role in usages[0]["cpu_seconds"]}
    merged = {
        "path": runs[0]["path"],
        "connections": runs[0]["connections"],
        "seconds": round(seconds, 2),
        "slices": [
            {"requests_per_second": run["requests_per_second"], "cpu_ms": run.get("server_cpu_ms_per_request")}
            for run in runs
        ],
        "requests": requests,
        "errors": errors,
        "requests_per_second": round(requests / seconds, 1) if seconds else 0.0,
        "latency_ms": summary(latencies),
        "loadgen_cpu_seconds": round(sum(run["loadgen_cpu_seconds"] for run in runs), 2),
        "cpu": reported_usage(usage),
    }
    if requests:
        merged["server_cpu_ms_per_request"] = round(1000 * _server_cpu_seconds(usage) / requests, 2)
    return merged


def _server_cpu_seconds(usage: dict) -> float:
    """The server's share of a CPU usage: its web processes and the bench database's PostgreSQL backends."""
    return usage["cpu_seconds"]["web server"] + usage["cpu_seconds"]["postgresql (bench db)"]


def _queue_and_wait(ctx: Context, user: User, count: int) -> None:
    """`count` previews of one user queued at once (async) and polled until finished (unmeasured set-up)."""
    conn = Connection(ctx.port, timeout=30)
    try:
        pending = [
            call(
                conn, "POST", f"{API}/projects/{user.project_id}/avatars/generate-preview", token=user.token,
                expect=(202,), json_body=PERSONA, headers={"Prefer": "respond-async"},
            ).json()["preview"]["id"]
            for _ in range(count)
        ]  # fmt: skip
        deadline = time.perf_counter() + 60 + count * (ctx.latency + 5)
        while pending and time.perf_counter() < deadline:
            time.sleep(0.5)
            preview = call(conn, "GET", f"{API}/previews/{pending[0]}", token=user.token).json()["preview"]
            if preview["status"] in FINISHED:
                pending.pop(0)
                if preview["status"] == "succeeded":
                    user.succeeded.append(preview["id"])
    finally:
        conn.close()


def scenario_read(ctx: Context) -> dict:
    ensure_users(ctx, 1)
    user = max(ctx.users, key=lambda u: len(u.saved))
    # The list is read with at least LIST_AVATARS avatars in it (run alone, nothing was saved before).
    missing = LIST_AVATARS - len(user.saved)
    if missing > 0:
        if len(user.succeeded) < missing:
            _queue_and_wait(ctx, user, missing - len(user.succeeded))
        _run_saves(ctx, [(user, user.succeeded.pop()) for _ in range(min(missing, len(user.succeeded)))], 1, save_by_id)
    status_path = f"{API}/previews/{user.saved[0]}"
    list_path = f"{API}/projects/{user.project_id}/avatars"
    conn = Connection(ctx.port, timeout=30)
    try:
        status_body = call(conn, "GET", status_path, token=user.token).json()
        list_body = call(conn, "GET", list_path, token=user.token).json()
    finally:
        conn.close()
    # The floor answers the very same JSON from memory (bench/urls.py), in slices alternating with the route's.
    (ctx.stack.floor_dir / "status.json").write_text(json.dumps(status_body))
    (ctx.stack.floor_dir / "avatars.json").write_text(json.dumps(list_body))
    status, status_floor = run_against_floor(ctx, status_path, "/api/bench/floor/status", user.token)
    listing, listing_floor = run_against_floor(ctx, list_path, "/api/bench/floor/avatars", user.token)
    status["floor"], listing["floor"] = status_floor, listing_floor
    listing["avatars_in_list"] = len(list_body["avatars"])
    return {"preview_status": status, "avatar_list": listing}


# 5. Scaling with worker slots


def scenario_scaling(ctx: Context) -> dict:
    c = ctx.counts
    ensure_users(ctx, 1)
    user = ctx.users[0]
    by_slots: dict[str, dict] = {}
    for slots in c.scaling_slots:
        ctx.stack.start_worker(slots)
        total = slots * c.scaling_per_slot
        conn = Connection(ctx.port, timeout=30)
        ids = []
        try:
            for _ in range(total):
                accepted = call(
                    conn, "POST", f"{API}/projects/{user.project_id}/avatars/generate-preview", token=user.token,
                    expect=(202,), json_body=PERSONA, headers={"Prefer": "respond-async"},
                )  # fmt: skip
                ids.append(accepted.json()["preview"]["id"])
            deadline = time.perf_counter() + 60 + total / slots * (ctx.latency + 5)
            previews: dict[str, dict] = {}
            # The queue is FIFO, so previews finish about in order: look at the oldest unfinished one once a second
            # (and past it only once it is done), which keeps this observer's own load on the server negligible.
            pending = list(ids)
            while pending and time.perf_counter() < deadline:
                time.sleep(1.0)
                while pending:
                    preview = call(conn, "GET", f"{API}/previews/{pending[0]}", token=user.token).json()["preview"]
                    if preview["status"] not in FINISHED:
                        break
                    previews[pending.pop(0)] = preview
        finally:
            conn.close()
        done = [p for p in previews.values() if p["status"] == "succeeded"]
        user.succeeded.extend(p["id"] for p in done)
        if not done:
            by_slots[str(slots)] = {"error": "no preview succeeded"}
            continue
        first = min(iso(p["createdAt"]) for p in done)
        last = max(iso(p["finishedAt"]) for p in done)
        wall = (last - first).total_seconds()
        rate = len(done) / wall
        ideal = slots / ctx.latency
        by_slots[str(slots)] = {
            "previews": total,
            "succeeded": len(done),
            "wall_seconds": round(wall, 2),
            "previews_per_second": round(rate, 3),
            "ideal_per_second": round(ideal, 3),
            "efficiency_pct": round(100 * rate / ideal, 1),
        }
    return {"latency_s": ctx.latency, "by_slots": by_slots}


# Shared by 7, 8 and 9


def ensure_worker(ctx: Context) -> None:
    """The Celery worker with the run's pool size (scenario 5 leaves one of 4 slots, scenario 8 stops it)."""
    stack = ctx.stack
    if stack.worker is None or not stack.worker.alive() or stack.worker_slots != ctx.slots:
        stack.start_worker(ctx.slots)


def warm_up(ctx: Context) -> dict:
    """One preview per pool process, all at once, unmeasured: a fresh worker's first tasks pay for their database
    connection and lazy imports (scenario 1 reports that apart). Nothing to do when the pool is warm already."""
    if ctx.stack.worker_warm:
        return {"n": 0}
    slots = ctx.stack.worker_slots
    outcomes = generate_previews(ctx, slots, slots, stagger=False)
    ctx.stack.worker_warm = True
    return summary([o["server_overhead"] for o in outcomes if "server_overhead" in o])


def request_async(conn: Connection, user: User, *, count: int = 1) -> list[dict]:
    """generate-preview with `Prefer: respond-async`: the queued previews (202)."""
    body = PERSONA if count == 1 else {**PERSONA, "count": count}
    accepted = call(
        conn, "POST", f"{API}/projects/{user.project_id}/avatars/generate-preview", token=user.token,
        expect=(202,), json_body=body, headers={"Prefer": "respond-async"},
    ).json()  # fmt: skip
    return accepted.get("previews") or [accepted["preview"]]


def run_clients(
    ctx: Context, users: list[User], total: int, job, *, deadline: float, stagger: float = 0.0,
    seed: int = 20260707, timeout: float | None = None,
):  # fmt: skip
    """`total` jobs shared by one thread per user (`job(conn, user)` returns an outcome dict); each thread starts
    after a random pause within `stagger` seconds, and its connection waits `timeout` (default L + 120 s) for an
    answer. Returns (outcomes, errors)."""
    rng = random.Random(seed)
    work: queue.Queue = queue.Queue()
    for i in range(total):
        work.put(i)
    outcomes: list[dict] = []
    errors: list[str] = []

    def client(user: User, pause: float) -> None:
        conn = Connection(ctx.port, timeout=timeout if timeout is not None else ctx.latency + 120)
        time.sleep(pause)
        try:
            while time.perf_counter() < deadline:
                try:
                    work.get_nowait()
                except queue.Empty:
                    return
                try:
                    outcomes.append(job(conn, user))
                except Exception as exc:  # one failure is a figure, not the end of the run
                    errors.append(f"{type(exc).__name__}: {exc}")
                    conn.close()
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(user, rng.uniform(0, stagger)), daemon=True) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(deadline - time.perf_counter(), 0) + 30)
    return outcomes, errors


def finished_figures(ctx: Context, preview: dict, sent: float, arrived: float) -> dict:
    """Client-seen overhead (arrival - POST sent - L), notify latency (arrival - the server's finishedAt) and the
    server-side overhead of scenario 1 (finishedAt - createdAt - L), of which the client-seen one is made.

    Both ends read the same wall clock (time.time(); finishedAt is the server's UTC timestamp on this very host),
    so the difference is the time from the row's final commit to the client holding the answer."""
    outcome = {"id": preview["id"], "status": preview["status"]}
    if preview["status"] == "succeeded" and preview.get("finishedAt"):
        outcome.update(
            client_overhead=arrived - sent - ctx.latency,
            notify=arrived - iso(preview["finishedAt"]).timestamp(),
            server_overhead=seconds_between(preview["createdAt"], preview["finishedAt"]) - ctx.latency,
        )
    return outcome


def live_figures(outcomes: list[dict], errors: list[str]) -> dict:
    ok = [o for o in outcomes if "client_overhead" in o]
    statuses: dict[str, int] = {}
    for outcome in outcomes:
        statuses[outcome["status"]] = statuses.get(outcome["status"], 0) + 1
    not_succeeded = [f"preview {o['id']} ended {o['status']}" for o in outcomes if "client_overhead" not in o]
    problems = errors + not_succeeded
    return {
        "previews": len(outcomes),
        "statuses": statuses,
        "client_overhead_ms": summary([o["client_overhead"] for o in ok]),
        "notify_ms": summary([o["notify"] for o in ok]),
        "server_overhead_ms": summary([o["server_overhead"] for o in ok]),
        "heartbeats": sum(o.get("heartbeats", 0) for o in outcomes),
        "events_per_preview_max": max((o.get("events", 0) for o in outcomes), default=0),
        "errors": problems[:5],
        "error_count": len(problems),
    }


# 7. Live results: the event stream, Prefer: wait and the waiting generate-preview


def _preview_by_events(ctx: Context, conn: Connection, user: User, deadline: float) -> dict:
    """POST (respond-async), then follow the preview's event stream on a new connection to its finished state."""
    sent = time.time()
    (preview,) = request_async(conn, user)
    stream = EventStream(ctx.port, f"{API}/previews/{preview['id']}/events", token=user.token, timeout=30)
    events = heartbeats = 0
    try:
        if stream.status != 200:
            raise BenchError(f"events -> {stream.status}: {stream.body_start[:200]!r}")
        while time.perf_counter() < deadline:
            event = stream.next()
            if event is None:
                raise BenchError(f"the stream of {preview['id']} ended before a finished state")
            if event.comment is not None:
                heartbeats += 1
                continue
            events += 1
            data = event.json() or {}
            state = data.get("preview", data)
            if state.get("status") in FINISHED:
                return {
                    **finished_figures(ctx, state, sent, event.arrived),
                    "events": events,
                    "heartbeats": heartbeats,
                }
        raise BenchError(f"preview {preview['id']} unfinished at the scenario deadline")
    finally:
        stream.close()


def _preview_by_prefer_wait(ctx: Context, conn: Connection, user: User, deadline: float) -> dict:
    """POST (respond-async), then `GET /previews/:id` with `Prefer: wait=60`, again while it is not finished."""
    sent = time.time()
    (preview,) = request_async(conn, user)
    for gets in range(1, 6):
        answer = call(conn, "GET", f"{API}/previews/{preview['id']}", token=user.token, headers={"Prefer": "wait=60"})
        arrived = time.time()
        state = answer.json()["preview"]
        if state["status"] in FINISHED:
            return {**finished_figures(ctx, state, sent, arrived), "gets": gets}
        if time.perf_counter() > deadline:
            break
    raise BenchError(f"preview {preview['id']} still {state['status']} after 5 waiting GETs")


def _waiting_generate(ctx: Context, conn: Connection, user: User) -> dict:
    """The waiting generate-preview (no Prefer): the whole call minus L, and the server's own overhead."""
    answer = call(
        conn, "POST", f"{API}/projects/{user.project_id}/avatars/generate-preview", token=user.token,
        json_body=PERSONA,
    )  # fmt: skip
    preview = answer.json()["preview"]
    if preview["status"] != "succeeded":
        raise BenchError(f"waiting generate-preview came back {preview['status']}")
    user.succeeded.append(preview["id"])
    return {
        "id": preview["id"],
        "status": preview["status"],
        "call_overhead": answer.seconds - ctx.latency,
        "server_overhead": seconds_between(preview["createdAt"], preview["finishedAt"]) - ctx.latency,
    }


def scenario_live(ctx: Context) -> dict:
    """Live results against scenario 1's polling: how soon after a preview finishes does the client know?"""
    c = ctx.counts
    ensure_worker(ctx)
    ensure_users(ctx, max(c.live_clients, c.live_sync_clients))
    users = ctx.users[: c.live_clients]
    per_preview = ctx.latency + 10

    def budget(total: int, clients: int) -> float:
        return time.perf_counter() + 120 + total / clients * per_preview

    results = {"previews": c.live_previews, "clients": c.live_clients, "worker_slots": ctx.stack.worker_slots}
    results["warm_up_server_overhead_ms"] = warm_up(ctx)
    for name, follow in (("events", _preview_by_events), ("prefer_wait", _preview_by_prefer_wait)):
        deadline = budget(c.live_previews, c.live_clients)
        outcomes, errors = run_clients(
            ctx, users, c.live_previews,
            lambda conn, user, follow=follow, deadline=deadline: follow(ctx, conn, user, deadline),
            deadline=deadline, stagger=ctx.latency,
        )  # fmt: skip
        results[name] = live_figures(outcomes, errors)
    deadline = budget(c.live_sync_calls, c.live_sync_clients)
    outcomes, errors = run_clients(
        ctx, ctx.users[: c.live_sync_clients], c.live_sync_calls,
        lambda conn, user: _waiting_generate(ctx, conn, user), deadline=deadline, stagger=ctx.latency,
    )  # fmt: skip
    results["waiting_generate"] = {
        "calls": c.live_sync_calls,
        "clients": c.live_sync_clients,
        "call_overhead_ms": summary([o["call_overhead"] for o in outcomes]),
        "server_overhead_ms": summary([o["server_overhead"] for o in outcomes]),
        "errors": errors[:5],
        "error_count": len(errors),
    }
    return results


# 8. A thousand open event streams


def web_footprint(stack: Stack) -> dict:
    """Sums over the web server's processes: RSS and PSS (kB), threads, established TCP connections by peer (its
    clients, Redis, PostgreSQL); Redis's client count (the whole Redis server's: the worker is stopped meanwhile),
    the bench database's PostgreSQL backends and the PostgreSQL server's client connections."""
    pids = stack.web_pids()
    connections = tcp_connections(pids, server_port=stack.port)
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    info = client.info("clients")
    # What Redis's clients last did (CLIENT LIST `cmd`; `sub` > 0 for a pub/sub subscriber): which of them grow.
    kinds: dict[str, int] = {}
    for entry in client.client_list():
        kind = "subscriber" if int(entry.get("sub", 0) or 0) or int(entry.get("psub", 0) or 0) else entry.get("cmd")
        kinds[kind] = kinds.get(kind, 0) + 1
    client.close()
    return {
        "rss_kb": sum(proc_memory_kb(pid)[0] for pid in pids),
        "pss_kb": sum(proc_pss_kb(pid) for pid in pids),
        "threads": sum(proc_threads(pid) for pid in pids),
        "client_connections": connections["clients"],
        "redis_connections": connections["redis"],
        "db_connections": connections["postgresql"],
        "redis_clients": info["connected_clients"],
        "redis_clients_by_last_command": dict(sorted(kinds.items(), key=lambda item: -item[1])[:6]),
        "db_backends": len(database_backends(DB_NAME)),
        "pg_connections": postgres_client_backends(),
    }


def probe_gets(ctx: Context, user: User, seconds: float) -> tuple[list[float], list[str]]:
    """`GET /api/auth/me` on a new connection every 50 ms for `seconds` (each waits at most 5 s)."""
    times: list[float] = []
    errors: list[str] = []
    stop_at = time.perf_counter() + seconds
    for _ in range(int(seconds / 0.05) + 1):
        if time.perf_counter() >= stop_at:
            break
        conn = Connection(ctx.port, timeout=5)
        try:
            times.append(call(conn, "GET", "/api/auth/me", token=user.token).seconds)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
        time.sleep(0.05)
    return times, errors


def _with_retries(action, errors: list[str], *, tries: int = 3) -> bool:
    """Run `action()` up to `tries` times, 0.5 s apart; every failure is noted in `errors`. Whether it succeeded."""
    for attempt in range(tries):
        try:
            action()
            return True
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            if attempt + 1 < tries:
                time.sleep(0.5)
    return False


def _queue_unfinished(ctx: Context, users: list[User], total: int, made: list[dict], errors: list[str]) -> None:
    """`total` previews left queued (no worker runs): count=4 a request, spread over `users`, 4 requests at once; a
    failed request is sent again (twice at most; each failure is noted in `errors`, a figure). Each preview is
    added to `made` as {token, id} as soon as it exists (the caller cancels them, whatever happens)."""
    requests = [(users[i % len(users)], min(4, total - 4 * i)) for i in range((total + 3) // 4)]
    lock = threading.Lock()
    deadline = time.perf_counter() + 60 + total * 0.2

    def make(job) -> None:
        user, count = job

        def once() -> None:
            conn = Connection(ctx.port, timeout=30)
            try:
                previews = request_async(conn, user, count=count)
            finally:
                conn.close()
            with lock:
                made.extend({"token": user.token, "id": p["id"]} for p in previews)

        if time.perf_counter() < deadline:
            _with_retries(once, errors)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(make, requests))
    if len(made) < total:
        raise BenchError(f"only {len(made)} of {total} previews queued: {errors[:3]}")


def _cancel_all(ctx: Context, jobs: list[dict], errors: list[str]) -> int:
    """Cancel the previews left queued (else a restarted worker would pick them up), each tried 3 times at most;
    how many could not be."""
    failed = []
    deadline = time.perf_counter() + 60 + len(jobs) * 0.2

    def cancel(job) -> None:
        def once() -> None:
            conn = Connection(ctx.port, timeout=30)
            try:
                call(conn, "POST", f"{API}/previews/{job['id']}/cancel", token=job["token"])
            finally:
                conn.close()

        if time.perf_counter() > deadline or not _with_retries(once, errors):
            failed.append(job["id"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(cancel, jobs))
    return len(failed)


class StreamsProcess:
    """bench/streams.py as a child: its two JSON lines are read by a thread, so every wait has a deadline."""

    def __init__(self, ctx: Context, jobs_path: Path, open_timeout: float):
        command = [
            PYTHON, str(BENCH_DIR / "streams.py"), "--port", str(ctx.port), "--jobs", str(jobs_path),
            "--open-timeout", str(open_timeout), "--hold-max", "600",
            "--concurrency", str(ctx.counts.streams_connecting),
        ]  # fmt: skip
        self.popen = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self.lines.put(line)

    def line(self, timeout: float) -> dict:
        try:
            return json.loads(self.lines.get(timeout=timeout))
        except queue.Empty:
            raise BenchError(f"streams.py said nothing in {timeout:g} s: {self._stderr()}") from None

    def _stderr(self) -> str:
        if self.popen.poll() is None:
            return "(still running)"
        return self.popen.stderr.read()[-2000:]

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.popen.stdin.write("close\n")
            self.popen.stdin.flush()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)


def web_cpu_seconds(stack: Stack) -> float:
    """CPU seconds the web server's processes have used so far (while the streams are held: heartbeats, the probe)."""
    return sum(proc_cpu_seconds(pid) for pid in stack.web_pids())


def web_counts(stack: Stack) -> dict:
    """The cheap part of web_footprint (no PSS, no Redis call), for sampling often."""
    pids = stack.web_pids()
    return {"threads": sum(proc_threads(pid) for pid in pids), **tcp_connections(pids, server_port=stack.port)}


class PeakSampler:
    """Calls `sample()` (a dict of counts) every 0.25 s in a thread while the `with` block runs; keeps each maximum."""

    def __init__(self, sample):
        self.sample = sample
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for _ in range(100_000):  # ~7 hours at most; the block ends long before
            for key, value in self.sample().items():
                self.peaks[key] = max(self.peaks.get(key, 0), value)
            if self._stop.wait(0.25):
                return

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def _fall_back(stack: Stack, before: dict, seconds: float) -> tuple[dict, float | None]:
    """Sample the web processes every 0.5 s until their client connections are back near `before` (within 2: the
    probe's) or `seconds` passed; the last sample and when it was reached. Threads a pool keeps (asgiref's, granian's
    blocking threads) and Redis connections a pool keeps for reuse are reported, not waited for."""
    started = time.perf_counter()
    while True:
        now = web_footprint(stack)
        if now["client_connections"] <= before["client_connections"] + 2:
            return now, time.perf_counter() - started
        if time.perf_counter() - started > seconds:
            return now, None
        time.sleep(0.5)


def scenario_streams(ctx: Context) -> dict:
    """N event streams held open at once on previews that stay queued (the worker is stopped for it)."""
    c = ctx.counts
    stack = ctx.stack
    ensure_users(ctx, c.streams_users + 1)
    users, prober = ctx.users[: c.streams_users], ctx.users[c.streams_users]
    stack.stop_worker()
    jobs: list[dict] = []
    queue_errors: list[str] = []
    cancel_errors: list[str] = []
    child = None
    result: dict = {"streams": c.streams, "users": c.streams_users, "server": stack.server}
    result["connecting_at_once"] = c.streams_connecting
    try:
        _queue_unfinished(ctx, users, c.streams, jobs, queue_errors)
        time.sleep(1.0)
        before = web_footprint(stack)
        idle_times, _ = probe_gets(ctx, prober, 3.0)
        with tempfile.NamedTemporaryFile("w", suffix=".json", dir=stack.tmp, delete=False) as handle:
            json.dump(jobs, handle)
        child = StreamsProcess(ctx, Path(handle.name), open_timeout=60 + c.streams * 0.1)
        with PeakSampler(lambda: {"pg_connections": postgres_client_backends(), **web_counts(stack)}) as peaks:
            opened = child.line(timeout=120 + c.streams * 0.1)
        result["peak_while_opening"] = peaks.peaks
        time.sleep(1.0)
        held = web_footprint(stack)
        cpu_before, probe_started = web_cpu_seconds(stack), time.perf_counter()
        probe_times, probe_errors = probe_gets(ctx, prober, c.streams_probe_seconds)
        held_cores = (web_cpu_seconds(stack) - cpu_before) / (time.perf_counter() - probe_started)
        held_after = web_footprint(stack)
        child.close()
        closed = child.line(timeout=60)
        # A stream learns that its client left when it next writes: at the latest the heartbeat, every 15 s.
        after, fell_back_s = _fall_back(stack, before, 40.0)
        count = max(opened["opened"], 1)
        result.update(
            opened=opened["opened"],
            open_seconds=opened["seconds"],
            open_errors=opened["errors"],
            first_event_ms=opened["first_event_ms"],
            first_status=opened["first_status"],
            ended_early=closed["ended_early"],
            heartbeats=closed["heartbeats"],
            held_seconds=closed["held_seconds"],
            stream_client_cpu_seconds=closed["client_cpu_seconds"],
            cheap_get_before_ms=summary(idle_times),
            cheap_get_ms=summary(probe_times),
            cheap_get_errors=probe_errors[:5],
            cheap_get_error_count=len(probe_errors),
            web_rss_mb={k: round(v["rss_kb"] / 1024, 1) for k, v in (("before", before), ("open", held))},
            web_pss_mb={k: round(v["pss_kb"] / 1024, 1) for k, v in (("before", before), ("open", held))},
            rss_kb_per_stream=round((max(held["rss_kb"], held_after["rss_kb"]) - before["rss_kb"]) / count, 1),
            pss_kb_per_stream=round((max(held["pss_kb"], held_after["pss_kb"]) - before["pss_kb"]) / count, 1),
            web_threads={"before": before["threads"], "open": held["threads"], "after": after["threads"]},
            web_connections={
                key: {"before": before[key], "open": held[key], "after": after[key]}
                for key in ("client_connections", "redis_connections", "db_connections")
            },
            redis_connected_clients={
                "before": before["redis_clients"], "open": held["redis_clients"], "after": after["redis_clients"]
            },
            db_backends={"before": before["db_backends"], "open": held["db_backends"], "after": after["db_backends"]},
            redis_clients_by_last_command={
                "before": before["redis_clients_by_last_command"],
                "open": held["redis_clients_by_last_command"],
                "after": after["redis_clients_by_last_command"],
            },
            pg_connections_all_databases={
                "before": before["pg_connections"], "open": held["pg_connections"], "after": after["pg_connections"]
            },
            web_cores_while_held=round(held_cores, 2),
            fell_back_seconds=None if fell_back_s is None else round(fell_back_s, 1),
        )  # fmt: skip
        if fell_back_s is None:
            # Threads still held by streams whose client left (a WSGI worker learns it only at its next write):
            # start the server afresh so the cancels below and the scenarios after are served.
            stack.restart_web()
            result["web_restarted"] = True
    finally:
        if child is not None:
            child.kill()
        if jobs:
            result["cancel_failures"] = _cancel_all(ctx, jobs, cancel_errors)
        result.update(
            setup_errors={"queueing": queue_errors[:3], "queueing_count": len(queue_errors)},
            cleanup_errors={"cancelling": cancel_errors[:3], "cancelling_count": len(cancel_errors)},
        )
        ensure_worker(ctx)
    return result


# 9. Recovery after a worker kill


def app_settings(stack: Stack, *names: str) -> dict:
    """The app's own values of some settings, read by Django in a child with the stack's environment."""
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name) for name in {list(names)!r}}}))"
    )
    result = subprocess.run(
        [PYTHON, "-c", code], cwd=BENCH_DIR.parent, env=stack.env(), capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise BenchError(f"reading settings failed: {result.stderr[-1000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _wait_for_status(
    ctx: Context, conn: Connection, user: User, preview_id: str, wanted, *, every: float, limit: float
):
    """Poll the preview every `every` seconds until its status is in `wanted` (or `limit` seconds): the preview."""
    stop_at = time.perf_counter() + limit
    for _ in range(int(limit / every) + 1):
        preview = call(conn, "GET", f"{API}/previews/{preview_id}", token=user.token).json()["preview"]
        if preview["status"] in wanted or time.perf_counter() > stop_at:
            return preview
        time.sleep(every)
    return preview


def _recover_once(ctx: Context, user: User) -> dict:
    """One preview; SIGKILL the whole worker while its call to the image API is in flight; a new worker at once;
    the time from the kill to the poll (every 0.25 s) that shows the preview succeeded."""
    stack = ctx.stack
    conn = Connection(ctx.port, timeout=30)
    try:
        (preview,) = request_async(conn, user)
        running = _wait_for_status(ctx, conn, user, preview["id"], {"running", *FINISHED}, every=0.05, limit=60)
        if running["status"] != "running":
            return {"error": f"preview {preview['id']} was {running['status']} before the kill"}
        # The attempt marks the preview running just before it calls the image API: wait for that call's connection
        # (bounded), then a quarter of L more, so the kill lands while the call is in flight.
        for _ in range(200):
            if stack.fake_api_connections():
                break
            time.sleep(0.05)
        time.sleep(ctx.latency / 4)
        in_flight = stack.fake_api_connections() > 0
        killed_at = stack.kill_worker()
        stack.start_worker(ctx.slots)
        worker_ready_s = time.time() - killed_at
        done = _wait_for_status(ctx, conn, user, preview["id"], FINISHED, every=0.25, limit=240)
        seen_s = time.time() - killed_at
    finally:
        conn.close()
    outcome = {
        "id": preview["id"],
        "status": done["status"],
        "attempts": done.get("attempts"),
        "worker_ready_s": round(worker_ready_s, 2),
        "image_call_in_flight_at_kill": in_flight,
    }
    if done["status"] != "succeeded":
        outcome["error"] = f"preview {preview['id']} ended {done['status']} ({done.get('error')})"
        return outcome
    user.succeeded.append(done["id"])
    outcome.update(
        kill_to_succeeded_s=round(seen_s, 2),
        kill_to_finished_at_s=round(iso(done["finishedAt"]).timestamp() - killed_at, 2),
    )
    return outcome


def scenario_recovery(ctx: Context) -> dict:
    """A worker killed mid-generation: the reaper (Celery beat, the project's schedule) queues the preview again."""
    c = ctx.counts
    ensure_worker(ctx)
    ensure_users(ctx, 1)
    settings = app_settings(ctx.stack, "AVATAR_REAP_INTERVAL", "AVATAR_HEARTBEAT_STALE", "AVATAR_HEARTBEAT_INTERVAL")
    ctx.stack.start_beat()
    rounds = []
    try:
        for _ in range(c.recovery_rounds):
            rounds.append(_recover_once(ctx, ctx.users[0]))
            time.sleep(1.0)
    finally:
        ctx.stack.stop_beat()
        ensure_worker(ctx)
    times = [r["kill_to_succeeded_s"] for r in rounds if "kill_to_succeeded_s" in r]
    return {
        "rounds": rounds,
        "all_succeeded": len(times) == len(rounds),
        "max_kill_to_succeeded_s": max(times) if times else None,
        "reap_interval_s": settings["AVATAR_REAP_INTERVAL"],
        "heartbeat_stale_s": settings["AVATAR_HEARTBEAT_STALE"],
        "heartbeat_interval_s": settings["AVATAR_HEARTBEAT_INTERVAL"],
    }
