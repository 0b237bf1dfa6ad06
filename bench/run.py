"""`make bench`: start the real stack on loopback, run every scenario, print the figures, tear it all down.

    .venv/bin/python bench/run.py                 # the full run (about 4 minutes)
    .venv/bin/python bench/run.py --quick         # smaller counts, a smoke run
    .venv/bin/python bench/run.py --only save,bytes --latency 1
    .venv/bin/python bench/run.py --server granian --only live,streams

Needs PostgreSQL (trust auth for `postgres` on 127.0.0.1:5432) and Redis (127.0.0.1:6379, db 14 is used and
flushed). Creates and drops the database `lumiku_bench`. Results: printed, and written to
bench/results/latest.json and bench/results/latest.md. See bench/README.md.
"""

import argparse
import json
import os
import platform
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import scenarios
from scenarios import Context, Counts
from stack import SERVERS, WORKER_POOLS, Stack, raise_open_files_limit

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
# `streams` runs last: it stops the worker and leaves a thousand cancelled previews behind it.
SCENARIOS = ("preview", "sync", "save", "bytes", "read", "scaling", "live", "recovery", "streams")


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        **{
            name: metadata.version(name)
            for name in ("Django", "djangorestframework", "gunicorn", "celery", "uvicorn", "granian")
            if _installed(name)
        },
    }


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def _ms(figure: dict, key: str) -> str:
    value = figure.get(key)
    return "-" if value is None else f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "NOT MET")


