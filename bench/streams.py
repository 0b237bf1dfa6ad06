"""Many open event streams from their own process (scenario 8): open them all, hold them, close them on request.

Run by bench/scenarios.py:

    python bench/streams.py --port P --jobs FILE [--concurrency 50] [--open-timeout 60] [--hold-max 600]

FILE is a JSON list of {"token": ..., "id": ...} (a preview each). Every stream sends `GET .../previews/<id>/events`
(`Accept: text/event-stream`), reads the answer's head and its first event, then keeps reading what follows
(heartbeats, every 15 s) until told to stop. Prints one JSON line once every stream got its first event or the open
deadline passed ("phase": "open"), then waits for a line `close` on stdin (or --hold-max seconds, or stdin closing),
closes every connection and prints a second JSON line ("phase": "closed"). asyncio keeps a thousand sockets cheap
for the two cores the server under test also uses; threads would not.
"""

import argparse
import asyncio
import json
import resource
import sys
import time

from stats import summary
from wire import LOOPBACK, ChunkedDecoder, EventParser, build_request, parse_head

READ_SIZE = 65536
GATE_SECONDS = 5.0


class Stream:
    """One stream's state, shared with the main coroutine (which reads the counts)."""

    def __init__(self, token: str, preview_id: str):
        self.token = token
        self.preview_id = preview_id
        self.writer = None
        self.first_event_s: float | None = None
        self.first_status = ""
        self.events = 0
        self.heartbeats = 0
        self.ended_early = False
        self.error = ""
        self.first = asyncio.Event()


async def follow(stream: Stream, port: int, gate: asyncio.Semaphore, open_timeout: float) -> None:
    """Open the stream, read its first event, then read until closed. A place at the `gate` is held from connecting
    to the first event (so that only so many openings, each a Django call, run at once), but at most GATE_SECONDS:
    a server that queues the request (every thread busy) must not stop the others opening."""
    await gate.acquire()
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            gate.release()

    timer = asyncio.get_running_loop().call_later(GATE_SECONDS, release)
    try:
        started = time.perf_counter()
        reader, stream.writer = await asyncio.wait_for(asyncio.open_connection(LOOPBACK, port), open_timeout)
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {stream.token}"}
        path = f"/api/avatar-creator/previews/{stream.preview_id}/events"
        stream.writer.write(build_request("GET", path, host=f"{LOOPBACK}:{port}", headers=headers, body=None))
        head = await reader.readuntil(b"\r\n\r\n")
        status, answer = parse_head(head[:-4])
        if status != 200:
            stream.error = f"HTTP {status}"
            return
        decoder = ChunkedDecoder() if answer.get("transfer-encoding", "").lower() == "chunked" else None
        parser = EventParser()
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                stream.ended_early = True
                return
            if decoder is not None:
                data = decoder.feed(data)
            for event in parser.feed(data):
                if event.comment is not None:
                    stream.heartbeats += 1
                    continue
                stream.events += 1
                if stream.first_event_s is None:
                    stream.first_event_s = time.perf_counter() - started
                    payload = event.json() or {}
                    stream.first_status = payload.get("preview", payload).get("status", "")
                    stream.first.set()
                    release()
            if decoder is not None and decoder.done:
                stream.ended_early = True
                return
    except asyncio.CancelledError:
        raise
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        stream.error = type(exc).__name__
    finally:
        timer.cancel()
        release()
        stream.first.set()
        if stream.writer is not None:
            stream.writer.close()


async def wait_for_close(hold_max: float) -> str:
    """A line on stdin (`close`), stdin closing, or the hold limit: whichever comes first."""
    loop = asyncio.get_running_loop()
    try:
        line = await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), hold_max)
    except TimeoutError:
        return "hold limit"
    return line.strip() or "stdin closed"


def counts(streams: list[Stream]) -> dict:
    errors: dict[str, int] = {}
    for stream in streams:
        if stream.error:
            errors[stream.error] = errors.get(stream.error, 0) + 1
    return {
        "opened": sum(1 for s in streams if s.first_event_s is not None),
        "first_status": sorted({s.first_status for s in streams if s.first_status}),
        "errors": errors,
        "ended_early": sum(1 for s in streams if s.ended_early),
        "events": sum(s.events for s in streams),
        "heartbeats": sum(s.heartbeats for s in streams),
    }


async def run(args) -> None:
    jobs = json.loads(open(args.jobs).read())  # noqa: SIM115, PTH123 - read at once
    streams = [Stream(job["token"], job["id"]) for job in jobs]
    gate = asyncio.Semaphore(args.concurrency)
    started = time.perf_counter()
    tasks = [asyncio.create_task(follow(stream, args.port, gate, args.open_timeout)) for stream in streams]
    firsts = [asyncio.create_task(stream.first.wait()) for stream in streams]
    await asyncio.wait(firsts, timeout=args.open_timeout)
    for task in firsts:
        task.cancel()
    opened = {
        "phase": "open",
        "streams": len(streams),
        "seconds": round(time.perf_counter() - started, 2),
        "first_event_ms": summary([s.first_event_s for s in streams if s.first_event_s is not None]),
        **counts(streams),
    }
    print(json.dumps(opened), flush=True)
    reason = await wait_for_close(args.hold_max)
    held = time.perf_counter() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for stream in streams:
        if stream.writer is not None:
            stream.writer.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    closed = {
        "phase": "closed",
        "reason": reason,
        "held_seconds": round(held, 1),
        "client_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        **counts(streams),
    }
    print(json.dumps(closed), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--jobs", required=True, help="a JSON file: [{token, id}, ...]")
    parser.add_argument("--concurrency", type=int, default=10, help="streams being opened at once")
    parser.add_argument("--open-timeout", type=float, default=60.0, help="seconds for every stream's first event")
    parser.add_argument("--hold-max", type=float, default=600.0, help="close everything after this many seconds")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = len(json.loads(open(args.jobs).read())) + 256  # noqa: SIM115, PTH123
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
        )
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
