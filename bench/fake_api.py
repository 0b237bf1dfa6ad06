"""The fake image API in its own process: every POST answers after a fixed latency with a real 1024x1024 JPEG.

It is the test suite's FakeImageAPI (tests/fake_image_api.py), with five bench-only adjustments made here:
- its script is kept topped up with `Reply("ok", delay=L)`, so every POST waits exactly L seconds;
- with `--image photo` (the default) the picture is the test image overlaid with blurred noise and saved at
  quality 90: about 160 kB, what a real 1024x1024 portrait JPEG weighs and costs to decode (the plain test image
  is a 32 kB gradient, far cheaper to decode and to carry as base64); `--image simple` keeps the test image;
- the image for a given size is made once and reused (a real provider's encoding time is not our overhead);
- its listen backlog is raised from socketserver's 5 to 128, so a burst of 20 workers calling at the same
  instant is not answered with dropped SYNs (a 1 s retransmit would show up as our overhead);
- it speaks HTTP/1.1 and keeps connections open, as a real provider does: huggingface_hub's shared client then reuses
  one connection per pool process, as in production (the tests' fake stays on HTTP/1.0: a new connection, and a new
  thread in the fake, for every request).

Run by bench/run.py: `python bench/fake_api.py --latency 2.0`; prints the base URL on its first line of stdout
and serves until stdin closes (its parent went away) or it gets SIGTERM.
"""

import argparse
import functools
import io
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import fake_image_api  # noqa: E402

TOP_UP = 2000


def photo_like(make_image):
    """The test image with a photo's texture: blurred noise over it, JPEG quality 90 (deterministic per size)."""
    from PIL import Image, ImageFilter

    def make(width: int = 1024, height: int = 1024, *, image_format: str = "JPEG") -> bytes:
        base = Image.open(io.BytesIO(make_image(width, height))).convert("RGB")
        noise = Image.effect_noise((width, height), 40).filter(ImageFilter.GaussianBlur(1.2))
        texture = Image.merge("RGB", (noise, noise.transpose(Image.Transpose.ROTATE_90).resize(noise.size), noise))
        buffer = io.BytesIO()
        Image.blend(base, texture, 0.5).save(buffer, format=image_format, quality=90)
        return buffer.getvalue()

    return make


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--image", choices=("photo", "simple"), default="photo")
    args = parser.parse_args()

    make = fake_image_api.make_image if args.image == "simple" else photo_like(fake_image_api.make_image)
    fake_image_api.make_image = functools.lru_cache(maxsize=8)(make)
    size = len(fake_image_api.make_image(1024, 1024, image_format="JPEG"))
    fake_image_api._QuietServer.request_queue_size = 128
    fake_image_api._Handler.protocol_version = "HTTP/1.1"

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()

    reply = fake_image_api.Reply("ok", delay=args.latency)
    with fake_image_api.FakeImageAPI() as fake:
        fake.script(*[reply] * TOP_UP)
        print(fake.url, flush=True)
        print(f"serving a {size} byte 1024x1024 JPEG after {args.latency} s", file=sys.stderr, flush=True)
        while not stop.wait(0.25):
            if fake.pending < TOP_UP // 2:
                fake.script(*[reply] * TOP_UP)
        posts = len(fake.requests)
    print(f"served {posts} image requests", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