def evaluate(results: dict, latency: float, nproc: int) -> list[dict]:
    """The table: one row per figure, with its target and whether it was met."""
    rows = []

    def latency_row(name, figure, target="", ok=None):
        rows.append(
            {
                "figure": name,
                "p50": _ms(figure, "p50"),
                "p95": _ms(figure, "p95"),
                "p99": _ms(figure, "p99"),
                "n": figure.get("n", 0),
                "target": target,
                "result": _verdict(ok),
            }
        )

    def value_row(name, value, target="", ok=None):
        rows.append(
            {"figure": name, "p50": value, "p95": "", "p99": "", "n": "", "target": target, "result": _verdict(ok)}
        )

    if "preview" in results:
        r = results["preview"]
        server = r["server_overhead_ms"]
        ok = bool(server.get("n")) and server["p50"] <= 30 and server["p95"] <= 100 and not r["client_errors"]
        ok = ok and r["statuses"].get("succeeded", 0) == r["previews"]
        latency_row("1. preview overhead, server (finishedAt-createdAt-L), ms", server, "p50<=30, p95<=100", ok)
        latency_row(
            f"   preview overhead, client-seen (polling every {r['poll_interval_ms']} ms), ms", r["client_overhead_ms"]
        )
        latency_row("   of which queue wait (startedAt-createdAt), ms", r["queue_wait_ms"])
        latency_row("   of which worker run minus L, ms", r["run_overhead_ms"])
        latency_row("   202 answer to generate-preview (async), ms", r["accept_202_ms"])
        latency_row("   status poll while generating, ms", r["status_poll_ms"])
        latency_row(
            f"   warm-up: first preview of each of the {r['worker_slots']} pool processes, ms",
            r["cold_start_server_overhead_ms"],
        )
    if "sync" in results:
        r = results["sync"]
        busy = r["cheap_get_while_waiting_new_connection_ms"]
        busy_keep = r["cheap_get_while_waiting_keepalive_ms"]
        # "Served" = no errors and no call held anywhere near a preview's duration; the p95 is the figure asked for.
        ok = bool(busy.get("n")) and not r["error_count"] and max(busy["max"], busy_keep["max"]) < latency * 1000 / 2
        latency_row(
            f"S. cheap GET while {r['waiting_calls']} sync previews wait (new conn.), ms",
            busy,
            "served: no error, max<L/2",
            ok,
        )
        latency_row("   same, on a kept-alive connection, ms", busy_keep)
        latency_row("   same GET with nothing waiting (new conn.), ms", r["cheap_get_idle_new_connection_ms"])
        latency_row("   sync generate-preview minus L, ms", r["sync_call_overhead_ms"])
        latency_row("   of which server-side (finishedAt-createdAt-L), ms", r["sync_server_overhead_ms"])
        latency_row("   of which queue wait (startedAt-createdAt), ms", r["sync_queue_wait_ms"])
    if "save" in results:
        r = results["save"]
        by_id = r["by_preview_id_ms"]
        ok = bool(by_id.get("n")) and by_id["p50"] <= 50 and by_id["p95"] <= 150 and not r["by_preview_id_errors"]
        latency_row("2. save by previewId, one at a time, ms", by_id, "p50<=50, p95<=150", ok)
        latency_row(f"   save by previewId, {r['concurrency']} savers at once, ms", r["by_preview_id_concurrent_ms"])
        latency_row("   legacy base64 save, one at a time, ms", r["legacy_base64_ms"])
    if "read" in results:
        for key, label, target in (
            ("preview_status", "3. GET /previews/:id", 400),
            ("avatar_list", "   GET /projects/:id/avatars", 250),
        ):
            r = results["read"][key]
            extra = f" ({r['avatars_in_list']} avatars)" if "avatars_in_list" in r else ""
            ok = r["requests_per_second"] >= target and not r["errors"]
            value_row(
                f"{label}{extra}, req/s ({r['connections']} conn., errors: {sum(r['errors'].values())})",
                f"{r['requests_per_second']:.0f}",
                f">={target} req/s, no errors",
                ok,
            )
            latency_row("   its latency under that load, ms", r["latency_ms"])
            if r.get("server_cpu_ms_per_request"):
                cpu = r["server_cpu_ms_per_request"]
                value_row(
                    "   server CPU per request (web server + PostgreSQL), ms / CPU-bound ceiling, req/s",
                    f"{cpu:.1f} / {1000 * nproc / cpu:.0f}",
                )
            floor = r.get("floor")
            if floor:
                value_row(
                    f"   its floor (same JSON from memory), req/s (errors: {sum(floor['errors'].values())})",
                    f"{floor['requests_per_second']:.0f}",
                )
                latency_row("   the floor's latency under that load, ms", floor["latency_ms"])
                if floor.get("server_cpu_ms_per_request"):
                    value_row("   the floor's server CPU per request, ms", f"{floor['server_cpu_ms_per_request']:.2f}")
            if r.get("cpu_ratio_to_floor"):
                ratio = r["cpu_ratio_to_floor"]
                value_row("   CPU per request / the floor's", f"{ratio:.2f}x", "<=2.5x", ratio <= 2.5)
                if len(r.get("slice_ratios", [])) > 1:
                    value_row(
                        "   the same, slice by slice (route and floor alternating)",
                        " / ".join(f"{each:.2f}" for each in r["slice_ratios"]),
                    )
    if "bytes" in results:
        r = results["bytes"]
        by_id, legacy = r["save_by_preview_id"], r["save_legacy_base64"]
        value_row(
            "4. bytes on the wire, save by previewId (req + resp)",
            f"{by_id['request_bytes']} + {by_id['response_bytes']}",
        )
        value_row(
            "   bytes on the wire, legacy base64 save (req + resp)",
            f"{legacy['request_bytes']} + {legacy['response_bytes']}",
        )
        value_row("   ratio legacy / by previewId", f"{legacy['total_bytes'] / by_id['total_bytes']:.0f}x")
        value_row(
            "   whole flow after generation: status GET + save / GET ?include=base64 + legacy save, bytes",
            f"{r['by_id_flow_total_bytes']} / {r['legacy_flow_total_bytes']}",
        )
    if "scaling" in results:
        for slots, r in results["scaling"]["by_slots"].items():
            if "error" in r:
                value_row(f"5. previews/s with {slots} slot(s)", r["error"], ">=95% of ideal", False)
                continue
            value_row(
                f"5. previews/s with {slots} slot(s) (ideal {r['ideal_per_second']:g})",
                f"{r['previews_per_second']:.3f} ({r['efficiency_pct']:.1f}%)",
                ">=95% of ideal",
                r["efficiency_pct"] >= 95,
            )
    if "live" in results:
        _live_rows(results, latency_row, value_row)
    if "streams" in results:
        _streams_rows(results["streams"], latency_row, value_row)
    if "recovery" in results:
        r = results["recovery"]
        for i, attempt in enumerate(r["rounds"], 1):
            if "error" in attempt:
                value_row(f"9. recovery after a worker kill, round {i}", attempt["error"], "<=60 s", False)
                continue
            value_row(
                f"9. recovery after a worker kill, round {i}: kill -> succeeded, s (attempts {attempt['attempts']})",
                f"{attempt['kill_to_succeeded_s']:.1f}",
                "<=60 s",
                attempt["kill_to_succeeded_s"] <= 60,
            )
        if r.get("max_kill_to_succeeded_s") is not None:
            value_row(
                f"   max of {len(r['rounds'])} (reap interval {r['reap_interval_s']:g} s, heartbeat stale after "
                f"{r['heartbeat_stale_s']:g} s), s",
                f"{r['max_kill_to_succeeded_s']:.1f}",
                "<=60 s",
                r["max_kill_to_succeeded_s"] <= 60 and r["all_succeeded"],
            )
    noise = [f"{name} {r['cpu']['other_processes_cores']:.2f}" for name, r in results.items() if "cpu" in r]
    if noise:
        value_row("N. cores used by other processes during: " + ", ".join(noise), "", "~0 for clean figures")
    for role, memory in results.get("memory", {}).items():
        value_row(
            f"6. peak RSS, {role}, MB (largest process / sum of RSS / sum of PSS)",
            f"{memory['peak_process_mb']:.0f} / {memory['peak_total_mb']:.0f} / {memory.get('total_pss_mb', 0):.0f}",
        )
    return rows


