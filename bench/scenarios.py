"""The measured scenarios. Each takes the Context and returns a JSON-able dict of figures.

Every loop here is bounded twice: by a count and by a wall-clock deadline, and every request has a timeout.
"""

import json
import queue
import random
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from stack import PYTHON, Stack
from stats import summary
from wire import Connection, Response

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
    read_seconds: float = 20.0
    read_connections: int = 16
    scaling_slots: tuple[int, ...] = (1, 2, 4)
    scaling_per_slot: int = 10

    @classmethod
    def quick(cls) -> "Counts":
        return cls(
            previews=40, sync_rounds=1, saves=40, concurrent_saves=20, legacy_saves=10, read_seconds=5.0,
            scaling_per_slot=3,
        )  # fmt: skip


@dataclass
class Context:
    stack: Stack
    latency: float
    counts: Counts
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
    rng = random.Random(20260101)
    pauses = [rng.uniform(0, ctx.latency) if stagger else 0.0 for _ in range(clients)]
    deadline = time.perf_counter() + 120 + total / clients * (ctx.latency + 5)
    work: queue.Queue = queue.Queue()
    for i in range(total):
        work.put(i)
    outcomes: list[dict] = []
    errors: list[str] = []

    def client(user: User, pause: float) -> None:
        conn = Connection(ctx.port, timeout=30)
        time.sleep(pause)
        try:
            while time.perf_counter() < deadline:
                try:
                    work.get_nowait()
                except queue.Empty:
                    return
                try:
                    outcomes.append(_preview_one(ctx, conn, user, deadline))
                except Exception as exc:  # one failure is a figure, not the end of the run
                    errors.append(f"{type(exc).__name__}: {exc}")
                    conn.close()
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(ctx.users[i], pauses[i]), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(deadline - time.perf_counter(), 0) + 30)
    if errors:
        outcomes.append({"status": "client error", "errors": errors[:5], "error_count": len(errors)})
    return outcomes


def scenario_preview(ctx: Context) -> dict:
    c = ctx.counts
    # Warm-up, measured apart: the first task of each pool process pays for its database connection, its HTTP
    # client and lazy imports, which a long-running worker has paid long ago. In lock step it hits every process.
    cold = generate_previews(ctx, c.clients, c.clients, stagger=False)
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


def run_loadgen(ctx: Context, path: str, token: str) -> dict:
    """Run the load generator process; adds the server's CPU cost per request (web workers + database)."""
    c = ctx.counts
    before = ctx.stack.cpu_snapshot()
    command = [
        PYTHON, str(BENCH_DIR / "loadgen.py"), "--port", str(ctx.port), "--path", path, "--token", token,
        "--duration", str(c.read_seconds), "--connections", str(c.read_connections),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=c.read_seconds + 60)
    if result.returncode != 0:
        raise BenchError(f"loadgen failed: {result.stderr[-2000:]}")
    figures = json.loads(result.stdout)
    usage = ctx.stack.cpu_usage(before, ctx.stack.cpu_snapshot())
    server = usage["cpu_seconds"]["web (gunicorn)"] + usage["cpu_seconds"]["postgresql (bench db)"]
    if figures["requests"]:
        figures["server_cpu_ms_per_request"] = round(1000 * server / figures["requests"], 2)
    figures["cpu"] = usage
    return figures


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
    # The floor answers the very same JSON from memory (bench/urls.py), right after the route it is the floor of.
    (ctx.stack.floor_dir / "status.json").write_text(json.dumps(status_body))
    (ctx.stack.floor_dir / "avatars.json").write_text(json.dumps(list_body))
    status = run_loadgen(ctx, status_path, user.token)
    status["floor"] = run_loadgen(ctx, "/bench/floor/status", user.token)
    listing = run_loadgen(ctx, list_path, user.token)
    listing["floor"] = run_loadgen(ctx, "/bench/floor/avatars", user.token)
    listing["avatars_in_list"] = len(list_body["avatars"])
    for route in (status, listing):
        floor_cpu = route["floor"].get("server_cpu_ms_per_request")
        if route.get("server_cpu_ms_per_request") and floor_cpu:
            route["cpu_ratio_to_floor"] = round(route["server_cpu_ms_per_request"] / floor_cpu, 2)
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
