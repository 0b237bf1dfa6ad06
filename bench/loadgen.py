"""Closed-loop read load from its own process: C keep-alive connections each send GET `path` back to back.

Run by bench/run.py (`python bench/loadgen.py --port P --path /api/... --token T --duration 20 --connections 16`);
prints one JSON object: requests, errors, requests per second and latency percentiles (with `--raw`, every latency
too, for a caller that merges several runs). asyncio with raw streams costs far less CPU per request than threads with
http.client, which matters when the load generator shares two cores with the server it measures. Bounded in time: it
stops by itself after `--duration` seconds (and every read has a timeout).
"""

import argparse
import asyncio
import json
import resource
import time

from stats import summary
from wire import LOOPBACK, build_request, parse_head

READ_TIMEOUT = 10.0


async def one_connection(port: int, request: bytes, stop_at: float, latencies: list, errors: dict) -> None:
    reader = writer = None
    while time.perf_counter() < stop_at:
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(LOOPBACK, port), READ_TIMEOUT)
            started = time.perf_counter()
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            status, headers = parse_head(head[:-4])
            await asyncio.wait_for(reader.readexactly(int(headers.get("content-length") or 0)), READ_TIMEOUT)
            elapsed = time.perf_counter() - started
            if status != 200:
                errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1
            else:
                latencies.append(elapsed)
            if headers.get("connection", "").lower() == "close":
                writer.close()
                writer = None
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            name = type(exc).__name__
            errors[name] = errors.get(name, 0) + 1
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def run(port: int, path: str, token: str, duration: float, connections: int, raw: bool = False) -> dict:
    request = build_request(
        "GET", path, host=f"{LOOPBACK}:{port}", headers={"Authorization": f"Bearer {token}"}, body=None
    )
    latencies: list[float] = []
    errors: dict[str, int] = {}
    started = time.perf_counter()
    stop_at = started + duration
    await asyncio.gather(*(one_connection(port, request, stop_at, latencies, errors) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return ({"latencies_s": latencies} if raw else {}) | {
        "path": path,
        "connections": connections,
        "seconds": round(elapsed, 2),
        "requests": len(latencies),
        "errors": errors,
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "latency_ms": summary(latencies),
        "loadgen_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--raw", action="store_true", help="also print every latency, in seconds")
    args = parser.parse_args()
    result = asyncio.run(run(args.port, args.path, args.token, args.duration, args.connections, args.raw))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