def _kinds(counts: dict) -> str:
    return ", ".join(f"{name} {count}" for name, count in list(counts.items())[:3])


def _live_rows(results: dict, latency_row, value_row) -> None:
    r = results["live"]
    for key, label in (("events", "via the event stream"), ("prefer_wait", "via GET with Prefer: wait=60")):
        figure = r[key]
        overhead = figure["client_overhead_ms"]
        ok = bool(overhead.get("n")) and overhead["p50"] <= 50 and overhead["p95"] <= 150 and not figure["errors"]
        number = "7." if key == "events" else "  "
        latency_row(
            f"{number} live results {label}: client-seen overhead (POST -> final answer - L), ms",
            overhead,
            "p50<=50, p95<=150",
            ok,
        )
        latency_row(f"   {label}: notify latency (arrival - finishedAt), ms", figure["notify_ms"])
        latency_row(f"   {label}: of which server-side (finishedAt-createdAt-L), ms", figure["server_overhead_ms"])
        if figure["errors"]:
            value_row(f"   {label}: errors", f"{figure['error_count']}: {figure['errors'][0][:80]}")
    sync = r["waiting_generate"]
    overhead = sync["call_overhead_ms"]
    ok = bool(overhead.get("n")) and overhead["p50"] <= 50 and not sync["errors"]
    latency_row(f"   waiting generate-preview ({sync['clients']} clients) minus L, ms", overhead, "p50<=50", ok)
    if sync["errors"]:
        value_row("   waiting generate-preview: errors", f"{sync['error_count']}: {sync['errors'][0][:80]}")
    if "preview" in results:
        polled = results["preview"]
        latency_row(
            f"   beside it, scenario 1: client-seen polling every {polled['poll_interval_ms']} ms, ms",
            polled["client_overhead_ms"],
        )


def _streams_rows(r: dict, latency_row, value_row) -> None:
    value_row(
        f"8. {r['streams']} open event streams: opened with a first event (errors)",
        f"{r['opened']} ({sum(r['open_errors'].values())})",
        f"all {r['streams']}",
        r["opened"] == r["streams"] and not r["open_errors"],
    )
    probe = r["cheap_get_ms"]
    ok = bool(probe.get("n")) and probe["p95"] <= 100 and not r["cheap_get_errors"]
    latency_row(
        f"   GET /api/auth/me (new conn. every 50 ms) with them open (errors: {r['cheap_get_error_count']}), ms",
        probe,
        "p95<=100",
        ok,
    )
    latency_row("   same GET before the streams were opened, ms", r["cheap_get_before_ms"])
    if "web_cores_while_held" in r:
        value_row("   web server CPU while they are held (with the probe), cores", f"{r['web_cores_while_held']:.2f}")
    value_row(
        "   web RSS / PSS, MB: before -> with streams open; KB per stream (RSS / PSS)",
        f"{r['web_rss_mb']['before']:.0f} / {r['web_pss_mb']['before']:.0f} -> "
        f"{r['web_rss_mb']['open']:.0f} / {r['web_pss_mb']['open']:.0f}; "
        f"{r['rss_kb_per_stream']:.0f} / {r['pss_kb_per_stream']:.0f}",
    )
    threads = r["web_threads"]
    value_row(
        "   web threads: before -> open -> after closing",
        f"{threads['before']} -> {threads['open']} -> {threads['after']}",
    )
    for key, label in (
        ("client_connections", "clients"),
        ("redis_connections", "Redis"),
        ("db_connections", "PostgreSQL"),
    ):
        held = r["web_connections"][key]
        value_row(
            f"   web TCP connections to {label}: before -> open -> after closing",
            f"{held['before']} -> {held['open']} -> {held['after']}",
        )
    clients, backends = r["redis_connected_clients"], r.get("db_backends")
    value_row(
        "   Redis connected_clients: before -> open -> after closing",
        f"{clients['before']} -> {clients['open']} -> {clients['after']}",
    )
    kinds = r.get("redis_clients_by_last_command")
    if kinds:
        value_row(
            "   Redis clients by last command (CLIENT LIST), open -> after closing",
            f"{_kinds(kinds['open'])} -> {_kinds(kinds['after'])}",
        )
    if backends:
        every = r.get("pg_connections_all_databases", {})
        value_row(
            "   PostgreSQL backends of the bench db (all databases): before -> open -> after closing",
            f"{backends['before']} ({every.get('before')}) -> {backends['open']} ({every.get('open')}) -> "
            f"{backends['after']} ({every.get('after')})",
        )
    peaks = r.get("peak_while_opening")
    if peaks:
        value_row(
            "   peaks while opening: PostgreSQL connections (all databases) / web threads / web client connections",
            f"{peaks.get('pg_connections')} / {peaks.get('threads')} / {peaks.get('clients')}",
        )
    setup, cleanup = r.get("setup_errors", {}), r.get("cleanup_errors", {})
    if setup.get("queueing_count") or cleanup.get("cancelling_count") or r.get("cancel_failures"):
        first = (setup.get("queueing") or cleanup.get("cancelling") or [""])[0]
        value_row(
            "   failed calls around it (sent again): queueing / cancelling; previews left uncancelled",
            f"{setup.get('queueing_count', 0)} / {cleanup.get('cancelling_count', 0)}; {r.get('cancel_failures', 0)}"
            f" ({first[:60]})",
        )
    fell_back = r.get("fell_back_seconds")
    value_row(
        "   web client connections back to before after closing",
        "no (server restarted)" if fell_back is None else f"in {fell_back:g} s",
    )


def table(rows: list[dict], *, markdown: bool) -> str:
    headers = ["figure", "p50", "p95", "p99", "n", "target", "result"]
    cells = [[str(row[h]) for h in headers] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in cells]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=2.0, help="seconds the fake image API takes (L)")
    parser.add_argument("--quick", action="store_true", help="smaller counts: a smoke run of every scenario")
    parser.add_argument("--only", default="", help=f"comma-separated scenarios among {', '.join(SCENARIOS)}")
    parser.add_argument(
        "--server", choices=tuple(SERVERS), default="granian",
        help="the web server: gunicorn gthread (WSGI), gunicorn with uvicorn workers (ASGI) or granian (ASGI)",
    )  # fmt: skip
    parser.add_argument("--web-workers", type=int, default=2, help="web server worker processes")
    parser.add_argument("--web-threads", type=int, default=32, help="threads per gunicorn gthread worker")
    parser.add_argument("--slots", type=int, default=20, help="Celery pool slots for scenarios 1, S, 2, 7 and 9")
    parser.add_argument(
        "--worker-pool", choices=WORKER_POOLS, default="prefork",
        help="the Celery worker's pool: prefork (production's) or threads (an A/B)",
    )  # fmt: skip
    parser.add_argument(
        "--poll-interval", type=float, default=1.0, help="seconds between a client's status polls (the UI's: 1)"
    )
    parser.add_argument(
        "--image", choices=("photo", "simple"), default="photo", help="the fake API's JPEG: photo-like or the test one"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help="an extra environment variable for the app's processes (an A/B run, e.g. DB_PREPARED_STATEMENTS=false)",
    )  # fmt: skip
    parser.add_argument("--render", metavar="JSON", help="print the table of a results file again, run nothing")
    parser.add_argument("--keep-logs", action="store_true", help="keep the server logs (their path is printed)")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(SCENARIOS)
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose among {', '.join(SCENARIOS)}")
    args.scenarios = [name for name in SCENARIOS if name in chosen]
    if any("=" not in item for item in args.set):
        parser.error("--set takes NAME=VALUE")
    args.extra_env = dict(item.split("=", 1) for item in args.set)
    return args


def web_layout(args) -> str:
    if args.server == "gthread":
        return f"gunicorn gthread, {args.web_workers} workers x {args.web_threads} threads"
    if args.server == "uvicorn":
        return f"gunicorn + uvicorn.workers.UvicornWorker, {args.web_workers} workers"
    return f"granian ASGI, {args.web_workers} workers"


def _terminate(signum, frame):
    raise SystemExit(128 + signum)


def render(path: str) -> int:
    payload = json.loads(Path(path).read_text())
    print(
        table(evaluate(payload["results"], payload["config"]["latency_s"], payload["machine"]["nproc"]), markdown=False)
    )
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render:
        return render(args.render)
    # Every way of stopping the run tears the stack down (the finally below); SIGINT is set explicitly because a
    # shell that starts a command in the background hands it down ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    counts = Counts.quick() if args.quick else Counts()
    counts.poll_interval = args.poll_interval
    started = time.monotonic()
    open_files = raise_open_files_limit()
    stack = Stack(
        latency=args.latency,
        web_workers=args.web_workers,
        web_threads=args.web_threads,
        server=args.server,
        keep_logs=args.keep_logs,
        image=args.image,
        extra_env=args.extra_env,
        worker_pool=args.worker_pool,
    )
    results: dict = {}
    failures: dict[str, str] = {}
    interrupted = False
    info = {"machine": machine(), "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        print(f"starting the stack ({args.server}, latency L = {args.latency:g} s) ...", flush=True)
        stack.open()
        info["machine"].update(stack.database_info())
        info["config"] = {
            "latency_s": args.latency,
            "quick": args.quick,
            "server": args.server,
            "web": web_layout(args),
            "open_files_limit": list(open_files),
            "celery_slots": args.slots,
            "celery_pool": args.worker_pool,
            "fake_image": args.image,
            "poll_interval_s": args.poll_interval,
            "extra_env": args.extra_env,
            "counts": {k: v for k, v in vars(counts).items()},
        }
        ctx = Context(stack=stack, latency=args.latency, counts=counts, slots=args.slots)
        if any(name != "scaling" for name in args.scenarios):
            stack.start_worker(args.slots)
        scenarios.ensure_users(ctx, counts.clients + 1)
        for name in args.scenarios:
            print(f"running {name} ...", flush=True)
            before = stack.cpu_snapshot()
            try:
                results[name] = getattr(scenarios, f"scenario_{name}")(ctx)
            except Exception as exc:  # one scenario failing still leaves the others' figures (and the teardown)
                failures[name] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
                print(f"  {name} failed: {failures[name]}", file=sys.stderr, flush=True)
                continue
            usage = stack.cpu_usage(before, stack.cpu_snapshot())
            stack.memory.sample(pss=True)
            results[name]["cpu"] = usage
            print(
                f"  {name} took {usage['wall_seconds']:.0f} s; other processes on the machine used "
                f"{usage['other_processes_cores']:.2f} of {os.cpu_count()} cores meanwhile",
                flush=True,
            )
        stack.memory.sample(pss=True)
        results["memory"] = stack.memory.report()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        problems = stack.close()
        if problems:
            print("teardown problems: " + "; ".join(problems), file=sys.stderr)
    if interrupted:
        print("interrupted: every process stopped, the bench database dropped, nothing written", file=sys.stderr)
        return 130
    info["duration_s"] = round(time.monotonic() - started, 1)
    RESULTS_DIR.mkdir(exist_ok=True)
    payload = {**info, "results": results, "failures": failures}
    (RESULTS_DIR / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")
    rows = evaluate(results, args.latency, info["machine"]["nproc"])
    print()
    print(table(rows, markdown=False))
    m = info["machine"]
    config = info.get("config", {})
    print(f"\nweb server: {config.get('web')}; Celery pool: {config.get('celery_pool', 'prefork')}")
    print(
        f"{m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB, Python {m['python']}, "
        f"PostgreSQL {m.get('postgresql')}, Redis {m.get('redis')}; took {info['duration_s']:.0f} s"
    )
    payload["table"] = rows
    (RESULTS_DIR / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS_DIR / "latest.md").write_text(table(rows, markdown=True) + "\n")
    print(f"written: {RESULTS_DIR / 'latest.json'}")
    if failures:
        print("failed scenarios: " + ", ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
